import test, { type ExecutionContext } from 'ava'
import { createServer, type Socket } from 'node:net'
import { once } from 'node:events'
import { RpcClient, RpcErrorCode, RpcServer, isTransportFailure } from '../src/index.js'

// A probe is the manager's evidence that a member is gone: a fresh session and
// a ping. It must pass while the member's requests are stuck, and fail,
// within its deadline, for a port where nothing answers or a peer that never
// completes the handshake.

const KEY = Buffer.alloc(32, 7)
const identity = { id: 'srv-probe', role: 'storage', center: 'east', slot: 1, address: '127.0.0.1', port: 0, bootId: 'boot-1' } as const

function client (t: ExecutionContext, port: number): RpcClient {
  const c = new RpcClient({ key: KEY, selfId: 'mgr-probe', host: '127.0.0.1', port })
  t.teardown(async () => { await c.close() })
  return c
}

test('a probe is answered while every request the member holds is stuck in its handler', async (t) => {
  let release: () => void = () => {}
  const stuck = new Promise<void>((resolve) => { release = resolve })
  const server = new RpcServer({ key: KEY, identity, handler: async () => { await stuck; throw new Error('released') } })
  await server.start()
  t.teardown(async () => { release(); await server.close() })
  const c = client(t, server.port)
  const held = c.request('node.stats', {}).catch((err: unknown) => err)
  await c.probe(2000)
  t.pass('the probe answered on its own session')
  release()
  await held
})

test('a probe of a port where nothing listens fails as a transport failure', async (t) => {
  const free = createServer()
  free.listen(0, '127.0.0.1')
  await once(free, 'listening')
  const port = (free.address() as { port: number }).port
  await new Promise<void>((resolve) => free.close(() => resolve()))
  const err = await t.throwsAsync(client(t, port).probe(2000))
  t.is((err as { code?: string }).code, RpcErrorCode.CONNECT)
  t.true(isTransportFailure(err))
})

test('a probe of a peer that accepts but never shakes hands (a paused process) times out at its deadline', async (t) => {
  const sockets = new Set<Socket>()
  const mute = createServer((s) => { sockets.add(s) })
  mute.listen(0, '127.0.0.1')
  await once(mute, 'listening')
  t.teardown(async () => { for (const s of sockets) s.destroy(); await new Promise<void>((resolve) => mute.close(() => resolve())) })
  const started = Date.now()
  const err = await t.throwsAsync(client(t, (mute.address() as { port: number }).port).probe(300))
  t.is((err as { code?: string }).code, RpcErrorCode.TIMEOUT)
  t.true(Date.now() - started < 1900, 'the probe\'s own deadline, shorter than the connect timeout, ends it')
})

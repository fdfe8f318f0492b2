import test from 'ava'
import { createSocket } from 'node:dgram'
import { randomGroupPort, until } from '@mirrorcast/testkit'
import { encodeDatagram } from '@mirrorcast/wire'
import { MulticastChannel, search, SearchResponder, type DropReason } from '../src/index.js'

const KEY = Buffer.alloc(32, 7)
const OTHER_KEY = Buffer.alloc(32, 8)
const randomPort = randomGroupPort

async function channel (t: import('ava').ExecutionContext, id: string, port: number, options: { key?: Buffer, cluster?: string } = {}): Promise<MulticastChannel> {
  const c = new MulticastChannel(id, { key: options.key ?? KEY, port, ...(options.cluster === undefined ? {} : { cluster: options.cluster }) })
  await c.start()
  t.teardown(async () => { await c.close() })
  return c
}

const info = { role: 'storage' as const, center: 'east', slot: 1, address: '127.1.0.1', port: 9, bootId: 'b1', heartbeatMs: 100, free: 1, files: 0 }

test('forged, foreign-cluster, replayed, stale and oversize datagrams are dropped and counted', async (t) => {
  const port = randomPort()
  const listener = await channel(t, 'listener', port)
  const good = await channel(t, 'good', port)
  const forger = await channel(t, 'forger', port, { key: OTHER_KEY })
  const foreign = await channel(t, 'foreign', port, { cluster: 'elsewhere' })
  const heard: string[] = []
  listener.on('message', (m) => heard.push(`${m.t}:${m.from}`))
  await good.announce('announce', { ...info, id: 'good', cluster: 'mirrorcast' })
  await forger.announce('announce', { ...info, id: 'forger', cluster: 'mirrorcast' })
  await foreign.announce('announce', { ...info, id: 'foreign', cluster: 'elsewhere' })
  await until(() => heard.length >= 1 && listener.dropped['bad-mac'] >= 1 && listener.dropped['foreign-cluster'] >= 1, { what: 'the good datagram heard, the forged and the foreign one dropped' })
  t.deepEqual(heard, ['announce:good'])

  // A raw socket replays a captured good datagram, and sends a stale and an oversize one.
  const raw = createSocket('udp4')
  t.teardown(() => raw.close())
  await new Promise<void>((resolve) => raw.bind(0, '127.0.0.1', resolve))
  raw.setMulticastInterface('127.0.0.1')
  raw.setMulticastTTL(0)
  const captured = encodeDatagram(KEY, { t: 'announce', from: 'replayer', seq: 5, body: { ...info, id: 'replayer', cluster: 'mirrorcast' } })
  const stale = encodeDatagram(KEY, { t: 'announce', from: 'old', seq: 1, ts: Date.now() - 3_600_000, body: { ...info, id: 'old', cluster: 'mirrorcast' } })
  const send = async (b: Buffer): Promise<void> => await new Promise((resolve, reject) => raw.send(b, port, '239.192.77.1', (err) => err === null ? resolve() : reject(err)))
  await send(captured)
  await send(captured)
  await send(stale)
  await send(Buffer.alloc(1300, 1))
  await send(Buffer.from('not a datagram'))
  await until(() => listener.dropped.replayed >= 1 && listener.dropped.stale >= 1 && listener.dropped.oversize >= 1 && listener.dropped['missing-mac'] >= 1, { what: 'the replayed, stale, oversize and MAC-less datagrams counted' })
  t.deepEqual(heard, ['announce:good', 'announce:replayer'], 'the replay was delivered once')
  const reasons: DropReason[] = ['bad-mac', 'missing-mac', 'foreign-cluster', 'replayed', 'stale', 'oversize']
  for (const r of reasons) t.true(listener.dropped[r] >= 1, r)
  t.true(listener.droppedFrom.get('bad-mac')?.has('127.0.0.1'), 'the source of forged datagrams is kept for diagnostics')
})

test('search: 500 simulated responders on loopback, every reply received', async (t) => {
  const port = randomPort()
  const asker = await channel(t, 'asker', port)
  const responders: SearchResponder[] = []
  for (let i = 0; i < 500; i++) {
    const c = await channel(t, `r${i}`, port)
    const r = new SearchResponder(c, () => ({ id: `r${i}`, role: 'storage', center: i % 2 === 0 ? 'east' : 'west', slot: 1 + (i % 250), address: '127.1.0.1', port: 1000 + i, bootId: 'b' }), async (kind, key) => kind === 'blob' && key === 'f'.repeat(32) ? { size: i } : undefined)
    r.start()
    t.teardown(() => r.close())
    responders.push(r)
  }
  const result = await search(asker, { kind: 'blob', key: 'f'.repeat(32), windowMs: 1000, timeoutMs: 3000 })
  t.is(result.replies.length, 500)
  t.is(new Set(result.replies.map((r) => r.reply.id)).size, 500)
  t.is(asker.dropped.replayed + asker.dropped['bad-mac'], 0)

  const east = await search(asker, { kind: 'blob', key: 'f'.repeat(32), center: 'east', windowMs: 200, timeoutMs: 1500 })
  t.is(east.replies.length, 250, 'a center-scoped search is answered by that center only')
  t.true(east.replies.every((r) => r.reply.center === 'east'))

  const first = await search(asker, { kind: 'blob', key: 'f'.repeat(32), windowMs: 500, timeoutMs: 3000, first: true })
  t.is(first.replies.length, 1)
  const none = await search(asker, { kind: 'blob', key: '0'.repeat(32), windowMs: 50, timeoutMs: 300 })
  t.is(none.replies.length, 0, 'nobody answers for what nobody holds')
})

import test, { type ExecutionContext } from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BLOCK_BYTES, StorageNode } from '@mirrorcast/node'
import { RpcClient, RpcErrorCode } from '@mirrorcast/rpc'
import { FakeStorageNode, type FakeMemberClient } from '../src/index.js'

// The fake storage node must answer the node protocol as a real node does:
// one script of requests, sent to a real node (over loopback, port 0) and to
// the fake, every reply, refusal code and chunk compared.

const KEY = Buffer.alloc(32, 9)
type Client = RpcClient | FakeMemberClient

async function realNode (t: ExecutionContext): Promise<RpcClient> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-testkit-node-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const node = new StorageNode({ dataDir: dir, key: KEY, center: 'east', slot: 1, scrub: { bytesPerSecond: 0 } })
  await node.start()
  t.teardown(async () => { await node.close() })
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: node.port })
  t.teardown(async () => { await client.close() })
  return client
}

async function outcome (fn: () => Promise<unknown>): Promise<unknown> {
  try {
    return await fn()
  } catch (err) {
    return { refused: (err as { code?: string }).code }
  }
}

async function get (c: Client, fileId: string, offset: number, length?: number): Promise<unknown> {
  const { head, body } = await c.download('blob.get', { fileId, offset, ...(length === undefined ? {} : { length }) })
  // The bytes, not how they were sliced: a real session hands on the slices its reads brought.
  const parts: Buffer[] = []
  for await (const chunk of body) parts.push(chunk)
  return { head: head.body, sha256: createHash('sha256').update(Buffer.concat(parts)).digest('hex'), length: Buffer.concat(parts).length }
}

async function putStreamed (c: Client, fileId: string, body: Buffer, declared = body.length): Promise<unknown> {
  const up = await c.upload('blob.put', { fileId, size: declared })
  try {
    for (let at = 0; at < body.length; at += 300_000) await up.write(body.subarray(at, at + 300_000))
    return (await up.finish()).body
  } catch (err) {
    up.abort('test')
    throw err
  }
}

const small = randomBytes(5000)
const large = randomBytes(2 * BLOCK_BYTES + 12_345)
const [A, B, C, D] = ['a', 'b', 'c', 'd'].map((x) => x.repeat(32)) as [string, string, string, string]

const SCRIPT: Array<[string, (c: Client) => Promise<unknown>]> = [
  ['inline put', async (c) => (await c.request('blob.put', { fileId: A, size: small.length, inline: true }, { payload: small })).body],
  ['inline put of a wrong size', async (c) => (await c.request('blob.put', { fileId: D, size: 10, inline: true }, { payload: small })).body],
  ['streamed put', async (c) => await putStreamed(c, B, large)],
  ['the same body again', async (c) => await putStreamed(c, B, large)],
  ['other bytes under a stored id', async (c) => (await c.request('blob.put', { fileId: A, size: 3, inline: true }, { payload: Buffer.from('xyz') })).body],
  ['a body shorter than declared', async (c) => await putStreamed(c, C, small, small.length + 1)],
  ['stat', async (c) => (await c.request('blob.stat', { fileId: B })).body],
  ['stat of nothing', async (c) => (await c.request('blob.stat', { fileId: C })).body],
  ['get of a small body, inline', async (c) => await get(c, A, 0)],
  ['get of a large body, in blocks', async (c) => await get(c, B, 0)],
  ['get of a range across block edges', async (c) => await get(c, B, BLOCK_BYTES - 10, BLOCK_BYTES + 20)],
  ['get of a small range, inline', async (c) => await get(c, B, 100, 1000)],
  ['get of an empty range', async (c) => await get(c, B, 7, 0)],
  ['get past the end', async (c) => await get(c, B, large.length - 1, 5)],
  ['get of nothing', async (c) => await get(c, C, 0)],
  ['delete', async (c) => (await c.request('blob.delete', { fileId: A })).body],
  ['delete again', async (c) => (await c.request('blob.delete', { fileId: A })).body],
  ['what a directory server serves', async (c) => (await c.request('dir.info', {})).body],
  ['counts', async (c) => { const s = (await c.request('node.stats', {})).body; return [s.files, s.bytes, s.quarantined] }],
  ['quarantine', async (c) => (await c.request('blob.quarantined', {})).body]
]

test('the fake storage node answers the node protocol as a real node does', async (t) => {
  const real = await realNode(t)
  const fake = new FakeStorageNode({ id: 'node-fake', center: 'east', slot: 1 }).client()
  for (const [name, step] of SCRIPT) t.deepEqual(await outcome(async () => await step(fake)), await outcome(async () => await step(real)), name)
})

test('a fake node fails as told: refused while down, cut mid-stream by a fault or a kill, held while paused until resumed or aborted', async (t) => {
  const node = new FakeStorageNode({ id: 'node-fake', center: 'east', slot: 1 })
  const client = node.client()
  await putStreamed(client, B, large)

  node.fail({ t: 'blob.get', afterBytes: BLOCK_BYTES })
  const cut = await outcome(async () => await get(client, B, 0))
  t.deepEqual(cut, { refused: RpcErrorCode.CLOSED })
  t.like(await get(client, B, 0), { length: large.length }, 'a fault hits one request')

  const { body } = await client.download('blob.get', { fileId: B, offset: 0 })
  await body.next()
  node.kill()
  t.is((await outcome(async () => await body.next()) as { refused?: string }).refused, RpcErrorCode.CLOSED, 'a kill cuts a stream in flight')
  t.deepEqual(await outcome(async () => await client.request('blob.stat', { fileId: B })), { refused: RpcErrorCode.CONNECT })
  const bootId = node.bootId
  node.restart()
  t.not(node.bootId, bootId)
  t.like((await client.request('blob.stat', { fileId: B })).body, { size: large.length }, 'what it stored survives')

  node.pause()
  let answered = false
  const held = client.request('blob.stat', { fileId: B }).then(() => { answered = true })
  await new Promise((resolve) => setImmediate(resolve))
  t.false(answered)
  node.resume()
  await held
  t.true(answered)
  node.pause()
  const aborted = outcome(async () => await client.request('blob.stat', { fileId: B }))
  client.abortInFlight(Object.assign(new Error('failed over'), { code: RpcErrorCode.CLOSED }))
  t.deepEqual(await aborted, { refused: RpcErrorCode.CLOSED })
  node.resume()

  node.fail({ t: 'blob.put', afterEffect: true })
  t.deepEqual(await outcome(async () => await putStreamed(client, C, small)), { refused: RpcErrorCode.CLOSED })
  t.true(node.blobs.has(C), 'with afterEffect the work is done and only the answer lost')
})

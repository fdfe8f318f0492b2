import test, { type ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { mkdtemp, rm, truncate } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RpcClient } from '@mirrorcast/rpc'
import { SetDigest, shardOf, type HeldBody } from '@mirrorcast/wire'
import { BLOCK_BYTES, blobPath, bodySizeOf, seedBodies, StorageNode, type SeededBody } from '../src/index.js'

const KEY = Buffer.alloc(32, 9)

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-node-ae-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function startNode (t: ExecutionContext, dir: string, center = 'east'): Promise<RpcClient> {
  const node = new StorageNode({ dataDir: dir, key: KEY, center, slot: 1, scrub: { bytesPerSecond: 0 } })
  await node.start()
  t.teardown(async () => { await node.close() })
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: node.port })
  t.teardown(async () => { await client.close() })
  return client
}

async function digestOf (client: RpcClient): Promise<{ files: number, digest: SetDigest }> {
  const { files, digest } = (await client.request('blob.digest', {})).body
  return { files, digest: new SetDigest(digest) }
}

async function listShard (client: RpcClient, shard: number): Promise<{ files: HeldBody[], pages: number }> {
  const files: HeldBody[] = []
  let pages = 0
  for (let more = true; more; pages++) {
    const after = files.at(-1)?.fileId
    const page = (await client.request('blob.list', { shard, ...(after === undefined ? {} : { after }) })).body
    files.push(...page.files)
    more = page.more
  }
  return { files, pages }
}

async function read (client: RpcClient, fileId: string): Promise<Buffer> {
  const { body } = await client.download('blob.get', { fileId, offset: 0 })
  const chunks: Buffer[] = []
  for await (const c of body) chunks.push(c)
  return Buffer.concat(chunks)
}

test('seeded twins hold the same bodies: the node serves them, both digests equal the digest of the ids, and one body gone shows in its shard alone', async (t) => {
  const [east, west] = [await tempDir(t), await tempDir(t)]
  const bodies = await seedBodies(east, 300, 2000)
  t.deepEqual(await seedBodies(west, bodies), bodies, 'the twin gets the same sizes and checksums')
  const [a, b] = [await startNode(t, east), await startNode(t, west, 'west')]

  const first = bodies[0] as SeededBody
  const content = await read(a, first.fileId)
  t.is(content.length, 2000)
  t.is(createHash('sha256').update(content).digest('hex'), first.sha256)
  t.deepEqual(await read(b, first.fileId), content)

  const expected = new SetDigest()
  for (const body of bodies) expected.add(body.fileId)
  const [da, db] = [await digestOf(a), await digestOf(b)]
  t.is(da.files, 300)
  t.deepEqual(da.digest.differing(expected), [], 'the node digests what it holds')
  t.deepEqual(da.digest.differing(db.digest), [])

  await rm(blobPath(west, first.fileId))
  const after = await digestOf(b)
  t.is(after.files, 299)
  t.deepEqual(after.digest.differing(da.digest), [shardOf(first.fileId)], 'only the shard of the missing body differs')
})

test('a shard is listed in id order with size and mtime, from after a given id, in pages; a body whose footer is damaged is left out and quarantined', async (t) => {
  const dir = await tempDir(t)
  // 12,000 ids in shard 0x0a: more than one page holds
  const ids = Array.from({ length: 12_000 }, (_, i) => `0a${i.toString(16).padStart(30, '0')}`)
  await seedBodies(dir, ids.map((fileId) => ({ fileId, size: 10, sha256: '' })))
  const other = await seedBodies(dir, [{ fileId: 'ff'.padEnd(32, '1'), size: 10, sha256: '' }])
  await truncate(blobPath(dir, ids[5] as string), 20)
  const client = await startNode(t, dir)

  const { files, pages } = await listShard(client, 0x0a)
  t.true(pages >= 2, `${pages} pages`)
  t.deepEqual(files.map((f) => f.fileId), ids.filter((_, i) => i !== 5), 'every readable body once, in order')
  t.true(files.every((f) => f.size === 10 && f.mtime > Date.now() - 600_000))

  const tail = (await client.request('blob.list', { shard: 0x0a, after: ids[11_997] as string })).body
  t.deepEqual(tail.files.map((f) => f.fileId), ids.slice(11_998))
  t.false(tail.more)
  t.deepEqual((await client.request('blob.list', { shard: 0xff })).body.files.map((f) => f.fileId), [other[0]?.fileId])
  t.deepEqual((await client.request('blob.list', { shard: 0x0b })).body, { files: [], more: false })
  t.is((await digestOf(client)).files, 12_000, 'the damaged body is no longer counted as held')
  t.deepEqual((await client.request('blob.quarantined', {})).body.files.map((f) => f.fileId), [ids[5]], 'it is quarantined')
})

test('a listing gives the size of each body from the length of its file, at every block boundary; a file of no blob length is left out', async (t) => {
  const dir = await tempDir(t)
  const sizes = [0, 1, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 1, 3 * BLOCK_BYTES]
  const bodies = await seedBodies(dir, sizes.map((size, i) => ({ fileId: `0c${String(i).padStart(30, '0')}`, size, sha256: '' })))
  await truncate(blobPath(dir, (bodies[4] as SeededBody).fileId), BLOCK_BYTES + 100)
  const client = await startNode(t, dir)
  const { files } = await listShard(client, 0x0c)
  t.deepEqual(files.map((f) => [f.fileId, f.size]), bodies.filter((_, i) => i !== 4).map((b) => [b.fileId, b.size]))
  t.is(bodySizeOf(55), undefined)
  t.is(bodySizeOf(56 + 32 + BLOCK_BYTES + 1), undefined, 'one byte past a block needs a second digest')
})

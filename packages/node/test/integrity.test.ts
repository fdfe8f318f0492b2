import test, { type ExecutionContext } from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RpcClient } from '@mirrorcast/rpc'
import { blobPath, flipByte, quarantinePath, until } from '@mirrorcast/testkit'
import { BLOCK_BYTES, StorageNode, type ScrubOptions } from '../src/index.js'

const KEY = Buffer.alloc(32, 5)
const newId = (): string => randomBytes(16).toString('hex')

async function startNode (t: ExecutionContext, scrub: ScrubOptions): Promise<{ node: StorageNode, client: RpcClient, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-integrity-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const node = new StorageNode({ dataDir: dir, key: KEY, center: 'east', slot: 1, scrub })
  await node.start()
  t.teardown(async () => { await node.close() })
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: node.port })
  t.teardown(async () => { await client.close() })
  return { node, client, dir }
}

async function put (client: RpcClient, fileId: string, body: Buffer): Promise<void> {
  const up = await client.upload('blob.put', { fileId, size: body.length })
  await up.write(body)
  await up.finish()
}

const quarantined = async (client: RpcClient): Promise<string[]> => (await client.request('blob.quarantined', {})).body.files.map((f) => f.fileId)

test('the scrub finds a flipped bit without a read, quarantines the body and counts it; a good copy put under its id ends the quarantine', async (t) => {
  const { client, dir } = await startNode(t, { bytesPerSecond: 64 * 1024 * 1024, intervalMs: 50 })
  const good = newId()
  const bad = newId()
  const body = randomBytes(1_500_000)
  await put(client, good, randomBytes(10_000))
  await put(client, bad, body)
  await flipByte(dir, bad, 1_200_000)

  await until(async () => (await quarantined(client)).includes(bad), { what: 'the scrub to quarantine the body' })
  const stats = (await client.request('node.stats', {})).body
  t.is(stats.quarantined, 1)
  t.is(stats.files, 1)
  t.true(stats.scrub.corrupt >= 1 && stats.scrub.totalBytes > 0 && stats.scrub.bytesPerSecond === 64 * 1024 * 1024, JSON.stringify(stats.scrub))
  const listed = (await client.request('blob.quarantined', {})).body.files[0]
  t.like(listed, { fileId: bad, size: body.length })
  const err = await t.throwsAsync(client.request('blob.get', { fileId: bad, offset: 0 }))
  t.is((err as { code?: string }).code, 'ERR_NODE_NOT_FOUND', 'a quarantined body is never served')

  await put(client, bad, body)
  t.deepEqual(await quarantined(client), [])
  await t.throwsAsync(stat(quarantinePath(dir, bad)))
  t.true((await client.request('blob.stat', { fileId: bad })).body.size === body.length)
})

test('a read that meets a bad block fails with ERR_NODE_CORRUPT and quarantines the body; deleting the file ends the quarantine; scrub 0 is off', async (t) => {
  const { client, dir, node } = await startNode(t, { bytesPerSecond: 0 })
  const id = newId()
  await put(client, id, randomBytes(50_000))
  await flipByte(dir, id, 49_000)
  // A small body is refused in the reply itself, a large one in the middle of its stream.
  const err = await t.throwsAsync(async () => {
    const { body } = await client.download('blob.get', { fileId: id, offset: 0 })
    for await (const chunk of body) t.truthy(chunk)
  })
  t.is((err as { code?: string }).code, 'ERR_NODE_CORRUPT')
  t.deepEqual(await quarantined(client), [id])
  t.is((await client.request('node.stats', {})).body.scrub.running, false)

  t.true((await client.request('blob.delete', { fileId: id })).body.existed)
  t.deepEqual(await quarantined(client), [])
  // A restart finds what is still in quarantine (nothing now) and serves on.
  await node.close()
  await node.start()
  t.is(node.store.quarantined.size, 0)
})

/** A blob file as the first format wrote it: the body, a sha256 per 1 MiB block, the footer (format 1). */
function formatOneBlob (body: Buffer): Buffer {
  const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest()
  const blocks = Array.from({ length: Math.ceil(body.length / BLOCK_BYTES) }, (_, i) => sha(body.subarray(i * BLOCK_BYTES, (i + 1) * BLOCK_BYTES)))
  const footer = Buffer.alloc(56)
  footer.write('MCBLOB01', 0, 'latin1')
  footer.writeUInt32BE(1, 8)
  footer.writeUInt32BE(BLOCK_BYTES, 12)
  footer.writeBigUInt64BE(BigInt(body.length), 16)
  sha(body).copy(footer, 24)
  return Buffer.concat([body, ...blocks, footer])
}

test('bodies stored by the first format (a sha256 a block) are still served, verified block by block, and scrubbed', async (t) => {
  const { node, client, dir } = await startNode(t, { bytesPerSecond: 0 })
  const fileId = newId()
  const body = randomBytes(BLOCK_BYTES + 300_000)
  await writeFile(blobPath(dir, fileId), formatOneBlob(body))
  const { body: got } = await client.download('blob.get', { fileId, offset: 0 })
  const chunks: Buffer[] = []
  for await (const chunk of got) chunks.push(chunk)
  t.true(Buffer.concat(chunks).equals(body))
  t.is((await client.request('blob.stat', { fileId })).body.sha256, createHash('sha256').update(body).digest('hex'))
  await flipByte(dir, fileId, BLOCK_BYTES + 5)
  const err = await t.throwsAsync(async () => { for await (const chunk of (await client.download('blob.get', { fileId, offset: BLOCK_BYTES })).body) t.truthy(chunk) })
  t.is((err as { code?: string }).code, 'ERR_NODE_CORRUPT', 'the second block fails its sha256')
  t.is(node.store.quarantined.size, 1)
})

test('a body its sender hashed keeps the sender\'s sha256 without a second pass; an end without it stores nothing; a wrong one is caught by the scrub', async (t) => {
  const { client } = await startNode(t, { bytesPerSecond: 64 * 1024 * 1024, intervalMs: 50 })
  const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
  const send = async (fileId: string, body: Buffer, end: { sha256?: string }): Promise<string> => {
    const up = await client.upload('blob.put', { fileId, size: body.length, senderHashes: true })
    await up.write(body)
    return (await up.finish(end)).body.sha256
  }
  const body = randomBytes(3 * BLOCK_BYTES + 7)
  const good = newId()
  t.is(await send(good, body, { sha256: sha(body) }), sha(body))
  t.is((await client.request('blob.stat', { fileId: good })).body.sha256, sha(body))

  const unsaid = newId()
  const refused = await t.throwsAsync(send(unsaid, body, {}))
  t.is((refused as { code?: string }).code, 'ERR_NODE_SIZE_MISMATCH')
  const missing = await t.throwsAsync(client.request('blob.stat', { fileId: unsaid }))
  t.is((missing as { code?: string }).code, 'ERR_NODE_NOT_FOUND')

  const lied = newId()
  await send(lied, body, { sha256: sha(randomBytes(10)) })
  await until(async () => (await quarantined(client)).includes(lied), { what: 'the scrub to find the body that does not match its sha256' })
  t.false((await quarantined(client)).includes(good))
})

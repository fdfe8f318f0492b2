import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, open, readdir, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect } from 'node:net'
import { RpcClient } from '@mirrorcast/rpc'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { silentLogger } from '@mirrorcast/logger'
import { blobPath, flipByte, until } from '@mirrorcast/testkit'
import { BLOCK_BYTES, BODY_UNCACHED_BYTES, PageCache, readVolumes, StorageNode } from '../src/index.js'
import { KEY, putBlob, startNode } from './node-helpers.js'

const execFileAsync = promisify(execFile)

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const newId = (): string => randomBytes(16).toString('hex')
const put = putBlob

async function get (client: RpcClient, fileId: string, offset = 0, length?: number): Promise<Buffer> {
  const { body } = await client.download('blob.get', { fileId, offset, ...(length === undefined ? {} : { length }) })
  const parts: Buffer[] = []
  for await (const c of body) parts.push(c)
  return Buffer.concat(parts)
}

test('a body round-trips with its sha256, and ranges across block boundaries match the slice', async (t) => {
  const { client } = await startNode(t)
  const body = randomBytes(3 * BLOCK_BYTES + 12_345)
  const id = newId()
  t.deepEqual(await put(client, id, body), { fileId: id, size: body.length, sha256: sha(body) })
  t.true((await get(client, id)).equals(body))
  for (const [offset, length] of [[0, 10], [BLOCK_BYTES - 5, 10], [BLOCK_BYTES * 2 + 7, BLOCK_BYTES + 100], [body.length - 3, 3], [100, 0]] as const) {
    t.true((await get(client, id, offset, length)).equals(body.subarray(offset, offset + length)), `${offset}+${length}`)
  }
  const bad = await t.throwsAsync(get(client, id, body.length - 1, 5))
  t.is((bad as { code?: string }).code, 'ERR_NODE_BAD_RANGE')
  t.deepEqual((await client.request('blob.stat', { fileId: id })).body, { fileId: id, size: body.length, sha256: sha(body) })
})

test('a flipped byte on disk is refused with ERR_NODE_CORRUPT and no byte of its block leaves the node', async (t) => {
  const { client, node } = await startNode(t)
  const body = randomBytes(2 * BLOCK_BYTES + 100)
  const id = newId()
  await put(client, id, body)
  await flipByte(node.store.dir, id, BLOCK_BYTES + 500)
  const { body: stream } = await client.download('blob.get', { fileId: id, offset: 0 })
  let received = 0
  const err = await t.throwsAsync(async () => { for await (const c of stream) received += c.length })
  t.is((err as { code?: string }).code, 'ERR_NODE_CORRUPT')
  t.regex(err?.message ?? '', /block 1/)
  t.is(received, BLOCK_BYTES, 'only the intact first block was sent')
  // Found corrupt, the body is set aside for repair from its twin: not even its intact blocks serve.
  const gone = await t.throwsAsync(get(client, id, 0, 100))
  t.is((gone as { code?: string }).code, 'ERR_NODE_NOT_FOUND')
  t.deepEqual((await client.request('blob.quarantined', {})).body.files.map((f) => f.fileId), [id])

  // a damaged footer is caught too
  const id2 = newId()
  await put(client, id2, randomBytes(100_000))
  const fh2 = await open(node.store.path(id2), 'r+')
  const size = (await fh2.stat()).size
  await fh2.write(Buffer.from([0xff]), 0, 1, size - 40)
  await fh2.close()
  const err2 = await t.throwsAsync(get(client, id2))
  t.is((err2 as { code?: string }).code, 'ERR_NODE_CORRUPT')

  // and a small body's damaged record header in its volume
  const id3 = newId()
  await put(client, id3, randomBytes(1000))
  const record = readVolumes(node.store.dir).get(id3)
  if (record === undefined) throw new Error('a small body is held in a volume')
  const fh3 = await open(record.path, 'r+')
  await fh3.write(Buffer.from([0xff]), 0, 1, record.bodyAt - 50)
  await fh3.close()
  const err3 = await t.throwsAsync(get(client, id3))
  t.is((err3 as { code?: string }).code, 'ERR_NODE_CORRUPT')
  t.regex(err3?.message ?? '', /record header/)
})

test('a wrong size, an abort or a dropped connection leaves neither temp file nor blob', async (t) => {
  const { client, node, dir } = await startNode(t)
  const tmpFiles = async (): Promise<number> => (await readdir(join(dir, 'tmp'))).length
  const short = await t.throwsAsync(put(client, newId(), randomBytes(1000), 2000))
  t.is((short as { code?: string }).code, 'ERR_NODE_SIZE_MISMATCH')
  // The node refuses and hangs up while the client still writes: the client sees the refusal or the hang-up.
  const long = await t.throwsAsync(put(client, newId(), randomBytes(300_000), 2000))
  t.true(['ERR_NODE_SIZE_MISMATCH', 'ERR_RPC_CLOSED'].includes(String((long as { code?: string }).code)), long?.message)

  const up = await client.upload('blob.put', { fileId: newId(), size: 10_000_000 })
  await up.write(randomBytes(1_000_000))
  await until(async () => await tmpFiles() === 1, { what: 'the upload\'s temp file' })
  up.abort('test abort')
  await until(async () => await tmpFiles() === 0, { what: 'the aborted upload\'s temp file removed' })

  const raw = new RpcClient({ key: KEY, selfId: 'raw', host: '127.0.0.1', port: node.port })
  const up2 = await raw.upload('blob.put', { fileId: newId(), size: 10_000_000 })
  await up2.write(randomBytes(1_000_000))
  await until(async () => await tmpFiles() === 1, { what: 'the upload\'s temp file' })
  await raw.close()
  await until(async () => await tmpFiles() === 0, { what: 'the dropped upload\'s temp file removed' })
  t.is(node.store.files, 0)
})

test('temp files left by a crash are removed at start; the id persists and the boot id changes', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mc-node-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  await mkdir(join(dir, 'tmp'), { recursive: true })
  await writeFile(join(dir, 'tmp', 'crashed.upload'), 'half a body')
  const first = new StorageNode({ dataDir: dir, key: KEY, center: 'east', slot: 1 })
  await first.start()
  t.deepEqual(await readdir(join(dir, 'tmp')), [])
  const { id, bootId } = first
  await first.close()
  const second = new StorageNode({ dataDir: dir, key: KEY, center: 'east', slot: 1 })
  await second.start()
  t.teardown(async () => { await second.close() })
  t.is(second.id, id)
  t.not(second.bootId, bootId)
})

test('delete, stats, unknown ids, and a client with the wrong key', async (t) => {
  const { client, node } = await startNode(t)
  const id = newId()
  await put(client, id, randomBytes(5000))
  const stats = (await client.request('node.stats', {})).body
  t.is(stats.files, 1)
  t.is(stats.bytes, 5000)
  t.true(stats.free > 0)
  t.is(stats.id, node.id)
  t.deepEqual((await client.request('blob.delete', { fileId: id })).body, { existed: true })
  t.deepEqual((await client.request('blob.delete', { fileId: id })).body, { existed: false })
  const missing = await t.throwsAsync(client.request('blob.stat', { fileId: id }))
  t.is((missing as { code?: string }).code, 'ERR_NODE_NOT_FOUND')
  t.is((await client.request('node.stats', {})).body.files, 0)

  const intruder = new RpcClient({ key: Buffer.alloc(32, 9), selfId: 'intruder', host: '127.0.0.1', port: node.port, requestTimeoutMs: 1000 })
  t.teardown(async () => { await intruder.close() })
  await t.throwsAsync(intruder.request('node.stats', {}))
  t.is((await client.request('node.stats', {})).body.id, node.id, 'the node still serves good clients')
})

test('a half-sent frame on a raw socket is dropped without harm', async (t) => {
  const { client, node } = await startNode(t)
  const socket = connect(node.port, '127.0.0.1')
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(Buffer.from([0, 0, 1, 0, 1, 2, 3]))
  socket.end()
  await new Promise((resolve) => socket.once('close', resolve))
  t.is((await client.request('node.stats', {})).body.id, node.id)
})

test('a download the client drops mid-body, or before its first block, leaves no file open on the node', async (t) => {
  const { node, client } = await startNode(t)
  const id = newId()
  await put(client, id, randomBytes(8 * BLOCK_BYTES))
  const openFiles = async (): Promise<number> => (await readdir('/proc/self/fd')).length
  await get(client, id)
  const before = await openFiles()
  for (let i = 0; i < 10; i++) {
    const reader = new RpcClient({ key: KEY, selfId: `reader-${i}`, host: '127.0.0.1', port: node.port })
    const { body } = await reader.download('blob.get', { fileId: id, offset: 0 })
    // the first download reads one block, the others none
    if (i === 0) await body.next()
    await reader.close()
  }
  await until(async () => await openFiles() <= before, { what: `the node to close the files of dropped downloads (${before} open before)` })
  t.is((await get(client, id)).length, 8 * BLOCK_BYTES, 'and it goes on serving')
})

/** Bytes of `file` in the page cache, by util-linux's fincore. */
async function resident (file: string): Promise<number> {
  const { stdout } = await execFileAsync('fincore', ['--bytes', '--noheadings', '--output', 'RES', file])
  return Number(stdout.trim())
}

test('a large body leaves the page cache once durable and behind each block read; a small one stays cached', async (t) => {
  t.true(new PageCache(silentLogger()).available, 'the page-cache addon is built (npm install builds it)')
  // No scrub: its first pass may reach the large body while the test looks, and a read in progress holds a block and its readahead
  const { client, dir } = await startNode(t, undefined, { scrub: { bytesPerSecond: 0 } })
  const large = newId()
  const small = newId()
  const body = randomBytes(BODY_UNCACHED_BYTES + 2 * BLOCK_BYTES + 123)
  await put(client, large, body)
  await put(client, small, randomBytes(200_000))
  t.true(await resident(blobPath(dir, large)) < BLOCK_BYTES, 'at most the trailer\'s pages of a large body stay cached')
  t.true(await resident(blobPath(dir, small)) >= 200_000, 'a small body stays cached')
  t.true((await get(client, large)).equals(body))
  t.true(await resident(blobPath(dir, large)) < BLOCK_BYTES, 'a read drops each block behind it')
})

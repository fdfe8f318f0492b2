import test, { type ExecutionContext } from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { blobPath } from '@mirrorcast/testkit'
import { BLOCK_BYTES, BODY_UNCACHED_BYTES, BlobStore, type BlobStoreOptions } from '../src/index.js'

// The trailer's bytes: a 32-byte checksum slot a block, then the 56-byte footer
const trailerBytes = (size: number): number => Math.ceil(size / BLOCK_BYTES) * 32 + 56

async function openStore (t: ExecutionContext, options: BlobStoreOptions = {}): Promise<{ store: BlobStore, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-direct-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const store = new BlobStore(dir, undefined, options)
  await store.open()
  t.teardown(async () => { await store.close() })
  return { store, dir }
}

/** The body in chunks of odd sizes, as a socket hands them over. */
async function * chunked (body: Buffer): AsyncGenerator<Buffer> {
  for (let at = 0, n = 0; at < body.length; n++) {
    const take = [65_536, 1_000, 300_000, 7][n % 4] as number
    yield body.subarray(at, at + take)
    at += take
  }
}

async function readBack (store: BlobStore, fileId: string): Promise<Buffer> {
  const read = await store.get(fileId, 0)
  const parts: Buffer[] = []
  for await (const part of read.body) parts.push(part)
  return Buffer.concat(parts)
}

// Sizes whose last write holds the trailer alone, a body tail and the trailer, and a trailer that spills into one more staging buffer
const SIZES = [BODY_UNCACHED_BYTES, BODY_UNCACHED_BYTES + 1, BODY_UNCACHED_BYTES + 2 * BLOCK_BYTES + 123, 5 * BLOCK_BYTES - 100]

test('large bodies written with O_DIRECT read back whole, at lengths that end anywhere in a page or a staging buffer, and after a restart', async (t) => {
  const { store, dir } = await openStore(t)
  t.true(store.writesDirect, 'the file system under the temp dir takes O_DIRECT')
  const bodies = new Map(SIZES.map((size) => [randomBytes(16).toString('hex'), randomBytes(size)]))
  await Promise.all([...bodies].map(async ([id, body]) => {
    const stored = await store.put(id, body.length, chunked(body))
    t.is(stored.sha256, createHash('sha256').update(body).digest('hex'))
  }))
  for (const [id, body] of bodies) {
    t.is((await stat(blobPath(dir, id))).size, body.length + trailerBytes(body.length), 'the padding of the last write is cut off')
    t.true((await readBack(store, id)).equals(body))
  }
  await store.close()
  const again = new BlobStore(dir)
  await again.open()
  t.teardown(async () => { await again.close() })
  for (const [id, body] of bodies) t.true((await readBack(again, id)).equals(body), 'read back by a new store')
})

test('a large upload that fails midway stores nothing, and the next one reuses the staging buffers cleanly', async (t) => {
  const { store, dir } = await openStore(t)
  const id = randomBytes(16).toString('hex')
  const body = randomBytes(BODY_UNCACHED_BYTES + 5000)
  async function * brokenOff (): AsyncGenerator<Buffer> {
    yield body.subarray(0, 3 * BLOCK_BYTES + 17)
    throw new Error('the sender went away')
  }
  await t.throwsAsync(store.put(id, body.length, brokenOff()), { message: 'the sender went away' })
  await t.throwsAsync(store.stat(id), { code: 'ERR_NODE_NOT_FOUND' })
  t.deepEqual(await readdir(join(dir, 'tmp')), [], 'its temp file is gone')
  const other = randomBytes(BODY_UNCACHED_BYTES + 4097)
  await store.put(id, other.length, chunked(other))
  t.true((await readBack(store, id)).equals(other))
})

test('with direct writes off a large body goes through the page cache and reads back the same', async (t) => {
  const { store, dir } = await openStore(t, { directWrites: false })
  t.false(store.writesDirect)
  const id = randomBytes(16).toString('hex')
  const body = randomBytes(BODY_UNCACHED_BYTES + 2 * BLOCK_BYTES + 123)
  await store.put(id, body.length, chunked(body))
  t.is((await stat(blobPath(dir, id))).size, body.length + trailerBytes(body.length))
  t.true((await readBack(store, id)).equals(body))
})

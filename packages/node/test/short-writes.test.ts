import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlobStore, BODY_UNCACHED_BYTES } from '../src/index.js'

type RawWrite = (this: FileHandle, buffer: Uint8Array, offset: number, length: number, position: number) => Promise<{ bytesWritten: number }>
type RawWritev = (this: FileHandle, buffers: Uint8Array[], position: number) => Promise<{ bytesWritten: number }>

// 4 KiB: the most a write or writev call writes in this file, as a short write(2) would
const MAX_PER_CALL = 4096

/*
 * Every FileHandle of this process (ava runs each test file in its own) writes
 * at most MAX_PER_CALL bytes a call and says so in bytesWritten, as the kernel
 * may. A store that took one call for the whole chunk would keep holes, which
 * its own per-block checksums refuse on the read.
 */
test('a body written through short writes is stored whole: body, block digests and footer', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mc-short-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const probe = await open(join(dir, 'probe'), 'w')
  const proto = Object.getPrototypeOf(probe) as FileHandle
  await probe.close()
  const { write, writev } = proto
  const realWrite = write as unknown as RawWrite
  let short = 0
  const cutWrite: RawWrite = async function (buffer, offset, length, position) {
    if (length > MAX_PER_CALL) short++
    return await realWrite.call(this, buffer, offset, Math.min(length, MAX_PER_CALL), position)
  }
  const cutWritev: RawWritev = async function (buffers, position) {
    const first = buffers[0] ?? new Uint8Array(0)
    if (buffers.length > 1 || first.length > MAX_PER_CALL) short++
    return await realWrite.call(this, first, 0, Math.min(first.length, MAX_PER_CALL), position)
  }
  proto.write = cutWrite as unknown as FileHandle['write']
  proto.writev = cutWritev as unknown as FileHandle['writev']
  t.teardown(() => { proto.write = write; proto.writev = writev })

  const store = new BlobStore(dir)
  await store.open()
  t.teardown(async () => { await store.close() })
  // A body written through the page cache, and a large one written with O_DIRECT (a short write there ends on a page)
  for (const size of [2 * 1024 * 1024 + 12_345, BODY_UNCACHED_BYTES + 12_345]) {
    const body = randomBytes(size)
    const fileId = randomBytes(16).toString('hex')
    // Chunks of the sizes the manager and a resync send: a whole block, then odd pieces.
    const chunks = [body.subarray(0, 1024 * 1024), body.subarray(1024 * 1024, 1024 * 1024 + 70_000), body.subarray(1024 * 1024 + 70_000)]
    const before = short
    const stored = await store.put(fileId, body.length, (async function * () { yield * chunks })())
    t.true(short > before + chunks.length, 'the writes were cut short')
    t.is(stored.sha256, createHash('sha256').update(body).digest('hex'))

    const read = await store.get(fileId, 0)
    const back: Buffer[] = []
    for await (const c of read.body) back.push(c)
    t.true(Buffer.concat(back).equals(body))
    t.deepEqual(await store.stat(fileId), { size: body.length, sha256: stored.sha256 })
  }
  t.true(store.writesDirect)
})

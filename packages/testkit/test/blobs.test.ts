import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BLOCK_BYTES, BlobStore, readVolumes } from '@mirrorcast/node'
import { blobPath, blobState, flipByte, quarantinePath, storedBlobIds } from '../src/index.js'

const newId = (): string => randomBytes(16).toString('hex')

async function store (t: ExecutionContext): Promise<BlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-testkit-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const s = new BlobStore(dir)
  await s.open()
  t.teardown(async () => { await s.close() })
  return s
}

async function * once (b: Buffer): AsyncGenerator<Buffer> { if (b.length > 0) yield b }

async function read (s: BlobStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of (await s.get(id, 0)).body) parts.push(c)
  return Buffer.concat(parts)
}

test('blobPath is where the node keeps a large body, readVolumes where a small one, quarantinePath a corrupt one; storedBlobIds lists what it holds', async (t) => {
  const s = await store(t)
  const [a, b, c] = [newId(), newId(), newId()]
  await s.put(a, 100_000, once(randomBytes(100_000)))
  await s.put(b, 0, once(Buffer.alloc(0)))
  const small = randomBytes(10)
  await s.put(c, 10, once(small))
  t.is(blobPath(s.dir, a), s.path(a))
  t.truthy(await stat(blobPath(s.dir, a)))
  const inVolume = readVolumes(s.dir).get(c)
  t.like(inVolume, { size: 10 })
  t.true((await readFile(inVolume?.path ?? '')).subarray(inVolume?.bodyAt, (inVolume?.bodyAt ?? 0) + 10).equals(small))
  t.deepEqual([...await storedBlobIds(s.dir)].sort(), [a, b, c].sort())
  await s.delete(c)
  t.is((await storedBlobIds(join(s.dir, 'no-such-member'))).size, 0, 'a data dir without a store holds nothing')
  await s.quarantine(a, 'test')
  t.truthy(await stat(quarantinePath(s.dir, a)))
  t.deepEqual([...await storedBlobIds(s.dir)], [b])
})

test('flipByte damages exactly the byte asked in the body, which the node then refuses; blobState follows the body through quarantine to its delete', async (t) => {
  const s = await store(t)
  const id = newId()
  const body = randomBytes(2 * BLOCK_BYTES + 7)
  await s.put(id, body.length, once(body))
  t.is(await blobState(s.dir, id), 'intact')
  t.is(await flipByte(s.dir, id, BLOCK_BYTES + 3), BLOCK_BYTES + 3)
  t.is(await blobState(s.dir, id), 'corrupt')
  const err = await t.throwsAsync(read(s, id))
  t.is((err as { code?: string }).code, 'ERR_NODE_CORRUPT')
  t.regex(err?.message ?? '', /block 1 /, 'the flipped byte is in block 1')
  t.is(await blobState(s.dir, id), 'quarantined')
  await s.delete(id)
  t.is(await blobState(s.dir, id), 'absent')

  const other = newId()
  await s.put(other, 100, once(randomBytes(100)))
  const at = await flipByte(s.dir, other)
  t.true(at !== undefined && at >= 0 && at < 100, 'a random byte of the body, never of its trailer')
  t.is(await blobState(s.dir, other), 'corrupt')
  const outside = await t.throwsAsync(flipByte(s.dir, other, 100))
  t.is((outside as { code?: string }).code, 'ERR_TESTKIT_BAD_OPTIONS')
  const empty = newId()
  await s.put(empty, 0, once(Buffer.alloc(0)))
  t.is(await flipByte(s.dir, empty), undefined, 'an empty body has no byte to flip')
  t.is(await blobState(s.dir, empty), 'intact')
})

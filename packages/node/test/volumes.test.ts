import test, { type ExecutionContext } from 'ava'
import { fork } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { appendFile, mkdtemp, open, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RpcClient } from '@mirrorcast/rpc'
import { SetDigest } from '@mirrorcast/wire'
import { BlobStore, readVolumes, StorageNode, VOLUMES_DIR } from '../src/index.js'

const KEY = Buffer.alloc(32, 9)
const newId = (): string => randomBytes(16).toString('hex')
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function * once1 (b: Buffer): AsyncGenerator<Buffer> {
  yield b
}

async function dataDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-volumes-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function openStore (t: ExecutionContext, dir: string, volumeBytes?: number): Promise<BlobStore> {
  // Compaction off: the tests run it when they mean to.
  const store = new BlobStore(dir, undefined, { compactBytesPerSecond: 0, ...(volumeBytes === undefined ? {} : { volumeBytes }) })
  await store.open()
  t.teardown(async () => { await store.close() })
  return store
}

async function read (store: BlobStore, id: string): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const c of (await store.get(id, 0)).body) parts.push(c)
  return Buffer.concat(parts)
}

async function volumeFiles (dir: string): Promise<string[]> {
  return (await readdir(join(dir, VOLUMES_DIR))).sort()
}

test('small bodies written at once share a sync; they and their deletes outlast a restart, which cuts a torn tail and skips a damaged record', async (t) => {
  const dir = await dataDir(t)
  let store = await openStore(t, dir)
  const bodies = new Map(Array.from({ length: 64 }, () => [newId(), randomBytes(1 + Math.floor(Math.random() * 5000))] as const))
  const puts = await Promise.all([...bodies].map(async ([id, body]) => await store.put(id, body.length, once1(body))))
  puts.forEach((p, i) => t.is(p.sha256, sha([...bodies.values()][i] as Buffer)))
  t.true(store.volumeUsage().syncs < 64 / 4, `64 puts at once took ${store.volumeUsage().syncs} syncs`)
  t.is(store.files, 64)
  t.deepEqual(await readdir(join(dir, 'blobs', 'ab')), [], 'no blob file for a small body')
  const [gone, damaged] = [...bodies.keys()]
  t.true(await store.delete(gone as string))
  t.false(await store.delete(gone as string))
  const same = bodies.get(damaged as string) as Buffer
  t.is((await store.put(damaged as string, same.length, once1(same))).sha256, sha(same), 'the same body again is fine')
  const other = await t.throwsAsync(store.put(damaged as string, 3, once1(Buffer.from('new'))))
  t.is((other as { code?: string }).code, 'ERR_NODE_EXISTS')
  await store.close()

  // A crash mid-append: half a record at the end. And bit rot in one record's header.
  const [volume] = await volumeFiles(dir)
  const path = join(dir, VOLUMES_DIR, volume as string)
  const length = (await stat(path)).size
  await appendFile(path, Buffer.alloc(50, 0x4d))
  const at = readVolumes(dir).get(damaged as string)?.bodyAt as number
  const fh = await open(path, 'r+')
  await fh.write(Buffer.from([0xee]), 0, 1, at - 70)
  await fh.close()

  store = await openStore(t, dir)
  t.is((await stat(path)).size, length, 'the torn tail is cut')
  t.is(store.files, 62, 'the deleted body and the damaged record are not held')
  for (const [id, body] of bodies) {
    if (id === gone || id === damaged) continue
    t.true((await read(store, id)).equals(body))
  }
  const missing = await t.throwsAsync(store.stat(gone as string))
  t.is((missing as { code?: string }).code, 'ERR_NODE_NOT_FOUND')
  const fresh = newId()
  await store.put(fresh, 4, once1(Buffer.from('more')))
  t.true((await read(store, fresh)).equals(Buffer.from('more')), 'appends go on after the cut')
})

test('compaction copies what is live out of a mostly dead volume and removes it; deletes stay deleted across compactions and restarts', async (t) => {
  const dir = await dataDir(t)
  let store = await openStore(t, dir, 64 * 1024)
  const body = (i: number): Buffer => Buffer.alloc(3000, i)
  const ids = Array.from({ length: 60 }, () => newId())
  for (const [i, id] of ids.entries()) await store.put(id, 3000, once1(body(i)))
  const first = (await volumeFiles(dir))[0]
  t.true((await volumeFiles(dir)).length >= 3, 'volumes roll over at their size')
  // Most of the first volume dies; one id deleted there is put again later (its tombstone must not kill the new put).
  const inFirst = ids.filter((id) => readVolumes(dir).get(id)?.path.endsWith(first as string))
  const reput = inFirst[1] as string
  for (const id of inFirst.slice(1)) await store.delete(id)
  await store.put(reput, 5, once1(Buffer.from('again')))
  t.true(await store.compactVolumes())
  t.false((await volumeFiles(dir)).includes(first as string), 'the compacted volume is gone')
  t.true((await read(store, inFirst[0] as string)).equals(body(ids.indexOf(inFirst[0] as string))))
  t.true((await read(store, reput)).equals(Buffer.from('again')))
  // The volume holding the tombstones, mostly dead too once the rest of its puts go.
  for (const id of ids.filter((id) => !inFirst.includes(id))) await store.delete(id)
  while (await store.compactVolumes()) { /* every volume worth it */ }
  await store.close()

  store = await openStore(t, dir, 64 * 1024)
  t.is(store.files, 2)
  t.true((await read(store, reput)).equals(Buffer.from('again')))
  t.true((await read(store, inFirst[0] as string)).equals(body(ids.indexOf(inFirst[0] as string))))
  for (const id of inFirst.slice(2)) await t.throwsAsync(store.stat(id), { code: 'ERR_NODE_NOT_FOUND' })
})

test('a kill -9 of a node in the middle of its batches loses no acknowledged write', async (t) => {
  const dir = await dataDir(t)
  const child = fork(join(import.meta.dirname, 'fixtures', 'node-process.js'), [dir], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const exited = once(child, 'exit')
  const [{ port }] = await once(child, 'message') as [{ port: number }]
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port, connectTimeoutMs: 2000, requestTimeoutMs: 5000 })
  t.teardown(async () => { await client.close() })
  const acknowledged = new Map<string, string>()
  let killed = false
  const writer = async (): Promise<void> => {
    while (!killed) {
      const id = newId()
      const body = randomBytes(100 + Math.floor(Math.random() * 8000))
      try {
        const reply = await client.request('blob.put', { fileId: id, size: body.length, inline: true }, { payload: body })
        acknowledged.set(id, reply.body.sha256)
      } catch {
        return
      }
      if (acknowledged.size >= 400 && !killed) {
        killed = true
        child.kill('SIGKILL')
      }
    }
  }
  await Promise.all(Array.from({ length: 32 }, writer))
  await exited

  const node = new StorageNode({ dataDir: dir, key: KEY, center: 'east', slot: 1, scrub: { bytesPerSecond: 0 } })
  await node.start()
  t.teardown(async () => { await node.close() })
  t.true(acknowledged.size >= 400)
  for (const [id, sha256] of acknowledged) t.is((await node.store.stat(id)).sha256, sha256, `acknowledged ${id}`)
})

test('a start reads a volume of many records a window at a time and finds every one, records across window edges included', async (t) => {
  const dir = await dataDir(t)
  let store = await openStore(t, dir)
  const ids = Array.from({ length: 40_000 }, () => newId())
  let next = 0
  // 40,000 records of 150 to 250 bytes: 8 MB, over two 4 MiB scan windows, edges falling inside records
  await Promise.all(Array.from({ length: 64 }, async () => {
    for (let i = next++; i < ids.length; i = next++) await store.put(ids[i] as string, 70 + (i % 101), once1(Buffer.alloc(70 + (i % 101), i % 251)))
  }))
  await store.close()
  store = await openStore(t, dir)
  t.is(store.files, ids.length)
  for (const i of [0, 1, 12_345, 27_000, 39_999]) t.true((await read(store, ids[i] as string)).equals(Buffer.alloc(70 + (i % 101), i % 251)))
})

test('a shard of small bodies is listed from its own ids, in order, with sizes and times; a deleted body leaves it; the set digest follows puts and deletes and survives a restart', async (t) => {
  const dir = await dataDir(t)
  const store = await openStore(t, dir)
  const ids = Array.from({ length: 600 }, (_, i) => `${(i % 3 === 0 ? 'a7' : 'a8')}${randomBytes(15).toString('hex')}`)
  await Promise.all(ids.map(async (id, i) => await store.put(id, 100 + i, once1(randomBytes(100 + i)))))
  const building = store.digest()
  const late = `a8${randomBytes(15).toString('hex')}`
  await store.put(late, 10, once1(randomBytes(10)))
  t.is((await building).files, 601, 'the count has the put made while the digest was built')
  const inA7 = ids.filter((id) => id.startsWith('a7')).sort()
  const listed = await store.list(0xa7)
  t.false(listed.more)
  t.deepEqual(listed.files.map((f) => f.fileId), inA7)
  t.true(listed.files.every((f) => f.size === 100 + ids.indexOf(f.fileId) && f.mtime > Date.now() - 60_000))
  t.true(await store.delete(inA7[0] as string))
  t.deepEqual((await store.list(0xa7, inA7[99])).files.map((f) => f.fileId), inA7.slice(100))
  t.deepEqual((await store.list(0xa7)).files.map((f) => f.fileId), inA7.slice(1))
  t.deepEqual((await store.list(0xa9)).files, [])
  const expected = new SetDigest()
  for (const id of [...ids, late].filter((id) => id !== inA7[0])) expected.add(id)
  const kept = await store.digest()
  t.is(kept.files, 600)
  t.deepEqual(kept.digest.differing(expected), [], 'the digest kept as bodies come and go is that of the ids held')
  await store.close()
  const reopened = await openStore(t, dir)
  t.deepEqual((await reopened.digest()).digest.differing(expected), [], 'and the one a start rebuilds')
})

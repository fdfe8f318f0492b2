import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { RpcClient } from '@mirrorcast/rpc'
import { SetDigest, shardOf, type Change, type FileEntry, type ReconcileStatus } from '@mirrorcast/wire'
import { DirectoryServer, LeaseTable, Namespace, type NewFileEntry } from '../src/index.js'
import { dump } from './helpers.js'

const KEY = Buffer.alloc(32, 6)
const EAST = 'east/1'
const WEST = 'west/1'

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-ae-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

async function tempNs (t: ExecutionContext): Promise<{ ns: Namespace, path: string }> {
  const path = join(await tempDir(t), 'ns.lmdb')
  const ns = Namespace.open(path)
  t.teardown(async () => { await ns.close() })
  return { ns, path }
}

const id = (n: number): string => n.toString(16).padStart(32, '0')
/** A file on east/1 and west/1 (both places unless `places` says otherwise). */
const file = (path: string, n: number, places = [EAST, WEST], fileId = id(n)): NewFileEntry => ({
  type: 'file',
  path,
  fileId,
  size: n,
  sha256: n.toString(16).padStart(64, '0'),
  replicas: places.map((p, i) => ({ node: `node-${i}`, center: p.split('/')[0] as string, slot: Number(p.split('/')[1]) }))
})

/** The set of file ids visible entries place at `place`, with their sizes. */
function expected (files: FileEntry[], place: string): { digest: SetDigest, files: number, bytes: number } {
  const ids = new Map<string, number>()
  for (const f of files) if (f.replicas.some((r) => `${r.center}/${r.slot}` === place)) ids.set(f.fileId, f.size)
  const digest = new SetDigest()
  for (const fileId of ids.keys()) digest.add(fileId)
  return { digest, files: ids.size, bytes: [...ids.values()].reduce((a, b) => a + b, 0) }
}

const visibleFiles = (ns: Namespace): FileEntry[] => dump(ns).filter((e): e is FileEntry => e.type === 'file')

function indexMatches (t: ExecutionContext, ns: Namespace, what: string): void {
  for (const place of [EAST, WEST, 'south/2']) {
    const want = expected(visibleFiles(ns), place)
    const got = ns.placeDigest(place)
    t.deepEqual(new SetDigest(got.digest).differing(want.digest), [], `${what}: ${place} digest`)
    t.deepEqual([got.files, got.bytes], [want.files, want.bytes], `${what}: ${place} counts`)
    t.is(got.seq, ns.seq)
  }
}

/** Every body the index lists at a place, all shards, all pages. */
function listAll (ns: Namespace, place: string): string[] {
  const out: string[] = []
  for (let shard = 0; shard < 256; shard++) {
    let after: string | undefined
    for (;;) {
      const page = ns.placeFiles(place, shard, after)
      out.push(...page.files.map((f) => f.fileId))
      if (!page.more) break
      after = page.files[page.files.length - 1]?.fileId
    }
  }
  return out
}

test('the index follows put, replace, rename (over a file too), remove and recursive remove', async (t) => {
  const { ns } = await tempNs(t)
  indexMatches(t, ns, 'empty')
  await ns.put(file('/a/one', 1))
  await ns.put(file('/a/two', 2, [EAST]))
  await ns.put(file('/a/deep/three', 3, [WEST]))
  await ns.put(file('/b/four', 0x104))
  indexMatches(t, ns, 'puts')
  await ns.put(file('/a/one', 5, ['south/2', WEST]))
  indexMatches(t, ns, 'a replaced entry with another id and other places')
  await ns.put(file('/a/copy', 2, [EAST]))
  await ns.remove('/a/two', false)
  t.deepEqual(listAll(ns, EAST).sort(), [id(2), id(0x104)].sort(), 'an id another entry still names stays')
  indexMatches(t, ns, 'two entries, one id')
  await ns.rename('/a', '/c')
  indexMatches(t, ns, 'directory renamed')
  await ns.rename('/b/four', '/c/copy')
  indexMatches(t, ns, 'renamed onto a file')
  await ns.remove('/c', true)
  indexMatches(t, ns, 'recursive remove')
  t.deepEqual(listAll(ns, EAST), [])
  t.deepEqual(ns.placeDigest(EAST).digest, new SetDigest().bytes())
})

test('a cross-partition move is counted somewhere at every step, and the partitions add up to the set once done', async (t) => {
  const { ns: source } = await tempNs(t)
  const { ns: dest } = await tempNs(t)
  await source.put(file('/a/dir/one', 1))
  await source.put(file('/a/dir/sub/two', 2))
  await source.put(file('/a/f', 3))
  await dest.put(file('/b/x', 7))
  const all = [...visibleFiles(source), ...visibleFiles(dest)]
  const sum = (place: string): SetDigest => new SetDigest(source.placeDigest(place).digest).plus(new SetDigest(dest.placeDigest(place).digest))
  const nothingMissing = (what: string): void => {
    const listed = new Set([...listAll(source, EAST), ...listAll(dest, EAST)])
    for (const f of all) t.true(listed.has(f.fileId), `${what}: ${f.fileId} is counted`)
  }
  t.deepEqual(sum(EAST).differing(expected(all, EAST).digest), [])

  const intent = 'c'.repeat(32)
  await source.moveOut('/a/dir', '/b/moved', intent)
  nothingMissing('after move-out')
  const { tree } = source.intentTree(intent, 0)
  // in two slices: the first staged, the last with the move-in
  await dest.movePart('/a/dir', intent, 0, tree.slice(0, 2))
  nothingMissing('after move-part')
  await dest.moveIn('/a/dir', '/b/moved', intent, tree.slice(2), 1)
  nothingMissing('after move-in')
  await source.moveDone(intent)
  await dest.moveDone(intent)
  t.deepEqual(sum(EAST).differing(expected(all, EAST).digest), [], 'once done, counted once')
  indexMatches(t, source, 'source after the move')
  indexMatches(t, dest, 'destination after the move')

  // A file top, moved onto a file: the top waits in the outbox, then replaces the file.
  const second = 'd'.repeat(32)
  await source.moveOut('/a/f', '/b/x', second)
  nothingMissing('a file top in the outbox')
  await dest.moveIn('/a/f', '/b/x', second, source.intentTree(second, 0).tree)
  await source.moveDone(second)
  indexMatches(t, source, 'source after the file move')
  indexMatches(t, dest, 'destination after the file move')

  // A move staged then dropped (refused, gone back) leaves nothing counted.
  const third = 'e'.repeat(32)
  await source.put(file('/a/g/h', 9))
  await source.moveOut('/a/g', '/b/g', third)
  await dest.movePart('/a/g', third, 0, source.intentTree(third, 0).tree)
  await dest.moveDone(third)
  indexMatches(t, dest, 'destination after a staged move dropped')
})

test('twins built by the same changes have the same state digest; an out-of-band write shows; rebuilt at open, the index is the one kept incrementally', async (t) => {
  const { ns: leader } = await tempNs(t)
  await leader.put(file('/a/one', 1))
  await leader.put(file('/a/two', 2))
  await leader.mkdir('/e', false)
  await leader.rename('/a/two', '/e/two')
  await leader.moveOut('/a', '/z/a', 'f'.repeat(32))
  const { ns: follower, path } = await tempNs(t)
  await follower.apply(leader.changes(0).changes)
  const state = await leader.stateDigest()
  t.deepEqual(await follower.stateDigest(), state)
  t.is(state.seq, leader.seq)
  t.is(state.entries, leader.entryCount)

  await follower.close()
  const db = open({ path, compression: false })
  const nodes = db.openDB<unknown, Buffer>({ name: 'nodes', keyEncoding: 'binary' })
  const k = Buffer.concat([Buffer.alloc(8), Buffer.from('ghost')])
  await nodes.put(k, { type: 'file', fileId: id(0x55), size: 1, sha256: 'a'.repeat(64), version: 1, mtime: 1, replicas: [] })
  await db.close()
  let reopened = Namespace.open(path)
  t.teardown(async () => { await reopened.close() })
  const diverged = await reopened.stateDigest()
  t.is(diverged.seq, state.seq)
  t.not(diverged.digest, state.digest, 'an entry written behind the server\'s back shows')

  // Undo it, and make the index look like an old store's: rebuilt at open, it is what was kept.
  await reopened.close()
  const raw = open({ path, compression: false })
  await raw.openDB<unknown, Buffer>({ name: 'nodes', keyEncoding: 'binary' }).remove(k)
  const index = raw.openDB<Buffer, string>({ name: 'anti-entropy', encoding: 'binary' })
  await raw.transaction(() => { for (const key of index.getKeys()) index.removeSync(key) })
  await raw.openDB<number, string>({ name: 'meta' }).remove('indexVersion')
  await raw.close()
  reopened = Namespace.open(path)
  t.deepEqual(await reopened.stateDigest(), state)
  t.deepEqual(reopened.placeDigest(EAST), leader.placeDigest(EAST))
})

test('placeFiles pages one shard in file id order with after, over more than one page', async (t) => {
  const { ns } = await tempNs(t)
  const n = 10_050
  const changes: Change[] = []
  // every id in shard 0x2a
  for (let i = 0; i < n; i++) {
    const fileId = '2a' + i.toString(16).padStart(30, '0')
    changes.push({ op: 'put', seq: i + 1, mtime: 1, entry: { ...file(`/d/f${i}`, 1, [EAST], fileId), version: i + 1, mtime: 1 } })
  }
  await ns.apply(changes)
  await ns.put(file('/other', 0x55, [EAST]))
  const seen: string[] = []
  let after: string | undefined
  let pages = 0
  for (;;) {
    const page = ns.placeFiles(EAST, 0x2a, after)
    pages++
    for (const f of page.files) t.is(shardOf(f.fileId), 0x2a)
    seen.push(...page.files.map((f) => f.fileId))
    if (!page.more) break
    after = page.files[page.files.length - 1]?.fileId
  }
  t.true(pages > 1)
  t.is(seen.length, n)
  t.deepEqual(seen, [...seen].sort(), 'in file id order')
  t.is(new Set(seen).size, n, 'none twice')
  t.deepEqual(ns.placeFiles(EAST, 0x2a, seen[n - 1]), { files: [], more: false })
  t.deepEqual(ns.placeFiles(WEST, 0x2a), { files: [], more: false })
  t.deepEqual(ns.placeDigest(EAST).files, n + 1)
  t.throws(() => ns.placeFiles(EAST, 0x2b, seen[0]), { code: 'ERR_DIR_INVALID' })
  t.throws(() => ns.placeDigest('not a place'), { code: 'ERR_DIR_INVALID' })
})

test('a state digest is read from one snapshot: a commit during it does not tear it', async (t) => {
  const { ns } = await tempNs(t)
  const changes: Change[] = []
  for (let i = 0; i < 12_000; i++) changes.push({ op: 'put', seq: i + 1, mtime: 1, entry: { ...file(`/d/f${i}`, i + 1), version: i + 1, mtime: 1 } })
  await ns.apply(changes)
  const before = await ns.stateDigest()
  const during = ns.stateDigest()
  const committed = ns.put(file('/late', 0x99999))
  const [state] = await Promise.all([during, committed])
  t.deepEqual(state, before)
  t.not((await ns.stateDigest()).digest, before.digest)
})

const status = (manager: string): ReconcileStatus => ({
  pair: 1,
  lastStartedAt: 1,
  lastCompletedAt: 2,
  lastMs: 1,
  running: false,
  shardsToCompare: 0,
  shardsDone: 0,
  single: { files: 0, bytes: 0 },
  lost: { files: 0, bytes: 0 },
  underReplicatedSince: 0,
  copied: { files: 0, bytes: 0 },
  removed: { files: 0, bytes: 0 },
  orphansWaiting: 0,
  exchangedBytes: 0,
  manager
})

test('leases: granted when free, refused to another holder, renewed, taken once expired, released with their status kept, listed by prefix', (t) => {
  const clock = { now: 1000 }
  const leases = new LeaseTable({ now: () => clock.now })
  const a = leases.request({ name: 'pair/1', holder: 'mgr-a', ttlMs: 500, status: status('mgr-a') })
  t.true(a.granted)
  t.is(a.lease?.expiresInMs, 500)
  const b = leases.request({ name: 'pair/1', holder: 'mgr-b', ttlMs: 500 })
  t.false(b.granted)
  t.is(b.lease?.holder, 'mgr-a')
  t.is(b.lease?.status?.manager, 'mgr-a')
  clock.now += 400
  t.is(leases.request({ name: 'pair/1', holder: 'mgr-a', ttlMs: 500 }).lease?.expiresInMs, 500, 'renewed')
  clock.now += 499
  t.false(leases.request({ name: 'pair/1', holder: 'mgr-b', ttlMs: 500 }).granted)
  clock.now += 1
  const taken = leases.request({ name: 'pair/1', holder: 'mgr-b', ttlMs: 500 })
  t.true(taken.granted, 'expired: another may take it')
  t.is(taken.lease?.status?.manager, 'mgr-a', 'the last status is kept until the new holder reports')
  const released = leases.request({ name: 'pair/1', holder: 'mgr-b', ttlMs: 500, status: status('mgr-b'), release: true })
  t.true(released.granted)
  t.is(released.lease?.expiresInMs, 0)
  leases.request({ name: 'pair/2', holder: 'mgr-a', ttlMs: 100 })
  leases.request({ name: 'other', holder: 'mgr-a', ttlMs: 100 })
  const listed = leases.list('pair/')
  t.deepEqual(listed.map((l) => [l.name, l.holder, l.expiresInMs, l.status?.manager]), [['pair/1', 'mgr-b', 0, 'mgr-b'], ['pair/2', 'mgr-a', 100, undefined]])
  t.true(leases.request({ name: 'pair/1', holder: 'mgr-a', ttlMs: 100 }).granted, 'a released lease is free')
})

test('the server answers dir.digest, dir.files, dir.state, dir.lease and dir.leases; bad input gets a typed error and the session goes on', async (t) => {
  const dir = await tempDir(t)
  const server = new DirectoryServer({ dataDir: dir, key: KEY, center: 'east', slot: 1 })
  await server.start()
  t.teardown(async () => { await server.close() })
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: server.port })
  t.teardown(async () => { await client.close() })
  await client.request('dir.put', { entry: file('/f', 0x2a) })
  const digest = (await client.request('dir.digest', { place: EAST })).body
  t.is(digest.seq, 1)
  t.is(digest.files, 1)
  t.is(digest.bytes, 0x2a)
  const want = new SetDigest()
  want.add(id(0x2a))
  t.deepEqual(new SetDigest(digest.digest).differing(want), [])
  t.deepEqual((await client.request('dir.files', { place: EAST, shard: 0 })).body, { files: [{ fileId: id(0x2a), size: 0x2a, sha256: file('/f', 0x2a).sha256 }], more: false })
  const state = (await client.request('dir.state', {})).body
  t.deepEqual(state, await server.namespace.stateDigest())
  const err = await t.throwsAsync(client.request('dir.files', { place: EAST, shard: 1, after: id(0x2a) }))
  t.is((err as { code?: string }).code, 'ERR_DIR_INVALID')
  const lease = (await client.request('dir.lease', { name: 'pair/1', holder: 'mgr-a', ttlMs: 60_000, status: status('mgr-a') })).body
  t.true(lease.granted)
  t.false((await client.request('dir.lease', { name: 'pair/1', holder: 'mgr-b', ttlMs: 60_000 })).body.granted)
  t.deepEqual((await client.request('dir.leases', { prefix: 'pair/' })).body.leases.map((l) => [l.name, l.holder, l.status?.manager]), [['pair/1', 'mgr-a', 'mgr-a']])
  t.is((await client.request('dir.info', {})).body.seq, 1, 'the session is still up')
})

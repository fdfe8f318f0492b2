import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { RpcClient } from '@mirrorcast/rpc'
import { httpStatusFor, type Change } from '@mirrorcast/wire'
import { DirectoryServer, Namespace, type NewFileEntry } from '../src/index.js'
import { dump } from './helpers.js'

const KEY = Buffer.alloc(32, 5)

async function tempNs (t: ExecutionContext): Promise<{ ns: Namespace, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-dir-'))
  const ns = Namespace.open(join(dir, 'ns.lmdb'))
  t.teardown(async () => { await ns.close(); await rm(dir, { recursive: true, force: true }) })
  return { ns, dir }
}

const file = (path: string, n = 1): NewFileEntry => ({ type: 'file', path, fileId: n.toString(16).padStart(32, '0'), size: n, sha256: 'a'.repeat(64), replicas: [{ node: 'node-1', center: 'east', slot: 1 }] })

async function code (p: Promise<unknown> | (() => unknown)): Promise<string | undefined> {
  try {
    if (typeof p === 'function') p()
    else await p
  } catch (err) {
    return (err as { code?: string }).code
  }
  return undefined
}

test('put, stat, list with pages, mkdir with and without parents', async (t) => {
  const { ns } = await tempNs(t)
  const { change, removed } = await ns.put(file('/a/b/c.txt'))
  t.is(change.seq, 1)
  t.deepEqual(removed, [])
  t.is(ns.stat('/a/b').type, 'dir', 'put creates missing parents')
  const entry = ns.stat('/a/b/c.txt')
  t.is(entry.type === 'file' && entry.version, 1)
  t.is(await code(ns.mkdir('/a', false)), 'ERR_DIR_EXISTS')
  t.is(await code(ns.mkdir('/x/y', false)), 'ERR_DIR_NOT_FOUND')
  await ns.mkdir('/x/y', true)
  await ns.mkdir('/x/y', true)
  t.is(await code(ns.mkdir('/a/b/c.txt/d', true)), 'ERR_DIR_NOT_A_DIRECTORY')
  for (let i = 0; i < 25; i++) await ns.put(file(`/many/f${String(i).padStart(2, '0')}`, i + 1))
  const page1 = ns.list('/many', undefined, 10)
  t.is(page1.entries.length, 10)
  t.true(page1.more)
  const page3 = ns.list('/many', 'f19', 10)
  t.deepEqual(page3.entries.map((e) => e.path), ['/many/f20', '/many/f21', '/many/f22', '/many/f23', '/many/f24'])
  t.false(page3.more)
  t.is(await code(() => ns.list('/a/b/c.txt')), 'ERR_DIR_NOT_A_DIRECTORY')
  t.is(await code(() => ns.stat('/nope')), 'ERR_DIR_NOT_FOUND')
  t.is(await code(ns.put(file('/a/b'))), 'ERR_DIR_IS_A_DIRECTORY')
  const replaced = await ns.put(file('/a/b/c.txt', 99))
  t.is(replaced.removed[0]?.fileId, file('/a/b/c.txt').fileId, 'a replaced entry is reported so its body can go')
})

test('rename of a file and of a directory with its subtree; remove; every refusal', async (t) => {
  const { ns } = await tempNs(t)
  await ns.put(file('/src/a/one', 1))
  await ns.put(file('/src/a/deep/two', 2))
  await ns.put(file('/src/three', 3))
  await ns.mkdir('/dst', false)
  await ns.rename('/src/a', '/dst/moved')
  t.is(ns.stat('/dst/moved/deep/two').type, 'file')
  t.is(await code(() => ns.stat('/src/a/one')), 'ERR_DIR_NOT_FOUND')
  await ns.rename('/src/three', '/dst/three')
  t.is(await code(ns.rename('/dst', '/dst/moved/inside')), 'ERR_DIR_INVALID')
  t.is(await code(ns.rename('/', '/x')), 'ERR_DIR_INVALID')
  t.is(await code(ns.rename('/dst/moved', '/dst/three')), 'ERR_DIR_EXISTS')
  t.is(await code(ns.rename('/missing', '/x')), 'ERR_DIR_NOT_FOUND')
  t.is(await code(ns.rename('/dst/three', '/nowhere/three')), 'ERR_DIR_NOT_FOUND')
  await ns.put(file('/dst/four', 4))
  const over = await ns.rename('/dst/four', '/dst/three')
  t.is(over.removed[0]?.fileId, file('/x', 3).fileId, 'a file renamed onto a file replaces it')
  const seq = ns.seq
  t.is(await code(ns.remove('/dst', false)), 'ERR_DIR_NOT_EMPTY')
  t.is(ns.seq, seq, 'a refused operation changes nothing and takes no sequence number')
  await ns.mkdir('/empty', false)
  await ns.remove('/empty', false)
  const { removed } = await ns.remove('/dst', true)
  t.deepEqual(removed.map((e) => e.path).sort(), ['/dst/moved/deep/two', '/dst/moved/one', '/dst/three'])
  t.deepEqual(ns.list('/').entries.map((e) => e.path), ['/src'])
  t.is(await code(ns.remove('/', true)), 'ERR_DIR_INVALID')
})

test('bad paths are refused with ERR_BAD_PATH', async (t) => {
  const { ns } = await tempNs(t)
  for (const p of ['/a/../b', '/a\0b', '/a//b', `/${'n'.repeat(256)}`, '/' + 'ab/'.repeat(1400), 'relative']) {
    t.is(await code(ns.put(file(p))), 'ERR_BAD_PATH', p.slice(0, 20))
    t.is(await code(ns.mkdir(p, true)), 'ERR_BAD_PATH')
  }
  t.is(ns.seq, 0)
})

test('a twin that replays the change log ends with the same namespace; gaps are refused, old changes ignored', async (t) => {
  const { ns } = await tempNs(t)
  const { ns: twin } = await tempNs(t)
  await ns.put(file('/a/b/c', 1))
  await ns.mkdir('/d/e', true)
  await ns.put(file('/d/e/f', 2))
  await ns.rename('/d', '/g')
  await ns.put(file('/g/e/f', 3))
  await ns.remove('/a', true)
  await ns.rename('/g/e/f', '/top')
  const { changes, last } = ns.changes(0)
  t.is(changes.length, 7)
  t.deepEqual(changes.map((c) => c.seq), [1, 2, 3, 4, 5, 6, 7])
  t.is(last, 7)
  t.is(await code(twin.apply(changes.slice(1, 3))), 'ERR_DIR_SEQ_GAP')
  t.is(twin.seq, 0, 'a refused batch applies nothing')
  t.is(await twin.apply(changes.slice(0, 3)), 3)
  for (const c of changes) await twin.apply([c])
  t.is(await twin.apply(changes.slice(0, 1)), 7, 'an old change is already applied')
  t.deepEqual(dump(twin), dump(ns))
  t.is(twin.seq, ns.seq)
  t.deepEqual(ns.changes(5).changes.map((c) => c.seq), [6, 7])
})

test('a replayed change other than the one held at its sequence number is refused as diverged (503); the same change again is a no-op', async (t) => {
  const { ns } = await tempNs(t)
  const { ns: twin } = await tempNs(t)
  await ns.mkdir('/a', false)
  await ns.mkdir('/b', false)
  await ns.mkdir('/c', false)
  const [first, second, third] = ns.changes(0).changes as [Change, Change, Change]
  t.is(await twin.apply([first]), 1)
  // The twin commits a change of its own where the leader's second goes (a stale request).
  await twin.mkdir('/ghost', false)
  t.is(await code(twin.apply([second])), 'ERR_DIR_DIVERGED')
  t.is(httpStatusFor('ERR_DIR_DIVERGED'), 503)
  t.is(await code(twin.apply([first, second, third])), 'ERR_DIR_DIVERGED', 'within a batch')
  t.is(twin.seq, 2, 'nothing of a refused batch is applied')
  t.is(twin.lookup('/b'), undefined)
  t.is(twin.lookup('/c'), undefined)
  t.is(twin.lookup('/ghost')?.type, 'dir')
  t.is(await twin.apply([first]), 2, 'the same change again is a no-op')
  const reordered = Object.fromEntries(Object.entries(first).reverse()) as Change
  t.is(await twin.apply([reordered]), 2, 'whatever the order of its fields')
  t.is(await code(twin.apply([{ ...first, mtime: first.mtime + 1 }])), 'ERR_DIR_DIVERGED', 'a change differing in any field is another change')
  await twin.reset()
  t.is(await twin.apply([first, second, third]), 3, 'emptied, it is rebuilt from the log')
  t.deepEqual(dump(twin), dump(ns))
})

test('entries, sequence and change log survive a restart; the server keeps its id over the protocol', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mc-dir-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const first = new DirectoryServer({ dataDir: dir, key: KEY, center: 'east', slot: 1 })
  await first.start()
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: first.port })
  const reply = await client.request('dir.put', { entry: file('/kept/file') })
  t.is(reply.body.change.seq, 1)
  await client.request('dir.mkdir', { path: '/kept/sub', parents: false })
  const err = await t.throwsAsync(client.request('dir.mkdir', { path: '/kept/sub', parents: false }))
  t.is((err as { code?: string }).code, 'ERR_DIR_EXISTS')
  const { id, bootId } = first
  await client.close()
  await first.close()

  const second = new DirectoryServer({ dataDir: dir, key: KEY, center: 'east', slot: 1 })
  await second.start()
  t.teardown(async () => { await second.close() })
  t.is(second.id, id)
  t.not(second.bootId, bootId)
  const again = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: second.port })
  t.teardown(async () => { await again.close() })
  const info = (await again.request('dir.info', {})).body
  t.is(info.seq, 2)
  t.deepEqual((await again.request('dir.list', { path: '/kept' })).body.entries.map((e) => e.path), ['/kept/file', '/kept/sub'])
  t.is((await again.request('dir.changes', { after: 0 })).body.changes.length, 2)
})

test('concurrent operations are serialised: every change gets its own sequence number', async (t) => {
  const { ns } = await tempNs(t)
  const results = await Promise.allSettled(Array.from({ length: 50 }, async (_, i) => await ns.put(file(`/c/f${i}`, i + 1))))
  t.true(results.every((r) => r.status === 'fulfilled'))
  const seqs = results.map((r) => (r as PromiseFulfilledResult<{ change: { seq: number } }>).value.change.seq).sort((a, b) => a - b)
  t.deepEqual(seqs, Array.from({ length: 50 }, (_, i) => i + 1))
  const failing = await Promise.allSettled([ns.put(file('/c/ok1', 1)), ns.mkdir('/c', false), ns.put(file('/c/ok2', 2))])
  t.deepEqual(failing.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled'], 'a failing operation does not abort its batch')
  t.is(ns.seq, 52)
})

test('the store runs without overlappingSync: every commit, so every answer to a change, local or replayed, comes after its fsync', async (t) => {
  const { ns, dir } = await tempNs(t)
  await ns.put(file('/d/a.txt'))
  // lmdb-js refuses to turn overlappingSync on for an environment this process opened without
  // it: the one sign, from outside, that a commit here resolves after its fsync, not before.
  const err = t.throws(() => open({ path: join(dir, 'ns.lmdb'), overlappingSync: true }))
  t.regex(err?.message ?? '', /opened without this flag/)
  await ns.put(file('/d/b.txt', 2))
  t.deepEqual(ns.list('/d').entries.map((e) => e.path), ['/d/a.txt', '/d/b.txt'], 'the refused open leaves the store in use')
})

test('a move between two partitions: out of one, into the other once, done; twins replaying both logs agree', async (t) => {
  const { ns: source } = await tempNs(t)
  const { ns: dest } = await tempNs(t)
  await source.put(file('/a/dir/one', 1))
  await source.put(file('/a/dir/sub/two', 2))
  await source.mkdir('/a/dir/empty', false)
  await dest.mkdir('/b', false)
  await dest.put(file('/b/x', 7))
  const before = dest.seq
  const intent = 'c'.repeat(32)

  const out = await source.moveOut('/a/dir', '/b/moved', intent)
  t.is(out.change.op, 'move-out')
  t.is(await code(() => source.stat('/a/dir')), 'ERR_DIR_NOT_FOUND', 'the subtree left the source')
  t.deepEqual(source.intents().intents.map((i) => [i.intent, i.path, i.to]), [[intent, '/a/dir', '/b/moved']])
  t.false('tree' in out.change, 'the move-out change carries no subtree: each copy takes it from its own namespace')
  const { tree, more } = source.intentTree(intent, 0)
  t.false(more)
  t.deepEqual(tree.map((e) => e.path), ['/a/dir', '/a/dir/empty', '/a/dir/one', '/a/dir/sub', '/a/dir/sub/two'], 'pre-order: each directory before its contents')

  const moved = await dest.moveIn('/a/dir', '/b/moved', intent, tree)
  t.deepEqual(moved.removed, [])
  const again = await dest.moveIn('/a/dir', '/b/moved', intent, tree)
  t.is(again.change.seq, moved.change.seq, 'the same intent is applied once')
  t.is(dest.seq, before + 1)
  const two = dest.stat('/b/moved/sub/two')
  t.true(two.type === 'file' && two.fileId === file('/', 2).fileId && two.version === dest.seq, 'moved entries take the new sequence number as version')
  t.deepEqual(dump(dest).map((e) => e.path), ['/b', '/b/moved', '/b/moved/empty', '/b/moved/one', '/b/moved/sub', '/b/moved/sub/two', '/b/x'])
  await source.moveDone(intent)
  t.deepEqual(source.intents().intents, [])

  // A file moved onto a file replaces it; onto a directory, or a directory onto anything, is refused.
  await source.put(file('/a/f', 3))
  await source.moveOut('/a/f', '/b/x', 'd'.repeat(32))
  const fileTree = source.intentTree('d'.repeat(32), 0).tree
  const replaced = await dest.moveIn('/a/f', '/b/x', 'd'.repeat(32), fileTree)
  t.is(replaced.removed[0]?.fileId, file('/', 7).fileId)
  t.is(await code(dest.moveIn('/a/f', '/b/moved', 'e'.repeat(32), fileTree)), 'ERR_DIR_EXISTS')
  t.is(await code(dest.moveIn('/a/f', '/nowhere/f', 'e'.repeat(32), fileTree)), 'ERR_DIR_NOT_FOUND')
  t.is(await code(dest.moveIn('/a/g', '/b/y', 'e'.repeat(32), fileTree)), 'ERR_DIR_INVALID', 'a tree must start at the path it claims')

  for (const ns of [source, dest]) {
    const { ns: twin } = await tempNs(t)
    await twin.apply(ns.changes(0).changes)
    t.deepEqual(dump(twin), dump(ns))
    t.deepEqual(twin.intents(), ns.intents())
  }
})

import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RpcClient } from '@mirrorcast/rpc'
import { encodedBytes, MAX_NAME_BYTES, MAX_PAGE_BYTES, MAX_PATH_LENGTH, type Change, type Entry, type FileEntry } from '@mirrorcast/wire'
import { DirectoryServer, MAX_PARKED_REMOVALS, Namespace } from '../src/index.js'

// Every answer and every change of a directory server stays below the frame
// limit however long its paths: listings, change-log pages, removed files and
// moved subtrees come in pages of at most MAX_PAGE_BYTES, and nothing is lost
// or repeated from one page to the next.

const KEY = Buffer.alloc(32, 5)
const FILES = 3000
// what one change may take beyond a page of entries: its own paths and ids
const CHANGE_FIELDS_BYTES = 16 * 1024

async function tempNs (t: ExecutionContext): Promise<Namespace> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-dir-pages-'))
  const ns = Namespace.open(join(dir, 'ns.lmdb'))
  t.teardown(async () => { await ns.close(); await rm(dir, { recursive: true, force: true }) })
  return ns
}

// The paths of @mirrorcast/testkit's deepDir() and longName(): the kit depends on this package, so its tests cannot use it.

/** A directory of 3,744 bytes below `/top` (names of 250 bytes): with a name of 255 bytes below it, a path of 4,000. */
function deepDir (top: string): string {
  let dir = `/${top}`
  while (dir.length < 3744 - 251) dir += '/' + 'd'.repeat(250)
  return dir + '/' + 'e'.repeat(3744 - dir.length - 1)
}

/** The i-th name: 255 bytes (the most a name may take), in order of i. */
const nameOf = (i: number): string => `f${String(i).padStart(5, '0')}`.padEnd(MAX_NAME_BYTES, 'x')

/** The changes that make `dir` and `files` files in it, numbered from 1: applied as a twin would, in one transaction. */
function filling (dir: string, files = FILES): Change[] {
  const changes: Change[] = [{ op: 'mkdir', seq: 1, mtime: 1, path: dir }]
  for (let i = 0; i < files; i++) {
    const seq = i + 2
    const entry: FileEntry = { type: 'file', path: `${dir}/${nameOf(i)}`, fileId: (i + 1).toString(16).padStart(32, '0'), size: i, sha256: 'a'.repeat(64), version: seq, mtime: 2, replicas: [{ node: 'node-1', center: 'east', slot: 1 }, { node: 'node-2', center: 'west', slot: 1 }] }
    changes.push({ op: 'put', seq, mtime: 2, entry })
  }
  return changes
}

async function filled (t: ExecutionContext, dir: string): Promise<Namespace> {
  const ns = await tempNs(t)
  await ns.apply(filling(dir))
  return ns
}

/** Every entry of a directory, page after page, each page checked against the budget. */
function listAll (t: ExecutionContext, ns: Namespace, path: string, limit?: number): { entries: Entry[], pages: number } {
  const entries: Entry[] = []
  let pages = 0
  for (let after: string | undefined, more = true; more; pages++) {
    const page = ns.list(path, after, limit)
    t.true(encodedBytes(page.entries) <= MAX_PAGE_BYTES, `listing page ${pages}: ${encodedBytes(page.entries)} bytes`)
    entries.push(...page.entries)
    const last = page.entries[page.entries.length - 1]
    after = last?.path.slice(last.path.lastIndexOf('/') + 1)
    more = page.more
  }
  return { entries, pages }
}

/** Every entry below a path, depth first, paging through each directory. */
function dump (t: ExecutionContext, ns: Namespace, path = '/'): Entry[] {
  const out: Entry[] = []
  for (const e of listAll(t, ns, path).entries) {
    out.push(e)
    if (e.type === 'dir') out.push(...dump(t, ns, e.path))
  }
  return out
}

/** The whole log, page after page, each page checked against the budget. */
function logOf (t: ExecutionContext, ns: Namespace): { changes: Change[], pages: number } {
  const changes: Change[] = []
  let pages = 0
  for (;;) {
    const page = ns.changes(changes.length === 0 ? 0 : (changes[changes.length - 1] as Change).seq).changes
    if (page.length === 0) return { changes, pages }
    t.true(page.length === 1 || encodedBytes(page) <= MAX_PAGE_BYTES, `log page ${pages}: ${encodedBytes(page)} bytes`)
    changes.push(...page)
    pages++
  }
}

test('the paths are as long as the rules allow', (t) => {
  const path = `${deepDir('big')}/${nameOf(0)}`
  t.is(Buffer.byteLength(path), 4000)
  t.true(path.length <= MAX_PATH_LENGTH)
})

test('a listing of 3,000 entries with 4,000-byte paths comes in pages under the byte budget: every entry once, in order', async (t) => {
  const dir = deepDir('big')
  const ns = await filled(t, dir)
  const expected = Array.from({ length: FILES }, (_, i) => `${dir}/${nameOf(i)}`)
  t.true(ns.list(dir, undefined, 10_000).more, 'one page does not hold them all')
  const { entries, pages } = listAll(t, ns, dir)
  t.deepEqual(entries.map((e) => e.path), expected)
  t.true(pages >= 3, `${pages} pages`)
  const counted = listAll(t, ns, dir, 100)
  t.deepEqual(counted.entries.map((e) => e.path), expected, 'with a smaller limit too')
  t.is(counted.pages, FILES / 100, 'then the count ends each page')
})

test('the change log is read in pages under the byte budget; a twin replaying it page by page ends equal', async (t) => {
  const dir = deepDir('big')
  const ns = await filled(t, dir)
  const { changes, pages } = logOf(t, ns)
  t.deepEqual(changes.map((c) => c.seq), Array.from({ length: FILES + 1 }, (_, i) => i + 1), 'every change once, in order')
  t.true(pages >= 3, `${pages} pages`)
  const twin = await tempNs(t)
  for (let after = 0; after < ns.seq;) after = await twin.apply(ns.changes(after).changes)
  t.deepEqual(dump(t, twin), dump(t, ns))
})

test('a recursive remove of 3,000 long-path files answers a page of them; the rest is read in pages, every file once, then dropped', async (t) => {
  const dir = deepDir('big')
  const ns = await filled(t, dir)
  const result = await ns.remove('/big', true)
  t.true(result.more, 'they do not fit one answer')
  t.true(encodedBytes(result) <= MAX_PAGE_BYTES + CHANGE_FIELDS_BYTES)
  const removed = [...result.removed]
  let pages = 1
  for (let more = true; more; pages++) {
    const page = ns.removedFrom(result.change.seq, removed.length)
    t.true(encodedBytes(page.removed) <= MAX_PAGE_BYTES)
    removed.push(...page.removed)
    more = page.more
  }
  t.true(pages >= 3, `${pages} pages`)
  t.deepEqual(removed.map((e) => e.fileId), Array.from({ length: FILES }, (_, i) => (i + 1).toString(16).padStart(32, '0')), 'every file once, in order')
  const err = t.throws(() => ns.removedFrom(result.change.seq, 0))
  t.is((err as { code?: string }).code, 'ERR_DIR_NOT_FOUND', 'read to its end, the list is dropped')
  t.is(ns.lookup('/big'), undefined)

  // A twin replaying the remove keeps no list: only the server that made the change answers with one.
  const twin = await tempNs(t)
  await twin.apply(logOf(t, ns).changes)
  t.is((t.throws(() => twin.removedFrom(result.change.seq, 0)) as { code?: string }).code, 'ERR_DIR_NOT_FOUND')
  t.deepEqual(dump(t, twin), [])
})

test('removed lists not read yet are kept for the last 8 such changes only: one a dead manager never reads is dropped as newer ones come', async (t) => {
  const ns = await tempNs(t)
  const seqs: number[] = []
  for (let k = 0; k < MAX_PARKED_REMOVALS + 2; k++) {
    // 300 files of 4,000-byte paths: just above one page
    const shift = ns.seq
    await ns.apply(filling(deepDir(`t${k}`), 300).map((c) => c.op === 'put' ? { ...c, seq: c.seq + shift, entry: { ...c.entry, version: c.entry.version + shift } } : { ...c, seq: c.seq + shift }))
    const r = await ns.remove(`/t${k}`, true)
    t.true(r.more)
    seqs.push(r.change.seq)
  }
  const held = seqs.map((seq) => { try { return ns.removedFrom(seq, 200).removed.length > 0 } catch (err) { return (err as { code?: string }).code } })
  t.deepEqual(held, [...Array(2).fill('ERR_DIR_NOT_FOUND'), ...Array(MAX_PARKED_REMOVALS).fill(true)])
})

test('a subtree of 3,000 long entries moves between partitions in slices under the budget, shown at the destination only once whole; twins replaying both logs agree', async (t) => {
  const dir = deepDir('big')
  const source = await filled(t, dir)
  const dest = await tempNs(t)
  await dest.mkdir('/b', false)
  const intent = 'c'.repeat(32)
  const before = dump(t, source, '/big')

  const out = await source.moveOut('/big', '/b/big', intent)
  t.true(encodedBytes(out) < CHANGE_FIELDS_BYTES, 'the move-out carries no subtree')
  t.deepEqual(source.intents().intents.map((i) => [i.intent, i.path, i.to, i.entries]), [[intent, '/big', '/b/big', before.length + 1]])
  const slices: Entry[][] = []
  for (let from = 0, more = true; more;) {
    const page = source.intentTree(intent, from)
    t.true(encodedBytes(page.tree) <= MAX_PAGE_BYTES)
    slices.push(page.tree)
    from += page.tree.length
    more = page.more
  }
  t.true(slices.length >= 3, `${slices.length} slices`)
  t.deepEqual(slices.flat().map((e) => e.path), ['/big', ...before.map((e) => e.path)], 'the whole subtree, pre-order, each entry once')

  for (const [part, slice] of slices.slice(0, -1).entries()) {
    await dest.movePart('/big', intent, part, slice)
    t.is(dest.lookup('/b/big'), undefined, `slice ${part} is staged out of sight`)
  }
  const last = slices[slices.length - 1] as Entry[]
  const moved = await dest.moveIn('/big', '/b/big', intent, last, slices.length - 1)
  t.deepEqual(dump(t, dest, '/b/big').map((e) => e.path), before.map((e) => '/b' + e.path), 'the whole subtree at once, in order')
  const seq = dest.seq
  t.is((await dest.moveIn('/big', '/b/big', intent, last, slices.length - 1)).change.seq, moved.change.seq, 'moved in once')
  t.is((await dest.movePart('/big', intent, 0, slices[0] as Entry[])).change.seq, moved.change.seq, 'a late slice changes nothing')
  t.is(dest.seq, seq)
  t.is(source.entryCount, before.length, 'until the move is done, what lay below its top stays in the source, out of sight')
  await source.moveDone(intent)
  t.is(source.entryCount, 0, 'then it goes')
  t.is(dest.entryCount, 2 + before.length, '/b, the top and what lies below it: nothing staged is left over')

  for (const ns of [source, dest]) {
    const { changes } = logOf(t, ns)
    for (const c of changes) t.true(encodedBytes(c) <= MAX_PAGE_BYTES + CHANGE_FIELDS_BYTES, `change ${c.seq} (${c.op}): ${encodedBytes(c)} bytes`)
    const twin = await tempNs(t)
    for (let after = 0; after < ns.seq;) after = await twin.apply(ns.changes(after).changes)
    t.deepEqual(dump(t, twin), dump(t, ns))
    t.deepEqual(twin.intents(), ns.intents())
  }
})

test('a slice above the budget is refused before anything is staged; a move-in whose slices did not all arrive, or were dropped, is refused', async (t) => {
  const dir = deepDir('big')
  const source = await filled(t, dir)
  const dest = await tempNs(t)
  await dest.mkdir('/b', false)
  await source.moveOut('/big', '/b/big', 'c'.repeat(32))
  const whole = treeOf(source, 'c'.repeat(32))
  t.true(encodedBytes(whole) > MAX_PAGE_BYTES)
  const seq = dest.seq
  const code = async (p: Promise<unknown>): Promise<string | undefined> => await p.then(() => undefined, (err: { code?: string }) => err.code)
  t.is(await code(dest.movePart('/big', 'd'.repeat(32), 0, whole)), 'ERR_DIR_TOO_LARGE')
  t.is(await code(dest.moveIn('/big', '/b/big', 'd'.repeat(32), whole)), 'ERR_DIR_TOO_LARGE')
  t.is(dest.seq, seq, 'nothing was logged')

  const first = source.intentTree('c'.repeat(32), 0).tree
  t.is(await code(dest.moveIn('/big', '/b/big', 'e'.repeat(32), first, 1)), 'ERR_DIR_INVALID', 'slice 0 never arrived')
  await dest.movePart('/big', 'e'.repeat(32), 0, first)
  t.is(dest.entryCount, first.length, '/b, and the staged slice below its top')
  await dest.moveDone('e'.repeat(32))
  t.is(dest.entryCount, 1, 'a move-done drops what was staged, entries included')
  t.is(await code(dest.moveIn('/big', '/b/big', 'e'.repeat(32), first, 1)), 'ERR_DIR_INVALID', 'a move-done dropped what was staged')
  t.is(dest.lookup('/b/big'), undefined)
})

/** A pending move's whole subtree, read page after page. */
function treeOf (ns: Namespace, intent: string): Entry[] {
  const tree: Entry[] = []
  for (let more = true; more;) {
    const page = ns.intentTree(intent, tree.length)
    tree.push(...page.tree)
    more = page.more
  }
  return tree
}

test('over a session, a directory server answers listings, removed files and subtrees of 4,000-byte paths in frames under the limit', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'mc-dir-pages-srv-'))
  t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const server = new DirectoryServer({ dataDir, key: KEY, center: 'east', slot: 1 })
  await server.start()
  t.teardown(async () => { await server.close() })
  const dir = deepDir('big')
  await server.namespace.apply(filling(dir))
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: server.port })
  t.teardown(async () => { await client.close() })

  const names: string[] = []
  for (let more = true; more;) {
    const last = names[names.length - 1]
    const page = (await client.request('dir.list', { path: dir, ...(last === undefined ? {} : { after: last }) })).body
    names.push(...page.entries.map((e) => e.path.slice(dir.length + 1)))
    more = page.more
  }
  t.deepEqual(names, Array.from({ length: FILES }, (_, i) => nameOf(i)))

  const changes: Change[] = []
  for (let after = 0; after < server.namespace.seq; after = (changes[changes.length - 1] as Change).seq) {
    changes.push(...(await client.request('dir.changes', { after, limit: 10_000 })).body.changes)
  }
  t.is(changes.length, FILES + 1)

  const intent = 'c'.repeat(32)
  await client.request('dir.move-out', { path: '/big', to: '/b/big', intent })
  const tree: Entry[] = []
  for (let more = true; more;) {
    const page = (await client.request('dir.intent-tree', { intent, from: tree.length })).body
    tree.push(...page.tree)
    more = page.more
  }
  t.is((await client.request('dir.intents', {})).body.intents[0]?.entries, tree.length)
  // back where it came from, in slices, as a manager moves back what a destination refused
  const back = 'b'.repeat(32)
  const slices: Entry[][] = []
  for (let from = 0; from < tree.length; from += (slices[slices.length - 1] as Entry[]).length) slices.push(server.namespace.intentTree(intent, from).tree)
  for (const [part, slice] of slices.slice(0, -1).entries()) await client.request('dir.move-part', { path: '/big', intent: back, part, tree: slice })
  await client.request('dir.move-in', { path: '/big', to: '/big', intent: back, tree: slices[slices.length - 1] as Entry[], parts: slices.length - 1 })
  await client.request('dir.move-done', { intent })

  const removed = await client.request('dir.remove', { path: '/big', recursive: true })
  t.true(removed.body.more)
  const files = [...removed.body.removed]
  for (let more = true; more;) {
    const page = (await client.request('dir.removed', { seq: removed.body.change.seq, from: files.length })).body
    files.push(...page.removed)
    more = page.more
  }
  t.deepEqual(files.map((f) => f.path.slice(dir.length + 1)), Array.from({ length: FILES }, (_, i) => nameOf(i)))
  t.is((await client.request('dir.info', {})).body.entries, 0)
})

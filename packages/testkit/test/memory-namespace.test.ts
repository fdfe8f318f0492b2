import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Namespace, type NewFileEntry } from '@mirrorcast/directory'
import type { Change, Entry } from '@mirrorcast/wire'
import { deepDir, longFiles, longName, MemoryNamespace } from '../src/index.js'

// The in-memory namespace must answer as the real one (LMDB) does, or the
// manager's fast tests prove nothing: one script of operations, run on both,
// every answer and every refusal compared (mtimes aside, as the clocks differ).

type AnyNamespace = Namespace | MemoryNamespace

async function real (t: ExecutionContext): Promise<Namespace> {
  const dir = await mkdtemp(join(tmpdir(), 'mc-testkit-ns-'))
  const ns = Namespace.open(join(dir, 'ns.lmdb'))
  t.teardown(async () => { await ns.close(); await rm(dir, { recursive: true, force: true }) })
  return ns
}

const file = (path: string, n = 1): NewFileEntry => ({ type: 'file', path, fileId: n.toString(16).padStart(32, '0'), size: n, sha256: 'a'.repeat(64), replicas: [{ node: 'node-1', center: 'east', slot: 1 }] })
const INTENT = 'c'.repeat(32)

/** An answer with its mtimes zeroed and its keys sorted; a refusal as its code. */
async function outcome (fn: () => unknown): Promise<string> {
  try {
    return JSON.stringify(normal(await fn()))
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === undefined) throw err
    return `refused: ${code}`
  }
}

function normal (v: unknown): unknown {
  if (Array.isArray(v)) return v.map(normal)
  if (v === null || typeof v !== 'object') return v
  return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : 1).map(([k, x]) => [k, k === 'mtime' ? 0 : normal(x)]))
}

function dump (ns: AnyNamespace, path = '/'): Entry[] {
  const out: Entry[] = []
  for (const e of ns.list(path).entries) {
    out.push(e)
    if (e.type === 'dir') out.push(...dump(ns, e.path))
  }
  return out
}

/** Each step runs on one namespace, with what earlier steps gave it. */
type Step = [string, (ns: AnyNamespace, got: Map<string, unknown>) => unknown]

const SCRIPT: Step[] = [
  ['mkdir /a', async (ns) => await ns.mkdir('/a', false)],
  ['mkdir /a again', async (ns) => await ns.mkdir('/a', false)],
  ['mkdir without its parent', async (ns) => await ns.mkdir('/x/y', false)],
  ['mkdir -p', async (ns) => await ns.mkdir('/x/y', true)],
  ['mkdir -p of /', async (ns) => await ns.mkdir('/', true)],
  ['put', async (ns) => await ns.put(file('/a/f1', 1))],
  ['put over a file', async (ns) => await ns.put(file('/a/f1', 2))],
  ['put with new parents', async (ns) => await ns.put(file('/p/q/r', 3))],
  ['put over a directory', async (ns) => await ns.put(file('/x', 4))],
  ['put under a file', async (ns) => await ns.put(file('/a/f1/g', 5))],
  ['put at /', async (ns) => await ns.put(file('/', 6))],
  ['mkdir -p through a file', async (ns) => await ns.mkdir('/a/f1/z', true)],
  ['stat', (ns) => ns.stat('/a/f1')],
  ['stat /', (ns) => ns.stat('/')],
  ['stat of nothing', (ns) => ns.stat('/nope')],
  ['lookup of nothing', (ns) => ns.lookup('/nope/deeper')],
  ['lookup under a file', (ns) => ns.lookup('/a/f1/z')],
  ['list /', (ns) => ns.list('/')],
  ['list a page', (ns) => ns.list('/', undefined, 2)],
  ['list after', (ns) => ns.list('/', 'a', 2)],
  ['list a file', (ns) => ns.list('/a/f1')],
  ['list of nothing', (ns) => ns.list('/nope')],
  ['rename a file into another directory', async (ns) => await ns.rename('/a/f1', '/x/y/f2')],
  ['rename a file over a file', async (ns) => await ns.rename('/p/q/r', '/x/y/f2')],
  ['rename over a directory', async (ns) => await ns.rename('/a', '/x')],
  ['rename into itself', async (ns) => await ns.rename('/x', '/x/y/z')],
  ['rename of nothing', async (ns) => await ns.rename('/nope', '/q')],
  ['rename under nothing', async (ns) => await ns.rename('/a', '/nope/q')],
  ['rename of /', async (ns) => await ns.rename('/', '/q')],
  ['rename to itself', async (ns) => await ns.rename('/a', '/a')],
  ['rename a directory with what it holds', async (ns) => await ns.rename('/x', '/b')],
  ['what moved with it', (ns) => dump(ns)],
  ['remove a full directory', async (ns) => await ns.remove('/b', false)],
  ['remove of nothing', async (ns) => await ns.remove('/nope', false)],
  ['remove /', async (ns) => await ns.remove('/', true)],
  ['remove a file', async (ns) => { await ns.put(file('/b/y/g', 7)); return await ns.remove('/b/y/g', false) }],
  ['remove a subtree', async (ns) => { await ns.put(file('/b/y/g', 8)); return await ns.remove('/b', true) }],
  ['move-out', async (ns, got) => { await ns.put(file('/m/n/o', 9)); const r = await ns.moveOut('/m', '/w', INTENT); got.set('tree', ns.intentTree(INTENT, 0).tree); return r }],
  ['the moving subtree', (ns) => ns.intentTree(INTENT, 0)],
  ['the moving subtree past its end', (ns) => ns.intentTree(INTENT, 3)],
  ['the subtree of no move', (ns) => ns.intentTree('f'.repeat(32), 0)],
  ['move-out of /', async (ns) => await ns.moveOut('/', '/w', INTENT)],
  ['pending moves', (ns) => ns.intents()],
  ['move-in of a bad tree', async (ns, got) => await ns.moveIn('/other', '/w', INTENT, got.get('tree') as Entry[])],
  ['move-in', async (ns, got) => await ns.moveIn('/m', '/w', INTENT, got.get('tree') as Entry[])],
  ['move-in again', async (ns, got) => await ns.moveIn('/m', '/w', INTENT, got.get('tree') as Entry[])],
  ['what moved in', (ns) => dump(ns)],
  ['move-done', async (ns) => await ns.moveDone(INTENT)],
  ['counts', (ns) => [ns.seq, ns.entryCount, ns.pendingMoves]],
  ['the change log', (ns) => ns.changes(0)],
  ['a page of it', (ns) => ns.changes(3, 2)]
]

test('the in-memory namespace answers every operation as the LMDB one does', async (t) => {
  const sides: AnyNamespace[] = [await real(t), new MemoryNamespace()]
  const got = sides.map(() => new Map<string, unknown>())
  for (const [name, step] of SCRIPT) {
    const [lmdb, memory] = [await outcome(() => step(sides[0] as AnyNamespace, got[0] as Map<string, unknown>)), await outcome(() => step(sides[1] as AnyNamespace, got[1] as Map<string, unknown>))]
    t.is(memory, lmdb, name)
    t.deepEqual(normal(dump(sides[1] as AnyNamespace)), normal(dump(sides[0] as AnyNamespace)), `the namespace after: ${name}`)
  }
})

test('replaying a log: held changes are skipped, a gap or another change at a held number (a diverged log) refuses the whole batch, a reset empties it', async (t) => {
  const source = new MemoryNamespace()
  await source.mkdir('/a', false)
  await source.put(file('/a/f', 1))
  await source.rename('/a', '/b')
  const changes: Change[] = source.changes(0).changes
  for (const ns of [await real(t), new MemoryNamespace()]) {
    t.is(await ns.apply(changes.slice(0, 2)), 2)
    t.is(await ns.apply(changes), 3, 'the first two are held already')
    t.deepEqual(normal(dump(ns)), normal(dump(source)))
    const gap = await outcome(async () => await ns.apply([{ ...changes[0] as Change, seq: 5 }]))
    t.is(gap, 'refused: ERR_DIR_SEQ_GAP')
    t.is(ns.seq, 3, 'nothing of a refused batch is applied')
    const other = await outcome(async () => await ns.apply([{ ...changes[1] as Change, mtime: (changes[1] as Change).mtime + 1 }]))
    t.is(other, 'refused: ERR_DIR_DIVERGED', 'another change at a held sequence number')
    t.is(await ns.apply([changes[1] as Change]), 3, 'the same one again is a no-op')
    await ns.reset()
    t.deepEqual([ns.seq, ns.entryCount, dump(ns)], [0, 0, []])
  }
})

test('answers in pages (listings, the log, removed files, a moving subtree in slices) are the LMDB namespace\'s, page for page', async (t) => {
  // 300 files of 4,000-byte paths: two pages of every kind
  const dir = deepDir('big')
  const sides: AnyNamespace[] = [await real(t), new MemoryNamespace()]
  const slice = (ns: AnyNamespace, n: 0 | 1): Entry[] => ns.intentTree(INTENT, n === 0 ? 0 : ns.intentTree(INTENT, 0).tree.length).tree
  const steps: Step[] = [
    ['fill', async (ns) => await ns.apply(longFiles(dir, 300))],
    ['a page of the listing', (ns) => ns.list(dir)],
    ['the next page', (ns) => ns.list(dir, longName(ns.list(dir).entries.length - 1))],
    ['a page of the log', (ns) => ns.changes(0, 10_000)],
    ['the next page of the log', (ns) => ns.changes(ns.changes(0, 10_000).changes.length, 10_000)],
    ['move-out', async (ns) => await ns.moveOut('/big', '/moved', INTENT)],
    ['pending moves', (ns) => ns.intents()],
    ['slice 0', (ns) => ns.intentTree(INTENT, 0)],
    ['slice 1, the last', (ns) => ns.intentTree(INTENT, slice(ns, 0).length)],
    ['stage slice 0', async (ns) => await ns.movePart('/big', 'b'.repeat(32), 0, slice(ns, 0))],
    ['out of sight', (ns) => ns.lookup('/moved')],
    ['counts while moving', (ns) => [ns.seq, ns.entryCount, ns.pendingMoves]],
    ['a slice too large', async (ns) => await ns.movePart('/big', 'b'.repeat(32), 1, [...slice(ns, 0), ...slice(ns, 1)])],
    ['move-in with the last slice', async (ns) => await ns.moveIn('/big', '/moved', 'b'.repeat(32), slice(ns, 1), 1)],
    ['a late slice', async (ns) => await ns.movePart('/big', 'b'.repeat(32), 0, slice(ns, 0))],
    ['move-done', async (ns) => await ns.moveDone(INTENT)],
    ['remove it', async (ns, got) => { const r = await ns.remove('/moved', true); got.set('first', r.removed.length); return r }],
    ['the rest of what it removed', (ns, got) => ns.removedFrom(ns.seq, got.get('first') as number)],
    ['read again', (ns) => ns.removedFrom(ns.seq, 0)],
    ['counts', (ns) => [ns.seq, ns.entryCount, ns.pendingMoves]]
  ]
  const got = sides.map(() => new Map<string, unknown>())
  const seen = new Map<string, string>()
  for (const [name, step] of steps) {
    const [lmdb, memory] = [await outcome(() => step(sides[0] as AnyNamespace, got[0] as Map<string, unknown>)), await outcome(() => step(sides[1] as AnyNamespace, got[1] as Map<string, unknown>))]
    t.is(memory, lmdb, name)
    seen.set(name, lmdb)
  }
  for (const name of ['a page of the listing', 'slice 0', 'remove it']) t.true(seen.get(name)?.includes('"more":true'), `${name}: one page of several`)
  t.true(seen.get('slice 1, the last')?.includes('"more":false'))
  t.is(seen.get('a slice too large'), 'refused: ERR_DIR_TOO_LARGE')
  t.is(seen.get('read again'), 'refused: ERR_DIR_NOT_FOUND')
  t.deepEqual(normal(dump(sides[1] as AnyNamespace)), normal(dump(sides[0] as AnyNamespace)))
})

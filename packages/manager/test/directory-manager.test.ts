import test, { type ExecutionContext } from 'ava'
import { deepDir, longFileId, longFiles, longName, remoteError, until, type InMemoryDirectory } from '@mirrorcast/testkit'
import { encodedBytes, MAX_PAGE_BYTES, type Change, type Entry } from '@mirrorcast/wire'
import { httpStatusFor } from '../src/index.js'
import { mergePages } from '../src/directory/directory-manager.js'
import { harness, type Harness } from './harness.js'

// In-process tests of the directory manager's failure paths (partition
// replication, leader election, cross-partition moves) against in-memory
// directory servers: what the client is answered, what each copy of the
// namespace holds, and what becomes of each server.

const FILE = { fileId: 'a'.repeat(32), size: 3, sha256: 'b'.repeat(64), replicas: [] }
/** A server's whole log, page after page. */
function log (d: InMemoryDirectory): Change[] {
  const all: Change[] = []
  for (let page = d.namespace.changes(0).changes; page.length > 0; page = d.namespace.changes((all[all.length - 1] as Change).seq).changes) all.push(...page)
  return all
}
const requests = (d: InMemoryDirectory, t: string, since = 0): unknown[] => d.received.slice(since).filter((r) => r.t === t).map((r) => r.body)

/** The follower goes silent long enough to be suspected (not failed over) and is heard again. */
function suspectAndHear (h: Harness, d: InMemoryDirectory): void {
  h.advance(600, [d])
  if (h.member(d).state !== 'suspect') throw new Error(`${d.name} should be suspect, is ${h.member(d).state}`)
  h.heartbeat()
}

test('a change is acknowledged once both copies hold it, in the same order', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  await h.directories.put({ type: 'file', path: '/a/f', ...FILE })
  t.deepEqual(log(f), log(p))
  t.is(log(p).length, 2)
  t.deepEqual(await h.directories.stat('/a/f'), p.namespace.stat('/a/f'))
})

test('a follower lost mid-change is failed over; the change is acknowledged on the leader alone, and the follower catches up on its return', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  f.fail({ t: 'dir.apply', kill: true })
  const done = await h.directories.mkdir('/a/b', false)
  t.is(done.change.seq, 2)
  t.is(h.member(f).health, 'failed-over')
  t.is(p.namespace.lookup('/a/b')?.type, 'dir')
  t.is(f.namespace.lookup('/a/b'), undefined)
  // While it is out the partition goes on, on the leader alone.
  await h.directories.mkdir('/a/c', false)

  h.restart(f)
  await h.untilStatus(f, 'healthy')
  t.deepEqual(log(f), log(p), 'caught up from the leader\'s log')
  t.is(log(p).length, 3)
})

test('a follower that diverged (it holds a change the leader never made) is failed over, the change acknowledged once on the leader; back, it is rebuilt from the leader\'s log', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  // A server paused while it led commits, when it resumes, what it had been asked before the
  // manager gave up on it: here the follower holds a change 2 of its own.
  f.namespace.mkdir('/ghost', false)
  suspectAndHear(h, f)

  const done = await h.directories.mkdir('/b', false)
  t.is(done.change.seq, 2, 'acknowledged')
  t.deepEqual(done.change, log(p)[1], 'as the leader holds it')
  t.is(requests(p, 'dir.mkdir').length, 2, 'made once (with /a before it)')
  t.is(h.member(f).health, 'failed-over')
  t.regex(h.member(f).failover?.reason ?? '', /diverged/)
  t.is(f.namespace.lookup('/b'), undefined)

  h.restart(f)
  await h.untilStatus(f, 'healthy')
  t.is(requests(f, 'dir.reset').length, 1, 'emptied')
  t.deepEqual(log(f), log(p), 'and rebuilt from the leader\'s log')
  t.is(f.namespace.lookup('/ghost'), undefined)
  t.is(f.namespace.lookup('/b')?.type, 'dir')
})

/**
 * Just before `d` serves its next `dir.apply`, it serves `stale` (a request it
 * took before it was paused: a resumed server reads its sockets in any order).
 */
function staleBeforeApply (d: InMemoryDirectory, stale: () => void): void {
  const apply = d.namespace.apply.bind(d.namespace)
  d.namespace.apply = (changes) => {
    d.namespace.apply = apply
    stale()
    return apply(changes)
  }
}

/** `f`, restarted, is emptied once and rebuilt from leader `p`'s log. */
async function rebuiltFromLeader (t: ExecutionContext, h: Harness, p: InMemoryDirectory, f: InMemoryDirectory): Promise<void> {
  h.restart(f)
  await h.untilStatus(f, 'healthy')
  t.is(requests(f, 'dir.reset').length, 1, 'emptied')
  t.deepEqual(log(f), log(p), 'and rebuilt from the leader\'s log')
}

/** With leader `p` lost, the acknowledged `/b` is there and the stale `/ghost` is not. */
async function acknowledgedOutlivesLeader (t: ExecutionContext, h: Harness, p: InMemoryDirectory): Promise<void> {
  h.kill(p)
  t.is((await h.directories.lookup('/b'))?.type, 'dir', 'the acknowledged change outlives the leader')
  t.is(await h.directories.lookup('/ghost'), undefined)
}

test('a returning server that commits a stale change while it catches up (after its log was checked) is rebuilt from the leader\'s log, never put back into use with it', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  h.kill(f)
  await h.untilStatus(f, 'failed-over')
  const done = await h.directories.mkdir('/b', false)
  t.is(done.change.seq, 2, 'acknowledged on the leader alone')

  // Its log (/a) is the leader's when checked; then it commits a /ghost of its own at 2.
  staleBeforeApply(f, () => { f.namespace.mkdir('/ghost', false) })
  await rebuiltFromLeader(t, h, p, f)
  t.is(f.namespace.lookup('/ghost'), undefined)
  await acknowledgedOutlivesLeader(t, h, p)
})

test('a follower whose log diverged after it was last checked (its apply is refused) is failed over; the change is acknowledged on the leader alone and rebuilt on its return', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  // The manager knows where the follower's log stands (1); it commits a change 2 of its own.
  f.namespace.mkdir('/ghost', false)

  const done = await h.directories.mkdir('/b', false)
  t.is(done.change.seq, 2, 'acknowledged')
  t.deepEqual(done.change, log(p)[1])
  t.is(h.member(f).health, 'failed-over')
  t.regex(h.member(f).failover?.reason ?? '', /diverged/)
  t.is(f.namespace.lookup('/b'), undefined)

  await rebuiltFromLeader(t, h, p, f)
  await acknowledgedOutlivesLeader(t, h, p)
})

test('a leader lost before its follower took a change: made again on the new leader, once; the old leader, back, is rebuilt and follows', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  // The old leader's copy of the change bears another mtime than the one made again.
  p.namespace.clock = () => 1_000
  // The follower is held (paused) while the manager asks it where its log stands.
  suspectAndHear(h, f)
  f.pause()
  const change = h.directories.mkdir('/b', false)
  await until(() => p.namespace.seq === 2, { what: 'the leader to make the change' })
  h.kill(p)
  f.resume()
  const done = await change
  t.is(done.change.seq, 2)
  t.deepEqual(done.change, log(f)[1], 'acknowledged as the new leader holds it')
  t.is(requests(f, 'dir.mkdir').length, 1, 'made again on the new leader, once')
  t.is(log(f).length, 2)
  t.not(JSON.stringify(log(p)[1]), JSON.stringify(log(f)[1]), 'the dead leader holds a change never acknowledged')

  h.restart(p)
  await h.untilStatus(p, 'healthy')
  t.is(requests(p, 'dir.reset').length, 1, 'its diverged log was emptied')
  t.deepEqual(log(p), log(f), 'and rebuilt from the new leader\'s')
  // The new leader stays the leader while it is usable: the returning server follows.
  const since = [p.received.length, f.received.length]
  await h.directories.mkdir('/c', false)
  t.is(requests(f, 'dir.mkdir', since[1]).length, 1)
  t.is(requests(p, 'dir.mkdir', since[0]).length, 0)
  t.deepEqual(log(p), log(f))
})

test('a follower whose apply is cut while it answers probes gets the change again; nobody is failed over and both logs agree', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  f.fail({ t: 'dir.apply', afterEffect: true })
  const done = await h.directories.mkdir('/a/b', false)
  t.is(done.change.seq, 2)
  t.is(h.member(f).health, 'healthy')
  t.true(f.probes > 0, 'its failure was checked by a probe')
  t.deepEqual(log(f), log(p))
})

test('a leader whose request is cut while it answers probes stays leader: that request fails (503), the next one is served', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  p.fail({ t: 'dir.mkdir' })
  const err = await t.throwsAsync(h.directories.mkdir('/b', false))
  t.is(httpStatusFor((err as { code?: string }).code), 503)
  t.is(h.member(p).health, 'healthy')
  await h.directories.mkdir('/b', false)
  t.is(p.namespace.lookup('/b')?.type, 'dir')
  t.deepEqual(log(f), log(p))
})

test('a leader lost before it answered: the change is made on the new leader and the client gets one answer', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  p.namespace.clock = () => 1_000
  p.fail({ t: 'dir.mkdir', afterEffect: true, kill: true })
  const done = await h.directories.mkdir('/b', false)
  t.deepEqual(done.change, log(f)[1])
  t.is(h.member(p).health, 'failed-over')
  t.deepEqual(await h.directories.stat('/b'), f.namespace.stat('/b'))
})

test('with both servers of a partition out, its requests fail with ERR_UNAVAILABLE (503); the first back serves again', async (t) => {
  const h = harness(t)
  const [p, f] = [h.cluster.directory('east', 1), h.cluster.directory('west', 1)]
  await h.directories.mkdir('/a', false)
  h.kill(p)
  h.kill(f)
  const err = await t.throwsAsync(h.directories.mkdir('/b', false))
  t.is((err as { code?: string }).code, 'ERR_UNAVAILABLE')
  t.is(httpStatusFor((err as { code?: string }).code), 503)
  t.is((await t.throwsAsync(h.directories.stat('/a')) as { code?: string }).code, 'ERR_UNAVAILABLE')

  h.restart(f)
  await h.untilStatus(f, 'healthy')
  t.is((await h.directories.stat('/a')).type, 'dir')
  await h.directories.mkdir('/b', false)
  t.is(f.namespace.lookup('/b')?.type, 'dir')
})

/** Two top-level names whose paths live in different partitions. */
function namesApart (h: Harness): [string, string] {
  const names = Array.from({ length: 50 }, (_, i) => `top${i}`)
  const a = names[0] as string
  const b = names.find((n) => h.directories.partitionOf(`/${n}`) !== h.directories.partitionOf(`/${a}`))
  if (b === undefined) throw new Error('no two names in different partitions')
  return [a, b]
}

test('a cross-partition move its destination refuses after the subtree left: it moves back, whole, and the client gets the refusal', async (t) => {
  const h = harness(t, { storagePairs: 0, directoryPairs: 2 })
  const [a, b] = namesApart(h)
  await h.directories.put({ type: 'file', path: `/${a}/x/f`, ...FILE })
  await h.directories.mkdir(`/${b}`, false)
  const destination = h.cluster.directory('east', h.directories.partitionOf(`/${b}`))
  destination.fail({ t: 'dir.move-in', error: remoteError('ERR_DIR_EXISTS', `/${b}/x already exists`) })
  const err = await t.throwsAsync(h.directories.rename(`/${a}/x`, `/${b}/x`))
  t.is((err as { code?: string }).code, 'ERR_DIR_EXISTS')
  t.is(httpStatusFor((err as { code?: string }).code), 409)
  t.like(await h.directories.stat(`/${a}/x/f`), { type: 'file', fileId: FILE.fileId }, 'the subtree is back where it was')
  t.is(await h.directories.lookup(`/${b}/x`), undefined, 'and nowhere else')
  const source = h.cluster.directory('east', h.directories.partitionOf(`/${a}`))
  t.deepEqual(source.namespace.intents().intents, [], 'no move is left pending')
})

test('a cross-partition move whose destination fails the move-in stays pending (503) and is finished by the recovery', async (t) => {
  const h = harness(t, { storagePairs: 0, directoryPairs: 2 })
  const [a, b] = namesApart(h)
  await h.directories.put({ type: 'file', path: `/${a}/x/f`, ...FILE })
  await h.directories.mkdir(`/${b}`, false)
  const k = h.directories.partitionOf(`/${b}`)
  const [dp, df] = [h.cluster.directory('east', k), h.cluster.directory('west', k)]
  const source = h.cluster.directory('east', h.directories.partitionOf(`/${a}`))
  // The recovery finishes only moves left for 10 s: this one's intent is made 11 s old.
  source.namespace.clock = () => Date.now() - 11_000
  // Both destination servers lose their connection on the move-in, one after the other.
  dp.fail({ t: 'dir.move-in' })
  df.fail({ t: 'dir.move-in' })
  const err = await t.throwsAsync(h.directories.rename(`/${a}/x`, `/${b}/x`))
  t.is((err as { code?: string }).code, 'ERR_UNAVAILABLE')
  t.is(httpStatusFor((err as { code?: string }).code), 503)
  t.is(source.namespace.intents().intents.length, 1, 'the move is pending in its source, never lost')
  t.is(source.namespace.lookup(`/${a}/x`), undefined, 'the subtree left its source')

  await h.directories.recover()
  t.like(await h.directories.stat(`/${b}/x/f`), { type: 'file', fileId: FILE.fileId }, 'the move is finished')
  t.is(await h.directories.lookup(`/${a}/x`), undefined)
  t.deepEqual(source.namespace.intents().intents, [], 'and its intent dropped')
  t.is(requests(df, 'dir.move-in').length + requests(dp, 'dir.move-in').length, 1, 'moved in once')
})

/** Every entry of a directory through the manager, page after page; each page checked against the budget. */
async function listAll (t: ExecutionContext, h: Harness, path: string, limit?: number): Promise<{ entries: Entry[], pages: number }> {
  const entries: Entry[] = []
  let pages = 0
  for (let more = true; more; pages++) {
    const last = entries[entries.length - 1]
    const page = await h.directories.list(path, last?.path.slice(last.path.lastIndexOf('/') + 1), limit)
    t.true(encodedBytes(page.entries) <= MAX_PAGE_BYTES, `page ${pages}: ${encodedBytes(page.entries)} bytes`)
    entries.push(...page.entries)
    more = page.more
  }
  return { entries, pages }
}

const FILES = 3000

test('a directory of 3,000 entries with 4,000-byte paths, far more than a frame: listed in pages, moved to another partition in slices, removed with every file reported once; a follower rebuilt from the log', async (t) => {
  // The fakes refuse a request or an answer above the frame limit as a real session does.
  const h = harness(t, { storagePairs: 0, directoryPairs: 2 })
  const [a, b] = namesApart(h)
  const dir = deepDir(a)
  const [source, target] = [h.directories.partitionOf(`/${a}`), h.directories.partitionOf(`/${b}`)]
  const [sp, sf] = [h.cluster.directory('east', source), h.cluster.directory('west', source)]
  const [tp, tf] = [h.cluster.directory('east', target), h.cluster.directory('west', target)]
  for (const d of [sp, sf]) d.namespace.apply(longFiles(dir, FILES))
  const names = Array.from({ length: FILES }, (_, i) => longName(i))

  const listed = await listAll(t, h, dir)
  t.deepEqual(listed.entries.map((e) => e.path), names.map((n) => `${dir}/${n}`), 'every entry once, in order')
  t.true(listed.pages >= 3, `${listed.pages} pages`)

  // A rename between partitions: the subtree travels in slices, each staged on both copies of the destination.
  await h.directories.rename(`/${a}`, `/${b}`)
  const movedDir = `/${b}` + dir.slice(a.length + 1)
  const moved = await listAll(t, h, movedDir)
  t.deepEqual(moved.entries.map((e) => e.path), names.map((n) => `${movedDir}/${n}`), 'every entry once, in order, at its new place')
  t.is(await h.directories.lookup(`/${a}`), undefined)
  t.deepEqual(sp.namespace.intents().intents, [], 'the move is done')
  t.true(log(tp).filter((c) => c.op === 'move-part').length >= 2, 'it travelled in slices')
  for (const c of log(tp)) t.true(encodedBytes(c) <= MAX_PAGE_BYTES + 16 * 1024, `change ${c.seq} (${c.op}): ${encodedBytes(c)} bytes`)
  t.deepEqual(log(tf), log(tp), 'the destination\'s follower took every change, batch by batch')
  t.deepEqual(log(sf), log(sp))

  // The follower comes back with an empty store: it is rebuilt from the leader's log, page by page.
  h.kill(tf)
  await h.untilStatus(tf, 'failed-over')
  tf.namespace.reset()
  h.restart(tf)
  await h.untilStatus(tf, 'healthy')
  t.deepEqual(log(tf), log(tp))
  const pages = requests(tf, 'dir.apply').length
  t.true(pages >= 3, `the log came in ${pages} batches`)

  const since = tp.received.length
  const { removed } = await h.directories.remove(`/${b}`, true)
  t.deepEqual(removed.map((f) => f.fileId), names.map((_, i) => longFileId(i)), 'every removed file once, in order')
  t.true(requests(tp, 'dir.removed', since).length >= 2, 'read in pages from the leader')
  t.deepEqual(log(tf), log(tp))
  for (const d of [sp, sf, tp, tf]) t.is(h.member(d).health, 'healthy', d.name)
})

test('the root of several partitions is listed in pages that miss no name', async (t) => {
  const h = harness(t, { storagePairs: 0, directoryPairs: 3 })
  const names = Array.from({ length: 40 }, (_, i) => `top${String(i).padStart(2, '0')}`)
  for (const n of names) await h.directories.mkdir(`/${n}`, false)
  for (const limit of [1, 3, 7, 40]) {
    const { entries } = await listAll(t, h, '/', limit)
    t.deepEqual(entries.map((e) => e.path), names.map((n) => `/${n}`), `pages of ${limit}`)
  }
})

test('a root page ends where a partition\'s page stopped short (its bytes filled a page): the next page, after it, misses none of that partition\'s names', (t) => {
  const dir = (path: string): Entry => ({ type: 'dir', path, version: 1, mtime: 1 })
  // Partition 1 stopped after /c (more follow, from /d on); partition 2 is complete.
  const merged = mergePages([{ entries: [dir('/a'), dir('/c')], more: true }, { entries: [dir('/b'), dir('/e'), dir('/f')], more: false }], 100)
  t.deepEqual(merged, { entries: [dir('/a'), dir('/b'), dir('/c')], more: true })
  t.deepEqual(mergePages([{ entries: [dir('/a')], more: false }, { entries: [dir('/b')], more: false }], 100), { entries: [dir('/a'), dir('/b')], more: false })
  t.deepEqual(mergePages([{ entries: [dir('/a'), dir('/c')], more: false }, { entries: [dir('/b')], more: false }], 2), { entries: [dir('/a'), dir('/b')], more: true }, 'and no more than the limit')
})

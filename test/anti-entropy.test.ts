import test from 'ava'
import { randomBytes } from 'node:crypto'
import { copyFile, mkdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import type { PairReplication } from '@mirrorcast/client'
import { blobPath, blobState, until } from '@mirrorcast/testkit'
import { clientOf, http, json, startUp, tempDir, type FileJson } from './helpers/cluster.js'
import { killMember, readClusterJson, secondManager, startByHand, untilHealthy } from './helpers/failover.js'

// Pair anti-entropy (README, consistency model): the twins of a pair are
// compared with each other and with what the directory names, so the second
// copy of a file never depends on one manager's journal.

const run = promisify(execFile)

async function replication (url: string, pair = 1): Promise<PairReplication> {
  const view = await clientOf(url).cluster()
  const r = view.pairs.find((p) => p.role === 'storage' && p.index === pair)?.replication
  if (r === undefined) throw new Error(`no replication for storage pair ${pair} in /cluster`)
  return r
}

async function * trickle (body: Buffer, piece: number, pauseMs: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < body.length; at += piece) {
    yield body.subarray(at, at + piece)
    await sleep(pauseMs)
  }
}

interface Report { checks: Array<{ status: string, check: string, subject?: string, message: string }> }

/** `mirrorcast diag --json`; a failed check (the node that is out) exits 1 with the report all the same. */
async function diagnose (args: string[]): Promise<Report> {
  const r = await run(process.execPath, [CLI_BIN, 'diag', '--json', ...args]).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }))
  return JSON.parse(r.stdout) as Report
}

const nodeDir = (dir: string, center: string): string => join(dir, center, `${center}-node1`)

test('manager A lost for good after taking writes while east was out: east comes back whole through B, and every file reads once west dies', async (t) => {
  const dir = await tempDir(t)
  const a = await startUp(t, dir, ['--nodes', '1'])
  const cluster = await readClusterJson(dir)
  const b = await secondManager(t, dir, cluster)
  await until(async () => (await clientOf(b).cluster()).nodes.length === 4, { what: 'manager b to hear every member' })
  const east = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'east')
  const west = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'west')
  if (east === undefined || west === undefined) { t.fail('no storage pair in cluster.json'); return }

  const bodies = new Map<string, Buffer>()
  const write = async (name: string): Promise<void> => {
    const body = randomBytes(10_000 + bodies.size * 97)
    const r = await http(a.url, 'PUT', `/files/ae/${name}`, body)
    t.is(r.status, 201, r.body.toString())
    bodies.set(name, body)
  }
  for (let i = 0; i < 10; i++) await write(`before-${i}`)
  await killMember([a.url, b], east)
  for (let i = 0; i < 20; i++) await write(`during-${i}`)

  const out = await replication(b)
  t.not(out.underReplicatedSince, null, 'B shows the pair under-replicated while east is out')
  t.is(out.oneCopy.files, 30, 'B counts every file of the pair as having one copy')
  const diag = await diagnose(['--data', dir, '--listen', '0.5', '--under-replicated-warn-s', '0'])
  const check = diag.checks.find((c) => c.check === 'redundancy' && c.subject === 'storage pair 1')
  t.is(check?.status, 'warn', 'netdiag warns of the pair under-replicated for longer than the set time')
  t.regex(check?.message ?? '', /30 files \(\d+ bytes\) with one copy/)

  // A's host is lost: its journal of what east missed goes with it.
  process.kill(cluster.manager.pid, 'SIGKILL')
  startByHand(t, east.argv)
  await untilHealthy(b, east.id, 'manager b to fail east back', 30_000)
  const back = await replication(b)
  t.is(back.oneCopy.files, 0, 'once east is healthy, nothing has one copy')

  await killMember([b], west)
  const unreadable: string[] = []
  for (const [name, body] of bodies) {
    const r = await http(b, 'GET', `/files/ae/${name}`)
    if (r.status !== 200 || !r.body.equals(body)) unreadable.push(`${name}: ${r.status}`)
  }
  t.deepEqual(unreadable, [], 'every file reads through B from east alone')
})

test('a body deleted by hand from a node is copied back from its twin by the next round, and /cluster says so', async (t) => {
  const dir = await tempDir(t)
  const periodMs = 1500
  const a = await startUp(t, dir, ['--nodes', '1', '--reconcile-period-ms', String(periodMs)])
  const body = randomBytes(300_000)
  const entry = json<FileJson>(await http(a.url, 'PUT', '/files/hand/deleted', body))
  await until(async () => (await replication(a.url)).lastReconciled !== null, { what: 'a first round' })
  const before = await replication(a.url)

  await rm(blobPath(nodeDir(dir, 'east'), entry.id))
  const deletedAt = Date.now()
  await until(async () => await blobState(nodeDir(dir, 'east'), entry.id) === 'intact', { what: 'the body back on east', timeoutMs: 30_000 })
  t.log(`back after ${Date.now() - deletedAt} ms (period ${periodMs} ms)`)
  await until(async () => (await replication(a.url)).copied.files >= 1, { what: 'the round to report its copy' })
  const after = await replication(a.url)
  t.true(after.copied.bytes >= body.length, 'the copied bytes are reported')
  t.true(Date.parse(after.lastReconciled ?? '') > Date.parse(before.lastReconciled ?? ''))
  t.is(after.oneCopy.files, 0)
  const read = await http(a.url, 'GET', '/files/hand/deleted')
  t.true(read.body.equals(body))
})

test('a body no entry names is kept for the grace period, then removed from both nodes', async (t) => {
  const dir = await tempDir(t)
  const graceMs = 4000
  const a = await startUp(t, dir, ['--nodes', '1', '--reconcile-period-ms', '500', '--orphan-grace-ms', String(graceMs)])
  const kept = json<FileJson>(await http(a.url, 'PUT', '/files/orphans/kept', randomBytes(5000)))
  const doomed = json<FileJson>(await http(a.url, 'PUT', '/files/orphans/doomed', randomBytes(70_000)))
  // An old backup restored onto both disks brings back the body of a file since deleted.
  const saved = join(dir, 'backup')
  await mkdir(saved)
  for (const center of ['east', 'west']) await copyFile(blobPath(nodeDir(dir, center), doomed.id), join(saved, center))
  t.is((await http(a.url, 'DELETE', '/files/orphans/doomed')).status, 200)
  const restoredAt = Date.now()
  for (const center of ['east', 'west']) {
    const path = blobPath(nodeDir(dir, center), doomed.id)
    await mkdir(dirname(path), { recursive: true })
    await copyFile(join(saved, center), path)
  }

  // A call while a round runs shares that round, which may have listed the nodes before the restore:
  // the second call's round started after the first's ended, so after the restore.
  await clientOf(a.url).reconcile({ pair: 1 })
  const round = (await clientOf(a.url).reconcile({ pair: 1 }))[0]
  if (Date.now() - restoredAt < graceMs) {
    t.is(round?.orphansWaiting, 2, 'a young orphan is counted, not removed')
    for (const center of ['east', 'west']) t.is(await blobState(nodeDir(dir, center), doomed.id), 'intact')
  }
  await until(async () => {
    const states = await Promise.all(['east', 'west'].map(async (c) => await blobState(nodeDir(dir, c), doomed.id)))
    return states.every((s) => s === 'absent')
  }, { what: 'the orphan removed from both nodes', timeoutMs: 30_000 })
  t.true(Date.now() - restoredAt >= graceMs, 'not before its grace period')
  t.true((await replication(a.url)).removed.files >= 1)
  for (const center of ['east', 'west']) t.is(await blobState(nodeDir(dir, center), kept.id), 'intact', 'a named body stays')
})

test('files uploaded while rounds run, one of them slower than the grace period, are not touched', async (t) => {
  const dir = await tempDir(t)
  // A round every 300 ms with a 1 s grace: any body the rounds took for an orphan would go at once.
  const a = await startUp(t, dir, ['--nodes', '1', '--reconcile-period-ms', '300', '--orphan-grace-ms', '1000', '--reconcile-mb-per-s', '1'])
  // Bodies missing on east keep the rounds busy copying, at 1 MiB/s, while the uploads go on.
  const missing: FileJson[] = []
  for (let i = 0; i < 8; i++) missing.push(json<FileJson>(await http(a.url, 'PUT', `/files/busy/old-${i}`, randomBytes(400_000))))
  for (const f of missing) await rm(blobPath(nodeDir(dir, 'east'), f.id))
  await until(async () => (await replication(a.url)).running, { what: 'a round under way', intervalMs: 20 })

  const slowBody = randomBytes(3 * 1024 * 1024)
  // 3 MiB over about 3 s, three times the grace period
  const slow = clientOf(a.url).put('/busy/slow', Readable.from(trickle(slowBody, 64 * 1024, 60)), { size: slowBody.length })
  const quick: FileJson[] = []
  for (let i = 0; i < 20; i++) quick.push(json<FileJson>(await http(a.url, 'PUT', `/files/busy/new-${i}`, randomBytes(20_000 + i))))
  const slowEntry = await slow
  await until(async () => {
    const states = await Promise.all(missing.map(async (f) => await blobState(nodeDir(dir, 'east'), f.id)))
    return states.every((s) => s === 'intact')
  }, { what: 'the missing bodies copied back', timeoutMs: 60_000 })
  const touched: string[] = []
  for (const f of [...quick, slowEntry]) {
    for (const center of ['east', 'west']) if (await blobState(nodeDir(dir, center), f.id) !== 'intact') touched.push(`${f.path} on ${center}`)
  }
  t.deepEqual(touched, [], 'every upload has both its copies')
  t.true((await http(a.url, 'GET', '/files/busy/slow')).body.equals(slowBody))
  t.is((await replication(a.url)).removed.files, 0)
})

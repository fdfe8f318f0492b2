/**
 * `npm run reconcile`: what pair anti-entropy costs. A one-pair cluster in this
 * process (two storage nodes, two directory servers, one manager) is seeded
 * with N small bodies on both nodes and N entries naming them, then:
 * - a round on the pair in sync (one digest exchange, nothing listed);
 * - a round with one body missing on one node (one shard listed and repaired);
 * - a round with REPAIR_COUNT bodies missing on one node, copied back with no
 *   rate limit: the repair rate.
 * Prints a table: wall time, bytes exchanged, CPU of the whole process (every
 * member and the manager), and the repair rate. `RECONCILE_SIZES=10000,100000`.
 */
import { randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { MirrorcastClient, type ReconcileRound } from '@mirrorcast/client'
import { DirectoryServer, Namespace } from '@mirrorcast/directory'
import { Manager } from '@mirrorcast/manager'
import { StorageNode, seedBodies, type SeededBody, blobPath } from '@mirrorcast/node'
import { until } from '@mirrorcast/testkit'
import type { Change } from '@mirrorcast/wire'
import { printTable, withTempDir } from './lib.js'

const SIZES = (process.env.RECONCILE_SIZES ?? '10000,100000').split(',').map(Number)
const BODY_BYTES = Number(process.env.RECONCILE_BODY_BYTES ?? 1024)
const REPAIR_COUNT = Number(process.env.RECONCILE_REPAIR ?? 10_000)
const KEY = randomBytes(32)
// 1,000 entries a change batch and a directory: the shape of a real namespace, seeded fast
const BATCH = 1000

interface Measured { label: string, files: number, round: ReconcileRound, wallMs: number, cpuMs: number }

async function measure (client: MirrorcastClient, label: string, files: number): Promise<Measured> {
  const cpu = process.cpuUsage()
  const t0 = performance.now()
  const [round] = await client.reconcile({ pair: 1 })
  const wallMs = performance.now() - t0
  const used = process.cpuUsage(cpu)
  if (round === undefined) throw new Error('no round for pair 1')
  return { label, files, round, wallMs, cpuMs: (used.user + used.system) / 1000 }
}

/** The directory's entries for the seeded bodies, as the changes a leader would have logged. */
function entriesOf (bodies: SeededBody[], nodes: StorageNode[]): Change[] {
  const replicas = nodes.map((n) => ({ node: n.id, center: n.center, slot: n.slot }))
  const now = Date.now()
  return bodies.map((b, i) => ({
    op: 'put',
    seq: i + 1,
    mtime: now,
    entry: { type: 'file', path: `/bench/d${Math.floor(i / BATCH)}/f${i}`, fileId: b.fileId, size: b.size, sha256: b.sha256, version: 1, mtime: now, replicas }
  }))
}

async function seedNamespace (path: string, changes: Change[]): Promise<void> {
  const ns = Namespace.open(path)
  try {
    for (let at = 0; at < changes.length; at += BATCH) await ns.apply(changes.slice(at, at + BATCH))
  } finally {
    await ns.close()
  }
}

async function scenario (files: number): Promise<Measured[]> {
  return await withTempDir('mirrorcast-reconcile-', async (dir) => {
    const presence = { port: 20000 + Math.floor(Math.random() * 40000), heartbeatMs: 100, dnsSd: false }
    const started: Array<{ close: () => Promise<void> }> = []
    try {
      const nodes = ['east', 'west'].map((center) => new StorageNode({ dataDir: join(dir, `node-${center}`), key: KEY, center, slot: 1, presence, scrub: { bytesPerSecond: 0 } }))
      for (const n of nodes) {
        await n.start()
        started.push(n)
      }
      const t0 = performance.now()
      const bodies = await seedBodies(join(dir, 'node-east'), files, BODY_BYTES)
      await seedBodies(join(dir, 'node-west'), bodies)
      const changes = entriesOf(bodies, nodes)
      for (const center of ['east', 'west']) await seedNamespace(join(dir, `dir-${center}`, 'namespace.lmdb'), changes)
      process.stderr.write(`seeded ${files} bodies on both nodes and their entries in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`)

      for (const center of ['east', 'west']) {
        const d = new DirectoryServer({ dataDir: join(dir, `dir-${center}`), key: KEY, center, slot: 1, presence })
        await d.start()
        started.push(d)
      }
      // A period far beyond the run: every round here is asked for, none runs on its own meanwhile.
      const manager = new Manager({ key: KEY, port: 0, dataDir: join(dir, 'manager'), multicast: { port: presence.port }, heartbeatMs: 100, reconcile: { periodMs: 3_600_000, bytesPerSecond: 0 }, logger: undefined })
      await manager.start()
      started.push(manager)
      const client = new MirrorcastClient({ url: manager.url, headersTimeoutMs: 0, bodyTimeoutMs: 0 })
      try {
        await until(async () => (await client.cluster()).nodes.filter((m) => m.status === 'healthy').length === 4, { what: 'every member healthy', timeoutMs: 60_000 })
        // The manager's own first round, at its first tick: waited for, so that it is not measured.
        await until(async () => (await client.cluster()).pairs.some((p) => p.replication?.lastReconciled !== null && p.replication?.running === false), { what: 'the first round', timeoutMs: 600_000 })
        const out = [await measure(client, 'in sync', files)]
        await rm(blobPath(join(dir, 'node-east'), (bodies[0] as SeededBody).fileId))
        out.push(await measure(client, '1 body missing', files))
        const missing = bodies.slice(1, 1 + Math.min(REPAIR_COUNT, files - 1))
        for (const b of missing) await rm(blobPath(join(dir, 'node-east'), b.fileId))
        await sleep(100)
        out.push(await measure(client, `${missing.length} bodies missing`, files))
        return out
      } finally {
        await client.close()
      }
    } finally {
      for (const s of started.reverse()) await s.close().catch(() => {})
    }
  })
}

const rows: Array<Array<string | number>> = []
for (const files of SIZES) {
  for (const m of await scenario(files)) {
    const copied = m.round.copied
    rows.push([String(files), m.label, m.wallMs, String(m.round.exchangedBytes), m.cpuMs, String(m.round.shardsToCompare), String(copied.files),
      copied.files === 0 ? '-' : copied.files / (m.wallMs / 1000), copied.files === 0 ? '-' : copied.bytes / 1048576 / (m.wallMs / 1000)])
  }
}
process.stdout.write(`\npair anti-entropy, one pair, ${BODY_BYTES}-byte bodies, no rate limit; CPU: this whole process (2 nodes, 2 directory servers, the manager)\n`)
printTable(['files/node', 'round', 'wall ms', 'bytes exchanged', 'CPU ms', 'shards listed', 'copied', 'files/s', 'MiB/s'], rows)

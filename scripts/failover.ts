/**
 * `npm run failover`: the failover stall and the resync rate. A local cluster
 * serves a GET/PUT loop; a storage node (then, in a second cluster, the primary
 * directory server) is killed with SIGKILL, the load goes on while it is out,
 * then it is restarted and caught up. Prints the longest client request around
 * the kill and how fast the member caught up.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { launchUp } from '@mirrorcast/cli'
import { until } from '@mirrorcast/testkit'
import { MirrorcastClient } from '@mirrorcast/client'
import { percentile, printTable, transfer, withTempDir } from './lib.js'

const CONCURRENCY = 8
const BODY = randomBytes(256 * 1024)
const OUT_FOR_MS = Number(process.env.FAILOVER_OUT_MS ?? 5000)

interface Sample { start: number, ms: number, ok: boolean }
interface Member { id: string, role: string, center: string, slot: number, pid: number, argv: string[] }
interface Outcome {
  samples: Sample[]
  killedAt: number
  detectedMs: number
  outMs: number
  healthyMs: number
  /** Files copied back (storage) or changes replayed (directory), and how long it took. */
  caughtUp: number
  catchUpMs: number
}

async function memberStatus (client: MirrorcastClient, id: string): Promise<string | undefined> {
  return (await client.cluster()).nodes.find((n) => n.id === id)?.status
}

/** The load: half PUTs of new files, half GETs of files written before, CONCURRENCY at once. */
function startLoad (client: MirrorcastClient): { samples: Sample[], stop: () => Promise<void> } {
  const samples: Sample[] = []
  const written: number[] = []
  let n = 0
  let running = true
  const worker = async (): Promise<void> => {
    while (running) {
      const i = n++
      const start = Date.now()
      let ok = true
      try {
        if (i % 2 === 0 || written.length === 0) {
          await transfer(client, 'PUT', `/files/stall/f${i}`, BODY)
          written.push(i)
        } else {
          await transfer(client, 'GET', `/files/stall/f${written[Math.floor(Math.random() * written.length)] as number}`)
        }
      } catch {
        ok = false
      }
      samples.push({ start, ms: Date.now() - start, ok })
    }
  }
  const workers = Array.from({ length: CONCURRENCY }, worker)
  return { samples, stop: async () => { running = false; await Promise.all(workers) } }
}

/** Kills `role`'s east/1 member under load, restarts it after OUT_FOR_MS and waits until it is healthy. */
async function scenario (role: 'storage' | 'directory'): Promise<Outcome> {
  return await withTempDir(`mirrorcast-failover-${role}-`, async (dir) => {
    // One twin pair: every write made while the member is out must reach it again.
    const cluster = await launchUp(join(dir, 'c'), ['--nodes', '1', '--port', '0', '--node-port', '0', '--mcast-port', String(20000 + Math.floor(Math.random() * 40000)), '--log-level', 'info'])
    const client = new MirrorcastClient({ url: cluster.url, connections: CONCURRENCY })
    // Status polls on connections of their own: queued behind the load, they would delay what they measure.
    const watcher = new MirrorcastClient({ url: cluster.url })
    let restarted: ChildProcess | undefined
    try {
      const cj = JSON.parse(await readFile(join(dir, 'c', 'cluster.json'), 'utf8')) as { nodes: Member[] }
      const victim = cj.nodes.find((n) => n.role === role && n.center === 'east' && n.slot === 1)
      if (victim === undefined) throw new Error(`no east/1 ${role}`)
      const load = startLoad(client)
      await new Promise((resolve) => setTimeout(resolve, 2000))
      const killedAt = Date.now()
      process.kill(victim.pid, 'SIGKILL')
      await until(async () => await memberStatus(watcher, victim.id) === 'failed-over', { what: `${role} east/1 to be failed over`, timeoutMs: 10_000 })
      const detectedMs = Date.now() - killedAt
      await new Promise((resolve) => setTimeout(resolve, OUT_FOR_MS))
      const [cmd, ...args] = victim.argv
      const restartedAt = Date.now()
      restarted = spawn(cmd as string, args, { stdio: 'ignore' })
      await until(async () => await memberStatus(watcher, victim.id) === 'healthy', { what: `${role} east/1 to be caught up and healthy`, timeoutMs: 120_000 })
      const healthyAt = Date.now()
      await load.stop()
      const log = (await readFile(join(dir, 'c', 'logs', 'manager.log'), 'utf8')).split('\n')
      const done = role === 'storage'
        ? log.filter((l) => l.includes('"resync done"')).map((l) => JSON.parse(l) as { repaired: number, ms: number }).map((d) => ({ n: d.repaired, ms: d.ms }))
        : log.filter((l) => l.includes('"directory caught up"')).map((l) => JSON.parse(l) as { changes: number, ms: number }).map((d) => ({ n: d.changes, ms: d.ms }))
      return {
        samples: load.samples,
        killedAt,
        detectedMs,
        outMs: restartedAt - killedAt,
        healthyMs: healthyAt - restartedAt,
        caughtUp: done.reduce((a, d) => a + d.n, 0),
        catchUpMs: done.reduce((a, d) => a + d.ms, 0)
      }
    } finally {
      // The member restarted by hand is not a child of `up`: stop it here, also when the run failed.
      restarted?.kill('SIGTERM')
      await client.close()
      await watcher.close()
      await cluster.stop()
    }
  })
}

function column (o: Outcome, unit: string): Array<string | number> {
  const around = o.samples.filter((s) => s.start >= o.killedAt - 2000 && s.start <= o.killedAt + o.detectedMs + 2000)
  const steady = o.samples.filter((s) => s.start < o.killedAt - 500)
  const rate = o.catchUpMs > 0 ? o.caughtUp / (o.catchUpMs / 1000) : NaN
  return [
    o.samples.length,
    o.samples.filter((s) => !s.ok).length,
    `${percentile(steady.map((s) => s.ms), 50).toFixed(1)} / ${percentile(steady.map((s) => s.ms), 99).toFixed(1)}`,
    Math.max(...around.map((s) => s.ms)),
    o.detectedMs,
    o.outMs,
    o.healthyMs,
    `${o.caughtUp} ${unit}`,
    o.catchUpMs,
    `${rate.toFixed(0)} ${unit}/s`
  ]
}

async function main (): Promise<void> {
  const storage = await scenario('storage')
  const directory = await scenario('directory')
  const a = column(storage, 'files')
  const b = column(directory, 'changes')
  const labels = ['client requests', 'failed client requests', 'steady p50 / p99 ms', 'failover stall: longest request around the kill, ms', 'kill to failed-over, ms', 'member out for, ms', 'restart to healthy, ms', 'caught up', 'catch-up time, ms', 'catch-up rate']
  process.stdout.write(`\nmirrorcast failover: SIGKILL of a member of the one twin pair under a 256 KiB GET/PUT loop (concurrency ${CONCURRENCY}), out for ${OUT_FOR_MS} ms\n\n`)
  printTable(['measure', 'storage node', 'directory server'], labels.map((l, i) => [l, a[i] as string | number, b[i] as string | number]))
  const failed = (a[1] as number) + (b[1] as number)
  process.stdout.write(`\nfailover: storage_stall_ms=${String(a[3])} directory_stall_ms=${String(b[3])} failed=${failed} resync_files_per_s=${String(a[9]).split(' ')[0] ?? ''}\n`)
  if (failed > 0) process.exitCode = 1
}

await main()

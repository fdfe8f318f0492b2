/**
 * `npm run failover`: the failover stall and the resync rate. A local cluster
 * serves a GET/PUT loop; one storage node is killed with SIGKILL, writes go on
 * while it is out, then it is restarted and resynchronised. Prints the longest
 * client request around the kill and how fast the node caught up.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { launchUp } from '@mirrorcast/cli'
import { BenchClient, percentile, printTable, withTempDir } from './lib.js'

const CONCURRENCY = 8
const BODY = randomBytes(256 * 1024)
const OUT_FOR_MS = Number(process.env.FAILOVER_OUT_MS ?? 5000)

interface Sample { start: number, ms: number, ok: boolean }

async function memberStatus (url: string, id: string): Promise<string | undefined> {
  const res = await fetch(new URL('/cluster', url))
  const cluster = await res.json() as { nodes: Array<{ id: string, status: string }> }
  return cluster.nodes.find((n) => n.id === id)?.status
}

async function until (what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

async function main (): Promise<void> {
  await withTempDir('mirrorcast-failover-', async (dir) => {
    // One twin pair: every write made while the node is out must be journaled and resynced.
    const cluster = await launchUp(join(dir, 'c'), ['--nodes', '1', '--port', '0', '--node-port', '0', '--mcast-port', String(20000 + Math.floor(Math.random() * 40000)), '--log-level', 'info'])
    const client = new BenchClient(cluster.url, CONCURRENCY)
    let restarted: ChildProcess | undefined
    try {
      const cj = JSON.parse(await readFile(join(dir, 'c', 'cluster.json'), 'utf8')) as { nodes: Array<{ id: string, role: string, center: string, slot: number, pid: number, argv: string[] }> }
      const victim = cj.nodes.find((n) => n.role === 'storage' && n.center === 'east' && n.slot === 1)
      if (victim === undefined) throw new Error('no east/1 node')
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
              await client.send('PUT', `/files/stall/f${i}`, BODY)
              written.push(i)
            } else {
              await client.send('GET', `/files/stall/f${written[Math.floor(Math.random() * written.length)] as number}`)
            }
          } catch {
            ok = false
          }
          samples.push({ start, ms: Date.now() - start, ok })
        }
      }
      const workers = Array.from({ length: CONCURRENCY }, worker)
      await new Promise((resolve) => setTimeout(resolve, 2000))
      const killedAt = Date.now()
      process.kill(victim.pid, 'SIGKILL')
      await until('the node to be failed over', async () => await memberStatus(cluster.url, victim.id) === 'failed-over', 10_000)
      const detectedMs = Date.now() - killedAt
      await new Promise((resolve) => setTimeout(resolve, OUT_FOR_MS))
      const [cmd, ...args] = victim.argv
      const restartedAt = Date.now()
      restarted = spawn(cmd as string, args, { stdio: 'ignore' })
      let resyncStarted = 0
      await until('the node to be resynced and healthy', async () => {
        const s = await memberStatus(cluster.url, victim.id)
        if (s === 'resyncing' && resyncStarted === 0) resyncStarted = Date.now()
        return s === 'healthy'
      }, 120_000)
      const healthyAt = Date.now()
      running = false
      await Promise.all(workers)

      const log = await readFile(join(dir, 'c', 'logs', 'manager.log'), 'utf8')
      const done = log.split('\n').filter((l) => l.includes('"resync done"')).map((l) => JSON.parse(l) as { repaired: number, ms: number })
      const repaired = done.reduce((a, d) => a + d.repaired, 0)
      const resyncMs = done.reduce((a, d) => a + d.ms, 0)
      const around = samples.filter((s) => s.start >= killedAt - 2000 && s.start <= killedAt + detectedMs + 2000)
      const steady = samples.filter((s) => s.start < killedAt - 500)
      const failed = samples.filter((s) => !s.ok).length
      process.stdout.write('\nmirrorcast failover: SIGKILL of a storage node (one twin pair) under a 256 KiB GET/PUT loop (concurrency 8)\n\n')
      printTable(['measure', 'value'], [
        ['client requests', samples.length],
        ['failed client requests', failed],
        ['steady p50 / p99 ms', `${percentile(steady.map((s) => s.ms), 50).toFixed(1)} / ${percentile(steady.map((s) => s.ms), 99).toFixed(1)}`],
        ['failover stall: longest request around the kill, ms', Math.max(...around.map((s) => s.ms))],
        ['kill to failed-over, ms', detectedMs],
        ['node out for, ms', restartedAt - killedAt],
        ['restart to healthy, ms', healthyAt - restartedAt],
        ['files resynced', repaired],
        ['resync time, ms', resyncMs],
        ['resync rate, files/s', resyncMs > 0 ? repaired / (resyncMs / 1000) : NaN],
        ['resync rate, MB/s', resyncMs > 0 ? (repaired * BODY.length / 1e6) / (resyncMs / 1000) : NaN]
      ])
      process.stdout.write(`\nfailover: stall_ms=${Math.max(...around.map((s) => s.ms))} failed=${failed} resynced=${repaired} resync_files_per_s=${resyncMs > 0 ? (repaired / (resyncMs / 1000)).toFixed(0) : 'n/a'}\n`)
      if (failed > 0) process.exitCode = 1
    } finally {
      // The node restarted by hand is not a child of `up`: stop it here, also when the run failed.
      restarted?.kill('SIGTERM')
      client.close()
      await cluster.stop()
    }
  })
}

await main()

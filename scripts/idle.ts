/**
 * `npm run idle [-- up flags]`: starts the default `mirrorcast up` cluster, lets it
 * settle, and prints the CPU each of its processes uses while no request is made
 * (the scheduler's run time of every thread, from /proc, over a window), per process
 * and in all, as a percentage of one core. Extra arguments go to `up` (e.g.
 * `--heartbeat-ms 1000`).
 *
 * Then, in the same run, the floor of the machine: as many bare Node processes, each
 * doing only what a heartbeat cannot do without (a timer every period, an HMAC-SHA256,
 * one datagram sent to a loopback group), one of them also receiving and checking
 * every other's datagram, as a manager must. What the cluster costs above that floor
 * is mirrorcast's own.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { launchUp } from '@mirrorcast/cli'
import { cpuNs, printTable, withTempDir } from './lib.js'

const SETTLE_MS = Number(process.env.IDLE_SETTLE_MS ?? 30_000)
const WINDOW_MS = Number(process.env.IDLE_WINDOW_MS ?? 30_000)
const FLOOR_SETTLE_MS = 5000

/** % of one core each process used over `windowMs`. */
async function measure (pids: number[], windowMs: number): Promise<number[]> {
  const before = await Promise.all(pids.map(cpuNs))
  const t0 = performance.now()
  await sleep(windowMs)
  const after = await Promise.all(pids.map(cpuNs))
  const seconds = (performance.now() - t0) / 1000
  return pids.map((_, i) => 100 * ((after[i] as number) - (before[i] as number)) / 1e9 / seconds)
}

interface ClusterFile { manager: { pid: number }, nodes: Array<{ role: string, center: string, slot: number, pid: number }> }

// The floor's processes: loopback only, TTL 0, a group and port of their own.
const FLOOR_PROCESS = `
const dgram = require('node:dgram'); const { createHmac, createSecretKey, timingSafeEqual } = require('node:crypto')
const [group, port, period, receive] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3]), process.argv[4] === 'receive']
const key = createSecretKey(Buffer.alloc(32, 7)); const buf = Buffer.alloc(280, 1)
const sender = dgram.createSocket('udp4')
sender.bind(0, '127.0.0.1', () => {
  sender.setMulticastInterface('127.0.0.1'); sender.setMulticastTTL(0)
  setInterval(() => { createHmac('sha256', key).update(buf.subarray(32)).digest().copy(buf); sender.send(buf, port, group) }, period)
})
if (receive) {
  const r = dgram.createSocket({ type: 'udp4', reuseAddr: true })
  r.on('message', (m) => { if (!timingSafeEqual(createHmac('sha256', key).update(m.subarray(32)).digest(), m.subarray(0, 32))) throw new Error('bad mac') })
  r.bind(port, group, () => r.addMembership(group, '127.0.0.1'))
}
`

async function floor (count: number, periodMs: number): Promise<number[]> {
  const port = 20000 + Math.floor(Math.random() * 12000)
  const children: ChildProcess[] = []
  try {
    for (let i = 0; i < count; i++) {
      children.push(spawn(process.execPath, ['-e', FLOOR_PROCESS, '239.192.77.250', String(port), String(periodMs), i === 0 ? 'receive' : 'send'], { stdio: 'ignore' }))
    }
    await sleep(FLOOR_SETTLE_MS)
    return await measure(children.map((c) => c.pid as number), WINDOW_MS)
  } finally {
    await Promise.all(children.map(async (c) => {
      if (c.exitCode !== null) return
      const exited = once(c, 'exit')
      c.kill()
      await exited
    }))
  }
}

function periodOf (args: string[]): number {
  const at = args.indexOf('--heartbeat-ms')
  return at < 0 ? 100 : Number(args[at + 1])
}

async function main (): Promise<void> {
  const upArgs = process.argv.slice(2)
  const periodMs = periodOf(upArgs)
  await withTempDir('mirrorcast-idle-', async (dir) => {
    const cluster = await launchUp(join(dir, 'cluster'), ['--port', '0', '--node-port', '0', '--log-level', 'warn', ...upArgs])
    let processes: Array<{ name: string, pid: number }>
    let pct: number[]
    try {
      const cj = JSON.parse(await readFile(join(dir, 'cluster', 'cluster.json'), 'utf8')) as ClusterFile
      processes = [
        { name: 'manager', pid: cj.manager.pid },
        ...cj.nodes.map((n) => ({ name: `${n.role} ${n.center}/${n.slot}`, pid: n.pid })),
        { name: 'up (supervisor)', pid: cluster.child.pid as number }
      ]
      await sleep(SETTLE_MS)
      pct = await measure(processes.map((p) => p.pid), WINDOW_MS)
    } finally {
      await cluster.stop()
    }
    const members = processes.length - 1
    const bare = await floor(members, periodMs)
    const floorOf = (i: number): number | string => i < members ? bare[i] as number : '-'
    const sum = (v: number[]): number => v.reduce((a, b) => a + b, 0)
    process.stdout.write(`\nidle CPU of \`mirrorcast up ${upArgs.join(' ')}\` over ${WINDOW_MS / 1000} s, and of ${members} bare processes heartbeating every ${periodMs} ms (% of one core)\n\n`)
    printTable(['process', 'mirrorcast CPU %', 'bare floor CPU %'], [...processes.map((p, i) => [p.name, pct[i] as number, floorOf(i)]), ['all', sum(pct), sum(bare)]])
    process.stdout.write(`\nidle: processes=${processes.length} total=${sum(pct).toFixed(2)}% floor=${sum(bare).toFixed(2)}%\n`)
  })
}

await main()

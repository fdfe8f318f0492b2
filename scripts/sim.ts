/**
 * `npm run sim -- members --count 1000 --data DIR`: plays 1,000 members on the
 * multicast groups of the `mirrorcast up` cluster in DIR (its key, group and port),
 * with real signed datagrams, until Ctrl-C.
 *
 * `npm run sim -- bench [--counts 10,100,1000] [--false-positive-s 600]`: for each
 * count, a real cluster (`up --nodes 1`) plus that many simulated members, and a
 * table of what a manager and a storage node cost and how discovery behaves: the
 * manager's CPU, the announcements on the group (datagrams and bytes a second, the
 * period the cadence set), detection of a member that falls silent (median and max
 * over 20), false deaths over the run, and multicast search latency with every
 * simulated member answering.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createSocket } from 'node:dgram'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { launchUp } from '@mirrorcast/cli'
import { MulticastChannel, search } from '@mirrorcast/discovery'
import { MemberSimulator, until } from '@mirrorcast/testkit'
import { readClusterKeyFile } from '@mirrorcast/wire'
import { cpuNs, percentile, printTable, withTempDir } from './lib.js'

const HELD_KEY = 'f'.repeat(32)
const STOPS = 20
const SEARCHES = 20
const SEARCH_WINDOW_MS = 200

interface ClusterFile { manager: { pid: number, argv: string[] }, nodes: Array<{ role: string, pid: number }> }

/** The group settings of the cluster in `dir`, from the manager's command line. */
async function clusterSettings (dir: string): Promise<{ key: Uint8Array, port?: number, group?: string, searchGroup?: string, cluster?: string, cj: ClusterFile }> {
  const cj = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterFile
  const flag = (name: string): string | undefined => { const at = cj.manager.argv.indexOf(name); return at < 0 ? undefined : cj.manager.argv[at + 1] }
  const port = flag('--mcast-port')
  const [group, searchGroup, cluster] = [flag('--group'), flag('--search-group'), flag('--cluster')]
  return {
    key: await readClusterKeyFile(join(dir, 'cluster.key')),
    ...(port === undefined ? {} : { port: Number(port) }),
    ...(group === undefined ? {} : { group }),
    ...(searchGroup === undefined ? {} : { searchGroup }),
    ...(cluster === undefined ? {} : { cluster }),
    cj
  }
}

type Command = { stop: number } | { restart: number } | { stats: true }

async function members (args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { count: { type: 'string', default: '1000' }, data: { type: 'string', default: '.mirrorcast' }, 'heartbeat-ms': { type: 'string', default: '100' } } })
  const { cj: _cj, ...settings } = await clusterSettings(values.data)
  const sim = new MemberSimulator({ ...settings, count: Number(values.count), heartbeatMs: Number(values['heartbeat-ms']), holds: new Set([HELD_KEY]) })
  await sim.start()
  const stop = (): void => { void sim.close().then(() => process.exit(0)) }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
  if (process.send !== undefined) {
    process.on('disconnect', stop)
    process.on('message', (c: Command) => {
      if ('stop' in c) process.send?.({ stopped: sim.stop(c.stop), at: Date.now() })
      else if ('restart' in c) sim.restart(c.restart)
      else process.send?.({ sent: sim.sent, heartbeatMs: sim.heartbeatMs })
    })
    process.send({ ready: true })
    return
  }
  process.stdout.write(`${values.count} simulated members on the groups of ${values.data}; Ctrl-C stops them\n`)
  setInterval(() => { process.stdout.write(`period ${sim.heartbeatMs} ms, sent ${sim.sent.datagrams} datagrams, ${sim.sent.replies} search replies\n`) }, 5000)
}

/** A child running `sim members`, driven over IPC. */
class SimProcess {
  private constructor (readonly child: ChildProcess) {}

  static async start (dir: string, count: number): Promise<SimProcess> {
    const child = fork(fileURLToPath(import.meta.url), ['members', '--count', String(count), '--data', dir], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    await once(child, 'message')
    return new SimProcess(child)
  }

  async ask<T> (c: Command): Promise<T> {
    const answer = once(this.child, 'message') as Promise<[T]>
    this.child.send(c)
    return (await answer)[0]
  }

  tell (c: Command): void {
    this.child.send(c)
  }

  async close (): Promise<void> {
    if (this.child.exitCode !== null) return
    const exited = once(this.child, 'exit')
    this.child.kill('SIGTERM')
    await exited
  }
}

/** Every announcement on the group, counted on a raw socket joined to it: what the LAN carries. */
async function countGroup (port: number, group: string, ms: number): Promise<{ datagrams: number, bytes: number }> {
  const s = createSocket({ type: 'udp4', reuseAddr: true })
  const seen = { datagrams: 0, bytes: 0 }
  s.on('message', (m) => { seen.datagrams++; seen.bytes += m.length })
  await new Promise<void>((resolve) => s.bind(port, group, () => { s.addMembership(group, '127.0.0.1'); resolve() }))
  await sleep(ms)
  s.close()
  return seen
}

/** The manager's "member state changed" lines, as they are written. */
async function stateChanges (dir: string): Promise<Array<{ member: string, to: string, at: number }>> {
  const text = await readFile(join(dir, 'logs', 'manager.log'), 'utf8').catch(() => '')
  return text.split('\n').flatMap((line) => {
    if (!line.includes('"member state changed"')) return []
    const l = JSON.parse(line) as { member: string, to: string, timestamp: string }
    return [{ member: l.member, to: l.to, at: Date.parse(l.timestamp) }]
  })
}

interface Row {
  count: number
  periodMs: number
  managerCpu: number
  nodeCpu: number
  datagramsPerS: number
  kBPerS: number
  detectP50: number
  detectMax: number
  undetected: number
  falseDeaths: number
  observedS: number
  searchP50: number
  searchP99: number
  lost: number
}

async function benchOne (count: number, falsePositiveS: number): Promise<Row> {
  return await withTempDir('mirrorcast-sim-', async (tmp) => {
    const dir = join(tmp, 'cluster')
    const port = 20000 + Math.floor(Math.random() * 12000)
    const cluster = await launchUp(dir, ['--nodes', '1', '--port', '0', '--node-port', '0', '--log-level', 'warn', '--mcast-port', String(port)])
    let sim: SimProcess | undefined
    try {
      const settings = await clusterSettings(dir)
      const nodePid = settings.cj.nodes.find((n) => n.role === 'storage')?.pid as number
      sim = await SimProcess.start(dir, count)
      const say = (what: string): void => { process.stderr.write(`  ${count} members: ${what}\n`) }
      say('simulator started, cadence settling')
      const started = Date.now()
      // the cadence: 3 s of warm-up, then a period every member follows
      await sleep(10_000)
      const cpu0 = await Promise.all([cpuNs(settings.cj.manager.pid), cpuNs(nodePid)])
      const t0 = performance.now()
      const traffic = await countGroup(port, settings.group ?? '239.192.77.1', 20_000)
      const cpu1 = await Promise.all([cpuNs(settings.cj.manager.pid), cpuNs(nodePid)])
      const seconds = (performance.now() - t0) / 1000
      const { heartbeatMs } = await sim.ask<{ heartbeatMs: number }>({ stats: true })

      say(`measured ${seconds.toFixed(0)} s at a ${heartbeatMs} ms period; searching`)
      // searches: the bench asks, every simulated member holds the key and answers
      const asker = new MulticastChannel('sim-bench-asker', { key: settings.key, port, join: [], ...(settings.searchGroup === undefined ? {} : { searchGroup: settings.searchGroup }) })
      await asker.start()
      const latencies: number[] = []
      let lost = 0
      try {
        for (let i = 0; i < SEARCHES; i++) {
          const { replies } = await search(asker, { kind: 'blob', key: HELD_KEY, windowMs: SEARCH_WINDOW_MS, timeoutMs: SEARCH_WINDOW_MS + 1000 })
          lost += count - replies.length
          latencies.push(...replies.map((r) => r.elapsedMs))
        }
      } finally {
        await asker.close()
      }

      say('stopping members one at a time')
      // detection: members fall silent one at a time, each back (new boot) once found dead
      const detections: number[] = []
      const stopped = new Set<string>()
      let undetected = 0
      for (let i = 0; i < STOPS; i++) {
        const index = Math.floor(Math.random() * count)
        const { stopped: id, at } = await sim.ask<{ stopped: string, at: number }>({ stop: index })
        stopped.add(id)
        let dead: { at: number } | undefined
        const found = async (): Promise<boolean> => { dead = (await stateChanges(dir)).find((c) => c.member === id && c.to === 'dead' && c.at >= at); return dead !== undefined }
        await until(found, { what: `${id} found dead`, timeoutMs: 30_000, intervalMs: 20 }).catch(() => {})
        if (dead === undefined) undetected++
        else detections.push(dead.at - at)
        if (dead === undefined) say(`${id} was not found dead within 30 s`)
        sim.tell({ restart: index })
        await sleep(500 + Math.random() * 1000)
      }
      const left = falsePositiveS * 1000 - (Date.now() - started)
      say(`watching for false deaths ${Math.max(0, left / 1000).toFixed(0)} s more`)
      if (left > 0) await sleep(left)
      const falseDeaths = (await stateChanges(dir)).filter((c) => c.to === 'dead' && c.member.startsWith('sim-') && !stopped.has(c.member)).length
      return {
        count,
        periodMs: heartbeatMs,
        managerCpu: 100 * ((cpu1[0] as number) - (cpu0[0] as number)) / 1e9 / seconds,
        nodeCpu: 100 * ((cpu1[1] as number) - (cpu0[1] as number)) / 1e9 / seconds,
        datagramsPerS: traffic.datagrams / seconds,
        kBPerS: traffic.bytes / seconds / 1000,
        detectP50: percentile(detections, 50),
        detectMax: Math.max(...detections),
        undetected,
        falseDeaths,
        observedS: (Date.now() - started) / 1000,
        searchP50: percentile(latencies, 50),
        searchP99: percentile(latencies, 99),
        lost
      }
    } finally {
      await sim?.close()
      await cluster.stop()
    }
  })
}

async function bench (args: string[]): Promise<void> {
  const { values } = parseArgs({ args, options: { counts: { type: 'string', default: '10,100,1000' }, 'false-positive-s': { type: 'string', default: '600' } } })
  const rows: Row[] = []
  for (const count of values.counts.split(',').map(Number)) {
    process.stderr.write(`sim bench: ${count} simulated members…\n`)
    rows.push(await benchOne(count, Number(values['false-positive-s'])))
  }
  process.stdout.write('\nA manager and a storage node (`up --nodes 1`) with simulated members on the groups; every member\'s heartbeat at the cadence the manager set\n\n')
  printTable(
    ['members', 'period ms', 'manager CPU %', 'storage node CPU %', 'announce datagrams/s', 'announce kB/s', 'detection p50 ms', 'detection max ms', 'false deaths (s watched)', 'search p50 ms', 'search p99 ms', 'replies lost'],
    rows.map((r) => [String(r.count), r.periodMs, r.managerCpu, r.nodeCpu, r.datagramsPerS, r.kBPerS, r.detectP50, r.detectMax, `${r.falseDeaths} (${r.observedS.toFixed(0)})`, r.searchP50, r.searchP99, `${r.lost} of ${r.count * SEARCHES}`])
  )
  for (const r of rows) {
    process.stdout.write(`sim: members=${r.count} detected=${STOPS - r.undetected}/${STOPS} false_deaths=${r.falseDeaths} lost_replies=${r.lost}\n`)
    if (r.undetected > 0 || r.falseDeaths > 0 || r.lost > 0) process.exitCode = 1
  }
}

const [command, ...rest] = process.argv.slice(2)
if (command === 'members') await members(rest)
else if (command === 'bench') await bench(rest)
else {
  process.stderr.write('usage: npm run sim -- members --count N --data DIR | bench [--counts 10,100,1000] [--false-positive-s 600]\n')
  process.exitCode = 2
}

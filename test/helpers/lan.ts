import { execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { CLI_BIN } from '@mirrorcast/cli'
import { ensureDebianPackages, ensureTools, hasCommand } from '@mirrorcast/testbed'
import { until } from '@mirrorcast/testkit'
import type { Host, TestNet } from './netns.js'

const run = promisify(execFile)

/** A mirrorcast process in a test host, with the JSON log lines it wrote so far. */
export interface LanProcess {
  host: Host
  child: ChildProcess
  ready: Record<string, unknown>
  logs: Array<Record<string, unknown>>
}

// 20 s: the longest one process may take to say it is ready (2 shared cores, several starting at once)
const READY_TIMEOUT_MS = 20_000

/**
 * Runs `mirrorcast <args>` in a host, as an operator would on that machine,
 * and resolves when its log says ready. `env` adds variables (e.g. LD_PRELOAD).
 */
export async function startIn (net: TestNet, host: Host, args: string[], env: NodeJS.ProcessEnv = {}): Promise<LanProcess> {
  const child = net.spawn(host, process.execPath, [CLI_BIN, ...args, '--log-level', 'info'], { env })
  const logs: Array<Record<string, unknown>> = []
  let text = ''
  let partial = ''
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${host.name}: not ready within ${READY_TIMEOUT_MS} ms: ${text}`)), READY_TIMEOUT_MS)
    child.stderr?.on('data', (d: Buffer) => {
      text += d.toString()
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        let entry: Record<string, unknown>
        try { entry = JSON.parse(line) as Record<string, unknown> } catch { continue }
        logs.push(entry)
        if (entry.message === 'ready') { clearTimeout(timer); resolve(entry) }
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${host.name}: mirrorcast ${args[0] ?? ''} exited ${String(code)}: ${text}`)) })
  })
  return { host, child, ready, logs }
}

export interface CliResult { code: number, stdout: string, stderr: string }

/** Runs a `mirrorcast` client command in a host (the manager is reached from there). */
export async function cliIn (net: TestNet, host: Host, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`)
  try {
    const { stdout, stderr } = await net.exec(host, 'env', [...envArgs, process.execPath, CLI_BIN, ...args])
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/**
 * The environment that shifts a process's wall clock (Date.now) by `offset`
 * with libfaketime, preloaded into the process itself: the `faketime` wrapper
 * would fork, and killing it would leave the process behind. The monotonic
 * clock, which timers use, stays true.
 */
export async function fakeTime (offset: string): Promise<NodeJS.ProcessEnv> {
  await ensureDebianPackages([{ debianPackage: 'faketime', present: () => hasCommand('faketime') }])
  const { stdout } = await run('dpkg', ['-L', 'libfaketime'])
  // The multi-threaded variant: node runs threads.
  const lib = stdout.split('\n').find((l) => l.endsWith('/libfaketimeMT.so.1'))
  if (lib === undefined) throw new Error('libfaketimeMT.so.1 not found in the libfaketime package')
  return { LD_PRELOAD: lib, FAKETIME: offset, FAKETIME_DONT_FAKE_MONOTONIC: '1' }
}

/** Appends iptables rules in a host (its own namespace, never the machine's). */
async function iptables (net: TestNet, host: Host, rules: string[][]): Promise<void> {
  await ensureTools(['iptables'])
  for (const rule of rules) await net.exec(host, 'iptables', rule)
}

/** Drops every multicast datagram a host sends or receives; returns how many were dropped so far. */
export async function blockMulticast (net: TestNet, host: Host): Promise<() => Promise<number>> {
  await iptables(net, host, [['-A', 'OUTPUT', '-d', '224.0.0.0/4', '-j', 'DROP'], ['-A', 'INPUT', '-d', '224.0.0.0/4', '-j', 'DROP']])
  return async () => {
    const { stdout } = await net.exec(host, 'iptables-save', ['-c'])
    return [...stdout.matchAll(/^\[(\d+):\d+\] .*-d 224\.0\.0\.0\/4 -j DROP$/gm)].reduce((sum, m) => sum + Number(m[1]), 0)
  }
}

/** Drops the multicast datagrams a host receives from one source address. */
export async function dropMulticastFrom (net: TestNet, host: Host, source: string): Promise<void> {
  await iptables(net, host, [['-A', 'INPUT', '-s', source, '-d', '224.0.0.0/4', '-j', 'DROP']])
}

/** The multicast groups a host's eth0 has joined (`ip maddr`). */
export async function joinedGroups (net: TestNet, host: Host): Promise<string[]> {
  const { stdout } = await net.exec(host, 'ip', ['-4', 'maddr', 'show', 'dev', 'eth0'])
  return [...stdout.matchAll(/inet\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] as string)
}

/** A cluster member's flags: data dir under `dir`, its address as node-protocol address and interface. */
export function memberArgs (dir: string, keyFile: string, role: 'node' | 'directory', center: string, slot: number, address: string): string[] {
  return [role, '--data', join(dir, `${center}-${role}${slot}`), '--key-file', keyFile, '--center', center, '--slot', String(slot), '--address', address, '--port', '8701', '--interface', address]
}

export type ConfigValue = string | number | boolean | string[] | Record<string, string>
export type HostSettings = Record<string, ConfigValue>

/** A host's config file, as an operator would write it (flat TOML keys named like the flags). */
export async function writeConfig (file: string, settings: HostSettings): Promise<string> {
  const value = (v: ConfigValue): string => {
    if (typeof v === 'string') return JSON.stringify(v)
    if (typeof v !== 'object') return String(v)
    if (Array.isArray(v)) return `[${v.map(value).join(', ')}]`
    return `{ ${Object.entries(v).map(([k, x]) => `${k} = ${value(x)}`).join(', ')} }`
  }
  await writeFile(file, Object.entries(settings).map(([k, v]) => `${k} = ${value(v)}`).join('\n') + '\n')
  return file
}

export interface LanMember { name: string, role: 'node' | 'directory', center: string, slot: number, address: string }

export interface LanCluster {
  net: TestNet
  dir: string
  keyFile: string
  managerHost: Host
  /** Absent when the test runs no manager (the hosts and config file are there all the same). */
  manager: LanProcess | undefined
  members: Map<string, LanProcess>
  /** Each host's config file, by host name ('mgr' for the manager). */
  configs: Map<string, string>
}

export interface LanClusterOptions {
  /** Storage nodes per center (east 10.1.0.<slot>, west 10.2.0.<slot>); directory servers at 10.<c>.1.1. */
  nodes?: number
  /** The manager's config on top of the defaults (host 10.1.0.100); false: no manager process. */
  manager?: HostSettings | false
  /** Directory servers too (default true). */
  directories?: boolean
  /** A member's address, when not the one its slot maps to. */
  addressOf?: (m: LanMember) => string | undefined
  /** A member's config on top of the defaults. */
  member?: (m: LanMember) => HostSettings
  /** Extra environment of a member's process. */
  env?: (m: LanMember) => NodeJS.ProcessEnv
}

export const MANAGER_ADDRESS = '10.1.0.100'

/**
 * A two-center cluster of real processes, one per test host, each started from
 * its own config file with `mirrorcast <role> --config FILE`; resolves when
 * the manager has heard every member.
 */
export async function startLanCluster (net: TestNet, dir: string, options: LanClusterOptions = {}): Promise<LanCluster> {
  const keyFile = join(dir, 'cluster.key')
  await writeClusterKeyFile(keyFile, generateClusterKey())
  const specs: LanMember[] = []
  for (const [c, center] of ['east', 'west'].entries()) {
    for (let slot = 1; slot <= (options.nodes ?? 1); slot++) specs.push({ name: `${center}-n${slot}`, role: 'node', center, slot, address: `10.${c + 1}.0.${slot}` })
    if (options.directories !== false) specs.push({ name: `${center}-d1`, role: 'directory', center, slot: 1, address: `10.${c + 1}.1.1` })
  }
  for (const m of specs) m.address = options.addressOf?.(m) ?? m.address
  const managerHost = await net.addHost('mgr', MANAGER_ADDRESS)
  const hosts = await Promise.all(specs.map(async (m) => await net.addHost(m.name, m.address)))
  const configs = new Map<string, string>()
  const common = { 'key-file': keyFile, 'log-level': 'info' }
  configs.set('mgr', await writeConfig(join(dir, 'mgr.toml'), { role: 'manager', data: join(dir, 'mgr'), interface: MANAGER_ADDRESS, 'center-subnets': { east: '10.1.0.0/16', west: '10.2.0.0/16' }, port: 8700, ...common, ...options.manager === false ? {} : options.manager }))
  for (const m of specs) {
    configs.set(m.name, await writeConfig(join(dir, `${m.name}.toml`), { role: m.role, data: join(dir, m.name), center: m.center, slot: m.slot, address: m.address, port: 8701, interface: m.address, 'dns-sd': false, ...common, ...options.member?.(m) }))
  }
  const manager = options.manager === false ? undefined : await startIn(net, managerHost, ['manager', '--config', configs.get('mgr') as string])
  const started = await Promise.all(specs.map(async (m, i) => await startIn(net, hosts[i] as Host, [m.role, '--config', configs.get(m.name) as string], options.env?.(m))))
  const members = new Map(specs.map((m, i) => [m.name, started[i] as LanProcess]))
  if (manager !== undefined) await until(() => new Set(manager.logs.filter((l) => l.message === 'member joined').map((l) => l.member)).size >= specs.length, { what: 'the manager to hear every member', timeoutMs: 15_000 })
  return { net, dir, keyFile, managerHost, manager, members, configs }
}

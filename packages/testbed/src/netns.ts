import { execFile, execFileSync, spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** Why network-namespace tests cannot run here, or undefined when they can. */
export function netnsUnavailable (): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' })
  } catch {
    return 'the ip command (iproute2) is missing'
  }
  return undefined
}

const live = new Set<TestNet>()
process.once('exit', () => { for (const net of live) net.destroySync() })

export interface Host {
  name: string
  ns: string
  address: string
  segment: string
}

export interface HostOptions {
  /** The L2 segment (bridge) the host is plugged into; `lan` unless named. */
  segment?: string
  prefixLength?: number
  /** Where unicast to the rest of 10.0.0.0/8 goes; without one every 10.x address is on-link. */
  gateway?: string
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv
  /** stdout and stderr; 'pipe' unless given (e.g. a log file's fd). */
  output?: 'pipe' | 'ignore' | number
  /** Open an IPC channel (the child is node): `ip netns exec` keeps the fd across its exec. */
  ipc?: boolean
}

/**
 * A throw-away LAN of network namespaces: one "switch" namespace holding a
 * bridge per segment, and hosts joined to it by veth pairs. Nothing is created
 * in the root namespace, and every namespace and process goes away in destroy().
 */
export class TestNet {
  readonly prefix: string
  readonly hosts = new Map<string, Host>()
  private readonly processes = new Set<ChildProcess>()
  private readonly namespaces: string[] = []
  private readonly bridges = new Map<string, string>()
  /** host name → its ports on the switch (a router has one per segment). */
  private readonly ports = new Map<string, string[]>()
  private portCount = 0

  private constructor () {
    // Unique per run: parallel test files and developers never share a namespace.
    this.prefix = `mct${process.pid.toString(36)}${randomBytes(3).toString('hex')}`
  }

  /**
   * A new net with its switch and the `lan` segment. Given an owner (an ava
   * test context), it is destroyed at the owner's teardown; otherwise call destroy().
   */
  static async create (owner?: { teardown: (fn: () => Promise<void>) => void }): Promise<TestNet> {
    const net = new TestNet()
    live.add(net)
    owner?.teardown(async () => { await net.destroy() })
    try {
      await net.addNamespace(net.switchNs)
      await net.addSegment('lan')
    } catch (err) {
      await net.destroy()
      throw err
    }
    return net
  }

  get switchNs (): string {
    return `${this.prefix}-sw`
  }

  /** Another bridge in the switch: an L2 segment of its own. */
  async addSegment (name: string): Promise<void> {
    if (this.bridges.has(name)) return
    const bridge = `br${this.bridges.size}`
    this.bridges.set(name, bridge)
    // No IGMP snooping: every port hears every group, as on a plain switch.
    await this.ip(this.switchNs, 'link', 'add', bridge, 'type', 'bridge', 'mcast_snooping', '0')
    await this.ip(this.switchNs, 'link', 'set', bridge, 'up')
  }

  /** A host on a segment with `address/prefixLength`. */
  async addHost (name: string, address: string, options: HostOptions = {}): Promise<Host> {
    const segment = options.segment ?? 'lan'
    const ns = `${this.prefix}-${name}`
    await this.addNamespace(ns)
    await this.plug(name, ns, 'eth0', segment, address, options.prefixLength ?? 16)
    if (options.gateway === undefined) await this.ip(ns, 'route', 'add', '10.0.0.0/8', 'dev', 'eth0')
    else await this.ip(ns, 'route', 'add', '10.0.0.0/8', 'via', options.gateway)
    await this.ip(ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    const host = { name, ns, address, segment }
    this.hosts.set(name, host)
    return host
  }

  /**
   * A router with one leg per segment. It forwards unicast; multicast stays on
   * its segment, since nothing here routes multicast (no mroute daemon).
   */
  async addRouter (name: string, legs: Array<{ segment: string, address: string, prefixLength?: number }>): Promise<Host> {
    const ns = `${this.prefix}-${name}`
    await this.addNamespace(ns)
    for (const [i, leg] of legs.entries()) await this.plug(name, ns, `eth${i}`, leg.segment, leg.address, leg.prefixLength ?? 16)
    await run('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1'])
    const host = { name, ns, address: legs[0]?.address ?? '', segment: legs[0]?.segment ?? '' }
    this.hosts.set(name, host)
    return host
  }

  host (name: string): Host {
    const host = this.hosts.get(name)
    if (host === undefined) throw new Error(`no host ${name} in this net`)
    return host
  }

  /** Pulls (false) or plugs back (true) the host's cables at the switch. */
  async setLink (host: Host, up: boolean): Promise<void> {
    for (const port of this.ports.get(host.name) ?? []) await this.ip(this.switchNs, 'link', 'set', port, up ? 'up' : 'down')
  }

  /** Runs a command in a host to completion. */
  async exec (host: Host, cmd: string, args: string[]): Promise<{ stdout: string, stderr: string }> {
    return await run('ip', ['netns', 'exec', host.ns, cmd, ...args], { maxBuffer: 16 * 1024 * 1024 })
  }

  /** Starts a long-running process in a host; killed at destroy(). `ip netns exec` execs, so the pid is the command's. */
  spawn (host: Host, cmd: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const output = options.output ?? 'pipe'
    const stdio: StdioOptions = ['ignore', output, output, ...(options.ipc === true ? ['ipc' as const] : [])]
    const child = spawn('ip', ['netns', 'exec', host.ns, cmd, ...args], { stdio, env: { ...process.env, ...options.env } })
    this.processes.add(child)
    child.once('exit', () => this.processes.delete(child))
    return child
  }

  async destroy (): Promise<void> {
    live.delete(this)
    await Promise.all([...this.processes].map(async (p) => {
      if (p.exitCode !== null || p.signalCode !== null) return
      const exited = once(p, 'exit')
      p.kill('SIGKILL')
      await exited
    }))
    for (const ns of this.namespaces.splice(0).reverse()) await run('ip', ['netns', 'del', ns]).catch(() => {})
  }

  /** Last-resort cleanup when the process exits without destroy(). */
  destroySync (): void {
    for (const p of this.processes) p.kill('SIGKILL')
    for (const ns of this.namespaces.splice(0)) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
    }
  }

  private async plug (name: string, ns: string, ifname: string, segment: string, address: string, prefixLength: number): Promise<void> {
    const bridge = this.bridges.get(segment)
    if (bridge === undefined) throw new Error(`no segment ${segment}: addSegment() first`)
    const port = `p${this.portCount++}`
    await this.ip(ns, 'link', 'add', ifname, 'type', 'veth', 'peer', 'name', port, 'netns', this.switchNs)
    await this.ip(this.switchNs, 'link', 'set', port, 'master', bridge)
    await this.ip(this.switchNs, 'link', 'set', port, 'up')
    await this.ip(ns, 'addr', 'add', `${address}/${prefixLength}`, 'dev', ifname)
    await this.ip(ns, 'link', 'set', ifname, 'up')
    this.ports.set(name, [...(this.ports.get(name) ?? []), port])
  }

  private async addNamespace (ns: string): Promise<void> {
    await run('ip', ['netns', 'add', ns])
    this.namespaces.push(ns)
    await this.ip(ns, 'link', 'set', 'lo', 'up')
  }

  private async ip (ns: string, ...args: string[]): Promise<void> {
    await run('ip', ['-n', ns, ...args])
  }
}

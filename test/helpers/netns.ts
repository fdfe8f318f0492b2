import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { promisify } from 'node:util'
import type { ExecutionContext } from 'ava'

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

/**
 * Registers a test that needs network namespaces. Where they are missing it
 * fails under MIRRORCAST_REQUIRE_NETNS=1 (CI) and is otherwise not registered,
 * with one line saying why.
 */
export function netnsTest (register: (title: string, fn: (t: ExecutionContext) => Promise<void>) => void, title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  const why = netnsUnavailable()
  if (why === undefined) {
    register(title, fn)
  } else if (process.env.MIRRORCAST_REQUIRE_NETNS === '1') {
    register(title, async (t) => { t.fail(`MIRRORCAST_REQUIRE_NETNS=1 but ${why}`) })
  } else {
    process.stderr.write(`not running "${title}": ${why}\n`)
  }
}

const live = new Set<TestNet>()
process.once('exit', () => { for (const net of live) net.destroySync() })

export interface Host {
  name: string
  ns: string
  address: string
}

/**
 * A throw-away LAN of network namespaces: one "switch" namespace holding a
 * bridge, and hosts joined to it by veth pairs. Nothing is created in the
 * root namespace, and every namespace and process goes away in destroy().
 */
export class TestNet {
  readonly prefix: string
  readonly hosts = new Map<string, Host>()
  private readonly processes = new Set<ChildProcess>()
  private readonly namespaces: string[] = []
  private ports = 0

  private constructor () {
    this.prefix = `mct${process.pid}${randomBytes(2).toString('hex')}`
  }

  /** A new net with its switch; destroyed when the test ends, passing or not. */
  static async create (t: ExecutionContext): Promise<TestNet> {
    const net = new TestNet()
    live.add(net)
    t.teardown(async () => { await net.destroy() })
    await net.addNamespace(net.switchNs)
    await net.ip(net.switchNs, 'link', 'add', 'br0', 'type', 'bridge', 'mcast_snooping', '0')
    await net.ip(net.switchNs, 'link', 'set', 'br0', 'up')
    return net
  }

  get switchNs (): string {
    return `${this.prefix}-sw`
  }

  /** A host on the switch with `address/prefixLength`; every 10.0.0.0/8 address is on-link. */
  async addHost (name: string, address: string, prefixLength = 16): Promise<Host> {
    const ns = `${this.prefix}-${name}`
    await this.addNamespace(ns)
    const port = `p${this.ports++}`
    await this.ip(ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', this.switchNs)
    await this.ip(this.switchNs, 'link', 'set', port, 'master', 'br0')
    await this.ip(this.switchNs, 'link', 'set', port, 'up')
    await this.ip(ns, 'addr', 'add', `${address}/${prefixLength}`, 'dev', 'eth0')
    await this.ip(ns, 'link', 'set', 'eth0', 'up')
    await this.ip(ns, 'route', 'add', '10.0.0.0/8', 'dev', 'eth0')
    await this.ip(ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0')
    const host = { name, ns, address }
    this.hosts.set(name, host)
    return host
  }

  /** Runs a command in a host to completion. */
  async exec (host: Host, cmd: string, args: string[]): Promise<{ stdout: string, stderr: string }> {
    return await run('ip', ['netns', 'exec', host.ns, cmd, ...args], { maxBuffer: 16 * 1024 * 1024 })
  }

  /** Starts a long-running process in a host; killed at destroy(). */
  spawn (host: Host, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', host.ns, cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } })
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

  /** Last-resort cleanup when the test process exits without teardown. */
  destroySync (): void {
    for (const p of this.processes) p.kill('SIGKILL')
    for (const ns of this.namespaces.splice(0)) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
    }
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

import { execFile, execFileSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { CLI_BIN, MEMBER_EXEC_ARGV } from '@mirrorcast/cli'
import { MirrorcastClient, type MemberView } from '@mirrorcast/client'
import { tolerant, until } from '@mirrorcast/testkit'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { TestNet, type Host } from './netns.js'

const run = promisify(execFile)
const liveBeds = new Set<Testbed>()
process.once('exit', () => { for (const bed of liveBeds) bed.destroySync() })
const RELAY_BIN = fileURLToPath(new URL('./relay.js', import.meta.url))

/**
 * a `one-segment`: both centers' subnets on one L2 segment;
 * b `routed`: each center on its own segment, joined by a router that
 * forwards unicast only (managers hear the far center through static peers);
 * c `local-twins`: twins are two nodes of the same center.
 */
export type Topology = 'one-segment' | 'routed' | 'local-twins'

export interface TestbedOptions {
  topology?: Topology
  /** Twin pairs of storage nodes (default 2). */
  nodes?: number
  /** A directory for data and logs; a new temp dir (removed by destroy) if omitted. */
  dir?: string
  /** Extra flags for the manager (e.g. `--no-mapping`) and for every storage node. */
  managerArgs?: string[]
  nodeArgs?: string[]
  /** Storage nodes whose data dir is a tmpfs of this many bytes, by member name (e.g. `west-node2`). */
  smallDisks?: Record<string, number>
  logLevel?: string
}

export type Role = 'storage' | 'directory' | 'manager'

// 8701: every member listens on the same port, each on its own host
export const MEMBER_PORT = 8701
// 8700: the manager's HTTP port on its host
export const MANAGER_PORT = 8700
// 30 s: the longest a process may take to say it is ready (2 cores shared by a whole cluster)
const READY_TIMEOUT_MS = 30_000
// 60 s: no answer, or no body bytes, from the manager for this long is a client-visible error
export const REQUEST_TIMEOUT_MS = 60_000

export const CENTER_SUBNETS = { east: '10.1.0.0/16', west: '10.2.0.0/16' }
export const MANAGER_ADDRESS = '10.1.2.1'
// 7700: the default multicast port, where static peers get unicast announcements too
const DEFAULT_MCAST_PORT = 7700
const CENTER_NET = { east: 1, west: 2 } as const
type Center = keyof typeof CENTER_NET

/** One process of the test bed on its own host: started, killed, paused, restarted. */
export class MemberHandle {
  readonly name: string
  readonly role: Role
  readonly center: Center
  readonly slot: number
  readonly host: Host
  readonly dataDir: string
  readonly logFile: string
  private readonly argv: string[]
  private readonly net: TestNet
  child: ChildProcess | undefined
  id = ''

  constructor (net: TestNet, spec: { name: string, role: Role, center: Center, slot: number, host: Host, dataDir: string, logFile: string, argv: string[] }) {
    this.net = net
    this.name = spec.name
    this.role = spec.role
    this.center = spec.center
    this.slot = spec.slot
    this.host = spec.host
    this.dataDir = spec.dataDir
    this.logFile = spec.logFile
    this.argv = spec.argv
  }

  get address (): string { return this.host.address }
  get pid (): number | undefined { return this.child?.pid }
  get running (): boolean { return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null }

  /** Starts the process as a user would, with the CLI; resolves when it says it is ready. */
  async start (): Promise<void> {
    if (this.running) return
    const log = await open(this.logFile, 'a')
    const child = this.net.spawn(this.host, process.execPath, [...MEMBER_EXEC_ARGV, CLI_BIN, ...this.argv], { output: log.fd, ipc: true })
    await log.close()
    this.child = child
    const ready = await readyMessage(child, this.name, this.logFile)
    this.id = String(ready.id)
  }

  /** Sends a signal; with SIGKILL or SIGTERM, waits until the process is gone. */
  async kill (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child
    if (child === undefined || !this.running) return
    const exited = once(child, 'exit')
    child.kill(signal)
    if (signal === 'SIGKILL' || signal === 'SIGTERM') await exited
  }

  pause (): void { this.child?.kill('SIGSTOP') }
  resume (): void { this.child?.kill('SIGCONT') }

  async restart (): Promise<void> {
    await this.kill('SIGKILL')
    await this.start()
  }
}

async function readyMessage (child: ChildProcess, name: string, logFile: string): Promise<Record<string, unknown>> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${name} was not ready within ${READY_TIMEOUT_MS} ms; see ${logFile}`)) }, READY_TIMEOUT_MS)
    child.on('message', (msg: { type?: string }) => {
      if (msg.type !== 'ready') return
      clearTimeout(timer)
      resolve(msg as Record<string, unknown>)
    })
    child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`${name} exited (${signal ?? code ?? '?'}) before it was ready; see ${logFile}`)) })
  })
}

/** A member as the manager's `GET /cluster` shows it. */
export type ClusterMember = MemberView

/**
 * A two-center mirrorcast cluster of real processes, each on its own host (a
 * network namespace), built on one of the topologies. destroy() removes
 * everything it made: processes, namespaces, mounts, temp dirs.
 */
export class Testbed {
  readonly net: TestNet
  readonly dir: string
  readonly topology: Topology
  readonly members: MemberHandle[] = []
  manager!: MemberHandle
  /** The manager's API through the client host's relay (a Unix socket). */
  client!: MirrorcastClient
  private readonly ownsDir: boolean
  private readonly mounts: string[] = []
  private readonly options: TestbedOptions
  private destroyed: Promise<void> | undefined

  private constructor (net: TestNet, dir: string, ownsDir: boolean, options: TestbedOptions) {
    this.net = net
    this.dir = dir
    this.ownsDir = ownsDir
    this.options = options
    this.topology = options.topology ?? 'one-segment'
  }

  /** Builds the network, starts every process and waits until the manager sees every member healthy. */
  static async start (options: TestbedOptions = {}): Promise<Testbed> {
    const ownsDir = options.dir === undefined
    const dir = options.dir ?? await mkdtemp(join(tmpdir(), 'mirrorcast-testbed-'))
    const net = await TestNet.create()
    const bed = new Testbed(net, dir, ownsDir, options)
    liveBeds.add(bed)
    try {
      await bed.build()
    } catch (err) {
      await bed.destroy()
      throw err
    }
    return bed
  }

  get managerLog (): string {
    return join(this.dir, 'logs', 'manager.log')
  }

  storage (center: string, slot: number): MemberHandle {
    return this.member('storage', center, slot)
  }

  directory (center: string, slot = 1): MemberHandle {
    return this.member('directory', center, slot)
  }

  member (role: Role, center: string, slot: number): MemberHandle {
    const m = this.members.find((x) => x.role === role && x.center === center && x.slot === slot)
    if (m === undefined) throw new Error(`no ${role} ${center}/${slot} in the test bed`)
    return m
  }

  byId (id: string): MemberHandle | undefined {
    return this.members.find((m) => m.id === id)
  }

  async cluster (): Promise<ClusterMember[]> {
    return (await this.client.cluster()).nodes
  }

  /** Polls /cluster until every member is healthy (in use) again. */
  async waitHealthy (timeoutMs = 60_000): Promise<void> {
    await until(tolerant(async () => {
      const seen = await this.cluster()
      return this.members.every((m) => seen.some((s) => s.id === m.id && s.status === 'healthy'))
    }), { what: 'every member healthy', timeoutMs, intervalMs: 100 })
  }

  /** The manager's log lines (JSON) whose message is `message`. */
  async managerLogLines (message: string): Promise<Array<Record<string, unknown>>> {
    const text = await readFile(this.managerLog, 'utf8')
    return text.split('\n').filter((l) => l.includes(`"message":"${message}"`)).map((l) => JSON.parse(l) as Record<string, unknown>)
  }

  async destroy (): Promise<void> {
    this.destroyed ??= (async () => {
      liveBeds.delete(this)
      await this.client?.close()
      await this.net.destroy()
      for (const at of this.mounts.splice(0)) await run('umount', [at]).catch(async () => await run('umount', ['-l', at]).catch(() => {}))
      if (this.ownsDir) {
        if (process.env.MIRRORCAST_KEEP_TEST_DIRS === '1') process.stderr.write(`kept ${this.dir}\n`)
        else await rm(this.dir, { recursive: true, force: true })
      }
    })()
    await this.destroyed
  }

  /** Last resort at process exit: the net kills and deletes, mounts go lazily. */
  destroySync (): void {
    this.net.destroySync()
    for (const at of this.mounts.splice(0)) {
      try { execFileSync('umount', ['-l', at], { stdio: 'ignore' }) } catch {}
    }
  }

  private async build (): Promise<void> {
    const { dir } = this
    await mkdir(join(dir, 'logs'), { recursive: true })
    const keyFile = join(dir, 'cluster.key')
    await writeClusterKeyFile(keyFile, generateClusterKey())
    // The manager listens on its LAN address, which takes access tokens.
    const token = randomBytes(32).toString('hex')
    const tokensFile = join(dir, 'tokens')
    await writeFile(tokensFile, `read-write testbed ${token}\n`, { mode: 0o600 })
    const routed = this.topology === 'routed'
    if (routed) {
      await this.net.addSegment('east')
      await this.net.addSegment('west')
      await this.net.addRouter('router', [{ segment: 'east', address: '10.1.255.254' }, { segment: 'west', address: '10.2.255.254' }])
    }
    const hostOptions = (center: Center): { segment?: string, gateway?: string } => routed ? { segment: center, gateway: `10.${CENTER_NET[center]}.255.254` } : {}
    const logLevel = this.options.logLevel ?? 'info'
    const common = ['--key-file', keyFile, '--ttl', '1', '--log-level', logLevel]
    for (const spec of this.memberSpecs()) {
      const { role, center, slot } = spec
      const name = `${center}-${role === 'storage' ? 'node' : 'dir'}${slot}`
      const address = `10.${CENTER_NET[center]}.${role === 'storage' ? 0 : 1}.${slot}`
      const host = await this.net.addHost(name, address, hostOptions(center))
      const dataDir = join(dir, name)
      await this.prepareDataDir(name, dataDir)
      // Routed: the manager cannot hear the west segment's multicast, so west members also announce to it by unicast.
      const peers = routed && center === 'west' ? ['--peers', `${MANAGER_ADDRESS}:${DEFAULT_MCAST_PORT}`] : []
      const argv = [role === 'storage' ? 'node' : 'directory', '--data', dataDir, '--center', center, '--slot', String(slot), ...spec.extra, '--address', address, '--port', String(MEMBER_PORT), '--interface', address, ...peers, ...common, ...(role === 'storage' ? this.options.nodeArgs ?? [] : [])]
      this.members.push(new MemberHandle(this.net, { name, role, center, slot, host, dataDir, logFile: join(dir, 'logs', `${name}.log`), argv }))
    }
    await Promise.all(this.members.map(async (m) => { await m.start() }))
    const managerHost = await this.net.addHost('manager', MANAGER_ADDRESS, hostOptions('east'))
    const subnets = Object.entries(CENTER_SUBNETS).map(([c, s]) => `${c}=${s}`).join(',')
    const twins = this.topology === 'local-twins' ? ['--centers', 'east', '--local-twins'] : ['--centers', 'east,west', '--center-subnets', subnets]
    // Routed: it hears its own segment on the group, the far one's static-peer announcements on this port.
    const peerPort = routed ? ['--peer-port', String(DEFAULT_MCAST_PORT)] : []
    this.manager = new MemberHandle(this.net, {
      name: 'manager',
      role: 'manager',
      center: 'east',
      slot: 1,
      host: managerHost,
      dataDir: join(dir, 'manager'),
      logFile: this.managerLog,
      argv: ['manager', '--data', join(dir, 'manager'), ...twins, '--host', managerHost.address, '--port', String(MANAGER_PORT), '--interface', managerHost.address, ...peerPort, '--tokens-file', tokensFile, ...common, ...this.options.managerArgs ?? []]
    })
    await this.manager.start()
    this.client = await this.startClient(hostOptions('east'), token)
    await this.waitHealthy(READY_TIMEOUT_MS)
  }

  /**
   * Two centers: storage slots 1..n and directory server 1 in each. Local
   * twins: all in east, storage pairs on slots 1↔2, 3↔4…, and directory
   * servers 1 and 2 both holding partition 1.
   */
  private memberSpecs (): Array<{ role: 'storage' | 'directory', center: Center, slot: number, extra: string[] }> {
    const nodes = this.options.nodes ?? 2
    if (this.topology === 'local-twins') {
      return [
        ...Array.from({ length: 2 * nodes }, (_, i) => ({ role: 'storage' as const, center: 'east' as const, slot: i + 1, extra: [] })),
        ...[1, 2].map((slot) => ({ role: 'directory' as const, center: 'east' as const, slot, extra: ['--partition', '1'] }))
      ]
    }
    return (['east', 'west'] as const).flatMap((center) => [
      ...Array.from({ length: nodes }, (_, i) => ({ role: 'storage' as const, center, slot: i + 1, extra: [] })),
      { role: 'directory' as const, center, slot: 1, extra: [] }
    ])
  }

  /** The client host: a relay from a Unix socket in the run dir to the manager's HTTP port. */
  private async startClient (options: { segment?: string, gateway?: string }, token: string): Promise<MirrorcastClient> {
    const host = await this.net.addHost('client', '10.1.3.1', options)
    const socketPath = join(this.dir, 'manager.sock')
    const child = this.net.spawn(host, process.execPath, [RELAY_BIN, socketPath, this.manager.address, String(MANAGER_PORT)], { output: 'ignore', ipc: true })
    await readyMessage(child, 'relay', socketPath)
    return new MirrorcastClient({ url: 'http://manager', socketPath, token, headersTimeoutMs: REQUEST_TIMEOUT_MS, bodyTimeoutMs: REQUEST_TIMEOUT_MS })
  }

  private async prepareDataDir (name: string, dataDir: string): Promise<void> {
    await mkdir(dataDir, { recursive: true })
    const bytes = this.options.smallDisks?.[name]
    if (bytes === undefined) return
    await run('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, `mirrorcast-${this.net.prefix}`, dataDir])
    this.mounts.push(dataDir)
  }
}

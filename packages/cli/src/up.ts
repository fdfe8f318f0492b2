import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, open } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MirrorcastClient } from '@mirrorcast/client'
import { DEFAULT_MULTICAST_PORT } from '@mirrorcast/discovery'
import { DataDirLock } from '@mirrorcast/member'
import { randomBytes } from 'node:crypto'
import { generateClusterKey, readClusterKeyFile, readSecretFile, writeClusterKeyFile, writeFileAtomic } from '@mirrorcast/wire'
import { CliError } from './errors.js'
import { multicastArgv, parseCenters, parseInteger, type MulticastFlags } from './serve.js'
import { StallWatch, tailLines } from './progress.js'
import { MEMBER_EXEC_ARGV } from './launch.js'

export interface UpOptions extends MulticastFlags {
  data: string
  port: string
  nodePort: string
  centers: string
  nodes: string
  dirs: string
  localTwins?: boolean
  maxFileBytes?: string
  bodyCacheMb?: string
  s3Port?: string
  logLevel?: string
  /** Extra manager flags, e.g. to switch a location method off in a test. */
  managerArgs?: string[]
}

interface Spec {
  name: string
  role: 'storage' | 'directory' | 'manager'
  center?: string
  slot?: number
  partition?: number
  address?: string
  argv: string[]
  logFile: string
}

interface Started extends Spec {
  child: ChildProcess
  ready: Record<string, unknown>
}

// 127.0.0.1: the manager's HTTP and discovery address in a local cluster
const MANAGER_ADDRESS = '127.0.0.1'
const BIN = fileURLToPath(new URL('./bin.js', import.meta.url))
// 20 s: how long a starting process may show no progress at all (no message, no CPU time used)
const STALL_MS = 20_000
// 5 min: the longest a start may take even while it makes progress (a process looping forever)
const START_LIMIT_MS = 300_000
// Processes start a few at a time: started all at once on a small machine they only slow each
// other down (each loads its modules and opens its stores), and the first ones to be ready wait longest.
const STARTS_AT_ONCE = Math.max(2, availableParallelism())
// 10 s: how long `up` lets its processes close before it kills them
const STOP_TIMEOUT_MS = 10_000

/**
 * Twins differ only in the subnet part: center i lives in 127.(i+1).0.0/16,
 * storage node s at .0.s, directory server k at .1.k.
 */
export function memberAddress (centerIndex: number, role: 'storage' | 'directory', slot: number): string {
  return `127.${centerIndex + 1}.${role === 'storage' ? 0 : 1}.${slot}`
}

/**
 * `mirrorcast up`: a whole cluster of real processes on loopback: `nodes`
 * twin pairs of storage nodes and `dirs` twin pairs of directory servers
 * (one per namespace partition), in two centers, or with local twins all in
 * the first center.
 */
export async function up (opts: UpOptions): Promise<void> {
  const dir = resolve(opts.data)
  const local = opts.localTwins === true
  const centers = local ? [parseCenters(opts.centers)[0]] : parseCenters(opts.centers)
  const nodes = parseInteger(opts.nodes, 'nodes')
  if (nodes < 1 || nodes > 120) throw new CliError('--nodes must be 1 to 120')
  const dirs = parseInteger(opts.dirs, 'dirs')
  if (dirs < 1 || dirs > 64) throw new CliError('--dirs must be 1 to 64')
  const port = parseInteger(opts.port, 'port')
  const nodePort = parseInteger(opts.nodePort, 'node-port')
  // One `up` a dir: a second would start members on the first one's data dirs (each refused by its own lock, one by one).
  const lock = await DataDirLock.acquire(dir, 'mirrorcast up')
  try {
    await run(dir, opts, { local, centers, nodes, dirs, port, nodePort })
  } finally {
    await lock.release()
  }
}

interface Layout { local: boolean, centers: string[], nodes: number, dirs: number, port: number, nodePort: number }

/** Starts the cluster, then runs until SIGINT/SIGTERM, and stops it. */
async function run (dir: string, opts: UpOptions, { local, centers, nodes, dirs, port, nodePort }: Layout): Promise<void> {
  await mkdir(join(dir, 'logs'), { recursive: true })
  const keyFile = await ensureKey(dir)
  const tokensFile = await ensureS3Key(dir)
  const common = ['--key-file', keyFile, ...(opts.logLevel === undefined ? [] : ['--log-level', opts.logLevel])]

  // Local twins: both of a pair in one center, slots 2i-1 and 2i; directory pair i holds partition i.
  const perCenter = local ? 2 : 1
  const members: Spec[] = []
  centers.forEach((center, ci) => {
    for (let slot = 1; slot <= nodes * perCenter; slot++) members.push(memberSpec(dir, common, opts, 'storage', center, ci, slot, nodePort))
    for (let slot = 1; slot <= dirs * perCenter; slot++) members.push(memberSpec(dir, common, opts, 'directory', center, ci, slot, nodePort, Math.ceil(slot / perCenter)))
  })
  const managerArgv = ['manager', '--data', join(dir, 'manager'), '--centers', centers.join(','), '--directory-partitions', String(dirs),
    ...(local ? ['--local-twins'] : ['--center-subnets', centers.map((c, i) => `${c}=127.${i + 1}.0.0/16`).join(',')]),
    '--port', String(port), '--s3-port', String(s3Port(opts, port)), '--tokens-file', tokensFile, ...(opts.managerArgs ?? []), ...(opts.maxFileBytes === undefined ? [] : ['--max-file-bytes', opts.maxFileBytes]),
    ...(opts.bodyCacheMb === undefined ? [] : ['--body-cache-mb', opts.bodyCacheMb]), ...common, ...discoveryArgv(opts, undefined)]
  const running: Started[] = []
  const stop = async (): Promise<void> => { await stopAll(running) }
  try {
    await startAll(members, running)
    const manager = await startChild({ name: 'manager', role: 'manager', argv: managerArgv, logFile: join(dir, 'logs', 'manager.log') })
    running.push(manager)
    const url = String(manager.ready.url)
    const s3Url = String(manager.ready.s3Url)
    await waitForMembers(url, running.filter((m) => m.role !== 'manager'))
    await writeJson(join(dir, 'cluster.json'), {
      manager: { url, s3Url, pid: manager.child.pid, argv: fixedPortArgv(manager) },
      nodes: running.filter((m) => m.role !== 'manager').map((m) => ({
        id: m.ready.id,
        role: m.role,
        center: m.center,
        slot: m.slot,
        ...(m.partition === undefined ? {} : { partition: m.partition }),
        address: m.address,
        port: m.ready.port,
        pid: m.child.pid,
        argv: fixedPortArgv(m)
      }))
    })
    process.stdout.write(`mirrorcast is up: ${url}\n`)
    process.stdout.write(`S3 endpoint: ${s3Url} (AWS_SHARED_CREDENTIALS_FILE=${join(dir, S3_CREDENTIALS_FILE)}, profile ${S3_PROFILE})\n`)
    process.stdout.write(`${running.length} processes ready in ${process.uptime().toFixed(1)} s; data in ${dir}; logs in ${join(dir, 'logs')}; Ctrl-C stops it\n`)
  } catch (err) {
    await stop()
    throw err
  }
  for (const m of running) {
    m.child.on('exit', (code, signal) => {
      if (!stopping) process.stderr.write(`mirrorcast up: ${m.name} exited (${signal ?? code ?? ''}); restart it with the argv in cluster.json\n`)
    })
  }
  let stopping = false
  await new Promise<void>((resolve) => {
    const onSignal = (): void => {
      if (stopping) return
      stopping = true
      process.stdout.write('mirrorcast: stopping\n')
      void stop().then(resolve)
    }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  })
}

/**
 * Loopback only: `up` is a local cluster, its multicast never leaves this host.
 * With --no-multicast every member announces by unicast from its own address
 * to the manager's (127.0.0.1), on the multicast port.
 */
function discoveryArgv (opts: UpOptions, memberAddress: string | undefined): string[] {
  if (opts.multicast !== false) return multicastArgv({ ...opts, interface: MANAGER_ADDRESS, ttl: '0' })
  const peers = memberAddress === undefined ? undefined : `${MANAGER_ADDRESS}:${opts.mcastPort ?? DEFAULT_MULTICAST_PORT}`
  return multicastArgv({ ...opts, interface: memberAddress ?? MANAGER_ADDRESS, ttl: '0', peers })
}

function memberSpec (dir: string, common: string[], opts: UpOptions, role: 'storage' | 'directory', center: string, ci: number, slot: number, port: number, partition?: number): Spec {
  const address = memberAddress(ci, role, slot)
  const name = `${center}-${role === 'storage' ? 'node' : 'dir'}${slot}`
  return {
    name,
    role,
    center,
    slot,
    ...(partition === undefined ? {} : { partition }),
    address,
    argv: [role === 'storage' ? 'node' : 'directory', '--data', join(dir, center, name), '--center', center, '--slot', String(slot), ...(partition === undefined ? [] : ['--partition', String(partition)]), '--address', address, '--port', String(port), ...common, ...discoveryArgv(opts, address)],
    logFile: join(dir, 'logs', `${name}.log`)
  }
}

/** The argv that restarts this one process by hand, on the port it has now. */
function fixedPortArgv (m: Started): string[] {
  const argv = [process.execPath, ...MEMBER_EXEC_ARGV, BIN, ...m.argv]
  const at = argv.indexOf('--port')
  if (at >= 0) argv[at + 1] = String(m.ready.port)
  const s3At = argv.indexOf('--s3-port')
  if (s3At >= 0 && typeof m.ready.s3Url === 'string') argv[s3At + 1] = new URL(m.ready.s3Url).port
  return argv
}

/** Starts the members STARTS_AT_ONCE at a time; each one ready is added to `running` (stopped by the caller on failure). */
async function startAll (specs: Spec[], running: Started[]): Promise<void> {
  let next = 0
  let failed: unknown
  const worker = async (): Promise<void> => {
    while (next < specs.length && failed === undefined) {
      const spec = specs[next++] as Spec
      try {
        running.push(await startChild(spec))
        process.stderr.write(`mirrorcast: ${spec.name} ready (${running.length}/${specs.length})\n`)
      } catch (err) {
        failed ??= err
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(STARTS_AT_ONCE, specs.length) }, worker))
  if (failed !== undefined) throw failed
}

async function startChild (spec: Spec): Promise<Started> {
  const log = await open(spec.logFile, 'a')
  const child = fork(BIN, spec.argv, { execArgv: [...process.execArgv, ...MEMBER_EXEC_ARGV], stdio: ['ignore', log.fd, log.fd, 'ipc'] })
  await log.close()
  let watch: StallWatch | undefined
  try {
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      watch = new StallWatch({
        stallMs: STALL_MS,
        limitMs: START_LIMIT_MS,
        pids: () => [child.pid],
        onStall: (why) => {
          child.kill('SIGKILL')
          void failure(spec, why).then(reject)
        }
      })
      child.on('message', (msg: { type?: string }) => { if (msg.type === 'ready') resolve(msg as Record<string, unknown>) })
      child.once('exit', (code, signal) => { void failure(spec, `exited (${signal ?? code ?? '?'}) before it was ready`).then(reject) })
    })
    return { ...spec, child, ready }
  } finally {
    watch?.close()
  }
}

/** An error naming the member and quoting the end of its log, which usually says why. */
async function failure (spec: Spec, why: string): Promise<CliError> {
  const lines = await tailLines(spec.logFile)
  const tail = lines.length === 0 ? ' (its log is empty)' : `; the last lines of its log:\n${lines.map((l) => `  ${l}`).join('\n')}`
  return new CliError(`${spec.name} ${why}; log: ${spec.logFile}${tail}`)
}

/**
 * Waits until the manager has heard every member announce itself: only then
 * is the cluster usable. Slow is fine while members keep turning up (or the
 * manager keeps using CPU); no progress for STALL_MS is a failure.
 */
async function waitForMembers (url: string, members: Started[]): Promise<void> {
  let missing = members
  let stalled: string | undefined
  const watch = new StallWatch({ stallMs: STALL_MS, limitMs: START_LIMIT_MS, pids: () => [], onStall: (why) => { stalled = why } })
  const client = new MirrorcastClient({ url })
  try {
    while (stalled === undefined) {
      try {
        const cluster = await client.cluster()
        const healthy = new Set(cluster.nodes.filter((n) => n.state === 'healthy').map((n) => n.id))
        const now = missing.filter((m) => !healthy.has(String(m.ready.id)))
        if (now.length < missing.length) watch.progress()
        missing = now
        if (missing.length === 0) return
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  } finally {
    watch.close()
    await client.close()
  }
  throw new CliError(`the manager did not hear ${missing.map((m) => `${m.name} (${String(m.ready.id)})`).join(', ')} announce itself (${stalled}); see the logs in ${missing[0]?.logFile ?? 'the logs folder'}`)
}

async function stopAll (running: Started[]): Promise<void> {
  await Promise.all(running.map(async (m) => {
    if (m.child.exitCode !== null || m.child.signalCode !== null) return
    const exited = once(m.child, 'exit')
    m.child.kill('SIGTERM')
    const timer = setTimeout(() => m.child.kill('SIGKILL'), STOP_TIMEOUT_MS)
    await exited
    clearTimeout(timer)
  }))
}

async function ensureKey (dir: string): Promise<string> {
  const file = join(dir, 'cluster.key')
  try {
    await readClusterKeyFile(file)
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'ENOENT') throw err
    await writeClusterKeyFile(file, generateClusterKey())
  }
  return file
}

// AWS's shared credentials file, so every S3 tool reads the key pair as it is
const S3_CREDENTIALS_FILE = 's3-credentials'
const S3_PROFILE = 'mirrorcast'
// the manager's tokens file: the same key pair, in the form the manager reads
const MANAGER_TOKENS_FILE = 'manager-tokens'

/** `--s3-port`, or the HTTP port + 10 (any when the HTTP port is any). */
function s3Port (opts: UpOptions, port: number): number {
  if (opts.s3Port !== undefined) return parseInteger(opts.s3Port, 's3-port')
  return port === 0 ? 0 : port + 10
}

/**
 * The cluster's S3 key pair, made at the first start and kept: in
 * DIR/s3-credentials for the clients and in the manager's tokens file.
 */
async function ensureS3Key (dir: string): Promise<string> {
  const credentials = join(dir, S3_CREDENTIALS_FILE)
  let pair: { id: string, secret: string }
  try {
    pair = parseSharedCredentials(await readSecretFile(credentials, 'S3 credentials file'), credentials)
  } catch (err) {
    if ((err as { cause?: { code?: string } }).cause?.code !== 'ENOENT') throw err
    // AWS's shapes: a 20-character id of capitals and digits, a 40-character secret
    pair = { id: 'MC' + randomBytes(12).toString('hex').toUpperCase().slice(0, 18), secret: randomBytes(30).toString('base64').replace(/[+/]/g, 'x') }
    await writeFileAtomic(credentials, `[${S3_PROFILE}]\naws_access_key_id = ${pair.id}\naws_secret_access_key = ${pair.secret}\n`, { mode: 0o600 })
  }
  const tokens = join(dir, MANAGER_TOKENS_FILE)
  await writeFileAtomic(tokens, `# written by mirrorcast up from ${S3_CREDENTIALS_FILE}\nread-write s3 ${pair.id} ${pair.secret}\n`, { mode: 0o600 })
  return tokens
}

function parseSharedCredentials (text: string, file: string): { id: string, secret: string } {
  const section = text.split(/^\[/m).find((s) => s.startsWith(`${S3_PROFILE}]`)) ?? ''
  const value = (name: string): string | undefined => new RegExp(`^\\s*${name}\\s*=\\s*(\\S+)\\s*$`, 'm').exec(section)?.[1]
  const id = value('aws_access_key_id')
  const secret = value('aws_secret_access_key')
  if (id === undefined || secret === undefined) throw new CliError(`${file} has no [${S3_PROFILE}] profile with aws_access_key_id and aws_secret_access_key: fix it or remove it to have a new key pair made`)
  return { id, secret }
}

async function writeJson (file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n')
}

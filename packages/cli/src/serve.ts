import { createLogger, type Logger } from '@mirrorcast/logger'
import { CENTER_NAME_PATTERN, readClusterKeyFile } from '@mirrorcast/wire'
import { DEFAULT_MULTICAST_PORT, parsePeers, type PresenceOptions } from '@mirrorcast/discovery'
import { StorageNode, type ScrubOptions } from '@mirrorcast/node'
import { DirectoryServer } from '@mirrorcast/directory'
import { Manager, readTokensFile, type AntiEntropyOptions, type S3Credential, type S3Options } from '@mirrorcast/manager'
import { CliError, startFailure } from './errors.js'

interface Service {
  start: () => Promise<void>
  close: () => Promise<void>
}

/** Multicast settings every process of a cluster shares (commander's names). */
export interface MulticastFlags {
  cluster?: string
  group?: string
  searchGroup?: string
  mcastPort?: string
  interface?: string
  ttl?: string
  heartbeatMs?: string
  dnsSd?: boolean
  /** false: static peers only. */
  multicast?: boolean
  peers?: string
  peerPort?: string
}

export interface ServeOptions extends MulticastFlags {
  data: string
  keyFile: string
  logLevel?: string
}

/** Turns the flags into discovery options; a missing flag keeps the library default. */
export function presenceOptions (f: MulticastFlags): Omit<PresenceOptions, 'key' | 'logger'> {
  return {
    ...(f.cluster === undefined ? {} : { cluster: f.cluster }),
    ...(f.group === undefined ? {} : { group: f.group }),
    ...(f.searchGroup === undefined ? {} : { searchGroup: f.searchGroup }),
    ...(f.mcastPort === undefined ? {} : { port: parseInteger(f.mcastPort, 'mcast-port') }),
    ...(f.interface === undefined ? {} : { interface: f.interface }),
    ...(f.ttl === undefined ? {} : { ttl: parseInteger(f.ttl, 'ttl') }),
    ...(f.heartbeatMs === undefined ? {} : { heartbeatMs: parseInteger(f.heartbeatMs, 'heartbeat-ms') }),
    ...(f.dnsSd === false ? { dnsSd: false } : {}),
    ...(f.multicast === false ? { multicast: false } : {}),
    ...(f.peers === undefined ? {} : { peers: parsePeers(f.peers, f.mcastPort === undefined ? DEFAULT_MULTICAST_PORT : parseInteger(f.mcastPort, 'mcast-port')) }),
    ...(f.peerPort === undefined ? {} : { peerPort: parseInteger(f.peerPort, 'peer-port') })
  }
}

/** The same flags as argv, for the processes `up` starts. */
export function multicastArgv (f: MulticastFlags): string[] {
  const out: string[] = []
  const add = (flag: string, v: string | undefined): void => { if (v !== undefined) out.push(flag, v) }
  add('--cluster', f.cluster)
  add('--group', f.group)
  add('--search-group', f.searchGroup)
  add('--mcast-port', f.mcastPort)
  add('--interface', f.interface)
  add('--ttl', f.ttl)
  add('--heartbeat-ms', f.heartbeatMs)
  if (f.multicast === false) out.push('--no-multicast')
  add('--peers', f.peers)
  add('--peer-port', f.peerPort)
  return out
}

export interface MemberServeOptions extends ServeOptions {
  center: string
  slot: string
  partition?: string
  address: string
  port: string
  scrubMbPerS?: string
  scrubIntervalS?: string
  httpPort?: string
}

export interface ManagerServeOptions extends ServeOptions {
  centers: string
  localTwins?: boolean
  directoryPartitions: string
  centerSubnets?: string
  mapping?: boolean
  multicastSearch?: boolean
  pointToPoint?: boolean
  host: string
  port: string
  maxFileBytes?: string
  bodyCacheMb?: string
  tokensFile?: string
  s3Port?: string
  s3Domains?: string
  s3Region?: string
  bodyIdleTimeoutMs?: string
  headersTimeoutMs?: string
  maxConnections?: string
  maxSearches?: string
  directoryCheckMs?: string
  reconcilePeriodMs?: string
  orphanGraceMs?: string
  reconcileMbPerS?: string
  maxAnnounceRate?: string
}

export async function serveNode (role: 'storage' | 'directory', opts: MemberServeOptions): Promise<void> {
  const key = await readClusterKeyFile(opts.keyFile)
  const logger = createLogger({ level: opts.logLevel, fields: { component: role === 'storage' ? 'node' : 'directory' } })
  const common = { dataDir: opts.data, key, center: opts.center, slot: parseInteger(opts.slot, 'slot'), address: opts.address, port: parseInteger(opts.port, 'port'), logger, presence: presenceOptions(opts) }
  const service = role === 'storage' ? new StorageNode({ ...common, scrub: scrubOptions(opts), httpPort: parseInteger(opts.httpPort ?? '0', 'http-port') }) : new DirectoryServer({ ...common, ...(opts.partition === undefined ? {} : { partition: parseInteger(opts.partition, 'partition') }) })
  await run(service, logger, 'node protocol', () => ({ role, id: service.id, address: service.address, port: service.port, ...(service instanceof StorageNode ? { httpPort: service.httpPort } : {}), center: opts.center, slot: common.slot }))
}

export async function serveManager (opts: ManagerServeOptions): Promise<void> {
  const key = await readClusterKeyFile(opts.keyFile)
  const logger = createLogger({ level: opts.logLevel, fields: { component: 'manager' } })
  const credentials = opts.tokensFile === undefined ? { tokens: [], s3Keys: [] } : await readTokensFile(opts.tokensFile)
  const s3 = s3Options(opts, credentials.s3Keys)
  const manager = new Manager({
    key,
    multicast: presenceOptions(opts),
    ...(opts.heartbeatMs === undefined ? {} : { heartbeatMs: parseInteger(opts.heartbeatMs, 'heartbeat-ms') }),
    ...(opts.maxAnnounceRate === undefined ? {} : { maxAnnounceRate: parseInteger(opts.maxAnnounceRate, 'max-announce-rate') }),
    centers: opts.localTwins === true ? [parseCenter(opts.centers)] : parseCenters(opts.centers),
    twins: opts.localTwins === true ? 'local' : 'centers',
    directoryPartitions: parseInteger(opts.directoryPartitions, 'directory-partitions'),
    ...(opts.centerSubnets === undefined ? {} : { centerSubnets: parseSubnets(opts.centerSubnets) }),
    locate: { mapping: opts.mapping !== false, multicast: opts.multicastSearch !== false, pointToPoint: opts.pointToPoint !== false },
    dataDir: opts.data,
    host: opts.host,
    port: parseInteger(opts.port, 'port'),
    ...(opts.maxFileBytes === undefined ? {} : { maxFileBytes: parseInteger(opts.maxFileBytes, 'max-file-bytes') }),
    ...(opts.bodyCacheMb === undefined ? {} : { bodyCacheBytes: parseInteger(opts.bodyCacheMb, 'body-cache-mb') * 1024 * 1024 }),
    tokens: credentials.tokens,
    ...s3,
    ...httpLimitOptions(opts),
    reconcile: reconcileOptions(opts),
    ...(opts.directoryCheckMs === undefined ? {} : { directoryCheckMs: parseInteger(opts.directoryCheckMs, 'directory-check-ms') }),
    logger
  })
  await run(manager, logger, 'HTTP', () => ({ role: 'manager', id: manager.id, url: manager.url, port: manager.port, ...(manager.s3Url === undefined ? {} : { s3Url: manager.s3Url }) }), s3.s3?.port)
}

// the S3 front end's port is the HTTP port's plus this unless given (8700: 8710)
const S3_PORT_OFFSET = 10

/** `--s3-port` (default: the HTTP port + 10, any when that is any; `off`: no S3), its domains and region. */
function s3Options (opts: ManagerServeOptions, keys: S3Credential[]): { s3?: S3Options } {
  if (opts.s3Port === 'off') return {}
  const httpPort = parseInteger(opts.port, 'port')
  const port = opts.s3Port === undefined ? (httpPort === 0 ? 0 : httpPort + S3_PORT_OFFSET) : parseInteger(opts.s3Port, 's3-port')
  if (port > 65535) throw new CliError(`--s3-port must be a port (0 to 65535) or off; the HTTP port + ${S3_PORT_OFFSET} is ${port}: give --s3-port`)
  return {
    s3: {
      port,
      keys,
      ...(opts.s3Domains === undefined ? {} : { domains: opts.s3Domains.split(',').map((d) => d.trim().toLowerCase()).filter((d) => d !== '') }),
      ...(opts.s3Region === undefined ? {} : { region: opts.s3Region })
    }
  }
}

/** The HTTP limits given; the manager checks their bounds and fills in the rest. */
function httpLimitOptions (opts: ManagerServeOptions): { bodyIdleTimeoutMs?: number, headersTimeoutMs?: number, maxConnections?: number, maxSearches?: number } {
  return {
    ...(opts.bodyIdleTimeoutMs === undefined ? {} : { bodyIdleTimeoutMs: parseInteger(opts.bodyIdleTimeoutMs, 'body-idle-timeout-ms') }),
    ...(opts.headersTimeoutMs === undefined ? {} : { headersTimeoutMs: parseInteger(opts.headersTimeoutMs, 'headers-timeout-ms') }),
    ...(opts.maxConnections === undefined ? {} : { maxConnections: parseInteger(opts.maxConnections, 'max-connections') }),
    ...(opts.maxSearches === undefined ? {} : { maxSearches: parseInteger(opts.maxSearches, 'max-searches') })
  }
}

/** Pair anti-entropy's settings given; the manager fills in the rest. */
function reconcileOptions (opts: ManagerServeOptions): AntiEntropyOptions {
  return {
    ...(opts.reconcilePeriodMs === undefined ? {} : { periodMs: parseInteger(opts.reconcilePeriodMs, 'reconcile-period-ms') }),
    ...(opts.orphanGraceMs === undefined ? {} : { graceMs: parseInteger(opts.orphanGraceMs, 'orphan-grace-ms') }),
    ...(opts.reconcileMbPerS === undefined ? {} : { bytesPerSecond: parseMibPerSecond(opts.reconcileMbPerS, 'reconcile-mb-per-s', 'no limit') })
  }
}

/**
 * Starts a service, tells a parent `mirrorcast up` (over IPC) that it is
 * ready, and closes it cleanly on SIGINT/SIGTERM or when that parent goes away.
 */
async function run (service: Service, logger: Logger, tcpPort: string, ready: () => Record<string, unknown>, s3Port?: number): Promise<void> {
  try {
    await service.start()
  } catch (err) {
    // the service rolled its start back: what is left is to say why
    throw startFailure(err, tcpPort, s3Port)
  }
  let stopping = false
  const stop = (why: string): void => {
    if (stopping) return
    stopping = true
    logger.info('stopping', { why })
    service.close().then(() => process.exit(0), (err: Error) => {
      logger.error('close failed', { error: err.message })
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  if (process.send !== undefined) {
    process.on('disconnect', () => stop('parent went away'))
    process.send({ type: 'ready', ...ready() })
  }
  logger.info('ready', ready())
}

/** `--scrub-mb-per-s` (MiB/s, fractions allowed, 0: off) and `--scrub-interval-s`; unset: the node's defaults. */
function scrubOptions (opts: MemberServeOptions): ScrubOptions {
  const out: ScrubOptions = {}
  if (opts.scrubMbPerS !== undefined) out.bytesPerSecond = parseMibPerSecond(opts.scrubMbPerS, 'scrub-mb-per-s', 'off')
  if (opts.scrubIntervalS !== undefined) out.intervalMs = parseInteger(opts.scrubIntervalS, 'scrub-interval-s') * 1000
  return out
}

/** A rate in MiB a second (fractions allowed) → bytes a second. */
function parseMibPerSecond (value: string, name: string, zero: string): number {
  const mb = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value) || !Number.isFinite(mb)) throw new CliError(`--${name} must be a number of MiB per second (0: ${zero}), got ${JSON.stringify(value)}`)
  return Math.round(mb * 1024 * 1024)
}

export function parseInteger (value: string, name: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new CliError(`--${name} must be a whole number, got ${JSON.stringify(value)}`)
  return n
}

export function parseCenter (value: string): string {
  const center = value.trim()
  if (!CENTER_NAME_PATTERN.test(center)) throw new CliError('--centers with --local-twins names one center, e.g. east')
  return center
}

export function parseCenters (value: string): [string, string] {
  const centers = value.split(',').map((c) => c.trim())
  if (centers.length !== 2 || centers[0] === centers[1] || centers.some((c) => !CENTER_NAME_PATTERN.test(c))) {
    throw new CliError('--centers must name two different centers, primary first, e.g. east,west')
  }
  return centers as [string, string]
}

/** `east=10.1.0.0/16,west=10.2.0.0/16` → { east: '10.1.0.0/16', west: '10.2.0.0/16' }. */
export function parseSubnets (value: string): Record<string, string> {
  const out: Record<string, string> = {}
  for (const part of value.split(',')) {
    const [center, cidr] = part.split('=')
    if (center === undefined || cidr === undefined || center === '' || cidr === '') throw new CliError(`--center-subnets wants center=cidr pairs, got ${JSON.stringify(part)}`)
    out[center.trim()] = cidr.trim()
  }
  return out
}

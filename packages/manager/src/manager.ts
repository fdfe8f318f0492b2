import { DEFAULT_BODY_CACHE_BYTES } from './objects/body-cache.js'
import { DirectTransfers } from './objects/direct-transfers.js'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { MAX_DIRECTORY_PARTITIONS } from '@mirrorcast/wire'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { loadOrCreateMemberId, newBootId } from '@mirrorcast/rpc'
import { DataDirLock } from '@mirrorcast/member'
import { Announcer, Cadence, DEFAULT_HEARTBEAT_MS, DEFAULT_MAX_ANNOUNCE_RATE, MulticastChannel, Roster, search, type MulticastOptions } from '@mirrorcast/discovery'
import { SubnetMap, TwinMap, type TwinMode } from '@mirrorcast/topology'
import { Locator, type LocateOptions } from './cluster/locator.js'
import { Authorizer, type AccessToken, type S3Credential } from './http/auth.js'
import { S3Api } from './s3/s3-api.js'
import { RepairJournal } from './objects/repair-journal.js'
import { DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, DEFAULT_MAX_FILE_BYTES, resolveHttpLimits, type HttpLimits } from './config.js'
import { DEFAULT_DIRECTORY_CHECK_MS, DirectoryManager } from './directory/directory-manager.js'
import { Membership } from './cluster/membership.js'
import { ObjectManager } from './objects/object-manager.js'
import { Integrity } from './objects/integrity.js'
import { AntiEntropy, type AntiEntropyOptions } from './objects/anti-entropy.js'
import { Lifecycle } from './lifecycle.js'
import { HttpServer } from './http/server.js'
import { NativeApi } from './http/native-api.js'
import { Router } from './http/router.js'
import { clusterView } from './http/views.js'

export interface ManagerOptions {
  key: Uint8Array
  /** The multicast group where members announce themselves (the key is taken from above). */
  multicast?: Omit<MulticastOptions, 'key' | 'logger'>
  heartbeatMs?: number
  /**
   * Announcements a second the whole cluster may send (default 1,000): past 100 members at 100 ms,
   * the manager asks every member for a longer period, so heartbeat traffic stays bounded.
   */
  maxAnnounceRate?: number
  /** [primary center, backup center]; for local twins, the one center. */
  centers?: string[]
  /** Twins in two centers (default) or in one (`local`: slots 1↔2, 3↔4…). */
  twins?: TwinMode
  /** Partitions of the namespace: directory server k of a center holds partition k. Fixed for a cluster's life. */
  directoryPartitions?: number
  /** ms between two comparisons of each directory partition's twins, whole (default 60 s); a follower that differs at the same sequence number is rebuilt. */
  directoryCheckMs?: number
  /** Where the manager keeps its id; without one it takes a new id each start. */
  dataDir?: string
  host?: string
  port?: number
  maxFileBytes?: number
  /** Bytes of small bodies kept in memory for reads (default 16 MiB; 0: none kept). */
  bodyCacheBytes?: number
  /** ms a request body may bring no byte, or a response have no byte taken by its client, before it is given up (default 120 s). */
  bodyIdleTimeoutMs?: number
  /** ms for a client to send a request's headers (default 10 s). */
  headersTimeoutMs?: number
  /** HTTP connections open at once; more are closed as they arrive (default 1,024). */
  maxConnections?: number
  /** Multicast searches the HTTP API serves at once; more are answered 503 with Retry-After (default 8). */
  maxSearches?: number
  /** Each center's subnet, e.g. { east: '10.1.0.0/16', west: '10.2.0.0/16' }: twins differ only in it. */
  centerSubnets?: Record<string, string>
  /** Which ways of finding a file after failover are allowed (all by default). */
  locate?: LocateOptions
  /** Pair anti-entropy: how often each pair is reconciled, how old an unnamed body must be to go, how fast copies go. */
  reconcile?: AntiEntropyOptions
  /** Access tokens of the HTTP API; without them it listens on loopback only. */
  tokens?: AccessToken[]
  /** The S3 front end, on a port of its own at the HTTP API's address; none without. */
  s3?: S3Options
  logger?: Logger
}

export interface S3Options {
  /** 0: any. */
  port: number
  /** The key pairs S3 requests are signed with. */
  keys: S3Credential[]
  /** Host names below which a request's Host names its bucket (virtual-host style); default localhost. */
  domains?: string[]
  /** The region buckets are in, which clients sign for; default us-east-1. */
  region?: string
}

// the S3 clients' default region: a client configured with none signs for it
export const DEFAULT_S3_REGION = 'us-east-1'
// `bucket.localhost` resolves to loopback with no DNS set up (RFC 6761), so virtual-host style works at once
export const DEFAULT_S3_DOMAINS = ['localhost']

type Resolved = Required<Omit<ManagerOptions, 'dataDir' | 'logger' | 'heartbeatMs' | 'centerSubnets' | 'centers' | 'twins' | 'reconcile' | 's3' | keyof HttpLimits>> & {
  s3: S3Options | undefined
  reconcile: AntiEntropyOptions
  dataDir: string | undefined
  logger: Logger
  heartbeatMs: number | undefined
  subnets: SubnetMap | undefined
  twinMap: TwinMap
  httpLimits: HttpLimits
}

/** The object manager and directory manager behind one HTTP API: the composition root. */
export class Manager {
  private readonly options: Resolved
  private readonly lifecycle = new Lifecycle()
  private http: HttpServer | undefined
  private s3Http: HttpServer | undefined
  private lock: DataDirLock | undefined
  private logger: Logger
  private readonly auth: Authorizer
  id = ''

  constructor (options: ManagerOptions) {
    if (options.key.length < 16) throw new TypeError('cluster key must be at least 16 bytes')
    const twinMap = new TwinMap(options.centers ?? (options.twins === 'local' ? ['east'] : ['east', 'west']), options.twins ?? 'centers')
    const directoryPartitions = options.directoryPartitions ?? 1
    if (!Number.isInteger(directoryPartitions) || directoryPartitions < 1 || directoryPartitions > MAX_DIRECTORY_PARTITIONS) throw new TypeError(`directoryPartitions must be 1 to ${MAX_DIRECTORY_PARTITIONS}`)
    const directoryCheckMs = options.directoryCheckMs ?? DEFAULT_DIRECTORY_CHECK_MS
    if (!Number.isSafeInteger(directoryCheckMs) || directoryCheckMs < 10) throw new TypeError('directoryCheckMs must be a whole number of ms, 10 at least')
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES
    if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes <= 0) throw new TypeError('maxFileBytes must be a positive integer')
    const httpLimits = resolveHttpLimits(options)
    this.options = {
      host: DEFAULT_HTTP_HOST,
      port: DEFAULT_HTTP_PORT,
      multicast: {},
      maxAnnounceRate: DEFAULT_MAX_ANNOUNCE_RATE,
      locate: {},
      tokens: [],
      reconcile: {},
      ...options,
      subnets: options.centerSubnets === undefined ? undefined : new SubnetMap(options.centerSubnets),
      heartbeatMs: options.heartbeatMs,
      twinMap,
      directoryPartitions,
      directoryCheckMs,
      maxFileBytes,
      bodyCacheBytes: options.bodyCacheBytes ?? DEFAULT_BODY_CACHE_BYTES,
      httpLimits,
      dataDir: options.dataDir,
      s3: options.s3,
      logger: options.logger ?? silentLogger()
    }
    this.logger = this.options.logger
    this.auth = new Authorizer(this.options.tokens, this.options.host)
  }

  get port (): number {
    if (this.http === undefined) throw new Error('manager is not listening')
    return this.http.port
  }

  get url (): string {
    return `http://${this.options.host}:${this.port}`
  }

  /** The S3 front end's endpoint, if it has one. */
  get s3Url (): string | undefined {
    return this.s3Http === undefined ? undefined : `http://${this.options.host}:${this.s3Http.port}`
  }

  /**
   * Locks the data dir, then builds every part and starts them in order; on a
   * failure the started ones are stopped again and the lock released.
   */
  async start (): Promise<void> {
    if (this.http !== undefined || this.lock !== undefined) return
    // First: the id and the repair journal are in the dir, and another manager on it would share them.
    this.lock = this.options.dataDir === undefined ? undefined : await DataDirLock.acquire(this.options.dataDir, 'manager', this.options.logger)
    try {
      await this.startParts()
    } catch (err) {
      await this.releaseLock()
      throw err
    }
  }

  private async startParts (): Promise<void> {
    this.id = this.options.dataDir === undefined ? `mgr-${randomBytes(6).toString('hex')}` : await loadOrCreateMemberId(this.options.dataDir, 'mgr')
    this.logger = this.options.logger.child({ component: 'manager', nodeId: this.id })
    const { key, twinMap: twins } = this.options
    // The announcements' group only: search replies come by unicast.
    const channel = new MulticastChannel(this.id, { ...this.options.multicast, join: ['announcements'], key, logger: this.logger })
    const roster = new Roster({ logger: this.logger })
    const membership = new Membership({ key, selfId: this.id, twins, roster, logger: this.logger })
    const journal = new RepairJournal(this.options.dataDir === undefined ? undefined : join(this.options.dataDir, 'repair-journal'))
    const locator = new Locator(membership, twins, this.options.subnets, () => channel, this.options.locate, this.logger)
    const objects = new ObjectManager(membership, journal, locator, this.logger, this.options.bodyCacheBytes)
    const directories = new DirectoryManager(membership, twins, locator, { partitions: this.options.directoryPartitions, checkMs: this.options.directoryCheckMs }, this.logger)
    const integrity = new Integrity(membership, objects, this.logger)
    const antiEntropy = new AntiEntropy({ membership, directories, objects, selfId: () => this.id, logger: this.logger }, this.options.reconcile)
    objects.beforeFailback = async (member) => { await antiEntropy.reconcileInto(member) }
    const api = new NativeApi({
      objects,
      directories,
      members: membership,
      search: async (fileId, center) => {
        const { replies } = await search(channel, { kind: 'blob', key: fileId, center, windowMs: 100, timeoutMs: 600 })
        return replies.map((r) => ({
          id: r.reply.id,
          center: r.reply.center,
          slot: r.reply.slot,
          address: r.reply.address,
          port: r.reply.port,
          size: r.reply.size,
          sha256: r.reply.sha256,
          ms: Number(r.elapsedMs.toFixed(1))
        }))
      },
      searchOrder: twins.searchOrder(twins.primary),
      centers: twins.centers,
      cluster: async () => clusterView({
        manager: { id: this.id, url: this.url, bodyCache: objects.cache.stats() },
        centers: twins.centers,
        twins: twins.mode,
        directoryPartitions: this.options.directoryPartitions,
        discovery: { members: cadence.members, heartbeatMs: cadence.heartbeatMs, maxAnnounceRate: cadence.maxRate }
      }, membership, integrity.stats, await antiEntropy.view()),
      reconcile: async (pair) => await antiEntropy.runNow(pair),
      maxFileBytes: this.options.maxFileBytes,
      direct: new DirectTransfers(membership, objects, key),
      maxSearches: this.options.httpLimits.maxSearches
    })
    const http = new HttpServer({ host: this.options.host, port: this.options.port, auth: this.auth, router: new Router(api.routes()), limits: this.options.httpLimits, logger: this.logger })
    const s3Http = this.s3Server(objects, directories)
    const bootId = newBootId()
    const announcer = new Announcer(channel, () => ({ id: this.id, role: 'manager', center: twins.primary, slot: 1, address: this.options.host, port: http.port, bootId, free: 0, files: 0 }), this.options.heartbeatMs)
    const cadence: Cadence = new Cadence(channel, roster, announcer, { baseMs: this.options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS, maxRate: this.options.maxAnnounceRate })
    this.http = http
    try {
      await this.lifecycle.start([
        { name: 'repair journal', start: async () => { await journal.open() }, stop: async () => { await journal.close() } },
        { name: 'membership', start: () => { membership.start() }, stop: async () => { await membership.close() } },
        { name: 'directory manager', start: () => { directories.start() }, stop: () => { directories.close() } },
        { name: 'object manager', start: () => {}, stop: () => { objects.close() } },
        { name: 'integrity', start: () => { integrity.start() }, stop: () => { integrity.close() } },
        { name: 'anti-entropy', start: () => { antiEntropy.start() }, stop: async () => { await antiEntropy.close() } },
        { name: 'http', start: async () => { await http.start() }, stop: async () => { await http.close() } },
        { name: 's3', start: async () => { await s3Http?.start() }, stop: async () => { await s3Http?.close() } },
        { name: 'multicast channel', start: async () => { await channel.start() }, stop: async () => { await channel.close() } },
        { name: 'roster', start: () => { roster.start(channel) }, stop: () => { roster.close() } },
        { name: 'announcer', start: async () => { await announcer.start() }, stop: async () => { await announcer.close() } },
        { name: 'cadence', start: () => { cadence.start() }, stop: () => { cadence.close() } }
      ])
    } catch (err) {
      this.http = undefined
      this.s3Http = undefined
      throw err
    }
    this.logger.info('manager listening', { url: this.url, s3Url: this.s3Url, group: `${channel.options.group}:${channel.options.port}`, interface: channel.options.interface })
  }

  private s3Server (objects: ObjectManager, directories: DirectoryManager): HttpServer | undefined {
    const s3 = this.options.s3
    if (s3 === undefined) return undefined
    const keys = new Map(s3.keys.map((k) => [k.accessKeyId, k]))
    const api = new S3Api({
      objects,
      directories,
      keyOf: (id) => keys.get(id),
      maxFileBytes: this.options.maxFileBytes,
      region: s3.region ?? DEFAULT_S3_REGION,
      domains: s3.domains ?? DEFAULT_S3_DOMAINS,
      logger: this.logger.child({ component: 's3' })
    })
    this.s3Http = new HttpServer({ host: this.options.host, port: s3.port, auth: undefined, router: api, limits: this.options.httpLimits, logger: this.logger })
    return this.s3Http
  }

  /** Stops in reverse: the announcer first, so that members stop hearing this manager before it stops answering. */
  async close (): Promise<void> {
    if (this.http === undefined) return
    this.http = undefined
    this.s3Http = undefined
    try {
      await this.lifecycle.stop()
    } finally {
      // last: the journal is closed, nothing uses the dir any more
      await this.releaseLock()
    }
  }

  private async releaseLock (): Promise<void> {
    const lock = this.lock
    this.lock = undefined
    await lock?.release()
  }
}

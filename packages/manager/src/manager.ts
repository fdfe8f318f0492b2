import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { loadOrCreateMemberId, newBootId } from '@mirrorcast/rpc'
import { Announcer, MulticastChannel, Roster, search, type MulticastOptions } from '@mirrorcast/discovery'
import { join } from 'node:path'
import { SubnetMap, TwinMap, type TwinMode } from '@mirrorcast/topology'
import { Locator, type LocateOptions } from './locator.js'
import { Authorizer, type AccessToken } from './auth.js'
import { RepairJournal } from './repair-journal.js'
import { normalizePath, PathError, type Entry, type FileEntry } from '@mirrorcast/wire'
import { DEFAULT_HTTP_HOST, DEFAULT_HTTP_PORT, DEFAULT_MAX_FILE_BYTES } from './config.js'
import { DirectoryManager } from './directory-manager.js'
import { ManagerError, ManagerErrorCode } from './errors.js'
import { parseRange, pipeBody, requestBody, sendError, sendJson } from './http-util.js'
import { Membership } from './membership.js'
import { ObjectManager } from './object-manager.js'
import { Integrity } from './integrity.js'

export interface ManagerOptions {
  key: Uint8Array
  /** The multicast group where members announce themselves (the key is taken from above). */
  multicast?: Omit<MulticastOptions, 'key' | 'logger'>
  heartbeatMs?: number
  /** [primary center, backup center]; for local twins, the one center. */
  centers?: string[]
  /** Twins in two centers (default) or in one (`local`: slots 1↔2, 3↔4…). */
  twins?: TwinMode
  /** Partitions of the namespace: directory server k of a center holds partition k. Fixed for a cluster's life. */
  directoryPartitions?: number
  /** Where the manager keeps its id; without one it takes a new id each start. */
  dataDir?: string
  host?: string
  port?: number
  maxFileBytes?: number
  /** Each center's subnet, e.g. { east: '10.1.0.0/16', west: '10.2.0.0/16' }: twins differ only in it. */
  centerSubnets?: Record<string, string>
  /** Which ways of finding a file after failover are allowed (all by default). */
  locate?: LocateOptions
  /** Access tokens of the HTTP API; without them it listens on loopback only. */
  tokens?: AccessToken[]
  logger?: Logger
}

type Resolved = Required<Omit<ManagerOptions, 'dataDir' | 'logger' | 'heartbeatMs' | 'centerSubnets' | 'centers' | 'twins'>> & { dataDir: string | undefined, logger: Logger, heartbeatMs: number | undefined, subnets: SubnetMap | undefined, twinMap: TwinMap }

const FILES_PREFIX = '/files'
const SHA256_HEADER = 'x-mirrorcast-sha256'
// 1 MiB: bodies from this size on are checked against the namespace before they are sent
const PRECHECK_MIN_BYTES = 1024 * 1024

/** The object manager and directory manager behind one HTTP API. */
export class Manager {
  private readonly options: Resolved
  private server: Server | undefined
  private membership: Membership | undefined
  private channel: MulticastChannel | undefined
  private roster: Roster | undefined
  private announcer: Announcer | undefined
  private journal: RepairJournal | undefined
  private objects: ObjectManager | undefined
  private directories: DirectoryManager | undefined
  private logger: Logger
  private integrity: Integrity | undefined
  private readonly auth: Authorizer
  id = ''

  constructor (options: ManagerOptions) {
    if (options.key.length < 16) throw new TypeError('cluster key must be at least 16 bytes')
    const twinMap = new TwinMap(options.centers ?? (options.twins === 'local' ? ['east'] : ['east', 'west']), options.twins ?? 'centers')
    const directoryPartitions = options.directoryPartitions ?? 1
    if (!Number.isInteger(directoryPartitions) || directoryPartitions < 1 || directoryPartitions > 1024) throw new TypeError('directoryPartitions must be 1 to 1024')
    const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES
    if (!Number.isSafeInteger(maxFileBytes) || maxFileBytes <= 0) throw new TypeError('maxFileBytes must be a positive integer')
    this.options = {
      host: DEFAULT_HTTP_HOST,
      port: DEFAULT_HTTP_PORT,
      multicast: {},
      locate: {},
      tokens: [],
      ...options,
      subnets: options.centerSubnets === undefined ? undefined : new SubnetMap(options.centerSubnets),
      heartbeatMs: options.heartbeatMs,
      twinMap,
      directoryPartitions,
      maxFileBytes,
      dataDir: options.dataDir,
      logger: options.logger ?? silentLogger()
    }
    this.logger = this.options.logger
    this.auth = new Authorizer(this.options.tokens, this.options.host)
  }

  get port (): number {
    const address = this.server?.address()
    if (address === null || address === undefined || typeof address === 'string') throw new Error('manager is not listening')
    return address.port
  }

  get url (): string {
    return `http://${this.options.host}:${this.port}`
  }

  async start (): Promise<void> {
    if (this.server !== undefined) return
    this.id = this.options.dataDir === undefined ? `mgr-${randomBytes(6).toString('hex')}` : await loadOrCreateMemberId(this.options.dataDir, 'mgr')
    this.logger = this.options.logger.child({ component: 'manager', nodeId: this.id })
    const { key, twinMap: twins } = this.options
    this.channel = new MulticastChannel(this.id, { ...this.options.multicast, key, logger: this.logger })
    this.roster = new Roster({ logger: this.logger })
    this.membership = new Membership({ key, selfId: this.id, twins, roster: this.roster, logger: this.logger })
    this.membership.start()
    this.journal = new RepairJournal(this.options.dataDir === undefined ? undefined : join(this.options.dataDir, 'repair-journal'))
    await this.journal.open()
    const locator = new Locator(this.membership, twins, this.options.subnets, () => this.channel, this.options.locate, this.logger)
    this.objects = new ObjectManager(this.membership, this.journal, locator, this.logger)
    this.directories = new DirectoryManager(this.membership, twins, locator, { partitions: this.options.directoryPartitions }, this.logger)
    this.directories.start()
    this.integrity = new Integrity(this.membership, this.objects, this.logger)
    this.integrity.start()
    const server = createServer((req, res) => { void this.route(req, res) })
    this.server = server
    try {
      server.listen(this.options.port, this.options.host)
      await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
      await this.channel.start()
      this.roster.start(this.channel)
      const bootId = newBootId()
      this.announcer = new Announcer(this.channel, () => ({ id: this.id, role: 'manager', center: twins.primary, slot: 1, address: this.options.host, port: this.port, bootId, free: 0, files: 0 }), this.options.heartbeatMs)
      await this.announcer.start()
    } catch (err) {
      // a manager that cannot start leaves nothing running: its intervals, its journal, its sockets
      await this.close().catch(() => {})
      throw err
    }
    this.logger.info('manager listening', { url: this.url, group: `${this.channel.options.group}:${this.channel.options.port}`, interface: this.channel.options.interface })
  }

  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
    this.integrity?.close()
    this.objects?.close()
    this.directories?.close()
    await this.announcer?.close()
    this.roster?.close()
    await this.channel?.close()
    await this.membership?.close()
    await this.journal?.close()
  }

  private async route (req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      this.auth.check(req, res)
      // The raw path, not new URL(): URL parsing would resolve `..` before the path rules could refuse it.
      const [pathname = '/', query = ''] = (req.url ?? '/').split('?', 2)
      if (pathname === FILES_PREFIX || pathname.startsWith(FILES_PREFIX + '/')) {
        await this.files(req, res, pathname.slice(FILES_PREFIX.length), new URLSearchParams(query))
      } else if (pathname === '/cluster' && req.method === 'GET') {
        sendJson(res, 200, this.cluster())
      } else if (pathname.startsWith('/cluster/nodes/') && req.method === 'POST') {
        this.failoverByHand(res, pathname.slice('/cluster/nodes/'.length))
      } else if (pathname === '/search' && req.method === 'GET') {
        await this.search(res, new URLSearchParams(query))
      } else {
        throw new ManagerError(ManagerErrorCode.NOT_FOUND, `no such endpoint: ${req.method ?? ''} ${pathname.slice(0, 100)}`)
      }
    } catch (err) {
      this.logRequestError(req, err)
      if (!req.complete) res.setHeader('connection', 'close')
      sendError(res, err)
    }
  }

  /** `POST /cluster/nodes/<id>/failover|failback`. */
  private failoverByHand (res: ServerResponse, rest: string): void {
    const [id = '', action, extra] = rest.split('/')
    const membership = this.membership as Membership
    const member = membership.byId(decodeURIComponent(id))
    if (member === undefined || extra !== undefined) throw new ManagerError(ManagerErrorCode.NOT_FOUND, `no member ${JSON.stringify(id.slice(0, 80))}`)
    if (action === 'failover') membership.enterFailover(member, 'by hand', true)
    else if (action === 'failback') {
      if (!membership.requestFailback(member, true)) throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `${member.id} is not heard on the multicast group: it cannot come back yet`)
    } else throw new ManagerError(ManagerErrorCode.NOT_FOUND, 'use /cluster/nodes/<id>/failover or /failback')
    sendJson(res, 200, membership.view().find((m) => m.id === member.id))
  }

  /**
   * `GET /search?key=<path|file id>[&center=C]`: a multicast search for the
   * holders of a file; without a center, the backup center is asked first,
   * then the primary center.
   */
  private async search (res: ServerResponse, q: URLSearchParams): Promise<void> {
    const key = q.get('key') ?? ''
    let fileId = key
    if (!/^[0-9a-f]{32}$/.test(key)) {
      const entry = await (this.directories as DirectoryManager).stat(normalizePath(key))
      if (entry.type !== 'file') throw new ManagerError('ERR_DIR_IS_A_DIRECTORY', `${key} is a directory`)
      fileId = entry.fileId
    }
    const center = q.get('center')
    const centers = center === null ? this.options.twinMap.searchOrder(this.options.twinMap.primary) : [center]
    const rounds = []
    for (const c of centers) {
      const { replies } = await search(this.channel as MulticastChannel, { kind: 'blob', key: fileId, center: c, windowMs: 100, timeoutMs: 600 })
      rounds.push({ center: c, holders: replies.map((r) => ({ id: r.reply.id, center: r.reply.center, slot: r.reply.slot, address: r.reply.address, port: r.reply.port, size: r.reply.size, sha256: r.reply.sha256, ms: Number(r.elapsedMs.toFixed(1)) })) })
    }
    sendJson(res, 200, { key, fileId, rounds })
  }

  private logRequestError (req: IncomingMessage, err: unknown): void {
    const code = (err as { code?: unknown }).code
    const level = typeof code === 'string' ? 'debug' : 'error'
    this.logger.log(level, 'request failed', { method: req.method, url: req.url?.slice(0, 200), code, error: (err as Error).message, stack: level === 'error' ? (err as Error).stack : undefined })
  }

  private async files (req: IncomingMessage, res: ServerResponse, encodedPath: string, q: URLSearchParams): Promise<void> {
    let raw: string
    try {
      raw = decodeURIComponent(encodedPath) || '/'
    } catch {
      throw new PathError('path is not valid percent-encoding')
    }
    const path = normalizePath(raw)
    const isDirPath = raw.endsWith('/')
    switch (req.method) {
      case 'PUT':
        if (isDirPath) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'PUT needs a file path, not one ending in /')
        return await this.putFile(req, res, path)
      case 'GET':
      case 'HEAD':
        return await this.getPath(req, res, path, q)
      case 'DELETE':
        return await this.deletePath(res, path, q.has('recursive'))
      case 'POST':
        if (q.has('mkdir')) return await this.mkdir(res, path, q.has('parents'))
        if (q.has('move-to')) return await this.move(res, path, normalizePath(q.get('move-to')))
        throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'POST needs ?mkdir or ?move-to=<path>')
      default:
        throw new ManagerError(ManagerErrorCode.METHOD_NOT_ALLOWED, `method ${String(req.method)} is not allowed on /files`)
    }
  }

  private async putFile (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const objects = this.objects as ObjectManager
    const directories = this.directories as DirectoryManager
    const size = declaredLength(req, this.options.maxFileBytes)
    const expectedSha = req.headers[SHA256_HEADER]
    if (expectedSha !== undefined && (typeof expectedSha !== 'string' || !/^[0-9a-f]{64}$/.test(expectedSha))) {
      throw new ManagerError(ManagerErrorCode.BAD_REQUEST, `${SHA256_HEADER} must be 64 lowercase hex digits`)
    }
    // A large body is not sent just to be refused: check first what the commit would refuse.
    // For a small one the round trip costs more than the upload, and the commit refuses it all the same.
    if (size >= PRECHECK_MIN_BYTES) {
      const existing = await directories.lookup(path)
      if (existing?.type === 'dir') throw new ManagerError('ERR_DIR_IS_A_DIRECTORY', `${path} is a directory`)
    }
    const abort = new AbortController()
    const onClose = (): void => { if (!req.complete) abort.abort(new ManagerError(ManagerErrorCode.UPLOAD_INCOMPLETE, 'client went away')) }
    req.once('close', onClose)
    let body
    try {
      body = await objects.write(requestBody(req), size, abort.signal)
    } finally {
      req.off('close', onClose)
    }
    try {
      if (expectedSha !== undefined && expectedSha !== body.sha256) {
        throw new ManagerError(ManagerErrorCode.CHECKSUM_MISMATCH, `body sha256 ${body.sha256} is not the ${SHA256_HEADER} ${expectedSha}`)
      }
      const { change, removed } = await directories.put({ type: 'file', path, fileId: body.fileId, size: body.size, sha256: body.sha256, replicas: body.replicas })
      await Promise.all(removed.map(async (old) => await objects.remove(old)))
      if (change.op !== 'put') throw new Error(`directory answered a put with a ${change.op}`)
      sendJson(res, 201, this.describe(change.entry))
    } catch (err) {
      await objects.remove(body)
      throw err
    }
  }

  private async getPath (req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams): Promise<void> {
    const directories = this.directories as DirectoryManager
    const entry = await directories.stat(path)
    if (q.has('stat')) {
      sendJson(res, 200, this.describe(entry))
      return
    }
    if (entry.type === 'dir') {
      const limit = q.has('limit') ? Number(q.get('limit')) : undefined
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 1 || limit > 10_000)) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'limit must be 1 to 10000')
      const page = await directories.list(path, q.get('after') ?? undefined, limit)
      if (req.method === 'HEAD') { res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(); return }
      sendJson(res, 200, { path, type: 'dir', entries: page.entries.map((e) => this.describe(e)), more: page.more })
      return
    }
    await this.sendFile(req, res, path, entry)
  }

  /**
   * Streams a file. A read that no replica can serve may have raced a delete
   * or an overwrite of the same path (the old body is removed after the entry
   * changed): the entry is read again, and the answer is then 404 or the new version.
   */
  private async sendFile (req: IncomingMessage, res: ServerResponse, path: string, first: FileEntry): Promise<void> {
    const abort = new AbortController()
    res.once('close', () => { if (!res.writableFinished) abort.abort(new ManagerError(ManagerErrorCode.BAD_REQUEST, 'client went away')) })
    let entry = first
    for (let attempt = 0; ; attempt++) {
      const range = parseRange(req.headers.range, entry.size)
      const offset = range?.offset ?? 0
      const length = range?.length ?? entry.size
      const headers: Record<string, string | number> = {
        'content-type': 'application/octet-stream',
        'content-length': length,
        etag: `"${entry.sha256}"`,
        'accept-ranges': 'bytes',
        'last-modified': new Date(entry.mtime).toUTCString(),
        'x-mirrorcast-version': entry.version,
        'x-mirrorcast-id': entry.fileId
      }
      if (range !== undefined) headers['content-range'] = `bytes ${offset}-${offset + length - 1}/${entry.size}`
      const status = range === undefined ? 200 : 206
      if (req.method === 'HEAD' || length === 0) {
        res.writeHead(status, headers).end()
        return
      }
      const body = (this.objects as ObjectManager).read(entry, offset, length, abort.signal)
      let head: IteratorResult<Buffer>
      try {
        // Headers wait for the first bytes, so a read no replica can serve is still a clean error.
        head = await body.next()
      } catch (err) {
        if ((err as { code?: string }).code !== ManagerErrorCode.NO_REPLICA || attempt > 0) throw err
        const now = await (this.directories as DirectoryManager).lookup(path)
        if (now === undefined) throw new ManagerError('ERR_DIR_NOT_FOUND', `${path} was removed while it was being read`)
        if (now.type !== 'file' || now.fileId === entry.fileId) throw err
        entry = now
        continue
      }
      res.writeHead(status, headers)
      if (head.done !== true) res.write(head.value)
      await pipeBody(res, body)
      res.end()
      return
    }
  }

  private async deletePath (res: ServerResponse, path: string, recursive: boolean): Promise<void> {
    const { removed } = await (this.directories as DirectoryManager).remove(path, recursive)
    await Promise.all(removed.map(async (old) => await (this.objects as ObjectManager).remove(old)))
    sendJson(res, 200, { path, removed: removed.length })
  }

  private async mkdir (res: ServerResponse, path: string, parents: boolean): Promise<void> {
    const directories = this.directories as DirectoryManager
    await directories.mkdir(path, parents)
    sendJson(res, 201, this.describe(await directories.stat(path)))
  }

  private async move (res: ServerResponse, path: string, to: string): Promise<void> {
    const directories = this.directories as DirectoryManager
    const { removed } = await directories.rename(path, to)
    await Promise.all(removed.map(async (old) => await (this.objects as ObjectManager).remove(old)))
    sendJson(res, 200, this.describe(await directories.stat(to)))
  }

  private describe (entry: Entry): Record<string, unknown> {
    const name = entry.path === '/' ? '/' : entry.path.slice(entry.path.lastIndexOf('/') + 1)
    if (entry.type === 'dir') return { path: entry.path, name, type: 'dir', version: entry.version, mtime: new Date(entry.mtime).toISOString() }
    return { ...fileJson(entry, this.membership as Membership), name }
  }

  private cluster (): Record<string, unknown> {
    const twins = this.options.twinMap
    return { manager: { id: this.id, url: this.url }, centers: twins.centers, twins: twins.mode, directoryPartitions: this.options.directoryPartitions, nodes: (this.membership as Membership).view(), pairs: this.pairs(), integrity: this.integrity?.stats }
  }

  /** Every twin pair, storage and directory, with the state of each side: what `mirrorcast status` shows. */
  private pairs (): Array<Record<string, unknown>> {
    const membership = this.membership as Membership
    const side = (m: ReturnType<Membership['atPlace']>): Record<string, unknown> | null => m === undefined ? null : { id: m.id, name: m.name, address: m.address, status: m.health, failover: m.failover === undefined ? null : { since: new Date(m.failover.since).toISOString(), reason: m.failover.reason, manual: m.failover.manual } }
    return (['storage', 'directory'] as const).flatMap((role) => membership.pairViews(role).map(({ index, members: [p, t] }) => ({ role, index, primary: side(p), twin: side(t) })))
  }
}

function fileJson (entry: FileEntry, membership: Membership): Record<string, unknown> {
  return {
    path: entry.path,
    type: 'file',
    id: entry.fileId,
    size: entry.size,
    sha256: entry.sha256,
    version: entry.version,
    mtime: new Date(entry.mtime).toISOString(),
    replicas: entry.replicas.map((r) => ({ node: r.node, center: r.center, slot: r.slot, address: (membership.byId(r.node) ?? membership.find('storage', r.center, r.slot))?.address ?? null }))
  }
}

function declaredLength (req: IncomingMessage, max: number): number {
  const header = req.headers['content-length']
  if (header === undefined) {
    throw new ManagerError(ManagerErrorCode.LENGTH_REQUIRED, 'PUT needs a Content-Length (chunked uploads are not accepted)')
  }
  const size = Number(header)
  if (!/^\d+$/.test(header) || !Number.isSafeInteger(size)) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'Content-Length is not a number')
  if (size > max) throw new ManagerError(ManagerErrorCode.TOO_LARGE, `body of ${size} bytes exceeds the limit of ${max}`)
  return size
}

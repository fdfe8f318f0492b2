import type { IncomingMessage, ServerResponse } from 'node:http'
import { DirectoryErrorCode, normalizePath, parseRange, PathError, type FileEntry } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import type { DirectoryManager } from '../directory/directory-manager.js'
import type { Membership } from '../cluster/membership.js'
import type { ObjectManager } from '../objects/object-manager.js'
import type { DirectTransfers } from '../objects/direct-transfers.js'
import { centerParameter, decodePart, flag, listingCursor, listingLimit, pairParameter, pathParameter, searchKey, sizeParameter } from './params.js'
import { pipeBody, requestBody, sendJson } from './respond.js'
import type { RequestContext, Route } from './router.js'
import { entryView, type MemberDirectory } from './views.js'

const SHA256_HEADER = 'x-mirrorcast-sha256'
// 1 MiB: bodies from this size on are checked against the namespace before they are sent
const PRECHECK_MIN_BYTES = 1024 * 1024
// Sent by a client that follows a redirect to the storage node (the CLI does): `allow`
export const REDIRECT_HEADER = 'x-mirrorcast-redirect'
// A PUT that names a body already uploaded to a storage node by locator carries the node's receipt
export const RECEIPT_HEADER = 'x-mirrorcast-receipt'
// 1 s: when a client refused for too many searches may try again; a search's rounds take 0.6 s at most each
const SEARCH_RETRY_AFTER_S = 1

/** What the native API needs of the object manager, the directory manager and the membership. */
export interface NativeApiDeps {
  objects: Pick<ObjectManager, 'write' | 'read' | 'remove' | 'removeAll'>
  directories: Pick<DirectoryManager, 'stat' | 'lookup' | 'list' | 'put' | 'remove' | 'mkdir' | 'rename'>
  members: MemberDirectory & Pick<Membership, 'enterFailover' | 'requestFailback'>
  /** One multicast search round for a file's holders in one center. */
  search: (fileId: string, center: string) => Promise<Array<Record<string, unknown>>>
  /** The centers a search asks when the client names none: the backup first. */
  searchOrder: string[]
  /** Every center of the cluster: the ones a client may name. */
  centers: readonly string[]
  cluster: () => Promise<Record<string, unknown>>
  /** Reconciles every storage pair (or one) now; answers once done, with each pair's status. */
  reconcile: (pair?: number) => Promise<unknown[]>
  maxFileBytes: number
  /** Bodies between a client and a storage node, when that pays (see direct-transfers.ts). */
  direct: Pick<DirectTransfers, 'downloadUrl' | 'uploadLocator' | 'accept' | 'used'>
  /** Searches served at once; each sends a datagram to a whole center and holds a reply socket open. */
  maxSearches: number
}

/** The native API: `/files/<path>`, `/cluster`, `/cluster/nodes/<id>/<action>`, `/search`. */
export class NativeApi {
  private searching = 0

  constructor (private readonly deps: NativeApiDeps) {}

  routes (): Route[] {
    const files = async (req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> => { await this.files(req, res, ctx) }
    return [
      { path: '/files', prefix: true, methods: { PUT: files, GET: files, HEAD: files, DELETE: files, POST: files } },
      { path: '/cluster', methods: { GET: async (_req, res) => { sendJson(res, 200, await this.deps.cluster()) } } },
      { path: '/cluster/reconcile', methods: { POST: async (_req, res, ctx) => { await this.reconcile(res, ctx.query) } } },
      { path: '/cluster/nodes', prefix: true, methods: { POST: (_req, res, ctx) => { this.failoverByHand(res, ctx.rest.slice(1)) } } },
      { path: '/search', methods: { GET: async (_req, res, ctx) => { await this.search(res, ctx.query) } } }
    ]
  }

  private async files (req: IncomingMessage, res: ServerResponse, { rest, query: q }: RequestContext): Promise<void> {
    let raw: string
    try {
      raw = decodeURIComponent(rest) || '/'
    } catch {
      throw new PathError('path is not valid percent-encoding')
    }
    const path = normalizePath(raw)
    switch (req.method) {
      case 'PUT':
        if (raw.endsWith('/')) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'PUT needs a file path, not one ending in /')
        return await this.putFile(req, res, path)
      case 'DELETE':
        return await this.deletePath(res, path, flag(q, 'recursive'))
      case 'POST':
        return await this.post(res, path, q)
      default:
        return await this.getPath(req, res, path, q)
    }
  }

  /** `POST /files/<dir>/?mkdir[&parents]`, `POST /files/<path>?move-to=<path>` or `POST /files/<path>?upload-locator&size=N`. */
  private async post (res: ServerResponse, path: string, q: URLSearchParams): Promise<void> {
    const asked = ['mkdir', 'move-to', 'upload-locator'].filter((p) => q.has(p))
    if (asked.length > 1) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, `POST takes one of ?mkdir, ?move-to=<path> and ?upload-locator, not ${asked.join(' and ')}`)
    if (flag(q, 'mkdir')) return await this.mkdir(res, path, flag(q, 'parents'))
    if (q.has('move-to')) return await this.move(res, path, pathParameter(q, 'move-to'))
    if (flag(q, 'upload-locator')) return await this.uploadLocator(res, path, sizeParameter(q, this.deps.maxFileBytes))
    throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'POST needs ?mkdir, ?move-to=<path> or ?upload-locator&size=N')
  }

  /**
   * Where to upload a body of `size` bytes straight to a storage node (which
   * sends its twin the copy and answers a receipt), or `url: null` and why
   * the body should come here instead. Nothing is named until the receipt is PUT.
   */
  private async uploadLocator (res: ServerResponse, path: string, size: number): Promise<void> {
    const existing = await this.deps.directories.lookup(path)
    if (existing?.type === 'dir') throw new ManagerError(DirectoryErrorCode.IS_A_DIRECTORY, `${path} is a directory`)
    sendJson(res, 200, this.deps.direct.uploadLocator(size))
  }

  /** `POST /cluster/nodes/<id>/failover|failback`. */
  private failoverByHand (res: ServerResponse, rest: string): void {
    const [id = '', action, extra] = rest.split('/')
    const { members } = this.deps
    const member = members.byId(decodePart('member id', id))
    if (member === undefined || extra !== undefined) throw new ManagerError(ManagerErrorCode.NOT_FOUND, `no member ${JSON.stringify(id.slice(0, 80))}`)
    if (action === 'failover') members.enterFailover(member, 'by hand', true)
    else if (action === 'failback') {
      if (!members.requestFailback(member, true)) throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `${member.id} is not heard on the multicast group: it cannot come back yet`)
    } else throw new ManagerError(ManagerErrorCode.NOT_FOUND, 'use /cluster/nodes/<id>/failover or /failback')
    sendJson(res, 200, members.view().find((m) => m.id === member.id))
  }

  /** `POST /cluster/reconcile[?pair=N]`: a round of anti-entropy now, answered when it is done. */
  private async reconcile (res: ServerResponse, q: URLSearchParams): Promise<void> {
    const pair = pairParameter(q, this.deps.members.pairViews('storage').map((p) => p.index))
    sendJson(res, 200, { pairs: await this.deps.reconcile(pair) })
  }

  /**
   * `GET /search?key=<path|file id>[&center=C]`: a multicast search for the
   * holders of a file; without a center, the backup center is asked first,
   * then the primary center.
   */
  private async search (res: ServerResponse, q: URLSearchParams): Promise<void> {
    const given = searchKey(q)
    const center = centerParameter(q, this.deps.centers)
    const fileId = 'fileId' in given ? given.fileId : await this.fileIdOf(given.path)
    // Each search multicasts to a whole center: a client looping on /search must not turn the manager into a flood.
    if (this.searching >= this.deps.maxSearches) {
      res.setHeader('retry-after', String(SEARCH_RETRY_AFTER_S))
      throw new ManagerError(ManagerErrorCode.BUSY, `${this.deps.maxSearches} searches are running, the most the manager serves at once (max-searches): try again`)
    }
    this.searching++
    try {
      const rounds = []
      for (const c of center === undefined ? this.deps.searchOrder : [center]) rounds.push({ center: c, holders: await this.deps.search(fileId, c) })
      sendJson(res, 200, { key: given.key, fileId, rounds })
    } finally {
      this.searching--
    }
  }

  private async fileIdOf (path: string): Promise<string> {
    const entry = await this.deps.directories.stat(path)
    if (entry.type !== 'file') throw new ManagerError(DirectoryErrorCode.IS_A_DIRECTORY, `${path} is a directory`)
    return entry.fileId
  }

  private async putFile (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const { objects, directories } = this.deps
    const expectedSha = sha256Header(req)
    const receipt = req.headers[RECEIPT_HEADER]
    if (typeof receipt === 'string') return await this.commitUpload(req, res, path, receipt, expectedSha)
    const size = declaredLength(req, this.deps.maxFileBytes)
    // A large body is not sent just to be refused: check first what the commit would refuse.
    // For a small one the round trip costs more than the upload, and the commit refuses it all the same.
    if (size >= PRECHECK_MIN_BYTES) {
      const existing = await directories.lookup(path)
      if (existing?.type === 'dir') throw new ManagerError(DirectoryErrorCode.IS_A_DIRECTORY, `${path} is a directory`)
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
      await this.name(res, { path, fileId: body.fileId, size: body.size, sha256: body.sha256, replicas: body.replicas })
    } catch (err) {
      await objects.remove(body)
      throw err
    }
  }

  /**
   * `PUT /files/<path>` with a receipt and no body: names the body a storage
   * node took by locator. The same receipt again for the same path answers the
   * entry it made (a client that lost the answer may ask again); for another
   * path it is refused. A body never named is an orphan, which anti-entropy
   * removes after its grace, as for any upload that failed before its entry.
   */
  private async commitUpload (req: IncomingMessage, res: ServerResponse, path: string, token: string, expectedSha: string | undefined): Promise<void> {
    const length = req.headers['content-length']
    if (length !== undefined && length !== '0') throw new ManagerError(ManagerErrorCode.BAD_REQUEST, `a PUT with ${RECEIPT_HEADER} names a body already uploaded: it has no body of its own`)
    const { receipt, replicas } = this.deps.direct.accept(token, path)
    if (expectedSha !== undefined && expectedSha !== receipt.sha256) {
      throw new ManagerError(ManagerErrorCode.CHECKSUM_MISMATCH, `body sha256 ${receipt.sha256} is not the ${SHA256_HEADER} ${expectedSha}`)
    }
    const existing = await this.deps.directories.lookup(path)
    if (existing?.type === 'file' && existing.fileId === receipt.fileId) {
      sendJson(res, 201, entryView(existing, this.deps.members))
      return
    }
    await this.name(res, { path, fileId: receipt.fileId, size: receipt.size, sha256: receipt.sha256, replicas })
    this.deps.direct.used(receipt, path)
  }

  /** The entry for a stored body, answered 201; the bodies it replaced go. */
  private async name (res: ServerResponse, file: Pick<FileEntry, 'path' | 'fileId' | 'size' | 'sha256' | 'replicas'>): Promise<void> {
    const { change, removed } = await this.deps.directories.put({ type: 'file', ...file })
    await this.deps.objects.removeAll(removed.filter((r) => r.fileId !== file.fileId))
    if (change.op !== 'put') throw new Error(`directory answered a put with a ${change.op}`)
    sendJson(res, 201, entryView(change.entry, this.deps.members))
  }

  private async getPath (req: IncomingMessage, res: ServerResponse, path: string, q: URLSearchParams): Promise<void> {
    const { directories } = this.deps
    // every parameter is checked before the directory server is asked anything
    const stat = flag(q, 'stat')
    const after = listingCursor(q)
    const limit = listingLimit(q)
    const entry = await directories.stat(path)
    if (stat) {
      sendJson(res, 200, entryView(entry, this.deps.members))
      return
    }
    if (entry.type === 'dir') {
      const page = await directories.list(path, after, limit)
      if (req.method === 'HEAD') { res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(); return }
      sendJson(res, 200, { path, type: 'dir', entries: page.entries.map((e) => entryView(e, this.deps.members)), more: page.more })
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
    if (req.method === 'GET' && req.headers[REDIRECT_HEADER] === 'allow' && this.redirect(res, first)) return
    const abort = new AbortController()
    res.once('close', () => { if (!res.writableFinished) abort.abort(new ManagerError(ManagerErrorCode.BAD_REQUEST, 'client went away')) })
    let entry = first
    for (let attempt = 0; ; attempt++) {
      const range = parseRange(req.headers.range, entry.size)
      const offset = range?.offset ?? 0
      const length = range?.length ?? entry.size
      const status = range === undefined ? 200 : 206
      const headers = fileHeaders(entry, offset, length, range !== undefined)
      if (req.method === 'HEAD' || length === 0) {
        res.writeHead(status, headers).end()
        return
      }
      const body = this.deps.objects.read(entry, offset, length, abort.signal)
      let head: IteratorResult<Buffer>
      try {
        // Headers wait for the first bytes, so a read no replica can serve is still a clean error.
        head = await body.next()
      } catch (err) {
        if ((err as { code?: string }).code !== ManagerErrorCode.NO_REPLICA || attempt > 0) throw err
        const now = await this.deps.directories.lookup(path)
        if (now === undefined) throw new ManagerError(DirectoryErrorCode.NOT_FOUND, `${path} was removed while it was being read`)
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

  /** A 307 to the file's home node, for a client that asked for one: the body then does not pass through the manager. */
  private redirect (res: ServerResponse, entry: FileEntry): boolean {
    const location = this.deps.direct.downloadUrl(entry)
    if (location === undefined) return false
    const { 'content-length': _, ...headers } = fileHeaders(entry, 0, entry.size, false)
    res.writeHead(307, { ...headers, location, 'cache-control': 'no-store', 'content-length': 0 }).end()
    return true
  }

  private async deletePath (res: ServerResponse, path: string, recursive: boolean): Promise<void> {
    const { removed } = await this.deps.directories.remove(path, recursive)
    await this.deps.objects.removeAll(removed)
    sendJson(res, 200, { path, removed: removed.length })
  }

  private async mkdir (res: ServerResponse, path: string, parents: boolean): Promise<void> {
    const { directories } = this.deps
    await directories.mkdir(path, parents)
    sendJson(res, 201, entryView(await directories.stat(path), this.deps.members))
  }

  private async move (res: ServerResponse, path: string, to: string): Promise<void> {
    const { directories } = this.deps
    const { removed } = await directories.rename(path, to)
    await this.deps.objects.removeAll(removed)
    sendJson(res, 200, entryView(await directories.stat(to), this.deps.members))
  }
}

function fileHeaders (entry: FileEntry, offset: number, length: number, ranged: boolean): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    'content-type': 'application/octet-stream',
    'content-length': length,
    etag: `"${entry.sha256}"`,
    'accept-ranges': 'bytes',
    'last-modified': new Date(entry.mtime).toUTCString(),
    'x-mirrorcast-version': entry.version,
    'x-mirrorcast-id': entry.fileId
  }
  if (ranged) headers['content-range'] = `bytes ${offset}-${offset + length - 1}/${entry.size}`
  return headers
}

function sha256Header (req: IncomingMessage): string | undefined {
  const value = req.headers[SHA256_HEADER]
  if (value !== undefined && (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value))) {
    throw new ManagerError(ManagerErrorCode.BAD_REQUEST, `${SHA256_HEADER} must be 64 lowercase hex digits`)
  }
  return value
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

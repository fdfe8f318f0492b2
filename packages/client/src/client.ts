import type { IncomingHttpHeaders } from 'node:http'
import { Readable } from 'node:stream'
import { Agent } from 'undici'
import {
  DEFAULT_BODY_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_CONNECTIONS,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_KEEP_ALIVE_TIMEOUT_MS,
  DEFAULT_URL,
  DIRECT_UPLOAD_MIN_BYTES,
  RECEIPT_HEADER,
  REDIRECT_HEADER,
  SHA256_HEADER
} from './constants.js'
import { ClientError, ClientErrorCode, answerError } from './errors.js'
import type { ClusterView, DirEntry, ReconcileRound, Entry, FileEntry, ListPage, MemberView, RemoveResult, SearchResult } from './types.js'

export interface ClientOptions {
  /** The manager's URL (default DEFAULT_URL). With `socketPath`, only its host is used: in the Host header. */
  url?: string
  /** Access token sent with every request (`Authorization: Bearer <token>`). */
  token?: string
  /** Connect to this Unix socket (a relay to the manager) instead of the URL's host and port. */
  socketPath?: string
  /** Longest wait for a connection, ms (default DEFAULT_CONNECT_TIMEOUT_MS). */
  connectTimeoutMs?: number
  /** Longest wait for an answer's headers once the request is sent, ms; 0: none (default DEFAULT_HEADERS_TIMEOUT_MS). */
  headersTimeoutMs?: number
  /** Longest gap between two chunks of an answer's body, ms; 0: none (default DEFAULT_BODY_TIMEOUT_MS). */
  bodyTimeoutMs?: number
  /** An idle connection is closed after this, ms; keep it below the manager's 5 s (default DEFAULT_KEEP_ALIVE_TIMEOUT_MS). */
  keepAliveTimeoutMs?: number
  /** Connections to the manager at most (default DEFAULT_CONNECTIONS). */
  connections?: number
}

export interface ResolvedClientOptions {
  url: URL
  token: string | undefined
  socketPath: string | undefined
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  keepAliveTimeoutMs: number
  connections: number
}

/** A request body: bytes, or a stream of them (a PUT of a stream needs its size). */
export type RequestBody = Buffer | Uint8Array | string | Readable | AsyncIterable<Uint8Array>

export interface RequestOptions {
  /** Default GET. */
  method?: string
  /**
   * Sent exactly as given: not normalised, not encoded (tests send bad paths
   * on purpose). The typed methods build it with `filesPath()`.
   */
  path: string
  /** Header names are case-insensitive; a `content-length` of a stream body is sent as is. */
  headers?: Record<string, string | number | readonly string[]>
  body?: RequestBody
  /** This request's own headers and body timeouts, ms (0: none). */
  headersTimeoutMs?: number
  bodyTimeoutMs?: number
  signal?: AbortSignal
}

/** An answer as it arrives: any status, the body a stream (read it, or `destroy()` it to free the connection). */
export interface ClientResponse {
  status: number
  headers: IncomingHttpHeaders
  /** Fails with a ClientError. */
  body: Readable
}

/** An answer with its whole body. */
export interface BufferedResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

export interface PutOptions {
  /** Bytes in the body: required for a stream, checked for bytes. */
  size?: number
  /** The body's sha256 (hex): the manager refuses the upload if the body has another. */
  sha256?: string
  signal?: AbortSignal
  /**
   * Send a large body straight to a storage node, which sends its twin the
   * copy, when the manager offers a locator (the body then does not pass
   * through the manager). Whatever fails at the node, the upload is made
   * again through the manager, so a stream body needs `reopen`; without it,
   * a stream goes through the manager. Ignored with `socketPath`.
   */
  direct?: boolean
  /** The same body again from its start, for a direct upload that must be made again. */
  reopen?: () => RequestBody
  /** Told, in a sentence, each time a direct upload falls back to the manager. */
  onNote?: (message: string) => void
}

export interface ByteRange {
  offset: number
  /** Default: to the end of the file. */
  length?: number
}

export interface GetOptions {
  range?: ByteRange
  signal?: AbortSignal
  /**
   * Take a large file's body straight from its storage node when the manager
   * offers it (a 307 to a signed locator: the body then does not pass through
   * the manager). Whatever fails at the node, before or during the body, the
   * download goes on through the manager, which reads the twin if need be.
   * Ignored with `socketPath` (the nodes are then out of reach).
   */
  direct?: boolean
  /** Told, in a sentence, each time a direct download falls back to the manager. */
  onNote?: (message: string) => void
}

/** The headers of a file's answer. */
export interface FileHead {
  type: 'file'
  status: number
  headers: IncomingHttpHeaders
  /** Bytes in this answer: the range's length for a 206. */
  length: number
  /** The whole file's size. */
  size: number
  sha256: string
  version: number
  id: string
}

export interface FileDownload extends FileHead {
  /** Fails with a ClientError (ERR_CLIENT_CONNECTION_LOST when the answer is cut). */
  body: Readable
}

/**
 * The manager's HTTP API, on undici: one pool of keep-alive connections,
 * timeouts, and every failure a ClientError with a stable `code` (the
 * manager's own code for an error answer).
 *
 * Keep-alive and a connection the server closes as idle: the manager is a
 * node:http server that closes a connection idle for 5 s (its default
 * keepAliveTimeout, announced as `Keep-Alive: timeout=5`). A request written on
 * a connection at the moment the server closes it fails with a reset, and
 * undici does not send it again: it re-dispatches only requests it had not
 * begun to write, never the one in flight, and a streamed PUT body could not
 * be sent twice anyway. So the client must never be the one holding a
 * connection the server is about to close: it closes an idle connection itself
 * after keepAliveTimeoutMs (2 s), whatever the server's header says
 * (keepAliveMaxTimeout is the same value), 3 s before the manager would; and
 * undici 7.30 (as pinned), before it reuses an idle connection, lets the event
 * loop process a FIN or reset already received on it. A request then goes out
 * on a connection the manager is closing only if this process's own idle timer
 * ran 3 s late. There are no automatic retries: tests and the test bed count every
 * failed request, and a retry here would hide a failure of the manager.
 */
export class MirrorcastClient {
  readonly options: ResolvedClientOptions
  private readonly agent: Agent
  private readonly origin: string
  /** Where the manager is, in messages. */
  private readonly where: string
  private closing: Promise<void> | undefined

  constructor (options: ClientOptions = {}) {
    this.options = resolveOptions(options)
    const o = this.options
    this.origin = o.url.origin
    this.where = o.socketPath === undefined ? this.origin : `${this.origin} (through ${o.socketPath})`
    // No socket is opened before the first request.
    this.agent = new Agent({
      connect: { timeout: o.connectTimeoutMs, ...(o.socketPath === undefined ? {} : { socketPath: o.socketPath }) },
      headersTimeout: o.headersTimeoutMs,
      bodyTimeout: o.bodyTimeoutMs,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      keepAliveMaxTimeout: o.keepAliveTimeoutMs,
      connections: o.connections
    })
  }

  /** The manager's origin (`http://host:port`). */
  get url (): string {
    return this.origin
  }

  /** One request, raw: any status comes back as an answer, only a failure to get one throws. */
  async request (options: RequestOptions): Promise<ClientResponse> {
    if (this.closing !== undefined) throw new ClientError(ClientErrorCode.CLOSED, 'the client is closed')
    const { signal } = options
    const failures = new WeakSet<object>()
    const body = streamBody(options.body, failures)
    const timeouts = { headers: options.headersTimeoutMs ?? this.options.headersTimeoutMs, body: options.bodyTimeoutMs ?? this.options.bodyTimeoutMs }
    const fail = (err: unknown): ClientError => this.failure(err, { signal, failures, timeouts })
    let res
    try {
      res = await this.agent.request({
        origin: this.origin,
        path: options.path,
        method: options.method ?? 'GET',
        headers: this.headers(options.headers),
        body: body ?? null,
        headersTimeout: timeouts.headers,
        bodyTimeout: timeouts.body,
        ...(signal === undefined ? {} : { signal })
      })
    } catch (err) {
      // A stream undici never began to read is still open (a file, say).
      if (options.body instanceof Readable) options.body.destroy()
      throw fail(err)
    }
    return { status: res.statusCode, headers: res.headers, body: typedBody(res.body, fail) }
  }

  /** One request, raw, with its whole answer read. */
  async send (options: RequestOptions): Promise<BufferedResponse> {
    const res = await this.request(options)
    return { status: res.status, headers: res.headers, body: await readAll(res.body) }
  }

  /** One request whose answer is JSON: an error status throws its ClientError, with the manager's code. */
  async json<T = Record<string, unknown>> (options: RequestOptions): Promise<T> {
    const res = await this.send(options)
    const parsed = parseJson(res.body)
    if (res.status >= 400) throw answerError(res.status, parsed)
    if (parsed === undefined) throw new ClientError(ClientErrorCode.BAD_RESPONSE, `manager answered ${res.status} with a body that is not JSON`, { status: res.status })
    return parsed as T
  }

  /** `PUT /files/<path>`: stores the body (missing parent directories are made) and answers the new entry. */
  async put (path: string, body: RequestBody, options: PutOptions = {}): Promise<FileEntry> {
    const known = byteLength(body)
    const size = options.size ?? known
    if (size === undefined) throw new ClientError(ClientErrorCode.INVALID_REQUEST, `PUT ${path}: a streamed body needs its size (the manager takes no upload without Content-Length)`)
    if (!Number.isSafeInteger(size) || size < 0) throw new ClientError(ClientErrorCode.INVALID_REQUEST, `PUT ${path}: size ${String(size)} is not a byte count`)
    if (known !== undefined && known !== size) throw new ClientError(ClientErrorCode.INVALID_REQUEST, `PUT ${path}: the body has ${known} bytes, not ${size}`)
    const sha: Record<string, string> = options.sha256 === undefined ? {} : { [SHA256_HEADER]: options.sha256 }
    const again = known !== undefined ? () => body : options.reopen
    let sent = body
    if (options.direct === true && again !== undefined && size >= DIRECT_UPLOAD_MIN_BYTES && this.options.socketPath === undefined) {
      const outcome = await this.toNode(path, body, size, options)
      if (outcome.receipt !== undefined) {
        return await this.json<FileEntry>({ method: 'PUT', path: filesPath(path), headers: { ...sha, [RECEIPT_HEADER]: outcome.receipt, 'content-length': 0 }, signal: options.signal })
      }
      // A body the node began to take is spent: the manager gets it from its start.
      if (outcome.sent) sent = again()
    }
    const headers = { ...sha, 'content-length': size, 'content-type': 'application/octet-stream' }
    return await this.json<FileEntry>({ method: 'PUT', path: filesPath(path), headers, body: sent, signal: options.signal })
  }

  /**
   * The receipt of a body sent straight to a storage node by an upload
   * locator; none when the manager offers no locator (`sent` false) or the
   * node fails (`sent` true): the caller then uploads through the manager.
   * A failure of the body itself (the local file, say) throws.
   */
  private async toNode (path: string, given: RequestBody, size: number, options: PutOptions): Promise<{ receipt?: string, sent: boolean }> {
    const note = options.onNote ?? (() => {})
    const offer = await this.json<{ url: string | null, reason?: string }>({ method: 'POST', path: `${filesPath(path)}?upload-locator&size=${size}`, signal: options.signal })
    if (offer.url === null) return { sent: false }
    const url = new URL(offer.url)
    const failures = new WeakSet<object>()
    let res
    try {
      res = await this.agent.request({ origin: url.origin, path: url.pathname + url.search, method: 'PUT', headers: { 'content-length': String(size), 'content-type': 'application/octet-stream' }, body: streamBody(given, failures) ?? null, headersTimeout: this.options.headersTimeoutMs, bodyTimeout: this.options.bodyTimeoutMs, ...(options.signal === undefined ? {} : { signal: options.signal }) })
    } catch (err) {
      if (given instanceof Readable) given.destroy()
      if (options.signal?.aborted === true) throw new ClientError(ClientErrorCode.ABORTED, `upload of ${path} aborted`, { cause: err })
      if (typeof err === 'object' && err !== null && failures.has(err)) throw new ClientError(ClientErrorCode.BODY_FAILED, `the request body failed: ${(err as Error).message}`, { cause: err })
      note(`the storage node at ${url.host} failed during the upload (${(err as Error).message}); the file goes through the manager`)
      return { sent: true }
    }
    const parsed = parseJson(await readAll(res.body).catch(() => Buffer.alloc(0))) as { receipt?: unknown } | undefined
    if (res.statusCode === 201 && typeof parsed?.receipt === 'string') return { receipt: parsed.receipt, sent: true }
    // Refused before its end, the body is read no further: a file it reads from is closed.
    if (given instanceof Readable) given.destroy()
    note(`the storage node at ${url.host} refused the upload: ${answerError(res.statusCode, parsed).message}; the file goes through the manager`)
    return { sent: true }
  }

  /**
   * `GET /files/<path>` of a file: its headers, and its body as a stream. A directory throws ERR_CLIENT_IS_A_DIRECTORY.
   * With `direct`, a large file's body comes straight from its storage node when the manager offers it (see GetOptions).
   */
  async get (path: string, options: GetOptions = {}): Promise<FileDownload> {
    const direct = options.direct === true && this.options.socketPath === undefined
    const headers = rangeHeaders(options.range)
    if (direct) headers[REDIRECT_HEADER] = 'allow'
    const res = await this.request({ path: filesPath(path), headers, signal: options.signal })
    if (direct && res.status === 307) {
      await readAll(res.body)
      const fromNode = await this.fromNode(path, res.headers, options)
      if (fromNode !== undefined) return fromNode
      return await this.get(path, { ...options, direct: false })
    }
    if (res.status >= 400 || isJson(res.headers)) {
      const parsed = parseJson(await readAll(res.body))
      if (res.status >= 400) throw answerError(res.status, parsed)
      if ((parsed as { type?: unknown } | undefined)?.type === 'dir') throw new ClientError(ClientErrorCode.IS_A_DIRECTORY, `${path} is a directory`, { status: res.status })
      throw new ClientError(ClientErrorCode.BAD_RESPONSE, `manager answered GET ${path} with JSON that is not a directory`, { status: res.status })
    }
    return { ...fileHead(res.status, res.headers), body: res.body }
  }

  /** `HEAD /files/<path>`: a file's headers, or `{ type: 'dir' }`. An error status has no body, hence no code of the manager. */
  async head (path: string, options: { signal?: AbortSignal } = {}): Promise<FileHead | { type: 'dir', status: number, headers: IncomingHttpHeaders }> {
    const res = await this.send({ method: 'HEAD', path: filesPath(path), signal: options.signal })
    if (res.status >= 400) throw answerError(res.status, undefined)
    if (isJson(res.headers)) return { type: 'dir', status: res.status, headers: res.headers }
    return fileHead(res.status, res.headers)
  }

  /** `GET /files/<path>?stat`: the entry, a file or a directory. */
  async stat (path: string, options: { signal?: AbortSignal } = {}): Promise<Entry> {
    return await this.json<Entry>({ path: filesPath(path) + '?stat', signal: options.signal })
  }

  /** `GET /files/<dir>/`: one page of a directory, from the name after `after`. */
  async list (path: string, options: { after?: string, limit?: number, signal?: AbortSignal } = {}): Promise<ListPage> {
    const q = [
      ...(options.after === undefined ? [] : [`after=${encodeURIComponent(options.after)}`]),
      ...(options.limit === undefined ? [] : [`limit=${options.limit}`])
    ]
    return await this.json<ListPage>({ path: filesPath(path, true) + (q.length === 0 ? '' : '?' + q.join('&')), signal: options.signal })
  }

  /** Every entry of a directory, page after page. */
  async * listAll (path: string, options: { limit?: number, signal?: AbortSignal } = {}): AsyncGenerator<Entry> {
    let after: string | undefined
    for (;;) {
      const page = await this.list(path, { ...options, ...(after === undefined ? {} : { after }) })
      yield * page.entries
      const last = page.entries[page.entries.length - 1]
      if (page.more !== true || last === undefined) return
      after = last.name
    }
  }

  /** `POST /files/<dir>/?mkdir`; `parents`: make missing parents, and accept an existing directory. */
  async mkdir (path: string, options: { parents?: boolean, signal?: AbortSignal } = {}): Promise<DirEntry> {
    return await this.json<DirEntry>({ method: 'POST', path: filesPath(path, true) + (options.parents === true ? '?mkdir&parents' : '?mkdir'), signal: options.signal })
  }

  /** `POST /files/<from>?move-to=<to>`: renames a file or a directory with its subtree; answers the entry at `to`. */
  async move (from: string, to: string, options: { signal?: AbortSignal } = {}): Promise<Entry> {
    const target = to.startsWith('/') ? to : '/' + to
    return await this.json<Entry>({ method: 'POST', path: filesPath(from) + `?move-to=${encodeURIComponent(target)}`, signal: options.signal })
  }

  /** `DELETE /files/<path>`: a file or an empty directory; `recursive`: a whole subtree. */
  async remove (path: string, options: { recursive?: boolean, signal?: AbortSignal } = {}): Promise<RemoveResult> {
    return await this.json<RemoveResult>({ method: 'DELETE', path: filesPath(path) + (options.recursive === true ? '?recursive' : ''), signal: options.signal })
  }

  /** `GET /cluster`. */
  async cluster (options: { signal?: AbortSignal } = {}): Promise<ClusterView> {
    return await this.json<ClusterView>({ path: '/cluster', signal: options.signal })
  }

  /** `POST /cluster/reconcile`: a round of pair anti-entropy now (every storage pair, or one), answered when done. */
  async reconcile (options: { pair?: number, signal?: AbortSignal } = {}): Promise<ReconcileRound[]> {
    const q = options.pair === undefined ? '' : `?pair=${options.pair}`
    return (await this.json<{ pairs: ReconcileRound[] }>({ method: 'POST', path: `/cluster/reconcile${q}`, signal: options.signal })).pairs
  }

  /** `POST /cluster/nodes/<id>/failover`: the member in the failover condition by hand. */
  async failover (id: string, options: { signal?: AbortSignal } = {}): Promise<MemberView> {
    return await this.json<MemberView>({ method: 'POST', path: `/cluster/nodes/${encodeURIComponent(id)}/failover`, signal: options.signal })
  }

  /** `POST /cluster/nodes/<id>/failback`: it resyncs or catches up, then serves; 503 while it is not heard. */
  async failback (id: string, options: { signal?: AbortSignal } = {}): Promise<MemberView> {
    return await this.json<MemberView>({ method: 'POST', path: `/cluster/nodes/${encodeURIComponent(id)}/failback`, signal: options.signal })
  }

  /** `GET /search`: a multicast search for the holders of a file (path or file id). */
  async search (key: string, options: { center?: string, signal?: AbortSignal } = {}): Promise<SearchResult> {
    const q = new URLSearchParams({ key, ...(options.center === undefined ? {} : { center: options.center }) })
    return await this.json<SearchResult>({ path: `/search?${q.toString()}`, signal: options.signal })
  }

  /**
   * The download the manager redirected to a storage node, or undefined when
   * the node cannot serve it (unreachable, the locator refused, the body not
   * there): the caller then asks the manager without a redirect. A body cut
   * mid-stream goes on through the manager from the byte reached.
   */
  private async fromNode (path: string, redirect: IncomingHttpHeaders, options: GetOptions): Promise<FileDownload | undefined> {
    const note = options.onNote ?? (() => {})
    let url: URL
    try {
      url = new URL(String(redirect.location ?? ''))
      if (url.protocol !== 'http:') throw new Error('not an http: URL')
    } catch (err) {
      note(`the manager redirected to ${JSON.stringify(redirect.location)}, which is no storage node (${(err as Error).message}); the file comes through the manager`)
      return undefined
    }
    let res
    try {
      res = await this.agent.request({ origin: url.origin, path: url.pathname + url.search, method: 'GET', headers: rangeHeaders(options.range), headersTimeout: this.options.headersTimeoutMs, bodyTimeout: this.options.bodyTimeoutMs, ...(options.signal === undefined ? {} : { signal: options.signal }) })
    } catch (err) {
      if (options.signal?.aborted === true) throw new ClientError(ClientErrorCode.ABORTED, `download of ${path} aborted`, { cause: err })
      note(`the storage node at ${url.host} cannot be reached (${(err as Error).message}); the file comes through the manager`)
      return undefined
    }
    if (res.statusCode !== 200 && res.statusCode !== 206) {
      const answer = answerError(res.statusCode, parseJson(await readAll(res.body).catch(() => Buffer.alloc(0))))
      note(`the storage node at ${url.host} refused the download: ${answer.message}; the file comes through the manager`)
      return undefined
    }
    const { location: _, 'content-length': _length, ...fileHeaders } = redirect
    const head = fileHead(res.statusCode, { ...fileHeaders, ...res.headers, etag: redirect.etag })
    const body = Readable.from(this.resumed(path, head, res.body, url.host, options), { objectMode: false })
    return { ...head, body }
  }

  /** The node's body, then, if it is cut or short, the rest of the same file through the manager. */
  private async * resumed (path: string, head: FileHead, fromNode: AsyncIterable<Buffer>, host: string, options: GetOptions): AsyncGenerator<Buffer> {
    let reached = 0
    try {
      for await (const chunk of fromNode) {
        reached += chunk.length
        yield chunk
      }
      if (reached === head.length) return
      options.onNote?.(`the storage node at ${host} ended the body after ${reached} of ${head.length} bytes; the rest comes through the manager`)
    } catch (err) {
      if (options.signal?.aborted === true) throw new ClientError(ClientErrorCode.ABORTED, `download of ${path} aborted`, { cause: err })
      options.onNote?.(`the storage node at ${host} failed after ${reached} of ${head.length} bytes (${(err as Error).message}); the rest comes through the manager`)
    }
    const rest = await this.get(path, { range: { offset: (options.range?.offset ?? 0) + reached, length: head.length - reached }, ...(options.signal === undefined ? {} : { signal: options.signal }) })
    if (rest.id !== head.id) {
      rest.body.destroy()
      throw new ClientError(ClientErrorCode.FILE_CHANGED, `${path} was replaced while its storage node failed mid-download (file ${head.id}, now ${rest.id}): get it again`)
    }
    yield * rest.body
  }

  /** Aborts requests in flight and closes every connection; resolves when they are closed. Idempotent. */
  async close (): Promise<void> {
    this.closing ??= this.agent.destroy()
    await this.closing
  }

  private headers (given: RequestOptions['headers']): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {}
    if (this.options.token !== undefined) out.authorization = `Bearer ${this.options.token}`
    for (const [name, value] of Object.entries(given ?? {})) out[name.toLowerCase()] = typeof value === 'object' ? [...value] : String(value)
    return out
  }

  private failure (err: unknown, context: { signal: AbortSignal | undefined, failures: WeakSet<object>, timeouts: { headers: number, body: number } }): ClientError {
    if (err instanceof ClientError) return err
    const e = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown, syscall?: unknown, message?: unknown }
    const code = typeof e.code === 'string' ? e.code : ''
    const message = typeof e.message === 'string' ? e.message : String(err)
    const cause = { cause: err }
    if (context.signal?.aborted === true) return new ClientError(ClientErrorCode.ABORTED, `request to the manager at ${this.where} aborted`, cause)
    if (typeof err === 'object' && err !== null && context.failures.has(err)) return new ClientError(ClientErrorCode.BODY_FAILED, `the request body failed: ${message}`, cause)
    if (code === 'UND_ERR_CONNECT_TIMEOUT' || e.syscall === 'connect' || e.syscall === 'getaddrinfo' || UNREACHABLE_CODES.has(code)) {
      return new ClientError(ClientErrorCode.UNREACHABLE, `cannot reach the manager at ${this.where}: ${message}`, cause)
    }
    switch (code) {
      case 'UND_ERR_HEADERS_TIMEOUT':
        return new ClientError(ClientErrorCode.TIMEOUT, `no answer from the manager at ${this.where} within ${context.timeouts.headers} ms`, cause)
      case 'UND_ERR_BODY_TIMEOUT':
        return new ClientError(ClientErrorCode.TIMEOUT, `the manager at ${this.where} sent nothing for ${context.timeouts.body} ms in the middle of an answer`, cause)
      case 'UND_ERR_ABORTED':
        return new ClientError(ClientErrorCode.ABORTED, `request to the manager at ${this.where} aborted`, cause)
      case 'UND_ERR_DESTROYED':
      case 'UND_ERR_CLOSED':
        return new ClientError(ClientErrorCode.CLOSED, 'the client is closed', cause)
      case 'UND_ERR_INVALID_ARG':
      case 'UND_ERR_NOT_SUPPORTED':
      case 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH':
        return new ClientError(ClientErrorCode.INVALID_REQUEST, message, cause)
      case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH':
        return new ClientError(ClientErrorCode.BAD_RESPONSE, `the manager at ${this.where} sent a body of another length than its Content-Length`, cause)
      default:
        return new ClientError(ClientErrorCode.CONNECTION_LOST, `the connection to the manager at ${this.where} failed: ${message}`, cause)
    }
  }
}

// Errors of a connection that was never made (net and dns codes).
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOENT', 'EACCES'])

/**
 * The path of a file or directory under /files, each segment
 * percent-encoded; `dir`: with the trailing slash of a directory's listing.
 */
export function filesPath (path: string, dir = false): string {
  const absolute = path.startsWith('/') ? path : '/' + path
  const encoded = absolute.split('/').map(encodeURIComponent).join('/')
  return '/files' + encoded + (dir && !encoded.endsWith('/') ? '/' : '')
}

function resolveOptions (options: ClientOptions): ResolvedClientOptions {
  const invalid = (message: string): ClientError => new ClientError(ClientErrorCode.INVALID_OPTION, message)
  const raw = options.url ?? DEFAULT_URL
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw invalid(`url ${JSON.stringify(raw)} is not a URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`url ${JSON.stringify(raw)} is not an http: or https: URL`)
  if (options.token !== undefined && (options.token === '' || /\s/.test(options.token))) throw invalid('token must be one word, without spaces or line breaks')
  if (options.socketPath !== undefined && options.socketPath === '') throw invalid('socketPath must not be empty')
  const ms = (name: keyof ClientOptions, value: number | undefined, fallback: number, zeroOk: boolean): number => {
    if (value === undefined) return fallback
    if (!Number.isSafeInteger(value) || value < 0 || (!zeroOk && value === 0)) throw invalid(`${name} must be a whole number of milliseconds${zeroOk ? ' (0: none)' : ' above 0'}, not ${String(value)}`)
    return value
  }
  const connections = options.connections ?? DEFAULT_CONNECTIONS
  if (!Number.isSafeInteger(connections) || connections < 1) throw invalid(`connections must be a whole number above 0, not ${String(connections)}`)
  return {
    url,
    token: options.token,
    socketPath: options.socketPath,
    connectTimeoutMs: ms('connectTimeoutMs', options.connectTimeoutMs, DEFAULT_CONNECT_TIMEOUT_MS, false),
    headersTimeoutMs: ms('headersTimeoutMs', options.headersTimeoutMs, DEFAULT_HEADERS_TIMEOUT_MS, true),
    bodyTimeoutMs: ms('bodyTimeoutMs', options.bodyTimeoutMs, DEFAULT_BODY_TIMEOUT_MS, true),
    keepAliveTimeoutMs: ms('keepAliveTimeoutMs', options.keepAliveTimeoutMs, DEFAULT_KEEP_ALIVE_TIMEOUT_MS, false),
    connections
  }
}

function rangeHeaders (range: ByteRange | undefined): Record<string, string> {
  if (range === undefined) return {}
  const { offset, length } = range
  return { range: `bytes=${offset}-${length === undefined ? '' : offset + length - 1}` }
}

/** A file's answer, from its headers. */
function fileHead (status: number, headers: IncomingHttpHeaders): FileHead {
  const length = Number(headers['content-length'] ?? 0)
  const range = /\/(\d+)$/.exec(String(headers['content-range'] ?? ''))
  return {
    type: 'file',
    status,
    headers,
    length,
    size: range === null ? length : Number(range[1]),
    sha256: String(headers.etag ?? '').replaceAll('"', ''),
    version: Number(headers['x-mirrorcast-version']),
    id: String(headers['x-mirrorcast-id'] ?? '')
  }
}

/** The body as JSON; an empty body is `{}`, one that is not JSON undefined. */
function parseJson (body: Buffer): unknown {
  const text = body.toString('utf8')
  if (text === '') return {}
  try {
    return JSON.parse(text) as unknown
  } catch {
    return undefined
  }
}

function isJson (headers: IncomingHttpHeaders): boolean {
  return headers['content-type']?.startsWith('application/json') === true
}

function byteLength (body: RequestBody): number | undefined {
  if (typeof body === 'string') return Buffer.byteLength(body)
  if (body instanceof Uint8Array) return body.byteLength
  return undefined
}

/**
 * A stream body goes to undici through a generator that remembers what its
 * source threw: undici destroys the body with a socket's error too, so the
 * error alone does not say whether the caller's stream or the connection failed.
 */
function streamBody (body: RequestBody | undefined, failures: WeakSet<object>): Buffer | Uint8Array | string | Readable | undefined {
  if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) return body
  const source = body
  return Readable.from((async function * () {
    try {
      for await (const chunk of source) yield chunk as Uint8Array
    } catch (err) {
      if (typeof err === 'object' && err !== null) failures.add(err)
      throw err
    }
  })(), { objectMode: false })
}

/**
 * undici's body stream, failing with ClientErrors. Chunks pass through by
 * reference, and backpressure too: when the reader stops, undici stops
 * reading the socket.
 */
function typedBody (source: Readable, fail: (err: unknown) => ClientError): Readable {
  const out = new Readable({
    highWaterMark: source.readableHighWaterMark,
    read () { source.resume() },
    destroy (err, callback) {
      if (!source.destroyed) source.destroy()
      callback(err)
    }
  })
  source.on('data', (chunk: Buffer) => { if (!out.push(chunk)) source.pause() })
  source.once('end', () => out.push(null))
  source.once('error', (err) => out.destroy(fail(err)))
  return out
}

async function readAll (body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of body) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

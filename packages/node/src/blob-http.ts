import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from '@mirrorcast/logger'
import { CodedError, CommonErrorCode, httpStatusFor, parseRange, verifyLocator } from '@mirrorcast/wire'
import type { BlobRead, BlobStore } from './blob-store.js'
import { NodeError, NodeErrorCode } from './errors.js'
import type { BlobUploads } from './blob-upload.js'

// 120 s: a client that takes no byte of a download for this long is cut off, as the manager does
const IDLE_TIMEOUT_MS = 120_000
// 256: downloads served at once; more connections are closed as they arrive
const MAX_CONNECTIONS = 256
// 64 KiB: the most written to the socket at once, so a slow client's progress shows
const SLICE_BYTES = 64 * 1024
const BLOB_PATH = /^\/blobs\/([0-9a-f]{32})$/

/**
 * Downloads straight from a storage node, for clients the object manager
 * redirected here with a signed locator (`GET /blobs/<id>?e=<expiry>&s=<sig>`,
 * a Range if wanted): the body flows from this node to the client, not
 * through the manager. Uploads by locator (`PUT`) are blob-upload.ts's. Every block is checked against its checksum before it
 * is sent, as for the manager; a body found corrupt mid-stream cuts the
 * connection, and the client finishes through the manager, which reads the twin.
 */
export class BlobHttpServer {
  private server: Server | undefined

  constructor (private readonly store: BlobStore, private readonly key: Uint8Array, private readonly uploads: BlobUploads, private readonly logger: Logger) {}

  get port (): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? 0
  }

  async start (host: string, port: number): Promise<void> {
    const server = createServer({ keepAliveTimeout: 5000 }, (req, res) => { void this.serve(req, res) })
    server.maxConnections = MAX_CONNECTIONS
    server.on('clientError', (_err, socket) => { socket.destroy() })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => { server.off('error', reject); resolve() })
    })
    this.server = server
  }

  async close (): Promise<void> {
    const server = this.server
    this.server = undefined
    if (server === undefined) return
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
  }

  private async serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.socket.setTimeout(IDLE_TIMEOUT_MS, () => req.socket.destroy())
    let read: BlobRead | undefined
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'PUT') {
        res.setHeader('allow', 'GET, HEAD, PUT')
        throw new CodedError('ERR_METHOD_NOT_ALLOWED', `${String(req.method)} is not served here`)
      }
      const url = new URL(req.url ?? '/', 'http://node')
      const fileId = BLOB_PATH.exec(url.pathname)?.[1]
      if (fileId === undefined) throw new CodedError('ERR_NOT_FOUND', 'downloads and uploads are at /blobs/<file id>')
      if (req.method === 'PUT') {
        const answer = JSON.stringify(await this.uploads.receive(req, fileId, url.searchParams))
        res.writeHead(201, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(answer) }).end(answer)
        return
      }
      verifyLocator(this.key, { fileId, expiresAt: Number(url.searchParams.get('e') ?? ''), signature: url.searchParams.get('s') })
      const { size, sha256 } = await this.store.stat(fileId)
      const range = parseRange(req.headers.range, size)
      const offset = range?.offset ?? 0
      const length = range?.length ?? size
      const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'content-length': length, etag: `"${sha256}"`, 'accept-ranges': 'bytes', 'cache-control': 'no-store' }
      if (range !== undefined) headers['content-range'] = `bytes ${offset}-${offset + length - 1}/${size}`
      if (req.method === 'HEAD' || length === 0) {
        res.writeHead(range === undefined ? 200 : 206, headers).end()
        return
      }
      read = await this.store.get(fileId, offset, length)
      const body = read.body[Symbol.asyncIterator]()
      // The headers wait for the first block: a corrupt one is still a clean error.
      let next = await body.next()
      res.writeHead(range === undefined ? 200 : 206, headers)
      for (; next.done !== true; next = await body.next()) await this.write(res, next.value)
      res.end()
    } catch (err) {
      this.fail(res, err)
    } finally {
      await read?.close()
    }
  }

  private async write (res: ServerResponse, chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; at += SLICE_BYTES) {
      if (!res.write(chunk.subarray(at, at + SLICE_BYTES))) {
        await new Promise<void>((resolve) => {
          const done = (): void => { res.off('drain', done); res.off('close', done); resolve() }
          res.on('drain', done)
          res.on('close', done)
        })
      }
      if (res.destroyed) throw new NodeError(NodeErrorCode.UNSUPPORTED, 'the client went away')
    }
  }

  private fail (res: ServerResponse, err: unknown): void {
    const code = (err as { code?: unknown }).code
    const known = typeof code === 'string' ? code : CommonErrorCode.INTERNAL
    if (known === CommonErrorCode.INTERNAL) this.logger.error('blob request failed', { error: (err as Error).message })
    else if (!res.destroyed) this.logger.info('blob request refused or cut', { code: known, error: (err as Error).message })
    // Too late for a status: cutting the connection is the only honest signal.
    if (res.headersSent) {
      res.destroy()
      return
    }
    const status = httpStatusFor(known)
    const text = JSON.stringify({ error: { code: known, message: status === 500 ? 'internal error' : (err as Error).message } })
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text)
  }
}

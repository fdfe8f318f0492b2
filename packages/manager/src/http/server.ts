import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import type { Logger } from '@mirrorcast/logger'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import { KEEP_ALIVE_TIMEOUT_MS, type HttpLimits } from '../config.js'
import type { Authorizer } from './auth.js'
import { sameHostGuard, type SameHostGuard } from './guard.js'
import { CHECKS_PER_TIMEOUT, watchProgress, type Stall } from './progress.js'
import { sendError } from './respond.js'
import { SendQueues } from './send-queue.js'

/** What serves the requests a listener takes: the native API's router, or the S3 front end. */
export interface RequestHandler {
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>
}

export interface HttpServerOptions {
  host: string
  port: number
  /** Bearer tokens (and without them, the same-host guard); none for a front end that checks its own requests' signatures (S3). */
  auth: Authorizer | undefined
  router: RequestHandler
  limits: HttpLimits
  logger: Logger
}

/** The manager's HTTP listener: limits, the same-host guard, access check, routing, and one error answer for every failure. */
export class HttpServer {
  private server: Server | undefined
  /** Connections refused at max-connections since the cap was last reached: logged once when it is reached, once when it is left. */
  private dropped = 0
  private readonly sendQueues: SendQueues
  private guard: SameHostGuard | undefined

  constructor (private readonly options: HttpServerOptions) {
    // fresh enough that two looks a check apart never read the same snapshot; at most a second old however long the timeout
    this.sendQueues = new SendQueues(Math.min(1000, options.limits.bodyIdleTimeoutMs / (2 * CHECKS_PER_TIMEOUT)))
  }

  get port (): number {
    if (this.server === undefined) throw new Error('manager is not listening')
    return listenPort(this.server)
  }

  async start (): Promise<void> {
    const { limits } = this.options
    const server = createServer({
      headersTimeout: limits.headersTimeoutMs,
      // No deadline on a whole request: a 64 GiB PUT over a slow link takes hours. A request is
      // given up when its client stops moving bytes instead (watchProgress).
      requestTimeout: 0,
      // Node checks the headers timeout every 30 s by default, which would let a 10 s one run to 40 s.
      connectionsCheckingInterval: Math.ceil(limits.headersTimeoutMs / CHECKS_PER_TIMEOUT),
      keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS
    }, (req, res) => { void this.serve(req, res) })
    server.maxConnections = limits.maxConnections
    server.on('drop', () => { this.onDrop() })
    server.on('connection', () => { this.onAccepted() })
    // The guard needs the port, known once listening (port 0: any), and must be there before the first request.
    const { auth } = this.options
    if (auth !== undefined) server.once('listening', () => { this.guard = sameHostGuard(this.options.host, listenPort(server), auth.enabled) })
    server.listen(this.options.port, this.options.host)
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
    this.server = server
  }

  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeAllConnections()
    await closed
  }

  private async serve (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const progress = { idleMs: this.options.limits.bodyIdleTimeoutMs, sendQueue: async (socket: Socket) => await this.sendQueues.of(socket) }
    watchProgress(req, res, progress, (stall) => { this.onStall(req, res, stall) })
    try {
      this.guard?.check(req)
      this.options.auth?.check(req, res)
      await this.options.router.handle(req, res)
    } catch (err) {
      if (res.writableEnded) {
        // answered already (a stalled body's 408): what failed since is the consequence
        this.options.logger.debug('request failed after its answer', { method: req.method, url: req.url?.slice(0, 200), code: (err as { code?: unknown }).code })
        return
      }
      this.logError(req, err)
      lingerOrClose(req, res)
      sendError(res, err)
    }
  }

  /** A stalled body gets its 408 while the headers are unsent; anything else can only be cut. */
  private onStall (req: IncomingMessage, res: ServerResponse, stall: Stall): void {
    const ms = this.options.limits.bodyIdleTimeoutMs
    const socket = req.socket
    this.options.logger.info(stall === 'body' ? 'request body stalled, connection closed' : 'response stalled, connection closed', {
      method: req.method, url: req.url?.slice(0, 200), idleMs: ms, bytesRead: socket.bytesRead, bytesWritten: socket.bytesWritten, remote: socket.remoteAddress
    })
    if (stall === 'response' || res.headersSent) {
      socket.destroy()
      return
    }
    res.setHeader('connection', 'close')
    sendError(res, new ManagerError(ManagerErrorCode.BODY_TIMEOUT, `no byte of the request body arrived for ${ms} ms`))
    // `connection: close` ends the socket once the answer is out; a client that reads nothing either is cut a timeout later.
    const cut = setTimeout(() => socket.destroy(), ms).unref()
    socket.once('close', () => clearTimeout(cut))
  }

  private onDrop (): void {
    if (this.dropped++ === 0) this.options.logger.warn('connections refused: max-connections reached', { maxConnections: this.options.limits.maxConnections })
  }

  private onAccepted (): void {
    if (this.dropped === 0) return
    this.options.logger.info('connections accepted again', { refused: this.dropped })
    this.dropped = 0
  }

  private logError (req: IncomingMessage, err: unknown): void {
    const code = (err as { code?: unknown }).code
    const level = typeof code === 'string' ? 'debug' : 'error'
    this.options.logger.log(level, 'request failed', { method: req.method, url: req.url?.slice(0, 200), code, error: (err as Error).message, stack: level === 'error' ? (err as Error).stack : undefined })
  }
}

// Up to 1 MiB of a refused body is read and dropped: a client still sending it then reads the answer, not a reset
const LINGER_MAX_BYTES = 1024 * 1024

/**
 * A request answered before its body's end: a small body is read to its end
 * and dropped, so the connection stays usable and the client's last writes
 * meet no reset that would hide the answer (nginx's lingering close); a
 * larger one is not worth receiving, and the connection closes after the answer.
 */
function lingerOrClose (req: IncomingMessage, res: ServerResponse): void {
  if (req.complete) return
  const declared = Number(req.headers['content-length'])
  if (Number.isSafeInteger(declared) && declared <= LINGER_MAX_BYTES) req.resume()
  else res.setHeader('connection', 'close')
}

function listenPort (server: Server): number {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('manager is not listening')
  return address.port
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { Logger } from '@mirrorcast/logger'
import type { Authorizer } from './auth.js'
import { sendError } from './respond.js'
import type { Router } from './router.js'

// Node's own defaults, named here so that they are a choice: 60 s for a client to send its
// headers, 5 min for a whole request (a large upload on a slow link), 5 s of keep-alive idle.
const HEADERS_TIMEOUT_MS = 60_000
const REQUEST_TIMEOUT_MS = 300_000
const KEEP_ALIVE_TIMEOUT_MS = 5_000

export interface HttpServerOptions {
  host: string
  port: number
  auth: Authorizer
  router: Router
  logger: Logger
}

/** The manager's HTTP listener: access check, routing, and one error answer for every failure. */
export class HttpServer {
  private server: Server | undefined

  constructor (private readonly options: HttpServerOptions) {}

  get port (): number {
    const address = this.server?.address()
    if (address === null || address === undefined || typeof address === 'string') throw new Error('manager is not listening')
    return address.port
  }

  async start (): Promise<void> {
    const server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => { void this.serve(req, res) })
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
    try {
      this.options.auth.check(req, res)
      await this.options.router.handle(req, res)
    } catch (err) {
      this.logError(req, err)
      if (!req.complete) res.setHeader('connection', 'close')
      sendError(res, err)
    }
  }

  private logError (req: IncomingMessage, err: unknown): void {
    const code = (err as { code?: unknown }).code
    const level = typeof code === 'string' ? 'debug' : 'error'
    this.options.logger.log(level, 'request failed', { method: req.method, url: req.url?.slice(0, 200), code, error: (err as Error).message, stack: level === 'error' ? (err as Error).stack : undefined })
  }
}

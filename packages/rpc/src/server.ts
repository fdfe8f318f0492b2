import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { once } from 'node:events'
import { CommonErrorCode, DEFAULT_MAX_FRAME_BYTES, type AnyEnvelope, type MessageBody, type MessageType, partsOf } from '@mirrorcast/wire'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { Channel, RefusedMessageError } from './channel.js'
import { RpcError, RpcErrorCode } from './errors.js'

// 60 s: a client may sit idle between requests on a pooled connection this long
export const DEFAULT_SERVER_IDLE_TIMEOUT_MS = 60_000
// 5 s: a peer holding the key completes the handshake in one round trip; one that does not
// must not hold a socket (and its buffers) for the idle timeout
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5_000
// 256 sockets before authentication in all, 32 from one address: far above what a cluster's
// managers open at once, small enough that a flood without the key costs a bounded amount
export const DEFAULT_MAX_UNAUTHENTICATED = 256
export const DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS = 32

export type Identity = Omit<MessageBody<'hello'>, 'nonce'>

export interface RpcServerOptions {
  key: Uint8Array
  identity: Identity
  handler: RequestHandler
  host?: string
  port?: number
  maxFrameBytes?: number
  idleTimeoutMs?: number
  /** ms from accept to a completed handshake, after which the socket is closed */
  handshakeTimeoutMs?: number
  /** sockets not yet authenticated, in all and per source address; one over either is destroyed at once */
  maxUnauthenticated?: number
  maxUnauthenticatedPerAddress?: number
  logger?: Logger
}

export type RequestHandler = (req: AnyEnvelope, ctx: RequestContext) => Promise<void>

// 1 s: how long a session whose request was refused mid-body is drained, so the client reads the refusal
const REFUSED_LINGER_MS = 1000
/** What a handler answers with; one reply (or one streamed reply) per request. */
export class RequestContext {
  private readonly channel: Channel
  private bodyDone: boolean
  replied = false
  /** The streamed body's `end` message, once read. */
  ended: MessageBody<'end'> | undefined

  constructor (channel: Channel, streamingRequest: boolean) {
    this.channel = channel
    this.bodyDone = !streamingRequest
  }

  get peer (): string {
    return this.channel.describe()
  }

  /** True when the request's body was read to its end: the channel can serve the next request. */
  get reusable (): boolean {
    return this.bodyDone && !this.channel.closed
  }

  /** The reply; `payload` rides in its frame (a small body answered inline). */
  async reply<T extends MessageType> (t: T, body: MessageBody<T>, payload?: Uint8Array): Promise<void> {
    this.replied = true
    await this.channel.send(t, body, payload)
  }

  async sendChunk (data: Uint8Array): Promise<void> {
    await this.channel.send('chunk', {}, data)
  }

  async end (): Promise<void> {
    await this.channel.send('end', {})
  }

  /** The request's body: chunk payloads until `end`; an `abort` from the client throws. */
  async * body (): AsyncGenerator<Buffer> {
    while (!this.bodyDone) {
      const msg = await this.channel.next()
      if (msg.t === 'chunk') {
        yield * partsOf(msg)
      } else if (msg.t === 'end') {
        this.ended = msg.body
        this.bodyDone = true
      } else if (msg.t === 'abort') {
        this.bodyDone = true
        throw new RpcError(RpcErrorCode.ABORTED, `client aborted the upload: ${msg.body.reason}`)
      } else {
        throw new RpcError(RpcErrorCode.PROTOCOL, `expected a body chunk, got ${msg.t}`)
      }
    }
  }
}

/**
 * The node protocol's server: accepts sessions, runs one request at a time per
 * session through `handler`, and turns a thrown error into an `error` reply.
 */
export class RpcServer {
  private readonly options: Required<Omit<RpcServerOptions, 'logger'>> & { logger: Logger }
  private server: Server | undefined
  private listeningPort: number | undefined
  private readonly channels = new Set<Channel>()
  private readonly streamingRequests: ReadonlySet<MessageType>
  /** Sockets still in their handshake, by source address. */
  private readonly unauthenticated = new Map<string, number>()
  private unauthenticatedCount = 0
  /** Connections destroyed at accept because the unauthenticated caps were reached. */
  refusedConnections = 0

  constructor (options: RpcServerOptions & { streamingRequests?: MessageType[] }) {
    this.options = {
      host: '127.0.0.1',
      port: 0,
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      idleTimeoutMs: DEFAULT_SERVER_IDLE_TIMEOUT_MS,
      handshakeTimeoutMs: DEFAULT_HANDSHAKE_TIMEOUT_MS,
      maxUnauthenticated: DEFAULT_MAX_UNAUTHENTICATED,
      maxUnauthenticatedPerAddress: DEFAULT_MAX_UNAUTHENTICATED_PER_ADDRESS,
      logger: silentLogger(),
      ...options
    }
    this.streamingRequests = new Set(options.streamingRequests ?? [])
  }

  /** The port listened on (read once at start: every heartbeat asks). */
  get port (): number {
    if (this.listeningPort === undefined) throw new Error('server is not listening')
    return this.listeningPort
  }

  get identity (): Identity {
    return { ...this.options.identity, port: this.port, idleMs: this.options.idleTimeoutMs }
  }

  async start (): Promise<void> {
    if (this.server !== undefined) return
    const server = createServer((socket) => { this.accept(socket) })
    this.server = server
    server.listen(this.options.port, this.options.host)
    await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => { throw err })])
    this.listeningPort = (server.address() as AddressInfo).port
  }

  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    this.listeningPort = undefined
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    await Promise.all([...this.channels].map(async (c) => await c.close()))
    await closed
  }

  /** Admits a socket within the unauthenticated caps, or destroys it at once. */
  private accept (socket: Socket): void {
    const address = socket.remoteAddress ?? '?'
    const fromAddress = this.unauthenticated.get(address) ?? 0
    if (this.unauthenticatedCount >= this.options.maxUnauthenticated || fromAddress >= this.options.maxUnauthenticatedPerAddress) {
      socket.destroy()
      this.refusedConnections++
      this.options.logger.debug('refused a connection: too many sessions without a handshake', { address, fromAddress, inAll: this.unauthenticatedCount, refused: this.refusedConnections })
      return
    }
    this.unauthenticated.set(address, fromAddress + 1)
    this.unauthenticatedCount++
    void this.serve(socket, address)
  }

  private authenticated (address: string): void {
    this.unauthenticatedCount--
    const left = (this.unauthenticated.get(address) ?? 1) - 1
    if (left === 0) this.unauthenticated.delete(address)
    else this.unauthenticated.set(address, left)
  }

  private async serve (socket: Socket, address: string): Promise<void> {
    const log = this.options.logger
    const channel = new Channel(socket, { key: this.options.key, selfId: this.options.identity.id, maxFrameBytes: this.options.maxFrameBytes, idleTimeoutMs: this.options.idleTimeoutMs })
    this.channels.add(channel)
    let refused = false
    try {
      await this.handshake(channel, address)
      refused = await this.serveRequests(channel)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code !== RpcErrorCode.CLOSED && code !== RpcErrorCode.TIMEOUT) {
        log.warn('dropped a session', { peer: channel.describe(), code, error: (err as Error).message })
      }
    } finally {
      this.channels.delete(channel)
      if (refused) await channel.linger(REFUSED_LINGER_MS)
      else await channel.close()
    }
  }

  /** The handshake, within its deadline; the socket leaves the unauthenticated count either way. */
  private async handshake (channel: Channel, address: string): Promise<void> {
    const timer = setTimeout(() => {
      channel.fail(new RpcError(RpcErrorCode.TIMEOUT, `no handshake from ${channel.describe()} within ${this.options.handshakeTimeoutMs} ms`))
    }, this.options.handshakeTimeoutMs)
    try {
      await channel.acceptAsServer(this.identity)
    } finally {
      clearTimeout(timer)
      this.authenticated(address)
    }
  }

  /**
   * Requests, one at a time, until the session ends (it throws) or a request is
   * refused before its body was read (true: the client is still sending it).
   */
  private async serveRequests (channel: Channel): Promise<boolean> {
    for (;;) {
      let req: AnyEnvelope
      try {
        req = await channel.next()
      } catch (err) {
        if (!(err instanceof RefusedMessageError) || channel.closed) throw err
        await this.refuse(channel, err)
        // a refused streaming request's body is still on its way: answered, the session ends gracefully
        if (this.streamingRequests.has(err.refusedType)) return true
        continue
      }
      // Liveness, answered here so that neither a busy handler nor a slow disk delays it.
      if (req.t === 'ping') { await channel.send('pong', {}); continue }
      // A streaming request marked `inline` carries its whole body as the frame's payload.
      const streaming = this.streamingRequests.has(req.t) && (req.body as { inline?: unknown }).inline !== true
      const ctx = new RequestContext(channel, streaming)
      await this.handle(req, ctx)
      if (!ctx.reusable) return true
    }
  }

  /** A request whose content fails its schema is answered with an error; the session goes on. */
  private async refuse (channel: Channel, err: RefusedMessageError): Promise<void> {
    this.options.logger.debug('refused a request', { t: err.refusedType, peer: channel.describe(), code: err.code, error: err.message })
    await channel.send('error', { code: err.code, message: err.message.slice(0, 1024) })
  }

  private async handle (req: AnyEnvelope, ctx: RequestContext): Promise<void> {
    try {
      await this.options.handler(req, ctx)
    } catch (err) {
      const given = (err as { code?: unknown }).code
      // the session itself failed (closed, timed out, out of turn): no reply can follow;
      // a refused body chunk is a refusal of this request only
      if (typeof given === 'string' && given.startsWith('ERR_RPC_') && given !== RpcErrorCode.BAD_REQUEST) throw err
      const code = typeof given === 'string' ? given : CommonErrorCode.INTERNAL
      const level = code === CommonErrorCode.INTERNAL ? 'error' : 'debug'
      this.options.logger.log(level, 'request failed', { t: req.t, peer: ctx.peer, code, error: (err as Error).message })
      // An error halfway through a streamed reply still reaches the client as a frame.
      await ctx.reply('error', { code, message: (err as Error).message.slice(0, 1024) })
    }
  }
}

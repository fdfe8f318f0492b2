import { connect } from 'node:net'
import { once } from 'node:events'
import { DEFAULT_MAX_FRAME_BYTES, REPLY_TYPES, type AnyEnvelope, type MessageBody, type MessageType, type ReplyType, type RequestType, partsOf } from '@mirrorcast/wire'
import { Channel } from './channel.js'
import { RemoteError, RpcError, RpcErrorCode, isRefusedSend } from './errors.js'

// 2 s: a LAN peer that has not accepted by then is treated as down
export const DEFAULT_CONNECT_TIMEOUT_MS = 2_000
// 10 s: the longest a peer may stay silent inside one request (an fsync included)
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000
// 8: idle sessions kept per peer
export const DEFAULT_MAX_IDLE = 8
// 10 s: a busy session that sent nothing for this long sends a keepalive; well below a
// server's idle timeout (60 s by default), so a session kept busy by a slow client of ours lives
export const DEFAULT_KEEPALIVE_MS = 10_000
// 1 MiB: body chunk size on the wire, a storage node's block size, so a chunk's digest is its block's
export const CHUNK_BYTES = 1024 * 1024

export interface RpcClientOptions {
  key: Uint8Array
  selfId: string
  host: string
  port: number
  maxFrameBytes?: number
  connectTimeoutMs?: number
  requestTimeoutMs?: number
  maxIdle?: number
  /** ms without sending on a borrowed session before a keepalive goes out (0: never) */
  keepaliveMs?: number
}

// A connect that fails for want of a resource of this process says nothing about the peer.
const LOCAL_ERRNOS = new Set(['EMFILE', 'ENFILE', 'ENOMEM', 'ENOBUFS', 'EADDRNOTAVAIL'])

type Reply<T extends MessageType> = Extract<AnyEnvelope, { t: T }>

/**
 * A pool of sessions to one peer. Each request borrows a session for its whole
 * exchange; a session that saw any failure is destroyed, never reused.
 */
export class RpcClient {
  readonly host: string
  readonly port: number
  private readonly options: Required<RpcClientOptions>
  private readonly idle: Channel[] = []
  private readonly busy = new Set<Channel>()
  private closed = false
  /** The last hello from this peer: its id and boot id. */
  peer: MessageBody<'hello'> | undefined

  constructor (options: RpcClientOptions) {
    this.options = {
      maxFrameBytes: DEFAULT_MAX_FRAME_BYTES,
      connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
      requestTimeoutMs: DEFAULT_REQUEST_TIMEOUT_MS,
      maxIdle: DEFAULT_MAX_IDLE,
      keepaliveMs: DEFAULT_KEEPALIVE_MS,
      ...options
    }
    this.host = options.host
    this.port = options.port
  }

  /** One request, one reply of its type (REPLY_TYPES); an `error` reply throws a RemoteError. `payload` rides in the request's frame. */
  async request<T extends RequestType> (t: T, body: MessageBody<T>, options: { signal?: AbortSignal, payload?: Uint8Array } = {}): Promise<Reply<ReplyType<T>>> {
    const channel = await this.acquire(options.signal)
    return await this.using(channel, options.signal, async () => {
      await channel.send(t, body, options.payload)
      const reply = await readReply(channel, REPLY_TYPES[t])
      this.release(channel)
      return reply
    })
  }

  /** Starts a request whose body the caller then writes chunk by chunk. */
  async upload<T extends RequestType> (t: T, body: MessageBody<T>, options: { signal?: AbortSignal } = {}): Promise<Upload<ReplyType<T>>> {
    const channel = await this.acquire(options.signal)
    // ends the exchange only if refused before sending: then nothing was written and the session is reusable
    await this.using(channel, options.signal, async () => { await channel.send(t, body) })
    return new Upload(this, channel, REPLY_TYPES[t], options.signal)
  }

  /**
   * A request answered by a head then a streamed body; the session is released
   * when the body is read to the end. A head marked `inline` carries the whole
   * body as its payload, and the session is free at once.
   */
  async download<T extends RequestType> (t: T, body: MessageBody<T>, options: { signal?: AbortSignal } = {}): Promise<{ head: Reply<ReplyType<T>>, body: AsyncGenerator<Buffer> }> {
    const channel = await this.acquire(options.signal)
    const head = await this.using(channel, options.signal, async () => {
      await channel.send(t, body)
      return await readReply(channel, REPLY_TYPES[t])
    })
    const envelope: AnyEnvelope = head
    if ((envelope.body as { inline?: unknown }).inline === true) {
      this.release(channel)
      return { head, body: single(envelope.payload) }
    }
    return { head, body: this.readBody(channel, options.signal) }
  }

  private async * readBody (channel: Channel, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
    let finished = false
    const onAbort = (): void => channel.fail(new RpcError(RpcErrorCode.ABORTED, 'download aborted'))
    signal?.addEventListener('abort', onAbort, { once: true })
    if (signal?.aborted === true) onAbort()
    try {
      for (;;) {
        const msg = await channel.next()
        if (msg.t === 'chunk') {
          yield * partsOf(msg)
        } else if (msg.t === 'end') {
          finished = true
          return
        } else if (msg.t === 'error') {
          finished = true
          throw new RemoteError(msg.body.code, msg.body.message, channel.describe())
        } else {
          throw new RpcError(RpcErrorCode.PROTOCOL, `expected a body chunk from ${channel.describe()}, got ${msg.t}`)
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort)
      if (finished) this.release(channel)
      else this.discard(channel, new RpcError(RpcErrorCode.ABORTED, 'download not read to its end'))
    }
  }

  /**
   * Runs `fn` on a borrowed session. A remote error reply that ends the
   * exchange leaves the session reusable; any other failure destroys it.
   */
  async using<X> (channel: Channel, signal: AbortSignal | undefined, fn: () => Promise<X>, exchangeEnds = true): Promise<X> {
    const onAbort = (): void => channel.fail(new RpcError(RpcErrorCode.ABORTED, 'request aborted'))
    signal?.addEventListener('abort', onAbort, { once: true })
    // aborted while the session was being acquired: the listener above will never fire
    if (signal?.aborted === true) onAbort()
    try {
      return await fn()
    } catch (err) {
      // A send refused locally wrote nothing: the session is as good as before it.
      if ((err instanceof RemoteError || isRefusedSend(err)) && exchangeEnds) this.release(channel)
      else this.discard(channel, err as Error)
      throw err
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  async acquire (signal?: AbortSignal): Promise<Channel> {
    if (this.closed) throw new RpcError(RpcErrorCode.CLOSED, 'client is closed')
    // a typed error, like every other way a request ends, rather than the signal's DOMException
    if (signal?.aborted === true) throw new RpcError(RpcErrorCode.ABORTED, 'request aborted', { cause: signal.reason })
    for (let channel = this.idle.pop(); channel !== undefined; channel = this.idle.pop()) {
      if (!channel.closed) return this.borrow(channel)
    }
    return this.borrow(await this.connect(signal))
  }

  /** A borrowed session keeps its peer's idle timer from firing while our own caller is slow; an idle one does not, so the peer reaps it. */
  private borrow (channel: Channel): Channel {
    this.busy.add(channel)
    channel.keepAlive(this.keepaliveMs())
    return channel
  }

  /** Our keepalive period, shortened to a quarter of the idle timeout the peer said it keeps (its hello). */
  private keepaliveMs (): number {
    const own = this.options.keepaliveMs
    const peerIdle = this.peer?.idleMs
    if (own <= 0 || peerIdle === undefined || peerIdle <= 0) return own
    return Math.min(own, Math.max(10, Math.floor(peerIdle / 4)))
  }

  release (channel: Channel): void {
    this.busy.delete(channel)
    channel.stopKeepalive()
    if (this.closed || channel.closed || this.idle.length >= this.options.maxIdle) {
      void channel.close()
      return
    }
    this.idle.push(channel)
  }

  discard (channel: Channel, err: Error): void {
    this.busy.delete(channel)
    channel.fail(err)
  }

  private async connect (signal?: AbortSignal): Promise<Channel> {
    const where = `${this.host}:${this.port}`
    const socket = connect({ host: this.host, port: this.port })
    const channel = new Channel(socket, { key: this.options.key, selfId: this.options.selfId, maxFrameBytes: this.options.maxFrameBytes, idleTimeoutMs: this.options.requestTimeoutMs })
    // Tracked from the start, so close() also ends a session still being set up.
    this.busy.add(channel)
    let connected = false
    const ac = new AbortController()
    // The connect timeout and the signal cover the handshake too: failing the channel
    // ends a peer that accepts but never says hello.
    const timer = setTimeout(() => {
      ac.abort()
      channel.fail(new RpcError(RpcErrorCode.TIMEOUT, `connect to ${where} timed out after ${this.options.connectTimeoutMs} ms`))
    }, this.options.connectTimeoutMs)
    const onAbort = (): void => {
      ac.abort()
      channel.fail(new RpcError(RpcErrorCode.ABORTED, `connect to ${where} aborted`))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      await Promise.race([
        once(socket, 'connect', { signal: ac.signal }),
        once(socket, 'error', { signal: ac.signal }).then(([err]) => { throw err }),
        // destroyed before it connected (close() of the client): neither event above comes
        once(socket, 'close', { signal: ac.signal }).then(() => { throw new RpcError(RpcErrorCode.CLOSED, `connection to ${where} closed`) })
      ])
      connected = true
      this.peer = await channel.openAsClient()
      return channel
    } catch (err) {
      this.busy.delete(channel)
      channel.fail(err as Error)
      if (signal?.aborted === true) throw new RpcError(RpcErrorCode.ABORTED, `connect to ${where} aborted`)
      if (ac.signal.aborted) throw new RpcError(RpcErrorCode.TIMEOUT, `connect to ${where} timed out after ${this.options.connectTimeoutMs} ms`)
      if (this.closed) throw new RpcError(RpcErrorCode.CLOSED, 'client is closed')
      if ((err as { code?: unknown }).code === RpcErrorCode.TIMEOUT) throw err
      // Connected but no session: a wrong key (the peer hangs up), a bad MAC or a peer that is not ours.
      if (!connected && LOCAL_ERRNOS.has((err as { code?: string }).code ?? '')) {
        throw new RpcError(RpcErrorCode.LOCAL, `cannot connect to ${where}: ${(err as Error).message}`, { cause: err })
      }
      if (connected) throw new RpcError(RpcErrorCode.HANDSHAKE, `handshake with ${where} failed: ${(err as Error).message}`, { cause: err })
      throw new RpcError(RpcErrorCode.CONNECT, `cannot connect to ${where}: ${(err as Error).message}`, { cause: err })
    } finally {
      clearTimeout(timer)
      signal?.removeEventListener('abort', onAbort)
      ac.abort()
    }
  }

  /**
   * Whether the peer is alive: a fresh session (connect, handshake) and a ping
   * within `timeoutMs`, outside the pool, so that neither a session stuck
   * behind a slow request nor a slow disk stands in for the answer.
   */
  async probe (timeoutMs: number): Promise<void> {
    const where = `${this.host}:${this.port}`
    const ac = new AbortController()
    const timer = setTimeout(() => ac.abort(), timeoutMs)
    let channel: Channel | undefined
    try {
      channel = await this.connect(ac.signal)
      this.busy.delete(channel)
      const open = channel
      ac.signal.addEventListener('abort', () => open.fail(new RpcError(RpcErrorCode.TIMEOUT, `no pong from ${where} within ${timeoutMs} ms`)), { once: true })
      await channel.send('ping', {})
      await readReply(channel, 'pong')
    } catch (err) {
      if (ac.signal.aborted && (err as { code?: string }).code !== RpcErrorCode.LOCAL) throw new RpcError(RpcErrorCode.TIMEOUT, `probe of ${where}: no answer within ${timeoutMs} ms`, { cause: err })
      throw err
    } finally {
      clearTimeout(timer)
      await channel?.close()
    }
  }

  /**
   * Fails every request now in flight to this peer (and drops idle sessions):
   * the peer was declared unusable, and its callers should move on at once
   * rather than wait for their timeouts.
   */
  abortInFlight (reason: Error): void {
    for (const c of [...this.idle.splice(0), ...this.busy]) c.fail(reason)
    this.busy.clear()
  }

  async close (): Promise<void> {
    this.closed = true
    const all = [...this.idle.splice(0), ...this.busy]
    this.busy.clear()
    await Promise.all(all.map(async (c) => await c.close()))
  }
}

async function * single (payload: Buffer): AsyncGenerator<Buffer> {
  if (payload.length > 0) yield payload
}

async function readReply<R extends MessageType> (channel: Channel, expect: R): Promise<Reply<R>> {
  const msg = await channel.next()
  if (msg.t === 'error') throw new RemoteError(msg.body.code, msg.body.message, channel.describe())
  if (msg.t !== expect) throw new RpcError(RpcErrorCode.PROTOCOL, `expected ${expect} from ${channel.describe()}, got ${msg.t}`)
  return msg as Reply<R>
}

/** A request body being written; `finish()` sends the end and returns the reply. */
export class Upload<R extends MessageType> {
  private readonly client: RpcClient
  private readonly channel: Channel
  private readonly expect: R
  private readonly signal: AbortSignal | undefined
  private done = false

  constructor (client: RpcClient, channel: Channel, expect: R, signal: AbortSignal | undefined) {
    this.client = client
    this.channel = channel
    this.expect = expect
    this.signal = signal
  }

  get peer (): string {
    return this.channel.describe()
  }

  /**
   * Writes bytes, split into wire chunks; resolves when the peer can take more.
   * Parts (CHUNK_BYTES in all, at most) go as one chunk, written back to back, never joined.
   */
  async write (data: Uint8Array | readonly Uint8Array[]): Promise<void> {
    await this.client.using(this.channel, this.signal, async () => {
      try {
        if (!(data instanceof Uint8Array)) {
          this.throwIfRefused()
          await this.channel.send('chunk', {}, data)
          return
        }
        for (let at = 0; at < data.length; at += CHUNK_BYTES) {
          this.throwIfRefused()
          await this.channel.send('chunk', {}, data.length <= CHUNK_BYTES ? data : data.subarray(at, at + CHUNK_BYTES))
        }
      } catch (err) {
        // The peer may have refused early and hung up: its reason beats "connection closed".
        this.throwIfRefused()
        throw err
      }
    }, false)
  }

  /** The peer refused the upload before its end (no space, a bad id): stop sending it. */
  private throwIfRefused (): void {
    const refusal = this.channel.queuedError()
    if (refusal?.t === 'error') throw new RemoteError(refusal.body.code, refusal.body.message, this.peer)
  }

  /** Ends the body (with its sha256 when the request said the sender hashes it) and reads the reply. */
  async finish (end: MessageBody<'end'> = {}): Promise<Reply<R>> {
    this.done = true
    return await this.client.using(this.channel, this.signal, async () => {
      await this.channel.send('end', end)
      const reply = await readReply(this.channel, this.expect)
      this.client.release(this.channel)
      return reply
    // A refused upload may have left body frames unread on the peer's side: never reuse its session.
    }, false)
  }

  /** Tells the peer to drop what it received; the session is not reused. */
  abort (reason: string): void {
    if (this.done) return
    this.done = true
    if (this.channel.closed) return
    this.channel.send('abort', { reason: reason.slice(0, 1024) })
      .catch(() => {})
      .finally(() => this.client.discard(this.channel, new RpcError(RpcErrorCode.ABORTED, `upload aborted: ${reason}`)))
  }
}

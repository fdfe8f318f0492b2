import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { decodeSigned, encodeSigned, FrameDecoder, hmacAuth, sessionAuth, InvalidBodyError, NONCE_BYTES, WireError, WireErrorCode, partsOf, payloadBytes, type AnyEnvelope, type MessageAuth, type MessageBody, type MessageType, type Payload } from '@mirrorcast/wire'
import { RpcError, RpcErrorCode } from './errors.js'

// Contexts the MACs are computed under: the client's open, the server's hello (bound to the
// client's nonce), both HMAC-SHA256; then one per direction bound to both nonces, from which
// that direction's GMAC key is derived, so a frame of one session or one direction never
// verifies in another (a server's frame reflected back to it fails).
const OPEN_CONTEXT = Buffer.from('mirrorcast-open-v2')
const HELLO_CONTEXT = Buffer.from('mirrorcast-hello-v2')
const SESSION_CONTEXT = Buffer.from('mirrorcast-session-v2')
// 4 MiB: above it the socket is paused until the reader catches up
const MAX_QUEUED_BYTES = 4 * 1024 * 1024
// 4 KiB: an open or hello is a few hundred bytes; before the handshake a peer, who may not
// hold the key, can make this side buffer no more than that
export const DEFAULT_HANDSHAKE_FRAME_BYTES = 4 * 1024

export interface ChannelOptions {
  key: Uint8Array
  selfId: string
  maxFrameBytes: number
  /**
   * ms the peer may stay silent while this side waits on it (for a frame, or for
   * its socket to take more) before the channel fails; any frame heard from the
   * peer, a keepalive included, restarts the count
   */
  idleTimeoutMs: number
  /** the frame limit until the handshake is done (DEFAULT_HANDSHAKE_FRAME_BYTES) */
  handshakeFrameBytes?: number
}

type Waiter = { resolve: (m: AnyEnvelope) => void, reject: (e: Error) => void }

/** A peer's frame that verified but whose content was refused: its place in the stream, kept. */
class RefusedFrame {
  readonly payload = Buffer.alloc(0)
  constructor (readonly refused: InvalidBodyError) {}
}

/**
 * What `next()` throws for a peer's frame whose content fails its schema: the
 * channel stays open (MAC and sequence were sound), only that message is refused.
 * ERR_RPC_BAD_REQUEST on a server's channel, ERR_RPC_BAD_REPLY on a client's.
 */
export class RefusedMessageError extends RpcError {
  readonly refusedType: MessageType

  constructor (code: string, message: string, refusedType: MessageType) {
    super(code, message)
    this.refusedType = refusedType
  }
}

function sessionContext (direction: 'c2s' | 's2c', clientNonce: Uint8Array, serverNonce: Uint8Array): Buffer {
  return Buffer.concat([SESSION_CONTEXT, Buffer.from(direction), clientNonce, serverNonce])
}

/**
 * One authenticated session over one TCP socket: both sides contribute a nonce,
 * every later frame is MAC'd under both nonces and its direction, numbered per
 * direction and sent by the peer named in the handshake, so a frame cannot be
 * replayed into another session, reflected, nor reordered within one.
 */
export class Channel {
  readonly socket: Socket
  private readonly options: ChannelOptions
  private readonly decoder: FrameDecoder
  private sendAuth: MessageAuth
  private recvAuth: MessageAuth
  private authenticated = false
  private refusalCode: string = RpcErrorCode.BAD_REPLY
  private sendSeq = 0
  private recvSeq = 0
  private readonly queue: Array<AnyEnvelope | RefusedFrame> = []
  private queuedBytes = 0
  private waiter: Waiter | undefined
  private failure: Error | undefined
  /** Cancels each running wait on the peer (next() or drain()). */
  private readonly watches = new Set<() => void>()
  private keepaliveTimer: NodeJS.Timeout | undefined
  private lastHeard = Date.now()
  private lastSent = Date.now()
  private discarding = false
  /** Frames that came behind a handshake frame, kept undecoded until the session's keys are in place. */
  private held: Buffer[][] | undefined
  /** Identity the peer gave in its hello or open. */
  peerId = ''

  constructor (socket: Socket, options: ChannelOptions) {
    this.socket = socket
    this.options = options
    this.sendAuth = this.recvAuth = hmacAuth(options.key, OPEN_CONTEXT)
    this.decoder = new FrameDecoder(Math.min(options.maxFrameBytes, options.handshakeFrameBytes ?? DEFAULT_HANDSHAKE_FRAME_BYTES))
    socket.setNoDelay(true)
    socket.on('data', (data: Buffer) => this.onData(data))
    socket.on('error', (err) => this.fail(new RpcError(RpcErrorCode.CLOSED, `connection to ${this.describe()} failed: ${err.message}`, { cause: err })))
    socket.on('close', () => {
      const truncated = this.decoder.pending > 0
      this.fail(truncated
        ? new WireError(WireErrorCode.TRUNCATED, `connection from ${this.describe()} closed inside a frame`)
        : new RpcError(RpcErrorCode.CLOSED, `connection to ${this.describe()} closed`))
    })
  }

  get closed (): boolean {
    return this.failure !== undefined
  }

  /** Client side of the handshake; returns the server's hello. */
  async openAsClient (): Promise<MessageBody<'hello'>> {
    const clientNonce = randomBytes(NONCE_BYTES)
    // set before the open leaves: the hello may be read as soon as it is sent
    this.recvAuth = hmacAuth(this.options.key, Buffer.concat([HELLO_CONTEXT, clientNonce]))
    await this.send('open', { nonce: clientNonce })
    const hello = await this.expect('hello')
    this.established(hello.from, RpcErrorCode.BAD_REPLY, sessionContext('c2s', clientNonce, hello.body.nonce), sessionContext('s2c', clientNonce, hello.body.nonce))
    return hello.body
  }

  /** Server side of the handshake. */
  async acceptAsServer (hello: Omit<MessageBody<'hello'>, 'nonce'>): Promise<void> {
    const open = await this.expect('open')
    const serverNonce = randomBytes(NONCE_BYTES)
    this.sendAuth = hmacAuth(this.options.key, Buffer.concat([HELLO_CONTEXT, open.body.nonce]))
    // send() encodes before its first await: the hello is MAC'd under the hello context,
    // and the session's contexts are in place before the client's first request can arrive
    const sent = this.send('hello', { ...hello, nonce: serverNonce })
    this.established(open.from, RpcErrorCode.BAD_REQUEST, sessionContext('s2c', open.body.nonce, serverNonce), sessionContext('c2s', open.body.nonce, serverNonce))
    await sent
  }

  /** The handshake is done: the session's contexts, numbering from 1 and the full frame limit. */
  private established (peerId: string, refusalCode: string, sendContext: Buffer, recvContext: Buffer): void {
    this.peerId = peerId
    this.refusalCode = refusalCode
    this.sendAuth = sessionAuth(this.options.key, sendContext)
    this.recvAuth = sessionAuth(this.options.key, recvContext)
    this.sendSeq = 0
    this.recvSeq = 0
    this.authenticated = true
    this.decoder.setLimit(this.options.maxFrameBytes)
    const held = this.held ?? []
    this.held = undefined
    try {
      for (const frame of held) this.deliver(frame)
    } catch (err) {
      this.fail(err as Error)
    }
  }

  /**
   * Sends one frame; resolves once the socket can take more (backpressure).
   * A message its receiver would refuse throws ERR_WIRE_INVALID_OUTGOING before
   * anything is written, and the session stays usable.
   */
  async send<T extends MessageType> (t: T, body: MessageBody<T>, payload?: Payload): Promise<void> {
    if (this.failure !== undefined) throw this.failure
    const seq = this.sendSeq + 1
    const [head, data] = encodeSigned(this.sendAuth, { t, from: this.options.selfId, seq, body, ...(payload === undefined ? {} : { payload }) }, true)
    const frameBytes = head.length - 4 + payloadBytes(data)
    if (frameBytes > this.options.maxFrameBytes) {
      throw new WireError(WireErrorCode.INVALID_OUTGOING, `${t} of ${frameBytes} bytes not sent: above the frame limit of ${this.options.maxFrameBytes}`)
    }
    this.sendSeq = seq
    this.lastSent = Date.now()
    this.socket.cork()
    let more = this.socket.write(head)
    if (data instanceof Uint8Array) {
      if (data.length > 0) more = this.socket.write(data)
    } else if (data !== undefined) {
      for (const part of data) if (part.length > 0) more = this.socket.write(part)
    }
    this.socket.uncork()
    if (!more || this.socket.writableNeedDrain) await this.drain()
  }

  /**
   * Sends a keepalive whenever this side sent nothing for `ms`, until
   * `stopKeepalive()` or the end of the session: a busy session whose own
   * client is slow (an upload relayed at a client's pace, a paused download)
   * tells the peer it is alive. A socket that needs drain gets nothing more:
   * the peer is not reading, and the drain timer measures that.
   */
  keepAlive (ms: number): void {
    this.stopKeepalive()
    if (ms <= 0 || this.failure !== undefined) return
    const tick = (): void => {
      const quiet = Date.now() - this.lastSent
      if (quiet >= ms && !this.socket.writableNeedDrain) this.send('keepalive', {}).catch(() => {})
      if (this.failure === undefined) this.keepaliveTimer = setTimeout(tick, Math.max(1, ms - (Date.now() - this.lastSent)))
    }
    this.keepaliveTimer = setTimeout(tick, ms)
  }

  stopKeepalive (): void {
    if (this.keepaliveTimer !== undefined) clearTimeout(this.keepaliveTimer)
    this.keepaliveTimer = undefined
  }

  /**
   * Fails the channel with `message` once nothing was heard from the peer for
   * the idle timeout since `since`; re-arms for the remainder while frames come.
   * Returns its canceller.
   */
  private watchPeer (message: string): () => void {
    const since = Date.now()
    let timer: NodeJS.Timeout
    const cancel = (): void => {
      clearTimeout(timer)
      this.watches.delete(cancel)
    }
    const check = (): void => {
      const left = this.options.idleTimeoutMs - (Date.now() - Math.max(since, this.lastHeard))
      if (left > 0) timer = setTimeout(check, left)
      else this.fail(new RpcError(RpcErrorCode.TIMEOUT, `${message}: nothing heard from ${this.describe()} for ${this.options.idleTimeoutMs} ms`))
    }
    timer = setTimeout(check, this.options.idleTimeoutMs)
    this.watches.add(cancel)
    return cancel
  }

  /**
   * Waits until the socket takes more; a socket that fails meanwhile throws
   * the channel's typed failure. A peer that takes nothing and says nothing
   * for the idle timeout fails the channel, as one that sends nothing does.
   */
  private async drain (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const cancel = this.watchPeer('the socket took no bytes')
      const done = (): void => {
        cancel()
        this.socket.off('drain', done)
        this.socket.off('close', done)
        if (this.failure === undefined && !this.socket.destroyed) resolve()
        else reject(this.failure ?? new RpcError(RpcErrorCode.CLOSED, `connection to ${this.describe()} closed`))
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  /** The next message from the peer; one whose content was refused throws a RefusedMessageError. */
  async next (): Promise<AnyEnvelope> {
    const queued = this.queue.shift()
    if (queued !== undefined) {
      this.queuedBytes -= payloadBytes(partsOf(queued))
      if (this.socket.isPaused() && this.queuedBytes < MAX_QUEUED_BYTES / 2) this.socket.resume()
      if (queued instanceof RefusedFrame) throw this.refusal(queued)
      return queued
    }
    if (this.failure !== undefined) throw this.failure
    return await new Promise<AnyEnvelope>((resolve, reject) => {
      const cancel = this.watchPeer('no answer')
      this.waiter = {
        resolve: (m) => { cancel(); resolve(m) },
        reject: (e) => { cancel(); reject(e) }
      }
    })
  }

  private refusal (frame: RefusedFrame): RefusedMessageError {
    return new RefusedMessageError(this.refusalCode, `${this.describe()} sent content that fails its schema: ${frame.refused.message}`, frame.refused.t)
  }

  /** The next message, which must be of type `t` (an `error` reply is thrown by the caller's wrapper). */
  async expect<T extends MessageType> (t: T): Promise<Extract<AnyEnvelope, { t: T }>> {
    const msg = await this.next()
    if (msg.t !== t) {
      const err = new RpcError(RpcErrorCode.PROTOCOL, `expected ${t} from ${this.describe()}, got ${msg.t}`)
      this.fail(err)
      throw err
    }
    return msg as Extract<AnyEnvelope, { t: T }>
  }

  /** An `error` reply the peer sent while we were still writing (it refused the request early). */
  queuedError (): AnyEnvelope | undefined {
    return this.queue.find((m): m is AnyEnvelope => !(m instanceof RefusedFrame) && m.t === 'error')
  }

  /** Ends the session: the socket is destroyed, every timer stopped and every waiter fails with `err`. */
  fail (err: Error): void {
    if (this.failure !== undefined) return
    this.failure = err
    this.stopKeepalive()
    for (const cancel of [...this.watches]) cancel()
    this.socket.destroy()
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(err)
  }

  async close (): Promise<void> {
    if (this.socket.destroyed) {
      // destroyed by the peer's hang-up before the 'close' event ran fail(): stop the timers now
      this.fail(new RpcError(RpcErrorCode.CLOSED, 'channel closed'))
      return
    }
    const closed = once(this.socket, 'close')
    this.fail(new RpcError(RpcErrorCode.CLOSED, 'channel closed'))
    await closed
  }

  /**
   * Ends the session so that the frames already sent reach the peer: the
   * write side is closed, whatever the peer still sends is read and dropped,
   * and the socket is destroyed when the peer hangs up or after `ms`. Closing
   * with unread data would reset the connection and lose the last reply.
   */
  async linger (ms: number): Promise<void> {
    if (this.socket.destroyed) return
    this.discarding = true
    this.stopKeepalive()
    for (const cancel of [...this.watches]) cancel()
    this.socket.resume()
    this.socket.end()
    const timer = setTimeout(() => this.socket.destroy(), ms)
    if (!this.socket.destroyed) await once(this.socket, 'close')
    clearTimeout(timer)
    this.fail(new RpcError(RpcErrorCode.CLOSED, 'channel closed'))
  }

  describe (): string {
    return `${this.peerId === '' ? '' : this.peerId + '@'}${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`
  }

  private onData (data: Buffer): void {
    if (this.failure !== undefined || this.discarding) return
    try {
      for (const frame of this.decoder.pushParts(data)) {
        if (this.held !== undefined) this.held.push(frame)
        else this.deliver(frame)
      }
    } catch (err) {
      this.fail(err as Error)
    }
  }

  /**
   * One verified frame: counted as a sign of life, checked for order and sender,
   * then absorbed (a keepalive), handed to the waiting reader or queued. Only
   * after the handshake is a frame whose content fails its schema kept, as a
   * refusal in its place: before it, nothing proves the peer holds the key.
   */
  private deliver (frame: Buffer[]): void {
    const msg = this.decode(frame)
    this.lastHeard = Date.now()
    if (!this.authenticated) this.held = []
    const { seq, from } = msg instanceof RefusedFrame ? msg.refused : msg
    if (seq !== ++this.recvSeq) {
      throw new RpcError(RpcErrorCode.PROTOCOL, `frame ${seq} from ${this.describe()} out of order (expected ${this.recvSeq})`)
    }
    if (this.authenticated && from !== this.peerId) {
      // MAC-valid, so from a key holder: but not the one this session was opened with
      throw new RpcError(RpcErrorCode.PROTOCOL, `frame from ${JSON.stringify(from)} on the session of ${this.describe()}`)
    }
    if (!(msg instanceof RefusedFrame) && msg.t === 'keepalive') return
    const waiter = this.waiter
    if (waiter !== undefined && this.queue.length === 0) {
      this.waiter = undefined
      if (msg instanceof RefusedFrame) waiter.reject(this.refusal(msg))
      else waiter.resolve(msg)
      return
    }
    this.queue.push(msg)
    this.queuedBytes += payloadBytes(partsOf(msg))
    if (this.queuedBytes >= MAX_QUEUED_BYTES) this.socket.pause()
  }

  private decode (frame: Buffer[]): AnyEnvelope | RefusedFrame {
    try {
      return decodeSigned(this.recvAuth, frame, this.options.maxFrameBytes, this.recvSeq + 1)
    } catch (err) {
      if (err instanceof InvalidBodyError && this.authenticated) return new RefusedFrame(err)
      throw err
    }
  }
}

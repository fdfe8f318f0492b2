import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { decodeMessage, encodeMessage, FrameDecoder, WireError, WireErrorCode, type AnyEnvelope, type MessageBody, type MessageType } from '@mirrorcast/wire'
import { RpcError, RpcErrorCode } from './errors.js'

const NONCE_BYTES = 16
const OPEN_CONTEXT = Buffer.from('mirrorcast-open-v1')
// 4 MiB: above it the socket is paused until the reader catches up
const MAX_QUEUED_BYTES = 4 * 1024 * 1024

export interface ChannelOptions {
  key: Uint8Array
  selfId: string
  maxFrameBytes: number
  /** ms a read may wait for the next frame before the channel fails */
  idleTimeoutMs: number
}

type Waiter = { resolve: (m: AnyEnvelope) => void, reject: (e: Error) => void }

/**
 * One authenticated session over one TCP socket: both sides contribute a nonce,
 * every later frame is MAC'd under both nonces and numbered per direction, so a
 * frame cannot be replayed into another session nor reordered within one.
 */
export class Channel {
  readonly socket: Socket
  private readonly options: ChannelOptions
  private readonly decoder: FrameDecoder
  private context: Buffer = OPEN_CONTEXT
  private sendSeq = 0
  private recvSeq = 0
  private readonly queue: AnyEnvelope[] = []
  private queuedBytes = 0
  private waiter: Waiter | undefined
  private failure: Error | undefined
  private timer: NodeJS.Timeout | undefined
  private discarding = false
  /** Identity the peer gave in its hello or open. */
  peerId = ''

  constructor (socket: Socket, options: ChannelOptions) {
    this.socket = socket
    this.options = options
    this.decoder = new FrameDecoder(options.maxFrameBytes)
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
    await this.send('open', { nonce: clientNonce })
    this.context = Buffer.concat([OPEN_CONTEXT, clientNonce])
    const hello = await this.expect('hello')
    this.peerId = hello.from
    this.context = Buffer.concat([clientNonce, hello.body.nonce])
    this.sendSeq = 0
    this.recvSeq = 0
    return hello.body
  }

  /** Server side of the handshake. */
  async acceptAsServer (hello: Omit<MessageBody<'hello'>, 'nonce'>): Promise<void> {
    const open = await this.expect('open')
    this.peerId = open.from
    const serverNonce = randomBytes(NONCE_BYTES)
    this.context = Buffer.concat([OPEN_CONTEXT, open.body.nonce])
    await this.send('hello', { ...hello, nonce: serverNonce })
    this.context = Buffer.concat([open.body.nonce, serverNonce])
    this.sendSeq = 0
    this.recvSeq = 0
  }

  /** Sends one frame; resolves once the socket can take more (backpressure). */
  async send<T extends MessageType> (t: T, body: MessageBody<T>, payload?: Uint8Array): Promise<void> {
    if (this.failure !== undefined) throw this.failure
    const [head, data] = encodeMessage(this.options.key, this.context, { t, from: this.options.selfId, seq: ++this.sendSeq, body, ...(payload === undefined ? {} : { payload }) }, true)
    this.socket.cork()
    this.socket.write(head)
    const more = data === undefined || data.length === 0 ? true : this.socket.write(data)
    this.socket.uncork()
    if (!more || this.socket.writableNeedDrain) await this.drain()
  }

  /**
   * Waits until the socket takes more; a socket that fails meanwhile throws
   * the channel's typed failure. A peer that takes nothing for the idle
   * timeout fails the channel, as one that sends nothing does.
   */
  private async drain (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.fail(new RpcError(RpcErrorCode.TIMEOUT, `${this.describe()} took no bytes within ${this.options.idleTimeoutMs} ms`))
      }, this.options.idleTimeoutMs)
      const done = (): void => {
        clearTimeout(timer)
        this.socket.off('drain', done)
        this.socket.off('close', done)
        if (this.failure === undefined && !this.socket.destroyed) resolve()
        else reject(this.failure ?? new RpcError(RpcErrorCode.CLOSED, `connection to ${this.describe()} closed`))
      }
      this.socket.on('drain', done)
      this.socket.on('close', done)
    })
  }

  /** The next message from the peer. */
  async next (): Promise<AnyEnvelope> {
    const queued = this.queue.shift()
    if (queued !== undefined) {
      this.queuedBytes -= queued.payload.length
      if (this.socket.isPaused() && this.queuedBytes < MAX_QUEUED_BYTES / 2) this.socket.resume()
      return queued
    }
    if (this.failure !== undefined) throw this.failure
    return await new Promise<AnyEnvelope>((resolve, reject) => {
      this.waiter = { resolve, reject }
      this.timer = setTimeout(() => {
        this.fail(new RpcError(RpcErrorCode.TIMEOUT, `no answer from ${this.describe()} within ${this.options.idleTimeoutMs} ms`))
      }, this.options.idleTimeoutMs)
    })
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
    return this.queue.find((m) => m.t === 'error')
  }

  /** Ends the session: the socket is destroyed and every waiter fails with `err`. */
  fail (err: Error): void {
    if (this.failure !== undefined) return
    this.failure = err
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.socket.destroy()
    const waiter = this.waiter
    this.waiter = undefined
    waiter?.reject(err)
  }

  async close (): Promise<void> {
    if (this.socket.destroyed) return
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
      for (const frame of this.decoder.push(data)) this.deliver(frame)
    } catch (err) {
      this.fail(err as Error)
    }
  }

  private deliver (frame: Buffer): void {
    const msg = decodeMessage(this.options.key, this.context, frame, this.options.maxFrameBytes)
    if (msg.seq !== ++this.recvSeq) {
      throw new RpcError(RpcErrorCode.PROTOCOL, `frame ${msg.seq} from ${this.describe()} out of order (expected ${this.recvSeq})`)
    }
    const waiter = this.waiter
    if (waiter !== undefined && this.queue.length === 0) {
      this.waiter = undefined
      if (this.timer !== undefined) clearTimeout(this.timer)
      waiter.resolve(msg)
      return
    }
    this.queue.push(msg)
    this.queuedBytes += msg.payload.length
    if (this.queuedBytes >= MAX_QUEUED_BYTES) this.socket.pause()
  }
}

import { randomBytes } from 'node:crypto'
import { CHUNK_BYTES, RemoteError, RpcError, RpcErrorCode } from '@mirrorcast/rpc'
import {
  DEFAULT_MAX_FRAME_BYTES, encodedBytes, ENVELOPE_OVERHEAD, messageSchemas, PROTOCOL_VERSION, REPLY_TYPES, WireError, WireErrorCode,
  type AnyEnvelope, type MessageBody, type MessageType, type ReplyType, type RequestType
} from '@mirrorcast/wire'

/** A reply as the node protocol delivers it. */
export type FakeReply<R extends MessageType> = Extract<AnyEnvelope, { t: R }>

/** What a fake member answers a request with: a reply, and for a small body its bytes inline. */
export interface Answer { t: MessageType, body: unknown, payload?: Uint8Array }

/** A request body that a fake member takes chunk by chunk. */
export interface UploadSink {
  write: (chunk: Buffer) => void
  finish: () => Answer
  /** The upload ended without its end: what was received is dropped. */
  drop: () => void
}

/** A streamed answer: its head, then its body. */
export interface DownloadSource { head: Answer, chunks: Buffer[] }

/**
 * A fault a fake member injects into the next request it hits. Without
 * `afterBytes` or `afterEffect` the request fails before the member does
 * anything, as a connection refused or reset would.
 */
export interface Fault {
  /** The request type it hits; any request when omitted. */
  t?: MessageType
  /** In a streamed body (read or written): strikes at the first chunk that would take it past this many bytes. */
  afterBytes?: number
  /** The member does the work (a commit, a delete) and the answer is lost on the way back. */
  afterEffect?: boolean
  /** What the caller sees; by default the connection reset, a transport failure (ERR_RPC_CLOSED). */
  error?: Error
  /** The member dies where the fault strikes (kill -9 mid-request): down from then on, so its probes are refused too. Without it, only that session is cut. */
  kill?: boolean
  /** How many requests it hits; 1 by default. */
  times?: number
}

export interface FakeMemberOptions {
  id: string
  center: string
  slot: number
  /** The address it announces; 127.0.0.1 by default (nothing listens there: fakes open no socket). */
  address?: string
  port?: number
}

/** A refusal by the member itself, with its code, as the real one sends it (a RemoteError). */
export function remoteError (code: string, message: string, peer = 'fake'): RemoteError {
  return new RemoteError(code, message, peer)
}

/**
 * The part of a storage node or directory server that is the same for both
 * fakes: an identity to announce, a client per caller that speaks to it in
 * process (no socket, no encoding), and the ways it fails: down (refused),
 * paused (answers nothing until resumed), or a fault injected into the next
 * request of a type.
 */
export abstract class FakeMember {
  readonly id: string
  readonly center: string
  readonly slot: number
  readonly address: string
  readonly port: number
  readonly role: 'storage' | 'directory'
  bootId = newBootId()
  /** Every request that reached the member, oldest first: not those refused while it was down, nor those a fault failed at once. */
  readonly received: Array<{ t: MessageType, body: unknown }> = []
  /** Probes it answered: how often the manager checked whether it was alive. */
  probes = 0
  private isDown = false
  private readonly faults: Fault[] = []
  private pausedUntil: Promise<void> | undefined
  private resumePaused: (() => void) | undefined
  private readonly clients = new Set<FakeMemberClient>()

  constructor (options: FakeMemberOptions, role: 'storage' | 'directory') {
    this.id = options.id
    this.center = options.center
    this.slot = options.slot
    this.address = options.address ?? '127.0.0.1'
    this.port = options.port ?? 1
    this.role = role
  }

  /** Answers a request that carries no streamed body. */
  protected abstract answer (t: MessageType, body: unknown, payload: Buffer | undefined): Answer
  /** Starts taking a streamed request body. */
  protected abstract startUpload (t: MessageType, body: unknown): UploadSink
  /** Answers a request with a head and, unless it is inline, a streamed body. */
  protected abstract startDownload (t: MessageType, body: unknown): DownloadSource
  /** What its announcements carry beyond its identity. */
  protected abstract load (): { free: number, files: number }

  /** A heartbeat, as the multicast group would deliver it: `roster.observe(member.announcement())`. */
  announcement (cluster = 'mirrorcast'): MessageBody<'announce'> {
    return { cluster, id: this.id, role: this.role, center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, heartbeatMs: 100, ...this.load() }
  }

  /** A clean shutdown's goodbye: `roster.goodbye(member.goodbye())` makes it dead at once. */
  goodbye (cluster = 'mirrorcast'): MessageBody<'goodbye'> {
    return { cluster, id: this.id, role: this.role, bootId: this.bootId }
  }

  /** A client that reaches this member in process, for `Membership`'s `clientFor`. */
  client (): FakeMemberClient {
    const client = new FakeMemberClient(this)
    this.clients.add(client)
    return client
  }

  get down (): boolean {
    return this.isDown
  }

  /** Killed: every request is refused, and every stream in flight is cut, until `restart()`. */
  kill (): void {
    this.isDown = true
    const cut = new RpcError(RpcErrorCode.CLOSED, `connection to ${this.name} reset`)
    for (const c of this.clients) c.abortInFlight(cut)
    this.resume()
  }

  /** Back, as a new process (a new boot id), with what it had stored. */
  restart (): void {
    this.isDown = false
    this.bootId = newBootId()
  }

  /** As SIGSTOP: requests are taken but answered only after `resume()`. */
  pause (): void {
    this.pausedUntil ??= new Promise<void>((resolve) => { this.resumePaused = resolve })
  }

  resume (): void {
    this.resumePaused?.()
    this.pausedUntil = undefined
    this.resumePaused = undefined
  }

  /**
   * A probe on a fresh session, as a live process answers it: refused when
   * down, unanswered while paused (a timeout once `timeoutMs` has passed).
   */
  async probed (timeoutMs: number): Promise<void> {
    if (this.isDown) throw new RpcError(RpcErrorCode.CONNECT, `cannot connect to ${this.name} (${this.address}:${this.port}): connection refused`)
    if (this.pausedUntil !== undefined) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([this.pausedUntil, new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs) })])
      clearTimeout(timer)
      if (this.pausedUntil !== undefined) throw new RpcError(RpcErrorCode.TIMEOUT, `probe of ${this.name}: no answer within ${timeoutMs} ms`)
    }
    this.probes++
  }

  /** Injects a fault into the next request (of a type, when given). */
  fail (fault: Fault = {}): void {
    this.faults.push({ ...fault })
  }

  get name (): string {
    return `${this.center}/${this.role === 'directory' ? 'dir' : 'node'}${this.slot}`
  }

  /** A request arrives: refused when down, held while paused; returns the fault it meets, if any. */
  async admit (t: MessageType, body: unknown, hold: (wait: Promise<void>) => Promise<void>): Promise<Fault | undefined> {
    if (this.isDown) throw new RpcError(RpcErrorCode.CONNECT, `cannot connect to ${this.name} (${this.address}:${this.port}): connection refused`)
    while (this.pausedUntil !== undefined) await hold(this.pausedUntil)
    if (this.isDown) throw new RpcError(RpcErrorCode.CLOSED, `connection to ${this.name} closed`)
    const i = this.faults.findIndex((f) => f.t === undefined || f.t === t)
    const fault = i < 0 ? undefined : this.faults[i] as Fault
    if (fault !== undefined && (fault.times = (fault.times ?? 1) - 1) <= 0) this.faults.splice(i, 1)
    if (fault !== undefined && fault.afterBytes === undefined && fault.afterEffect !== true) throw faultError(this, fault)
    this.received.push({ t, body: structuredClone(body) })
    return fault
  }

  /** @internal: for FakeMemberClient */
  run<X> (fn: () => X): X {
    try {
      return fn()
    } catch (err) {
      const code = (err as { code?: unknown }).code
      // What the member refuses reaches the caller as the member's own code, like over the wire.
      if (typeof code === 'string' && !(err instanceof RemoteError)) throw remoteError(code, (err as Error).message, this.name)
      throw err
    }
  }

  /** @internal */
  answerOf (t: MessageType, body: unknown, payload: Buffer | undefined): Answer {
    return this.run(() => this.answer(t, body, payload))
  }

  /** @internal */
  uploadOf (t: MessageType, body: unknown): UploadSink {
    return this.run(() => this.startUpload(t, body))
  }

  /** @internal */
  downloadOf (t: MessageType, body: unknown): DownloadSource {
    return this.run(() => this.startDownload(t, body))
  }

  /** @internal */
  forget (client: FakeMemberClient): void {
    this.clients.delete(client)
  }
}

export function faultError (member: FakeMember, fault: Fault): Error {
  if (fault.kill === true) member.kill()
  return fault.error ?? new RpcError(RpcErrorCode.CLOSED, `connection to ${member.name} reset`)
}

/**
 * The bytes a message would take as a frame (its length prefix aside), with
 * the codec's own encoding: a fake refuses what a real session would.
 */
function frameBytes (t: MessageType, from: string, body: unknown, payload: Uint8Array | undefined): number {
  return ENVELOPE_OVERHEAD + encodedBytes({ v: PROTOCOL_VERSION, t, f: from, ts: Date.now(), s: Number.MAX_SAFE_INTEGER, b: body }) + (payload?.length ?? 0)
}

/**
 * A request body checked as the real codec checks it: a manager bug shows as a failed test, not as a fake's odd answer.
 * A request above the frame limit is refused before it is sent, as RpcClient refuses it (ERR_WIRE_INVALID_OUTGOING).
 */
function checked (t: MessageType, body: unknown, payload?: Uint8Array): unknown {
  const parsed = messageSchemas[t].safeParse(body)
  if (!parsed.success) throw new Error(`fake member: invalid ${t} body: ${parsed.error.message}`)
  const bytes = frameBytes(t, 'mgr-fake', body, payload)
  if (bytes > DEFAULT_MAX_FRAME_BYTES) throw new WireError(WireErrorCode.INVALID_OUTGOING, `${t} of ${bytes} bytes not sent: above the frame limit of ${DEFAULT_MAX_FRAME_BYTES}`)
  return structuredClone(body)
}

/**
 * An answer as the caller gets it. One above the frame limit reaches the caller
 * as the real server's refusal to send it: an error reply, ERR_WIRE_INVALID_OUTGOING
 * (what it did, it did all the same).
 */
function envelope<R extends MessageType> (member: FakeMember, expect: R, answer: Answer): FakeReply<R> {
  if (answer.t !== expect) throw new RpcError(RpcErrorCode.PROTOCOL, `expected ${expect} from ${member.name}, got ${answer.t}`)
  const parsed = messageSchemas[answer.t].safeParse(answer.body)
  if (!parsed.success) throw new Error(`fake member ${member.name}: invalid ${answer.t} answer: ${parsed.error.message}`)
  const bytes = frameBytes(answer.t, member.id, answer.body, answer.payload)
  if (bytes > DEFAULT_MAX_FRAME_BYTES) {
    throw remoteError(WireErrorCode.INVALID_OUTGOING, `${answer.t} of ${bytes} bytes not sent: above the frame limit of ${DEFAULT_MAX_FRAME_BYTES}`, member.name)
  }
  const payload = answer.payload === undefined ? Buffer.alloc(0) : Buffer.from(answer.payload)
  return { t: answer.t, from: member.id, ts: Date.now(), seq: 0, body: structuredClone(answer.body), payload } as unknown as FakeReply<R>
}

/**
 * A client of one fake member, with the shape of the manager's MemberClient
 * (the part of RpcClient it uses). Transport failures are RpcErrors, the
 * member's refusals RemoteErrors, as with the real client; `abortInFlight`
 * fails what is in flight, a signal aborts its request.
 */
export class FakeMemberClient {
  readonly member: FakeMember
  readonly host: string
  readonly port: number
  private readonly inFlight = new Set<(reason: Error) => void>()
  private closed = false

  constructor (member: FakeMember) {
    this.member = member
    this.host = member.address
    this.port = member.port
  }

  async request<T extends RequestType> (t: T, body: MessageBody<T>, options: { signal?: AbortSignal, payload?: Uint8Array } = {}): Promise<FakeReply<ReplyType<T>>> {
    return await this.track(options.signal, async (hold) => {
      const input = checked(t, body, options.payload)
      const fault = await this.member.admit(t, input, hold)
      // A body sent inline, in the request's frame, is cut like a streamed one.
      if (fault?.afterBytes !== undefined && (options.payload?.length ?? 0) > fault.afterBytes) throw faultError(this.member, fault)
      const answer = this.member.answerOf(t, input, options.payload === undefined ? undefined : Buffer.from(options.payload))
      if (fault?.afterEffect === true) throw faultError(this.member, fault)
      return envelope(this.member, REPLY_TYPES[t], answer)
    })
  }

  async upload<T extends RequestType> (t: T, body: MessageBody<T>, options: { signal?: AbortSignal } = {}): Promise<FakeUpload<ReplyType<T>>> {
    return await this.track(options.signal, async (hold) => {
      const input = checked(t, body)
      const fault = await this.member.admit(t, input, hold)
      return new FakeUpload(this, this.member.uploadOf(t, input), REPLY_TYPES[t], fault, options.signal)
    })
  }

  async download<T extends RequestType> (t: T, body: MessageBody<T>, options: { signal?: AbortSignal } = {}): Promise<{ head: FakeReply<ReplyType<T>>, body: AsyncGenerator<Buffer> }> {
    return await this.track(options.signal, async (hold) => {
      const input = checked(t, body)
      const fault = await this.member.admit(t, input, hold)
      const source = this.member.downloadOf(t, input)
      const head = envelope(this.member, REPLY_TYPES[t], source.head)
      return { head, body: this.stream(source.chunks, fault, options.signal) }
    })
  }

  async probe (timeoutMs: number): Promise<void> {
    if (this.closed) throw new RpcError(RpcErrorCode.CLOSED, 'client is closed')
    await this.member.probed(timeoutMs)
  }

  abortInFlight (reason: Error): void {
    for (const fail of [...this.inFlight]) fail(reason)
  }

  /** Something in flight that abortInFlight() must fail (an open upload). @internal */
  hold (fail: (reason: Error) => void): void {
    this.inFlight.add(fail)
  }

  /** @internal */
  release (fail: (reason: Error) => void): void {
    this.inFlight.delete(fail)
  }

  async close (): Promise<void> {
    this.closed = true
    this.abortInFlight(new RpcError(RpcErrorCode.CLOSED, 'client is closed'))
    this.member.forget(this)
  }

  /**
   * Runs one exchange so that abortInFlight() and the signal end it: `hold`
   * waits on something (a paused member) unless the exchange is failed first.
   * @internal
   */
  async track<X> (signal: AbortSignal | undefined, fn: (hold: (wait: Promise<void>) => Promise<void>) => Promise<X>): Promise<X> {
    if (this.closed) throw new RpcError(RpcErrorCode.CLOSED, 'client is closed')
    if (signal?.aborted === true) throw new RpcError(RpcErrorCode.ABORTED, 'request aborted', { cause: signal.reason })
    let failed: Error | undefined
    let wake: ((reason: Error) => void) | undefined
    const fail = (reason: Error): void => { failed ??= reason; wake?.(reason) }
    const onAbort = (): void => fail(new RpcError(RpcErrorCode.ABORTED, 'request aborted', { cause: signal?.reason }))
    this.inFlight.add(fail)
    signal?.addEventListener('abort', onAbort, { once: true })
    const hold = async (wait: Promise<void>): Promise<void> => {
      if (failed !== undefined) throw failed
      await Promise.race([wait, new Promise<never>((_resolve, reject) => { wake = reject })])
      wake = undefined
    }
    try {
      const value = await fn(hold)
      if (failed !== undefined) throw failed
      return value
    } finally {
      this.inFlight.delete(fail)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /**
   * A streamed body, cut by a fault, by abortInFlight() or by the signal, as
   * a real session would be: it is in flight from the head on, read or not.
   */
  private stream (chunks: Buffer[], fault: Fault | undefined, signal: AbortSignal | undefined): AsyncGenerator<Buffer> {
    let failed: Error | undefined
    const fail = (reason: Error): void => { failed ??= reason }
    const onAbort = (): void => fail(new RpcError(RpcErrorCode.ABORTED, 'download aborted'))
    const release = (): void => {
      this.inFlight.delete(fail)
      signal?.removeEventListener('abort', onAbort)
    }
    this.inFlight.add(fail)
    signal?.addEventListener('abort', onAbort, { once: true })
    const member = this.member
    return (async function * () {
      try {
        let sent = 0
        for (const chunk of chunks) {
          // A turn of the event loop per chunk, as frames from a socket: a kill or an abort can land between two.
          await new Promise<void>((resolve) => setImmediate(resolve))
          if (failed !== undefined) throw failed
          if (member.down) throw new RpcError(RpcErrorCode.CLOSED, `connection to ${member.name} reset`)
          if (fault?.afterBytes !== undefined && sent + chunk.length > fault.afterBytes) throw faultError(member, fault)
          sent += chunk.length
          yield Buffer.from(chunk)
        }
      } finally {
        release()
      }
    })()
  }
}

/** A request body being written to a fake member (the shape of rpc's Upload). */
export class FakeUpload<R extends MessageType> {
  private readonly client: FakeMemberClient
  private readonly sink: UploadSink
  private readonly expect: R
  private readonly fault: Fault | undefined
  private readonly signal: AbortSignal | undefined
  private written = 0
  private done = false
  /** Set when the session was cut between two steps (abortInFlight, a kill): every later step fails with it. */
  private failed: Error | undefined
  private readonly onFail = (reason: Error): void => { this.failed ??= reason }

  constructor (client: FakeMemberClient, sink: UploadSink, expect: R, fault: Fault | undefined, signal: AbortSignal | undefined) {
    this.client = client
    this.sink = sink
    this.expect = expect
    this.fault = fault
    this.signal = signal
    client.hold(this.onFail)
  }

  async write (parts: Uint8Array | readonly Uint8Array[]): Promise<void> {
    // A chunk in parts, as the manager sends it, is one chunk to the node.
    const data = parts instanceof Uint8Array ? parts : Buffer.concat(parts)
    await this.step(async () => {
      for (let at = 0; at < data.length; at += CHUNK_BYTES) {
        const chunk = Buffer.from(data.subarray(at, at + CHUNK_BYTES))
        if (this.fault?.afterBytes !== undefined && this.written + chunk.length > this.fault.afterBytes) throw faultError(this.client.member, this.fault)
        this.client.member.run(() => this.sink.write(chunk))
        this.written += chunk.length
      }
    })
  }

  async finish (): Promise<FakeReply<R>> {
    return await this.step(async () => {
      const answer = this.client.member.run(() => this.sink.finish())
      this.end()
      if (this.fault?.afterEffect === true) throw faultError(this.client.member, this.fault)
      return envelope(this.client.member, this.expect, answer)
    })
  }

  abort (_reason: string): void {
    if (this.done) return
    this.end()
    this.sink.drop()
  }

  private end (): void {
    this.done = true
    this.client.release(this.onFail)
  }

  /** One step of the upload, a turn of the event loop later (as a socket write); any failure ends it and the member drops what it received. */
  private async step<X> (fn: () => Promise<X>): Promise<X> {
    if (this.done) throw new RpcError(RpcErrorCode.CLOSED, 'upload already ended')
    try {
      return await this.client.track(this.signal, async () => {
        await new Promise<void>((resolve) => setImmediate(resolve))
        if (this.failed !== undefined) throw this.failed
        if (this.client.member.down) throw new RpcError(RpcErrorCode.CLOSED, `connection to ${this.client.member.name} reset`)
        return await fn()
      })
    } catch (err) {
      this.abort((err as Error).message)
      throw err
    }
  }
}

function newBootId (): string {
  return randomBytes(8).toString('hex')
}

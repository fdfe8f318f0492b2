import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

// 4 checks a timeout: a stall is acted on between one timeout and a quarter more after the last byte moved
export const CHECKS_PER_TIMEOUT = 4

/** Which side stopped: the client sends no more of its body, or takes no more of the response. */
export type Stall = 'body' | 'response'

export interface ProgressOptions {
  idleMs: number
  /** The kernel's count of the connection's unacknowledged bytes, where it can be read (see SendQueues). */
  sendQueue?: (socket: Socket) => Promise<number | undefined>
}

/**
 * Watches one request for a client that stops moving bytes, instead of a
 * deadline on the whole request: a 64 GiB PUT over a slow link takes hours,
 * and must never be cut for that, while a client that sends nothing, or reads
 * nothing, must not hold a connection (and the members' sessions behind it)
 * for ever. A quiet stretch counts only while the client owes bytes:
 *
 * - the body is incomplete and nothing of it waits in the request's buffer.
 *   A full buffer means the manager is the slow one (members taking the body at
 *   their pace, a check before the upload), and the client cannot send more;
 * - response bytes wait in the socket's buffer. Progress is bytes the kernel
 *   took from the process, or bytes the client acknowledged (which it does as
 *   it reads), never the count handed to the socket. Waiting on a member for the
 *   next chunk leaves the buffer empty and is not counted.
 *
 * Calls `onStall` once, and stops when the exchange is over or the socket closes.
 */
export function watchProgress (req: IncomingMessage, res: ServerResponse, options: ProgressOptions, onStall: (stall: Stall) => void): void {
  const watch = new ProgressWatch(req, res, options, onStall)
  watch.start()
}

class ProgressWatch {
  private readonly socket: Socket
  private read: number
  private taken: number
  private queued: number | undefined
  private quietSince = performance.now()
  private timer: NodeJS.Timeout | undefined
  private checking = false

  constructor (private readonly req: IncomingMessage, private readonly res: ServerResponse, private readonly options: ProgressOptions, private readonly onStall: (stall: Stall) => void) {
    this.socket = req.socket
    this.read = this.socket.bytesRead
    this.taken = takenBytes(this.socket)
  }

  start (): void {
    this.timer = setInterval(() => { void this.check() }, Math.max(1, Math.floor(this.options.idleMs / CHECKS_PER_TIMEOUT)))
    // The server's connections keep the process alive while they are open; this timer need not.
    this.timer.unref()
    this.socket.once('close', this.stop)
    this.res.once('finish', this.finished)
  }

  private readonly finished = (): void => { if (this.req.complete) this.stop() }

  private readonly stop = (): void => {
    clearInterval(this.timer)
    this.timer = undefined
    this.socket.off('close', this.stop)
    this.res.off('finish', this.finished)
  }

  private async check (): Promise<void> {
    if (this.checking) return
    this.checking = true
    try {
      await this.checkOnce()
    } finally {
      this.checking = false
    }
  }

  private async checkOnce (): Promise<void> {
    const { req, res, socket } = this
    if (req.complete && res.writableFinished) return this.stop()
    const owesBody = !req.complete && req.readableLength === 0
    const owesRead = socket.writableLength > 0
    if ((!owesBody && !owesRead) || this.moved()) return this.progressed()
    if (owesRead && await this.acknowledged()) return this.progressed()
    if (this.timer === undefined || performance.now() - this.quietSince < this.options.idleMs) return
    this.stop()
    this.onStall(owesBody ? 'body' : 'response')
  }

  /** Bytes arrived, or the kernel took more of the response. */
  private moved (): boolean {
    const read = this.socket.bytesRead
    const taken = takenBytes(this.socket)
    const moved = read !== this.read || taken !== this.taken
    this.read = read
    this.taken = taken
    return moved
  }

  /** The client acknowledged bytes since the last look (the first look of a quiet stretch only sets the mark). */
  private async acknowledged (): Promise<boolean> {
    const queued = await this.options.sendQueue?.(this.socket)
    const changed = queued !== undefined && this.queued !== undefined && queued !== this.queued
    this.queued = queued
    return changed
  }

  private progressed (): void {
    this.quietSince = performance.now()
  }
}

/**
 * Bytes the kernel took: `bytesWritten` counts what was handed to the socket,
 * `writableLength` what of it is still buffered or in a write not yet
 * completed. A write completes only whole, which is why responses are written
 * in slices (see pipeBody).
 */
function takenBytes (socket: Socket): number {
  return socket.bytesWritten - socket.writableLength
}

import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '@mirrorcast/logger'
import type { ScrubStats } from '@mirrorcast/wire'
import type { BlobStore } from './blob-store.js'
import { NodeError, NodeErrorCode } from './errors.js'

export interface ScrubOptions {
  /** Bytes verified per second at most; 0 turns the scrub off. */
  bytesPerSecond?: number
  /** Least time from the start of one pass to the start of the next, ms. */
  intervalMs?: number
}

// 8 MiB/s: a terabyte is verified in about a day and a half, at a few percent of one core and of the disk
export const DEFAULT_SCRUB_BYTES_PER_SECOND = 8 * 1024 * 1024
// 1 h: a small store is not read over and over; a big one is scrubbed back to back
export const DEFAULT_SCRUB_INTERVAL_MS = 60 * 60 * 1000

/**
 * The background scrub: reads every stored body at a bounded rate and checks
 * it (every block against its digest, the whole body against the footer's
 * sha256), so bit rot is found without waiting for a client to read it. A
 * corrupt body is quarantined by the store, reported in the node's
 * heartbeat, and copied back from its twin by the manager.
 */
export class Scrubber {
  private readonly store: BlobStore
  private readonly logger: Logger
  private readonly bytesPerSecond: number
  private readonly intervalMs: number
  private abort: AbortController | undefined
  private loop: Promise<void> | undefined
  private readonly stats = { passes: 0, files: 0, bytes: 0, corrupt: 0, totalBytes: 0, lastPassAt: 0, lastPassMs: 0 }

  constructor (store: BlobStore, options: ScrubOptions, logger: Logger) {
    const bytesPerSecond = options.bytesPerSecond ?? DEFAULT_SCRUB_BYTES_PER_SECOND
    const intervalMs = options.intervalMs ?? DEFAULT_SCRUB_INTERVAL_MS
    if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < 0) throw new NodeError(NodeErrorCode.BAD_OPTIONS, 'scrub rate must be a whole number of bytes per second (0: off)')
    if (!Number.isSafeInteger(intervalMs) || intervalMs < 0) throw new NodeError(NodeErrorCode.BAD_OPTIONS, 'scrub interval must be a whole number of ms')
    this.store = store
    this.logger = logger
    this.bytesPerSecond = bytesPerSecond
    this.intervalMs = intervalMs
  }

  start (): void {
    if (this.loop !== undefined || this.bytesPerSecond === 0) return
    const abort = new AbortController()
    this.abort = abort
    this.loop = this.run(abort.signal).catch((err: unknown) => {
      if (!abort.signal.aborted) this.logger.error('scrub stopped', { error: (err as Error).message })
    })
  }

  async close (): Promise<void> {
    this.abort?.abort()
    await this.loop
    this.abort = undefined
    this.loop = undefined
  }

  /** The heartbeat's part: passes done, progress of this pass, corrupt bodies found in all. */
  summary (): { passes: number, files: number, bytes: number, corrupt: number } {
    const { passes, files, bytes, corrupt } = this.stats
    return { passes, files, bytes, corrupt }
  }

  snapshot (): ScrubStats {
    return { ...this.stats, bytesPerSecond: this.bytesPerSecond, intervalMs: this.intervalMs, running: this.loop !== undefined }
  }

  private async run (signal: AbortSignal): Promise<void> {
    for (;;) {
      const started = Date.now()
      this.stats.files = 0
      this.stats.bytes = 0
      for await (const fileId of this.store.ids()) {
        signal.throwIfAborted()
        await this.verify(fileId, started, signal)
      }
      this.stats.passes++
      this.stats.lastPassAt = Date.now()
      this.stats.lastPassMs = this.stats.lastPassAt - started
      this.logger.info('scrub pass done', { files: this.stats.files, bytes: this.stats.bytes, ms: this.stats.lastPassMs, corrupt: this.stats.corrupt })
      await sleep(Math.max(0, started + this.intervalMs - Date.now()), undefined, { signal })
    }
  }

  /** Reads one body through the verifying read path, then checks its whole sha256; paces the pass to the rate. */
  private async verify (fileId: string, passStarted: number, signal: AbortSignal): Promise<void> {
    try {
      const read = await this.store.get(fileId, 0)
      const hash = createHash('sha256')
      for await (const chunk of read.body) {
        hash.update(chunk)
        this.stats.bytes += chunk.length
        this.stats.totalBytes += chunk.length
        // Ahead of the rate: wait until the pass is back on it.
        const ahead = (this.stats.bytes / this.bytesPerSecond) * 1000 - (Date.now() - passStarted)
        if (ahead > 0) await sleep(ahead, undefined, { signal })
      }
      this.stats.files++
      if (hash.digest('hex') !== read.sha256) {
        this.stats.corrupt++
        await this.store.quarantine(fileId, 'the body does not match the sha256 in its footer')
      }
    } catch (err) {
      const code = (err as { code?: string }).code
      // Deleted while the pass ran: nothing to check.
      if (code === NodeErrorCode.NOT_FOUND) return
      if (code === NodeErrorCode.CORRUPT) {
        this.stats.corrupt++
        return
      }
      throw err
    }
  }
}

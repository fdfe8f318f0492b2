import { constants } from 'node:fs'
import { open, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { writeAll, writevAll } from '@mirrorcast/wire'
import { alignedBuffer } from './page-cache.js'

/*
 * A large body is written with O_DIRECT where the file system takes it: the
 * kernel then neither copies it into the page cache nor finds pages for it.
 * On the development VM two parallel writers of 512 MiB each spent 2.07 s of
 * system time buffered and 0.08 s direct (dd, conv=fdatasync), which for a
 * 16 MiB PUT stored twice is some 60 ms of CPU out of the server's 117.
 * O_DIRECT wants the address, the offset and the length of every write aligned,
 * so bytes are staged in page-aligned buffers (one copy, which a buffered write
 * makes too, in the kernel) and the last write is padded, then cut back.
 */
// 4 KiB: a page, which covers the logical block of the devices a node runs on
export const DIRECT_ALIGN = 4096
// 1 MiB: bytes staged for one write (a block of the blob format)
const STAGE_BYTES = 1024 * 1024
// 8 MiB: body bytes handed to the disk but not yet written, while hashing goes on
const MAX_WRITES_IN_FLIGHT_BYTES = 8 * 1024 * 1024
// 36 buffers kept between uploads: four uploads' worth in flight
const POOL_KEPT = 36

export const DIRECT_WRITE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DIRECT

/** Page-aligned staging buffers, reused from one upload to the next. */
export class AlignedPool {
  private readonly free: Buffer[] = []

  take (): Buffer {
    const buffer = this.free.pop() ?? alignedBuffer(DIRECT_ALIGN, STAGE_BYTES)
    if (buffer === undefined) throw new Error('aligned buffers need the page-cache addon, which is not built')
    return buffer
  }

  give (buffer: Buffer): void {
    if (this.free.length < POOL_KEPT) this.free.push(buffer)
  }
}

/** A pool for direct writes to files under `dir`, or why they do not work there (no addon, a file system that refuses O_DIRECT). */
export async function directWrites (dir: string): Promise<{ pool: AlignedPool } | { why: string }> {
  const pool = new AlignedPool()
  const probe = join(dir, 'direct-write-probe')
  let buffer: Buffer | undefined
  try {
    buffer = pool.take()
    const fh = await open(probe, DIRECT_WRITE_FLAGS)
    try {
      await writeAll(fh, buffer.subarray(0, DIRECT_ALIGN), 0)
    } finally {
      await fh.close()
    }
    return { pool }
  } catch (err) {
    return { why: (err as Error).message }
  } finally {
    if (buffer !== undefined) pool.give(buffer)
    await rm(probe, { force: true })
  }
}

/**
 * Writes a body's bytes one after the other, the disk working while the
 * caller hashes and reads the network, with a bounded amount in flight. With
 * a pool the file must be open with DIRECT_WRITE_FLAGS; without, chunks go
 * as they are, a block's worth per writev. A failed write is thrown by the
 * next call; after one, nothing more is written.
 */
export class BodyWriter {
  private readonly inFlight = new Set<Promise<void>>()
  private inFlightBytes = 0
  private failure: unknown
  /** Bytes handed to writes so far: the offset of the next. */
  private flushed = 0
  private pending: Buffer[] = []
  private pendingBytes = 0
  private stage: Buffer | undefined
  private staged = 0

  constructor (private readonly fh: FileHandle, private readonly pool?: AlignedPool) {}

  write (chunk: Buffer): void {
    this.check()
    if (this.pool === undefined) {
      this.pending.push(chunk)
      this.pendingBytes += chunk.length
      if (this.pendingBytes >= STAGE_BYTES || this.pending.length >= 1024) this.flushPending()
      return
    }
    for (let at = 0; at < chunk.length;) {
      const stage = this.stage ??= this.pool.take()
      const copied = chunk.copy(stage, this.staged, at)
      this.staged += copied
      at += copied
      if (this.staged === stage.length) this.flushStage(this.staged)
    }
  }

  /** Resolves once few enough bytes are in flight to take more. */
  async room (): Promise<void> {
    while (this.inFlightBytes > MAX_WRITES_IN_FLIGHT_BYTES && this.inFlight.size > 0) await Promise.race(this.inFlight)
    this.check()
  }

  /** Writes the rest and waits for every write: the file then holds exactly the bytes given. */
  async end (): Promise<void> {
    if (this.pendingBytes > 0) this.flushPending()
    if (this.stage !== undefined && this.staged > 0) {
      const length = this.flushed + this.staged
      const padded = Math.ceil(this.staged / DIRECT_ALIGN) * DIRECT_ALIGN
      this.stage.fill(0, this.staged, padded)
      this.flushStage(padded)
      await this.settle()
      this.check()
      await this.fh.truncate(length)
    }
    await this.settle()
    this.check()
  }

  /** Waits for the writes in flight and gives back the buffers, without writing more. */
  async abort (): Promise<void> {
    this.failure ??= new Error('aborted')
    await this.settle()
    if (this.stage !== undefined) this.pool?.give(this.stage)
    this.stage = undefined
  }

  private flushPending (): void {
    const buffers = this.pending
    const bytes = this.pendingBytes
    this.track(writevAll(this.fh, buffers, this.flushed), bytes)
    this.flushed += bytes
    this.pending = []
    this.pendingBytes = 0
  }

  private flushStage (length: number): void {
    const stage = this.stage as Buffer
    const pool = this.pool as AlignedPool
    this.track(writeAll(this.fh, stage.subarray(0, length), this.flushed).finally(() => { pool.give(stage) }), length)
    this.flushed += length
    this.stage = undefined
    this.staged = 0
  }

  private track (write: Promise<void>, bytes: number): void {
    const settled = write.then(() => { this.inFlightBytes -= bytes }, (err: unknown) => { this.failure ??= err })
    this.inFlight.add(settled)
    void settled.finally(() => this.inFlight.delete(settled))
    this.inFlightBytes += bytes
  }

  private async settle (): Promise<void> {
    await Promise.all(this.inFlight)
  }

  private check (): void {
    if (this.failure !== undefined) throw this.failure
  }
}

import { closeSync, fstatSync, openSync, readdirSync, readSync } from 'node:fs'
import { mkdir, open, readdir, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { fsyncDir, writevAll, type SetDigest } from '@mirrorcast/wire'
import { NodeError, NodeErrorCode } from './errors.js'
import { VolumeIndex, type VolumeEntry } from './volume-index.js'

export type { VolumeEntry } from './volume-index.js'

/*
 * Small bodies in a few append-only volume files, as Haystack, SeaweedFS and
 * Bitcask keep them: a put appends a record (header, body) to the active
 * volume, and every record that arrived while the previous batch was syncing
 * goes out in one writev with one fdatasync (group commit), so a small write
 * costs a share of a sync, not a file, a sync, a link and a directory sync of
 * its own. A delete appends a tombstone. The index (file id → volume, offset)
 * lives in memory and is rebuilt at start by reading the volumes' headers; a
 * torn tail left by a crash (never acknowledged: its batch was not synced) is
 * cut off. Volumes with much dead space are compacted in the background at a
 * bounded rate.
 *
 * A record, 8-byte aligned, big-endian:
 *   magic 'MCVR'(4) kind(1) 0(3) fileId(16) size(4) aux(4) mtime f64(8)
 *   sha256(32) bodyCrc32(4) headerCrc32(4) | body | padding to 8
 * `aux` of a tombstone is the volume of the put it deletes: compaction keeps a
 * tombstone only while that volume still exists.
 */
export const VOLUMES_DIR = 'volumes'
const MAGIC = 0x4d435652 // 'MCVR'
const KIND_PUT = 1
const KIND_TOMBSTONE = 2
export const RECORD_HEADER_BYTES = 80
const ALIGN = 8
// 1 GiB: volumes roll over at this size
export const DEFAULT_VOLUME_BYTES = 1024 * 1024 * 1024
// 4 MiB: what a start-up scan reads at once
const SCAN_BYTES = 4 * 1024 * 1024
// 32 MiB/s: the most compaction copies (it shares the disk with clients)
export const DEFAULT_COMPACT_BYTES_PER_SECOND = 32 * 1024 * 1024
// a sealed volume is compacted once more than half of it is dead
const COMPACT_DEAD_RATIO = 0.5
// 10 s: how often compaction looks for a volume worth it
const COMPACT_CHECK_MS = 10_000

interface Volume {
  id: number
  path: string
  fd: number
  handle: FileHandle
  /** Bytes of records in it (its length once a scan cut a torn tail). */
  length: number
  /** Bytes of records that no longer count: deleted or replaced puts and all tombstones. */
  dead: number
}

interface Pending {
  record: Buffer
  resolve: (at: { volume: number, offset: number }) => void
  reject: (err: unknown) => void
}

export interface VolumeStoreOptions {
  volumeBytes?: number
  compactBytesPerSecond?: number
  logger?: Logger
}

function padded (n: number): number {
  return Math.ceil(n / ALIGN) * ALIGN
}

function volumeName (id: number): string {
  return `${String(id).padStart(8, '0')}.vol`
}

interface RecordHeader { kind: number, fileId: string, size: number, aux: number, mtime: number, sha256: string, bodyCrc: number }

/** A record's header at `at` of `buf`, or undefined when it is not a sound one (torn, damaged, not a record). */
export function parseRecordHeader (buf: Buffer, at = 0): RecordHeader | undefined {
  if (buf.length - at < RECORD_HEADER_BYTES || buf.readUInt32BE(at) !== MAGIC) return undefined
  if (crc32(buf.subarray(at, at + RECORD_HEADER_BYTES - 4)) !== buf.readUInt32BE(at + RECORD_HEADER_BYTES - 4)) return undefined
  const kind = buf[at + 4] as number
  if (kind !== KIND_PUT && kind !== KIND_TOMBSTONE) return undefined
  return {
    kind,
    fileId: buf.toString('hex', at + 8, at + 24),
    size: buf.readUInt32BE(at + 24),
    aux: buf.readUInt32BE(at + 28),
    mtime: buf.readDoubleBE(at + 32),
    sha256: buf.toString('hex', at + 40, at + 72),
    bodyCrc: buf.readUInt32BE(at + 72)
  }
}

function encodeRecord (kind: number, fileId: string, body: Buffer, aux: number, mtime: number, sha256: string): Buffer {
  const record = Buffer.alloc(padded(RECORD_HEADER_BYTES + body.length))
  record.writeUInt32BE(MAGIC, 0)
  record[4] = kind
  record.write(fileId, 8, 16, 'hex')
  record.writeUInt32BE(body.length, 24)
  record.writeUInt32BE(aux, 28)
  record.writeDoubleBE(mtime, 32)
  record.write(sha256, 40, 32, 'hex')
  record.writeUInt32BE(crc32(body), 72)
  record.writeUInt32BE(crc32(record.subarray(0, RECORD_HEADER_BYTES - 4)), RECORD_HEADER_BYTES - 4)
  body.copy(record, RECORD_HEADER_BYTES)
  return record
}

/** The durable store of small bodies in volume files under `<dataDir>/volumes`. */
export class VolumeStore {
  readonly dir: string
  private readonly volumeBytes: number
  private readonly compactRate: number
  private readonly logger: Logger
  private readonly volumes = new Map<number, Volume>()
  private readonly index = new VolumeIndex()
  private active: Volume | undefined
  private queue: Pending[] = []
  private writing: Promise<void> | undefined
  private compactTimer: NodeJS.Timeout | undefined
  private compacting: Promise<void> | undefined
  private closed = false
  bytes = 0
  /** Batches written (each one fdatasync), since open. */
  syncs = 0

  constructor (dataDir: string, options: VolumeStoreOptions = {}) {
    this.dir = join(dataDir, VOLUMES_DIR)
    this.volumeBytes = options.volumeBytes ?? DEFAULT_VOLUME_BYTES
    this.compactRate = options.compactBytesPerSecond ?? DEFAULT_COMPACT_BYTES_PER_SECOND
    this.logger = options.logger ?? silentLogger()
  }

  get files (): number {
    return this.index.size
  }

  /** Opens every volume and rebuilds the index from their records, cutting a torn tail. */
  async open (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    const ids = (await readdir(this.dir)).filter((f) => /^\d{8}\.vol$/.test(f)).map((f) => Number(f.slice(0, 8))).sort((a, b) => a - b)
    try {
      for (const id of ids) await this.openVolume(id)
      const last = ids.at(-1)
      this.active = last === undefined ? await this.createVolume(1) : this.volumes.get(last)
    } catch (err) {
      await this.closeFiles()
      throw err
    }
    if (this.compactRate > 0) this.scheduleCompaction()
  }

  private async openVolume (id: number): Promise<void> {
    const path = join(this.dir, volumeName(id))
    const handle = await open(path, 'r+')
    const volume: Volume = { id, path, fd: handle.fd, handle, length: 0, dead: 0 }
    this.volumes.set(id, volume)
    const fileLength = (await handle.stat()).size
    volume.length = await this.scan(volume, fileLength)
    if (volume.length < fileLength) {
      this.logger.warn('cut a torn tail off a volume (a batch a crash left unsynced)', { volume: id, at: volume.length, bytes: fileLength - volume.length })
      await handle.truncate(volume.length)
      await handle.datasync()
    }
  }

  /**
   * Reads the records of a volume into the index; returns where its last
   * sound record ends. The file is read SCAN_BYTES at a time and the headers
   * found in the buffer: a read per window, not one per record.
   */
  private async scan (volume: Volume, fileLength: number): Promise<number> {
    let at = 0
    let skipped = 0
    const buf = Buffer.allocUnsafe(SCAN_BYTES)
    let windowAt = 0
    let windowLength = 0
    while (at + RECORD_HEADER_BYTES <= fileLength) {
      if (at + RECORD_HEADER_BYTES > windowAt + windowLength) {
        windowAt = at
        windowLength = (await volume.handle.read(buf, 0, SCAN_BYTES, at)).bytesRead
      }
      const header = parseRecordHeader(buf.subarray(0, windowLength), at - windowAt)
      const end = header === undefined ? 0 : at + padded(RECORD_HEADER_BYTES + header.size)
      if (header === undefined || end > fileLength) {
        // Damaged within (bit rot) or torn at the end: look for the next sound header.
        const next = await this.nextHeader(volume, at + ALIGN, fileLength, buf)
        windowLength = 0
        if (next === undefined) break
        skipped += next - at
        at = next
        continue
      }
      this.replay(volume, header, at, end - at)
      at = end
    }
    if (skipped > 0) this.logger.error('skipped damaged bytes in a volume; bodies there are lost here, anti-entropy copies them back from the twin', { volume: volume.id, bytes: skipped })
    return at
  }

  private async nextHeader (volume: Volume, from: number, fileLength: number, buf: Buffer): Promise<number | undefined> {
    for (let base = from; base + RECORD_HEADER_BYTES <= fileLength; base += SCAN_BYTES - RECORD_HEADER_BYTES) {
      const { bytesRead } = await volume.handle.read(buf, 0, SCAN_BYTES, base)
      for (let at = 0; at + RECORD_HEADER_BYTES <= bytesRead; at += ALIGN) {
        const header = parseRecordHeader(buf.subarray(0, bytesRead), at)
        if (header !== undefined && base + at + padded(RECORD_HEADER_BYTES + header.size) <= fileLength) return base + at
      }
    }
    return undefined
  }

  private replay (volume: Volume, header: RecordHeader, offset: number, length: number): void {
    const before = this.index.get(header.fileId)
    if (before !== undefined) this.retire(before)
    if (header.kind === KIND_TOMBSTONE) {
      this.index.delete(header.fileId)
      volume.dead += length
      return
    }
    this.index.set(header.fileId, { volume: volume.id, offset, size: header.size, mtime: header.mtime, sha256: header.sha256 })
    this.bytes += header.size
  }

  /** A put that no longer counts: its volume's dead space grows. */
  private retire (entry: VolumeEntry): void {
    const volume = this.volumes.get(entry.volume)
    if (volume !== undefined) volume.dead += padded(RECORD_HEADER_BYTES + entry.size)
    this.bytes -= entry.size
  }

  private async createVolume (id: number): Promise<Volume> {
    const path = join(this.dir, volumeName(id))
    const handle = await open(path, 'wx+')
    // The new name is durable before any record in it is acknowledged.
    await fsyncDir(this.dir)
    const volume: Volume = { id, path, fd: handle.fd, handle, length: 0, dead: 0 }
    this.volumes.set(id, volume)
    return volume
  }

  get (fileId: string): VolumeEntry | undefined {
    return this.index.get(fileId)
  }

  /** The ids held, in no order. */
  ids (): IterableIterator<string> {
    return this.index.keys()
  }

  /** The set digest of the ids held. */
  async digest (): Promise<SetDigest> {
    return await this.index.digest()
  }

  /** The ids held in one shard (their first two hex digits), in no order. */
  shardIds (shard: number): IterableIterator<string> {
    return this.index.shardKeys(shard)
  }

  /**
   * Stores a body; resolves once it is durable. An id already held with the
   * same content is fine; with other content it is ERR_NODE_EXISTS.
   */
  async put (fileId: string, body: Buffer, sha256: string, mtime = Date.now()): Promise<VolumeEntry> {
    const existing = this.index.get(fileId)
    if (existing !== undefined) {
      if (existing.sha256 !== sha256) throw new NodeError(NodeErrorCode.EXISTS, `file ${fileId} is already stored with other content`)
      return existing
    }
    const at = await this.append(encodeRecord(KIND_PUT, fileId, body, 0, mtime, sha256))
    const entry = { ...at, size: body.length, mtime, sha256 }
    const raced = this.index.get(fileId)
    if (raced !== undefined) {
      // Two puts of one id at once: the first to commit is the body, the other's record is dead.
      this.volumeOf(at.volume).dead += padded(RECORD_HEADER_BYTES + body.length)
      if (raced.sha256 !== sha256) throw new NodeError(NodeErrorCode.EXISTS, `file ${fileId} is already stored with other content`)
      return raced
    }
    this.index.set(fileId, entry)
    this.bytes += body.length
    return entry
  }

  /** Deletes a body (a tombstone, durable before this resolves); false when it was not held. */
  async delete (fileId: string): Promise<boolean> {
    const entry = this.index.get(fileId)
    if (entry === undefined) return false
    // Out of the index first: a compaction that has not copied it yet never will.
    this.index.delete(fileId)
    this.retire(entry)
    const at = await this.append(encodeRecord(KIND_TOMBSTONE, fileId, Buffer.alloc(0), entry.volume, Date.now(), '0'.repeat(64)))
    this.volumeOf(at.volume).dead += RECORD_HEADER_BYTES
    return true
  }

  /** A held body's bytes, checked against its record's CRC; ERR_NODE_CORRUPT when they fail it (or the header does). */
  read (fileId: string, entry: VolumeEntry): Buffer {
    const raw = this.readRecord(entry)
    const header = parseRecordHeader(raw)
    if (header === undefined || header.fileId !== fileId || header.size !== entry.size || header.kind !== KIND_PUT) {
      throw new NodeError(NodeErrorCode.CORRUPT, `file ${fileId} is corrupt: its record header in volume ${entry.volume} at ${entry.offset} fails its checksum`)
    }
    const body = raw.subarray(RECORD_HEADER_BYTES, RECORD_HEADER_BYTES + entry.size)
    if (body.length !== entry.size || crc32(body) !== header.bodyCrc) {
      throw new NodeError(NodeErrorCode.CORRUPT, `file ${fileId} is corrupt: its body in volume ${entry.volume} at ${entry.offset} fails its checksum`)
    }
    return body
  }

  /** The record's bytes as stored (header and body), unchecked: what a quarantine keeps. */
  readRecord (entry: VolumeEntry): Buffer {
    const raw = Buffer.allocUnsafe(RECORD_HEADER_BYTES + entry.size)
    // One blocking pread: from the page cache a few microseconds, where a thread-pool round trip costs more.
    const bytesRead = readSync(this.volumeOf(entry.volume).fd, raw, 0, raw.length, entry.offset)
    return raw.subarray(0, bytesRead)
  }

  private volumeOf (id: number): Volume {
    const volume = this.volumes.get(id)
    if (volume === undefined) throw new NodeError(NodeErrorCode.CORRUPT, `volume ${id} is not open`)
    return volume
  }

  /** Appends a record with the next batch; resolves with where it landed once that batch is synced. */
  private async append (record: Buffer): Promise<{ volume: number, offset: number }> {
    if (this.closed) throw new NodeError(NodeErrorCode.DATA_DIR, 'the volume store is closed')
    return await new Promise((resolve, reject) => {
      this.queue.push({ record, resolve, reject })
      this.writing ??= this.drain()
    })
  }

  /** Writes batches until the queue is empty: one writev and one fdatasync each. */
  private async drain (): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const batch = this.queue
        this.queue = []
        try {
          const landed = await this.writeBatch(batch.map((p) => p.record))
          batch.forEach((p, i) => p.resolve(landed[i] as { volume: number, offset: number }))
        } catch (err) {
          const mapped = (err as { code?: string }).code === 'ENOSPC' ? new NodeError(NodeErrorCode.NO_SPACE, 'disk full while appending to a volume', { cause: err }) : err
          for (const p of batch) p.reject(mapped)
        }
      }
    } finally {
      this.writing = undefined
    }
  }

  private async writeBatch (records: Buffer[]): Promise<Array<{ volume: number, offset: number }>> {
    let volume = this.active as Volume
    const total = records.reduce((n, r) => n + r.length, 0)
    if (volume.length > 0 && volume.length + total > this.volumeBytes) {
      volume = this.active = await this.createVolume(Math.max(...this.volumes.keys()) + 1)
    }
    const start = volume.length
    try {
      await writevAll(volume.handle, records, start)
      await volume.handle.datasync()
      this.syncs++
    } catch (err) {
      // Nothing of a failed batch counts: the next batch writes over it.
      await volume.handle.truncate(start).catch(() => {})
      throw err
    }
    volume.length = start + total
    let at = start
    return records.map((r) => { const landed = { volume: volume.id, offset: at }; at += r.length; return landed })
  }

  /** Per volume: its length and dead bytes; and the batches synced since open. */
  usage (): { syncs: number, volumes: Array<{ volume: number, length: number, dead: number }> } {
    return { syncs: this.syncs, volumes: [...this.volumes.values()].map((v) => ({ volume: v.id, length: v.length, dead: v.dead })) }
  }

  private scheduleCompaction (): void {
    this.compactTimer = setTimeout(() => {
      this.compacting = this.compactOnce().then(() => {}, (err: unknown) => {
        this.logger.error('volume compaction failed', { error: (err as Error).message })
      }).finally(() => {
        this.compacting = undefined
        if (!this.closed) this.scheduleCompaction()
      })
    }, COMPACT_CHECK_MS)
    this.compactTimer.unref()
  }

  /** Compacts the oldest sealed volume of which more than half is dead, if any. */
  async compactOnce (): Promise<boolean> {
    // The oldest first: its puts are what newer volumes' tombstones are kept for.
    const volume = [...this.volumes.values()].sort((a, b) => a.id - b.id).find((v) => v !== this.active && v.length > 0 && v.dead / v.length > COMPACT_DEAD_RATIO)
    if (volume === undefined) return false
    await this.compact(volume)
    return true
  }

  /**
   * Copies a volume's live records to the active volume at the compaction
   * rate, keeps the tombstones whose put may still be in an older volume,
   * then removes it. A record deleted meanwhile is not copied (it left the
   * index first) or, copied, is followed by its tombstone.
   */
  private async compact (volume: Volume): Promise<void> {
    const started = Date.now()
    let copied = 0
    const buf = Buffer.allocUnsafe(RECORD_HEADER_BYTES)
    for (let at = 0; at < volume.length && !this.closed;) {
      await volume.handle.read(buf, 0, RECORD_HEADER_BYTES, at)
      const header = parseRecordHeader(buf)
      if (header === undefined) throw new NodeError(NodeErrorCode.CORRUPT, `volume ${volume.id} has a damaged record at ${at}: not compacted`)
      const length = padded(RECORD_HEADER_BYTES + header.size)
      copied += await this.carry(volume, header, at)
      at += length
      // The rate (none when compaction only runs when asked): sleep off whatever ran ahead of it.
      const ahead = this.compactRate > 0 ? copied / this.compactRate * 1000 - (Date.now() - started) : 0
      if (ahead > 0) await new Promise((resolve) => setTimeout(resolve, ahead))
    }
    if (this.closed) return
    this.volumes.delete(volume.id)
    await volume.handle.close()
    await rm(volume.path)
    await fsyncDir(this.dir)
    this.logger.info('compacted a volume', { volume: volume.id, bytes: volume.length, copied })
  }

  /** Re-appends one record of a volume being compacted if it still counts; returns the bytes copied. */
  private async carry (volume: Volume, header: RecordHeader, at: number): Promise<number> {
    const entry = this.index.get(header.fileId)
    if (header.kind === KIND_TOMBSTONE) {
      if (entry !== undefined || header.aux === volume.id || !this.volumes.has(header.aux)) return 0
      const landed = await this.append(encodeRecord(KIND_TOMBSTONE, header.fileId, Buffer.alloc(0), header.aux, header.mtime, '0'.repeat(64)))
      this.volumeOf(landed.volume).dead += RECORD_HEADER_BYTES
      return RECORD_HEADER_BYTES
    }
    if (entry === undefined || entry.volume !== volume.id || entry.offset !== at) return 0
    const body = this.readRecord(entry).subarray(RECORD_HEADER_BYTES)
    // Checked now, not copied if damaged: the index must never point at bytes no CRC vouches for.
    if (crc32(body) !== header.bodyCrc) throw new NodeError(NodeErrorCode.CORRUPT, `file ${header.fileId} in volume ${volume.id} fails its checksum: not compacted`)
    if (!this.index.holds(header.fileId, entry)) return 0
    const landed = await this.append(encodeRecord(KIND_PUT, header.fileId, body, 0, header.mtime, header.sha256))
    if (this.index.holds(header.fileId, entry)) this.index.set(header.fileId, { ...entry, ...landed })
    else this.volumeOf(landed.volume).dead += padded(RECORD_HEADER_BYTES + body.length)
    return body.length
  }

  async close (): Promise<void> {
    this.closed = true
    if (this.compactTimer !== undefined) clearTimeout(this.compactTimer)
    await this.compacting
    await this.writing
    await this.closeFiles()
  }

  private async closeFiles (): Promise<void> {
    await Promise.all([...this.volumes.values()].map(async (v) => await v.handle.close().catch(() => {})))
    this.volumes.clear()
    this.index.clear()
  }
}

export interface VolumeBody { path: string, bodyAt: number, size: number, sha256: string }

/**
 * The bodies the volumes of a data dir hold, by reading them as a start does
 * (the last record of an id wins), without changing anything: for tools and
 * tests that look at a data dir without a node.
 */
export function readVolumes (dataDir: string): Map<string, VolumeBody> {
  const dir = join(dataDir, VOLUMES_DIR)
  const held = new Map<string, VolumeBody>()
  let names: string[]
  try {
    names = readdirSyncSorted(dir)
  } catch {
    return held
  }
  const head = Buffer.allocUnsafe(RECORD_HEADER_BYTES)
  for (const name of names) {
    const path = join(dir, name)
    const fd = openSync(path, 'r')
    try {
      const length = fstatSync(fd).size
      for (let at = 0; at + RECORD_HEADER_BYTES <= length;) {
        readSync(fd, head, 0, RECORD_HEADER_BYTES, at)
        const header = parseRecordHeader(head)
        if (header === undefined) break
        if (header.kind === KIND_PUT) held.set(header.fileId, { path, bodyAt: at + RECORD_HEADER_BYTES, size: header.size, sha256: header.sha256 })
        else held.delete(header.fileId)
        at += padded(RECORD_HEADER_BYTES + header.size)
      }
    } finally {
      closeSync(fd)
    }
  }
  return held
}

function readdirSyncSorted (dir: string): string[] {
  return readdirSync(dir).filter((f) => /^\d{8}\.vol$/.test(f)).sort()
}

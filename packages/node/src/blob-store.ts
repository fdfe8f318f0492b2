import { createHash, randomBytes } from 'node:crypto'
import { link, lstat, mkdir, open, readdir, rename, rm, statfs, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { closeSync, fstatSync, openSync, readSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { crc32 } from 'node:zlib'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { DIGEST_SHARDS, FREE_SPACE_MARGIN_BYTES, INLINE_BODY_BYTES, PageBudget, SetDigest, shardName, type HeldBody, type Quarantined } from '@mirrorcast/wire'
import { DirSyncer } from './dir-syncer.js'
import { BODY_UNCACHED_BYTES, PageCache } from './page-cache.js'
import { BodyWriter, DIRECT_WRITE_FLAGS, directWrites, type AlignedPool } from './body-writer.js'
import { parseRecordHeader, RECORD_HEADER_BYTES, VolumeStore, type VolumeEntry, type VolumeStoreOptions } from './volume-store.js'
import { NodeError, NodeErrorCode } from './errors.js'

/*
 * One blob file holds the body, then a trailer of per-block checksums, then a
 * fixed footer with the body's sha256. Body and checksums live in one file, so
 * one rename makes both durable together, and a read can verify each block
 * before it sends it. Format 2 checks a block with its CRC-32 (a tenth of
 * sha256's cost; bit rot, not an adversary, is what it catches), format 1 with
 * its sha256; both are read, format 2 is written. A checksum takes a 32-byte
 * slot in both, so a file's length gives its body's size whatever its format.
 */
// 1 MiB blocks: a corrupt byte is caught before any of its block leaves the node
export const BLOCK_BYTES = 1024 * 1024
const DIGEST_BYTES = 32
const MAGIC = Buffer.from('MCBLOB01')
const FORMAT_VERSION = 2
const SHA256_BLOCKS_VERSION = 1
// magic(8) version(4) blockSize(4) size(8) sha256(32)
const FOOTER_BYTES = 56
// 1 s: how long a free-space reading is trusted (less what was written since)
const FREE_SPACE_TTL_MS = 1000
// 64: lstat calls a shard listing has in flight at once
const LIST_STATS = 64

export interface BlobInfo {
  size: number
  sha256: string
}

export interface BlobRead extends BlobInfo {
  offset: number
  length: number
  body: AsyncGenerator<Buffer>
  /** Closes the file, whether `body` ran to its end, stopped early or never started (its reply failed first). */
  close: () => Promise<void>
}

const FILE_ID = /^[0-9a-f]{32}$/

function blockCount (size: number): number {
  return Math.ceil(size / BLOCK_BYTES)
}

/** The body size of a blob file of `fileSize` bytes (body, a digest a block, the footer), if any body gives that length. */
export function bodySizeOf (fileSize: number): number | undefined {
  const blocks = Math.ceil(Math.max(0, fileSize - FOOTER_BYTES) / (BLOCK_BYTES + DIGEST_BYTES))
  const size = fileSize - FOOTER_BYTES - blocks * DIGEST_BYTES
  return size >= 0 && blockCount(size) === blocks ? size : undefined
}

/*
 * The layout of a data dir: bodies under blobs/<first two hex digits of the
 * id>/<id>, uploads in progress under tmp/, bodies found corrupt under
 * quarantine/<id>. blobPath() and quarantinePath() say where, so that tools and
 * tests never spell the layout themselves.
 */
const BLOBS_DIR = 'blobs'
const TMP_DIR = 'tmp'
const QUARANTINE_DIR = 'quarantine'

/** Where a storage node keeps the body of `fileId` under its data dir. */
export function blobPath (dataDir: string, fileId: string): string {
  return join(dataDir, BLOBS_DIR, fileId.slice(0, 2), fileId)
}

/** Where a storage node sets aside the body of `fileId` once found corrupt. */
export function quarantinePath (dataDir: string, fileId: string): string {
  return join(dataDir, QUARANTINE_DIR, fileId)
}

/**
 * The footer of a blob file: the size and sha256 of the body, which is the
 * file's first `size` bytes (the block digests and the footer follow it).
 * Throws ERR_NODE_CORRUPT for a file whose footer is damaged. It only reads:
 * for tools and tests that look at a data dir without a node.
 */
export async function readBlobFooter (file: string): Promise<BlobInfo> {
  const fh = await open(file, 'r')
  try {
    const { size, sha256 } = await readFooter(fh, basename(file))
    return { size, sha256 }
  } finally {
    await fh.close()
  }
}

export interface BlobStoreOptions extends Omit<VolumeStoreOptions, 'logger'> {
  /** Whether large bodies are written with O_DIRECT where it works (default true). */
  directWrites?: boolean
}

/**
 * The durable store of file bodies under one data dir, by file id: bodies of
 * up to INLINE_BODY_BYTES in volumes (see volume-store.ts), larger ones in a
 * blob file each. Small bodies written as files by an earlier version are
 * still read, listed and deleted.
 */
export class BlobStore {
  readonly dir: string
  private readonly blobsDir: string
  private readonly tmpDir: string
  private readonly quarantineDir: string
  private readonly logger: Logger
  /** Bodies found corrupt, set aside under quarantine/ until a good copy replaces them (or their file is deleted). */
  readonly quarantined = new Map<string, Quarantined>()
  private readonly dirSyncer = new DirSyncer()
  private readonly pageCache: PageCache
  private freeReading = { bytes: 0, at: 0, writtenSince: 0 }
  private readonly volumes: VolumeStore
  private fileCount = 0
  private fileBytes = 0
  private readonly tryDirectWrites: boolean
  /** Staging buffers for large bodies written with O_DIRECT, once open() found that it works here. */
  private directPool: AlignedPool | undefined

  constructor (dir: string, logger: Logger = silentLogger(), options: BlobStoreOptions = {}) {
    this.dir = dir
    const { directWrites = true, ...volumes } = options
    this.tryDirectWrites = directWrites
    this.volumes = new VolumeStore(dir, { ...volumes, logger })
    this.blobsDir = join(dir, BLOBS_DIR)
    this.tmpDir = join(dir, TMP_DIR)
    this.quarantineDir = join(dir, QUARANTINE_DIR)
    this.logger = logger
    this.pageCache = new PageCache(logger)
  }

  /** Bodies held (in volumes and in files). */
  get files (): number {
    return this.volumes.files + this.fileCount
  }

  /** Bytes of the bodies held. */
  get bytes (): number {
    return this.volumes.bytes + this.fileBytes
  }

  /** Per volume: its length and dead bytes. */
  volumeUsage (): ReturnType<VolumeStore['usage']> {
    return this.volumes.usage()
  }

  /** Compacts the volume with the most dead space if it is worth it (compaction also runs on its own). */
  async compactVolumes (): Promise<boolean> {
    return await this.volumes.compactOnce()
  }

  /** Creates the layout, removes temp files a crash left, and counts what is stored. */
  async open (): Promise<void> {
    try {
      await mkdir(this.blobsDir, { recursive: true })
      await mkdir(this.tmpDir, { recursive: true })
      await mkdir(this.quarantineDir, { recursive: true })
    } catch (err) {
      throw new NodeError(NodeErrorCode.DATA_DIR, `data dir ${this.dir} is not usable: ${(err as Error).message}`, { cause: err })
    }
    // Every shard directory exists from the start: a write never waits on a mkdir.
    await Promise.all(Array.from({ length: 256 }, async (_, i) => await mkdir(join(this.blobsDir, i.toString(16).padStart(2, '0')), { recursive: true })))
    const leftovers = await readdir(this.tmpDir)
    await Promise.all(leftovers.map(async (f) => await rm(join(this.tmpDir, f), { force: true })))
    if (leftovers.length > 0) this.logger.warn('removed temp files left by a crash', { count: leftovers.length })
    await this.openDirectWrites()
    this.fileCount = 0
    this.fileBytes = 0
    for (const shard of await readdir(this.blobsDir)) {
      for (const id of await readdir(join(this.blobsDir, shard))) {
        try {
          this.fileBytes += (await this.stat(id)).size
          this.fileCount++
        } catch (err) {
          this.logger.warn('unreadable blob at start', { fileId: id, error: (err as Error).message })
        }
      }
    }
    this.quarantined.clear()
    for (const id of (await readdir(this.quarantineDir)).filter((f) => FILE_ID.test(f))) {
      this.quarantined.set(id, { fileId: id, ...await this.footerOf(quarantinePath(this.dir, id), id), reason: 'found corrupt before this start' })
    }
    await this.volumes.open()
  }

  private async openDirectWrites (): Promise<void> {
    this.directPool = undefined
    if (!this.tryDirectWrites) return
    const direct = await directWrites(this.tmpDir)
    if ('pool' in direct) this.directPool = direct.pool
    else this.logger.warn('large bodies are written through the page cache: O_DIRECT does not work here', { error: direct.why })
  }

  /** Whether large bodies are written with O_DIRECT. */
  get writesDirect (): boolean {
    return this.directPool !== undefined
  }

  /** Closes the volumes (after the batch being written is synced). */
  async close (): Promise<void> {
    await this.volumes.close()
  }

  path (fileId: string): string {
    return blobPath(this.dir, fileId)
  }

  /**
   * Stores a body: temp file, hashed while streaming, fsynced, then linked into
   * place (never over an existing blob) and the directory fsynced. With
   * `senderSha256`, a large body's sha256 is the one its sender computed, asked
   * for once the body is in (the node checks the blocks it writes by CRC).
   */
  async put (fileId: string, size: number, source: AsyncIterable<Buffer>, senderSha256?: () => string | undefined): Promise<BlobInfo> {
    checkId(fileId)
    await this.checkSpace(size)
    if (size <= INLINE_BODY_BYTES) return await this.putSmall(fileId, size, source)
    const tmp = join(this.tmpDir, `${fileId}.${randomBytes(6).toString('hex')}`)
    const pool = size >= BODY_UNCACHED_BYTES ? this.directPool : undefined
    const fh = await open(tmp, pool === undefined ? 'wx' : DIRECT_WRITE_FLAGS)
    let closed = false
    try {
      const written = await writeBody(fh, size, source, senderSha256, pool)
      await fh.datasync()
      if (size >= BODY_UNCACHED_BYTES && pool === undefined) this.pageCache.drop(fh.fd, 0, 0)
      await fh.close()
      closed = true
      this.freeReading.writtenSince += size
      return await this.install(fileId, tmp, { size, sha256: written.sha256 })
    } catch (err) {
      if (!closed) await fh.close().catch(() => {})
      await rm(tmp, { force: true })
      throw mapWriteError(err, fileId)
    }
  }

  /** A small body: appended to a volume with the next batch; an earlier version's blob file of the id counts as held. */
  private async putSmall (fileId: string, size: number, source: AsyncIterable<Buffer>): Promise<BlobInfo> {
    const chunks: Buffer[] = []
    let received = 0
    for await (const chunk of source) {
      received += chunk.length
      if (received > size) throw new NodeError(NodeErrorCode.SIZE_MISMATCH, `upload is longer than its declared ${size} bytes`)
      chunks.push(chunk)
    }
    if (received !== size) throw new NodeError(NodeErrorCode.SIZE_MISMATCH, `upload ended after ${received} of ${size} bytes`)
    const body = chunks.length === 1 ? chunks[0] as Buffer : Buffer.concat(chunks, size)
    const sha256 = createHash('sha256').update(body).digest('hex')
    const asFile = this.volumes.get(fileId) === undefined ? await this.stat(fileId).catch(() => undefined) : undefined
    if (asFile !== undefined) {
      if (asFile.sha256 !== sha256) throw new NodeError(NodeErrorCode.EXISTS, `file ${fileId} is already stored with other content`)
      return asFile
    }
    const entry = await this.volumes.put(fileId, body, sha256).catch((err: unknown) => { throw mapWriteError(err, fileId) })
    this.freeReading.writtenSince += size
    if (this.quarantined.delete(fileId)) await rm(quarantinePath(this.dir, fileId), { force: true })
    return { size: entry.size, sha256: entry.sha256 }
  }

  /** Links the finished temp file under its id; an existing blob with the same content is fine. */
  private async install (fileId: string, tmp: string, info: BlobInfo): Promise<BlobInfo> {
    const shardDir = dirname(this.path(fileId))
    try {
      await link(tmp, this.path(fileId))
      // The temp name goes at once; a crash before this leaves it to the cleanup at start.
      await unlink(tmp)
    } catch (err) {
      if ((err as { code?: string }).code !== 'EEXIST') throw err
      const existing = await this.stat(fileId)
      if (existing.sha256 !== info.sha256) throw new NodeError(NodeErrorCode.EXISTS, `file ${fileId} is already stored with other content`)
      return existing
    }
    await this.dirSyncer.sync(shardDir)
    this.fileCount++
    this.fileBytes += info.size
    // A good copy is back in place: the corrupt one it replaces can go.
    if (this.quarantined.delete(fileId)) await rm(quarantinePath(this.dir, fileId), { force: true })
    return info
  }

  async stat (fileId: string): Promise<BlobInfo> {
    const inVolume = this.volumes.get(fileId)
    if (inVolume !== undefined) return { size: inVolume.size, sha256: inVolume.sha256 }
    const fh = await this.openBlob(fileId)
    try {
      const { size, sha256 } = await this.corruptionQuarantines(fileId, readFooter(fh, fileId))
      return { size, sha256 }
    } finally {
      await fh.close()
    }
  }

  /**
   * Sets a corrupt body aside: it leaves the store (never served again) for
   * quarantine/, and is listed until a good copy is written under its id or
   * its file is deleted. Its footer's size and sha256 go with it when readable.
   */
  async quarantine (fileId: string, reason: string): Promise<void> {
    checkId(fileId)
    const inVolume = this.volumes.get(fileId)
    if (inVolume !== undefined) return await this.quarantineRecord(fileId, inVolume, reason)
    const from = this.path(fileId)
    const known = await this.footerOf(from, fileId)
    try {
      // No fsync: a quarantine lost in a crash is found again by the next scrub or read.
      await rename(from, quarantinePath(this.dir, fileId))
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return
      throw err
    }
    this.fileCount = Math.max(0, this.fileCount - 1)
    this.fileBytes = Math.max(0, this.fileBytes - (known.size ?? 0))
    this.noteQuarantined(fileId, known, reason)
  }

  /** A volume's corrupt record: its bytes as stored go to quarantine/, a tombstone takes it out of the volume. */
  private async quarantineRecord (fileId: string, entry: VolumeEntry, reason: string): Promise<void> {
    // No fsync: a quarantine lost in a crash is found again by the next scrub or read.
    await writeFile(quarantinePath(this.dir, fileId), this.volumes.readRecord(entry))
    await this.volumes.delete(fileId)
    this.noteQuarantined(fileId, { size: entry.size, sha256: entry.sha256 }, reason)
  }

  private noteQuarantined (fileId: string, known: { size?: number, sha256?: string }, reason: string): void {
    this.quarantined.set(fileId, { fileId, ...known, reason: reason.slice(0, 512) })
    this.logger.warn('quarantined a corrupt body', { fileId, reason })
  }

  /** Runs a read step; a CORRUPT outcome quarantines the body before the error goes on. */
  private async corruptionQuarantines<T> (fileId: string, step: Promise<T>): Promise<T> {
    try {
      return await step
    } catch (err) {
      if ((err as { code?: string }).code === NodeErrorCode.CORRUPT) await this.quarantine(fileId, (err as Error).message).catch(() => {})
      throw err
    }
  }

  private async * quarantineOnCorruption (fileId: string, body: AsyncGenerator<Buffer>, close: () => Promise<void>): AsyncGenerator<Buffer> {
    try {
      for (;;) {
        const next = await this.corruptionQuarantines(fileId, body.next())
        if (next.done === true) return
        yield next.value
      }
    } finally {
      await close()
    }
  }

  /** Size and sha256 from a blob file's footer (or a quarantined record's header), where it can still be read. */
  private async footerOf (file: string, fileId: string): Promise<{ size?: number, sha256?: string }> {
    try {
      const fh = await open(file, 'r')
      try {
        const head = Buffer.alloc(RECORD_HEADER_BYTES)
        await fh.read(head, 0, RECORD_HEADER_BYTES, 0)
        const record = parseRecordHeader(head)
        if (record !== undefined) return { size: record.size, sha256: record.sha256 }
        const { size, sha256 } = await readFooter(fh, fileId)
        return { size, sha256 }
      } finally {
        await fh.close()
      }
    } catch {
      return {}
    }
  }

  /** A verified read of bytes [offset, offset + length); every block is checked before any byte of it is yielded. */
  async get (fileId: string, offset: number, length?: number): Promise<BlobRead> {
    checkId(fileId)
    const inVolume = this.volumes.get(fileId)
    if (inVolume !== undefined) return await this.getFromVolume(fileId, inVolume, offset, length)
    const small = this.readSmall(fileId)
    const fh = small === undefined ? await this.openBlob(fileId) : undefined
    let footer: Footer
    try {
      footer = await this.corruptionQuarantines(fileId, small ?? readFooter(fh as FileHandle, fileId))
    } catch (err) {
      await fh?.close()
      throw err
    }
    const len = length ?? footer.size - offset
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > footer.size) {
      await fh?.close()
      throw new NodeError(NodeErrorCode.BAD_RANGE, `range ${offset}+${len} is outside file ${fileId} of ${footer.size} bytes`)
    }
    const uncached = fh !== undefined && footer.size >= BODY_UNCACHED_BYTES
    const dropBehind = uncached ? (start: number, length: number) => this.pageCache.drop(fh.fd, start, length) : undefined
    const body = readVerified(fh, fileId, footer, offset, len, dropBehind)
    // A generator never started runs no `finally`: the file is closed here too (closing twice is a no-op).
    const close = async (): Promise<void> => {
      await body.return(undefined)
      await fh?.close()
    }
    return { size: footer.size, sha256: footer.sha256, offset, length: len, body: this.quarantineOnCorruption(fileId, body, close), close }
  }

  /** A range of a volume-held body, its CRC checked before any byte goes out (a corrupt one is quarantined). */
  private async getFromVolume (fileId: string, entry: VolumeEntry, offset: number, length?: number): Promise<BlobRead> {
    const body = await this.corruptionQuarantines(fileId, Promise.resolve().then(() => this.volumes.read(fileId, entry)))
    const len = length ?? entry.size - offset
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > entry.size) {
      throw new NodeError(NodeErrorCode.BAD_RANGE, `range ${offset}+${len} is outside file ${fileId} of ${entry.size} bytes`)
    }
    const slice = offset === 0 && len === body.length ? body : body.subarray(offset, offset + len)
    async function * once (): AsyncGenerator<Buffer> {
      if (slice.length > 0) yield slice
    }
    const gen = once()
    return { size: entry.size, sha256: entry.sha256, offset, length: len, body: gen, close: async () => { await gen.return(undefined) } }
  }

  /**
   * A blob file of at most INLINE_BODY_BYTES, read whole with blocking calls.
   * From the page cache that is a few microseconds, where the asynchronous
   * path costs four thread-pool round trips; a cold read blocks this node for
   * one disk access. Undefined when the file is larger (or absent: the
   * asynchronous path says why).
   */
  private readSmall (fileId: string): Promise<Footer> | undefined {
    checkId(fileId)
    let fd: number
    try {
      fd = openSync(this.path(fileId), 'r')
    } catch {
      return undefined
    }
    try {
      const fileSize = fstatSync(fd).size
      if (fileSize > INLINE_BODY_BYTES) return undefined
      const whole = Buffer.allocUnsafe(fileSize)
      const bytesRead = readSync(fd, whole, 0, fileSize, 0)
      return Promise.resolve().then(() => ({ ...parseFooter(whole.subarray(Math.max(0, bytesRead - FOOTER_BYTES), bytesRead), bytesRead, fileId), whole: whole.subarray(0, bytesRead) }))
    } finally {
      closeSync(fd)
    }
  }

  async delete (fileId: string): Promise<boolean> {
    checkId(fileId)
    // A deleted file needs no repair: its quarantined copy goes too.
    const wasQuarantined = this.quarantined.delete(fileId)
    if (wasQuarantined) await rm(quarantinePath(this.dir, fileId), { force: true })
    if (await this.volumes.delete(fileId)) return true
    let size = 0
    try {
      size = (await this.stat(fileId)).size
    } catch (err) {
      if ((err as { code?: string }).code === NodeErrorCode.NOT_FOUND) return wasQuarantined
    }
    try {
      await unlink(this.path(fileId))
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return wasQuarantined
      throw err
    }
    await this.dirSyncer.sync(dirname(this.path(fileId)))
    this.fileCount--
    this.fileBytes -= size
    return true
  }

  /** Free bytes on the data dir's file system; read at most once a second, less what was written since. */
  async free (): Promise<number> {
    const now = Date.now()
    if (now - this.freeReading.at > FREE_SPACE_TTL_MS) {
      const s = await statfs(this.dir)
      this.freeReading = { bytes: s.bavail * s.bsize, at: now, writtenSince: 0 }
    }
    return Math.max(0, this.freeReading.bytes - this.freeReading.writtenSince)
  }

  /**
   * The set of bodies held, as per-shard digests of their ids, read from the
   * disk at each call (names only, no per-file I/O), so a body gone by any
   * means shows at once; uploads in flight and quarantined bodies live elsewhere.
   */
  async digest (): Promise<{ files: number, digest: SetDigest }> {
    const digest = await this.volumes.digest()
    let files = this.volumes.files
    await eachLimited(Array.from({ length: DIGEST_SHARDS }, (_, i) => shardName(i)), DIGEST_READDIRS, async (shard) => {
      for (const id of await this.shardIds(shard)) {
        digest.add(id)
        files++
      }
    })
    return { files, digest }
  }

  /**
   * The bodies of one shard after `after`, in id order, with their sizes and
   * mtimes, as many as fit one page: from the file's length (which gives the
   * body's size, see bodySizeOf), one lstat a body and LIST_STATS at once,
   * not a read of every footer. A file of no blob's length is left out; a
   * body damaged within is the scrub's to find.
   */
  async list (shard: number, after?: string): Promise<{ files: HeldBody[], more: boolean }> {
    const prefix = shardName(shard)
    const inVolumes = [...this.volumes.shardIds(shard)]
    const ids = [...new Set([...inVolumes, ...await this.shardIds(prefix)])].filter((id) => after === undefined || id > after).sort()
    const budget = new PageBudget()
    const files: HeldBody[] = []
    for (let at = 0; at < ids.length; at += LIST_STATS) {
      for (const held of await Promise.all(ids.slice(at, at + LIST_STATS).map(async (id) => await this.held(id)))) {
        if (held === undefined) continue
        if (!budget.admit(held)) return { files, more: true }
        files.push(held)
      }
    }
    return { files, more: false }
  }

  private async held (fileId: string): Promise<HeldBody | undefined> {
    const inVolume = this.volumes.get(fileId)
    if (inVolume !== undefined) return { fileId, size: inVolume.size, mtime: Math.floor(inVolume.mtime) }
    try {
      const st = await lstat(this.path(fileId))
      const size = st.isFile() ? bodySizeOf(st.size) : undefined
      return size === undefined ? undefined : { fileId, size, mtime: Math.floor(st.mtimeMs) }
    } catch {
      return undefined
    }
  }

  private async shardIds (shard: string): Promise<string[]> {
    try {
      return (await readdir(join(this.blobsDir, shard))).filter((id) => FILE_ID.test(id) && id.startsWith(shard))
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return []
      throw err
    }
  }

  /** Every stored file id (for resync and scrub). */
  async * ids (): AsyncGenerator<string> {
    yield * [...this.volumes.ids()]
    for (const shard of await readdir(this.blobsDir)) {
      for (const id of await readdir(join(this.blobsDir, shard))) if (FILE_ID.test(id)) yield id
    }
  }

  private async checkSpace (size: number): Promise<void> {
    const free = await this.free()
    if (size + FREE_SPACE_MARGIN_BYTES > free) {
      throw new NodeError(NodeErrorCode.NO_SPACE, `not enough space for ${size} bytes: ${free} free, ${FREE_SPACE_MARGIN_BYTES} kept in reserve`)
    }
  }

  private async openBlob (fileId: string): Promise<FileHandle> {
    checkId(fileId)
    try {
      return await open(this.path(fileId), 'r')
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') throw new NodeError(NodeErrorCode.NOT_FOUND, `file ${fileId} is not stored here`)
      throw err
    }
  }
}

// 8: shard directories read at once for a digest
const DIGEST_READDIRS = 8

async function eachLimited<T> (items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++] as T)
  }))
}

export interface SeededBody { fileId: string, size: number, sha256: string }

/**
 * A benchmark and test tool, not a way to store data: writes bodies straight
 * into a node's data dir in the store's format, without fsync, fast enough for
 * 100,000 bodies. With a count, new bodies of `size` bytes; with a list, the
 * same bodies again (their content follows from their id), e.g. on the twin.
 * Returns them in the order given.
 */
export async function seedBodies (dataDir: string, what: number | SeededBody[], size = 1024): Promise<SeededBody[]> {
  const bodies = typeof what === 'number' ? Array.from({ length: what }, () => ({ fileId: randomBytes(16).toString('hex'), size, sha256: '' })) : what
  await Promise.all(Array.from({ length: DIGEST_SHARDS }, async (_, i) => await mkdir(join(dataDir, BLOBS_DIR, shardName(i)), { recursive: true })))
  const out = bodies.map((b) => ({ ...b }))
  await eachLimited(out, 16, async (b) => {
    const fh = await open(blobPath(dataDir, b.fileId), 'wx')
    try {
      b.sha256 = (await writeBody(fh, b.size, Readable.from([seedContent(b.fileId, b.size)]))).sha256
    } finally {
      await fh.close()
    }
  })
  return out
}

function seedContent (fileId: string, size: number): Buffer {
  const unit = createHash('sha256').update(fileId).digest()
  const body = Buffer.allocUnsafe(size)
  for (let at = 0; at < size; at += unit.length) unit.copy(body, at, 0, Math.min(unit.length, size - at))
  return body
}

function checkId (fileId: string): void {
  if (!FILE_ID.test(fileId)) throw new NodeError(NodeErrorCode.BAD_ID, 'a file id is 32 lowercase hex digits')
}

function mapWriteError (err: unknown, fileId: string): unknown {
  if ((err as { code?: string }).code === 'ENOSPC') return new NodeError(NodeErrorCode.NO_SPACE, `disk full while storing ${fileId}`, { cause: err })
  return err
}

/**
 * Writes the body and its trailer, hashing as it goes; checks the declared size.
 * The writer overlaps the disk with hashing and the network. A failed upload's
 * pending bytes are never written: its temp file goes anyway.
 */
async function writeBody (fh: FileHandle, size: number, source: AsyncIterable<Buffer>, senderSha256?: () => string | undefined, pool?: AlignedPool): Promise<{ sha256: string }> {
  const whole = senderSha256 === undefined ? createHash('sha256') : undefined
  const digests = Buffer.alloc(blockCount(size) * DIGEST_BYTES)
  const writer = new BodyWriter(fh, pool)
  let crc = 0
  let inBlock = 0
  let received = 0
  let blocks = 0
  try {
    for await (const chunk of source) {
      if (received + chunk.length > size) throw new NodeError(NodeErrorCode.SIZE_MISMATCH, `upload is longer than its declared ${size} bytes`)
      writer.write(chunk)
      received += chunk.length
      // The one hash pass over the body, unless its sender made it; the blocks' CRCs cost a fifth of it.
      whole?.update(chunk)
      for (let at = 0; at < chunk.length;) {
        const take = Math.min(BLOCK_BYTES - inBlock, chunk.length - at)
        crc = crc32(take === chunk.length ? chunk : chunk.subarray(at, at + take), crc)
        inBlock += take
        at += take
        if (inBlock === BLOCK_BYTES) {
          digests.writeUInt32BE(crc, blocks++ * DIGEST_BYTES)
          crc = 0
          inBlock = 0
        }
      }
      await writer.room()
    }
    if (received !== size) throw new NodeError(NodeErrorCode.SIZE_MISMATCH, `upload ended after ${received} of ${size} bytes`)
    if (inBlock > 0) digests.writeUInt32BE(crc, blocks++ * DIGEST_BYTES)
    const sha256 = whole?.digest() ?? sha256From(senderSha256)
    const footer = Buffer.alloc(FOOTER_BYTES)
    MAGIC.copy(footer, 0)
    footer.writeUInt32BE(FORMAT_VERSION, 8)
    footer.writeUInt32BE(BLOCK_BYTES, 12)
    footer.writeBigUInt64BE(BigInt(size), 16)
    sha256.copy(footer, 24)
    writer.write(digests)
    writer.write(footer)
    await writer.end()
    return { sha256: sha256.toString('hex') }
  } catch (err) {
    await writer.abort()
    throw err
  }
}

/** The sender's sha256 of the body, which the end frame's schema checked as 64 hex digits. */
function sha256From (senderSha256: (() => string | undefined) | undefined): Buffer {
  const given = senderSha256?.()
  if (given === undefined) throw new NodeError(NodeErrorCode.SIZE_MISMATCH, 'the upload ended without the sha256 its sender was to give')
  return Buffer.from(given, 'hex')
}

/** Whether `block` matches its checksum slot, by the file's format. */
function blockIntact (version: number, block: Buffer, slot: Buffer): boolean {
  if (version === SHA256_BLOCKS_VERSION) return createHash('sha256').update(block).digest().equals(slot)
  return crc32(block) === slot.readUInt32BE(0)
}

interface Footer {
  version: number
  size: number
  sha256: string
  blockSize: number
  digests: number
  /** The whole file, when readSmall read it in one call. */
  whole?: Buffer
}

/**
 * Reads and checks the footer. A small file is read whole in one call (no
 * fstat, no second read): most reads of small files cost one open, one read, one close.
 */
/** The footer alone (small files are read whole by readSmall). */
async function readFooter (fh: FileHandle, fileId: string): Promise<Footer> {
  const fileSize = (await fh.stat()).size
  // Shorter than a footer: refused as corrupt by parseFooter, before any read.
  if (fileSize < FOOTER_BYTES) return parseFooter(Buffer.alloc(0), fileSize, fileId)
  const footer = Buffer.alloc(FOOTER_BYTES)
  await fh.read(footer, 0, FOOTER_BYTES, fileSize - FOOTER_BYTES)
  return parseFooter(footer, fileSize, fileId)
}

function parseFooter (footer: Buffer, fileSize: number, fileId: string): Footer {
  const corrupt = (why: string): NodeError => new NodeError(NodeErrorCode.CORRUPT, `file ${fileId} is corrupt: ${why}`)
  if (fileSize < FOOTER_BYTES) throw corrupt('shorter than its footer')
  if (!footer.subarray(0, 8).equals(MAGIC)) throw corrupt('bad footer magic')
  const version = footer.readUInt32BE(8)
  if (version !== FORMAT_VERSION && version !== SHA256_BLOCKS_VERSION) throw corrupt(`unknown format ${version}`)
  const blockSize = footer.readUInt32BE(12)
  const size = Number(footer.readBigUInt64BE(16))
  if (blockSize !== BLOCK_BYTES || !Number.isSafeInteger(size)) throw corrupt('bad footer fields')
  const digests = Math.ceil(size / blockSize)
  if (size + digests * DIGEST_BYTES + FOOTER_BYTES !== fileSize) throw corrupt(`file is ${fileSize} bytes, its footer says ${size} of body`)
  return { version, size, sha256: footer.subarray(24, 56).toString('hex'), blockSize, digests }
}

/** `fh` is undefined when `footer.whole` holds the whole file; `dropBehind` is told each block read from it. */
async function * readVerified (fh: FileHandle | undefined, id: string, footer: Footer, offset: number, length: number, dropBehind?: (start: number, bytes: number) => void): AsyncGenerator<Buffer> {
  try {
    if (length === 0) return
    const end = offset + length
    const first = Math.floor(offset / footer.blockSize)
    const last = Math.floor((end - 1) / footer.blockSize)
    const digestsAt = footer.size + first * DIGEST_BYTES
    const digestsLength = (last - first + 1) * DIGEST_BYTES
    const digests = footer.whole?.subarray(digestsAt, digestsAt + digestsLength) ?? Buffer.alloc(digestsLength)
    if (footer.whole === undefined) await (fh as FileHandle).read(digests, 0, digests.length, digestsAt)
    const readBlock = async (b: number): Promise<Buffer> => {
      const start = b * footer.blockSize
      const blockLength = Math.min(footer.blockSize, footer.size - start)
      if (footer.whole !== undefined) return footer.whole.subarray(start, start + blockLength)
      // A fresh buffer per block: the previous one may still sit in a socket's queue.
      const buf = Buffer.allocUnsafe(blockLength)
      const { bytesRead } = await (fh as FileHandle).read(buf, 0, blockLength, start)
      dropBehind?.(start, blockLength)
      return buf.subarray(0, bytesRead)
    }
    // The next block is read from disk while this one is verified and sent.
    let next: Promise<Buffer> | undefined = readBlock(first)
    for (let b = first; b <= last; b++) {
      const buf = await (next as Promise<Buffer>)
      next = b < last ? readBlock(b + 1) : undefined
      next?.catch(() => {})
      const start = b * footer.blockSize
      const blockLength = Math.min(footer.blockSize, footer.size - start)
      if (buf.length !== blockLength || !blockIntact(footer.version, buf, digests.subarray((b - first) * DIGEST_BYTES, (b - first + 1) * DIGEST_BYTES))) {
        await next?.catch(() => {})
        throw new NodeError(NodeErrorCode.CORRUPT, `file ${id} is corrupt: block ${b} (bytes ${start}-${start + blockLength - 1}) fails its checksum`)
      }
      const from = Math.max(offset, start) - start
      const to = Math.min(end, start + blockLength) - start
      yield from === 0 && to === buf.length ? buf : buf.subarray(from, to)
    }
  } finally {
    await fh?.close()
  }
}

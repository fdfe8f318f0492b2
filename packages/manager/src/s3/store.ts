import { createHash, type Hash } from 'node:crypto'
import { DirectoryErrorCode, type Entry, type FileEntry } from '@mirrorcast/wire'
import type { DirectoryManager } from '../directory/directory-manager.js'
import type { ObjectManager, StoredBody } from '../objects/object-manager.js'
import { S3Error } from './errors.js'
import { bucketPath } from './keys.js'

export type Objects = Pick<ObjectManager, 'write' | 'read' | 'remove' | 'removeAll'>
export type Directories = Pick<DirectoryManager, 'stat' | 'lookup' | 'list' | 'put' | 'remove' | 'mkdir' | 'rename'>

/**
 * The directory below each bucket where the S3 front end keeps what is not
 * an object: uploads in progress and the parts of completed ones. No key
 * maps to it (keys.ts escapes a `%` as `%25`), and listings leave it out.
 */
export const S3_DIR = '%s3'
// meta fields of an object made of parts: the directory of its parts (by upload id), and its size in bytes
export const PARTS_FIELD = 'mirrorcast-parts'
export const SIZE_FIELD = 'mirrorcast-size'
// the record of an upload in its directory (its key, the object's headers and metadata, when it began): not a part
export const UPLOAD_RECORD = '%upload'

export function partsDir (bucket: string, uploadId: string): string {
  return `${bucketPath(bucket)}/${S3_DIR}/parts/${uploadId}`
}

/** What GET and HEAD serve: an object's bytes, whether one body or the parts of a multipart upload. */
export interface S3Object {
  entry: FileEntry
  size: number
  read: (offset: number, length: number, signal?: AbortSignal) => AsyncGenerator<Buffer>
}

interface StoreOptions { signal?: AbortSignal, before?: Promise<unknown> }

/** A part of an object made of parts: its entry, and where its bytes start in the object. */
interface PartAt { entry: FileEntry, offset: number }

/** The object and directory managers as the S3 operations use them: bodies named by entries, trees removed whole. */
export class S3Store {
  constructor (readonly objects: Objects, readonly dirs: Directories) {}

  async requireBucket (bucket: string): Promise<void> {
    const entry = await this.dirs.lookup(bucketPath(bucket))
    if (entry?.type !== 'dir') throw noSuchBucket(bucket)
  }

  /** The entry for a stored body; the bodies it replaced go, with the parts of an object made of parts. */
  async name (bucket: string, file: Omit<FileEntry, 'type' | 'version' | 'mtime'>): Promise<FileEntry> {
    const { change, removed } = await this.dirs.put({ type: 'file', ...file })
    // a completion retried names the key again with the same parts: those stay
    const parts = file.meta?.[PARTS_FIELD]
    await this.dropBodies(bucket, removed.filter((r) => r.fileId !== file.fileId).map((r) => r.meta?.[PARTS_FIELD] === parts && parts !== undefined ? { ...r, meta: {} } : r))
    if (change.op !== 'put') throw new Error(`directory answered a put with a ${change.op}`)
    return change.entry
  }

  /**
   * A body written and named, or removed again when it cannot be named. The
   * metadata is asked for once the body is in (its MD5 is known then), and
   * `before` (a check made while the body travels) must hold first.
   */
  async store (bucket: string, path: string, source: AsyncIterable<Buffer>, size: number, meta: () => Record<string, string>, options: StoreOptions = {}): Promise<FileEntry> {
    const stored = await this.objects.write(source, size, options.signal)
    try {
      await options.before
      return await this.name(bucket, { ...bodyOf(stored), path, meta: meta() })
    } catch (err) {
      await this.objects.remove(stored)
      throw err
    }
  }

  async dropBodies (bucket: string, removed: FileEntry[]): Promise<void> {
    await this.objects.removeAll(removed)
    for (const entry of removed) {
      const uploadId = entry.meta?.[PARTS_FIELD]
      if (uploadId !== undefined) await this.removeTree(bucket, partsDir(bucket, uploadId))
    }
  }

  /**
   * A file or directory (with all below it, unless not `recursive`: then only
   * when empty) removed with the bodies it held, then each directory
   * above it up to the bucket while it is empty, so no prefix lingers; one
   * that is not empty (another key came) stays, and so do `%s3`'s. What is
   * not there is no error.
   */
  async removeTree (bucket: string, path: string, recursive = true): Promise<void> {
    try {
      const { removed } = await this.dirs.remove(path, recursive)
      await this.dropBodies(bucket, removed)
    } catch (err) {
      if (isAbsent(err)) return
      throw err
    }
    // the front end's own directories stay: an upload being created or completed counts on them
    const own = `${bucketPath(bucket)}/${S3_DIR}`
    for (let dir = path.slice(0, path.lastIndexOf('/')); dir.length > bucketPath(bucket).length && !`${dir}/`.startsWith(`${own}/`); dir = dir.slice(0, dir.lastIndexOf('/'))) {
      try {
        await this.dirs.remove(dir, false)
      } catch (err) {
        if (isAbsent(err)) return
        throw err
      }
    }
  }

  /** Every entry of a directory, page by page; none when it is not there. */
  entries (dir: string): AsyncGenerator<Entry> {
    return entriesOf(this.dirs, dir)
  }

  /** True when a directory holds nothing, or is not there. */
  async isEmpty (dir: string): Promise<boolean> {
    try {
      return (await this.dirs.list(dir, undefined, 1)).entries.length === 0
    } catch (err) {
      if (isAbsent(err)) return true
      throw err
    }
  }

  /** A small body read whole (an upload's record). */
  async readSmall (entry: FileEntry): Promise<Buffer> {
    const chunks: Buffer[] = []
    for await (const chunk of this.objects.read(entry, 0, entry.size)) chunks.push(chunk)
    return Buffer.concat(chunks)
  }

  /**
   * The object an entry holds: its own body, or the parts its upload left, in
   * order. The parts are listed when bytes are read, so a HEAD lists none.
   */
  object (bucket: string, entry: FileEntry): S3Object {
    const uploadId = entry.meta?.[PARTS_FIELD]
    if (uploadId === undefined) return { entry, size: entry.size, read: (offset, length, signal) => this.objects.read(entry, offset, length, signal) }
    return { entry, size: objectSize(entry), read: (offset, length, signal) => this.readParts(bucket, entry, uploadId, offset, length, signal) }
  }

  private async partsOf (bucket: string, entry: FileEntry, uploadId: string): Promise<PartAt[]> {
    const parts: PartAt[] = []
    let size = 0
    for await (const part of this.entries(partsDir(bucket, uploadId))) {
      if (part.type !== 'file' || part.path.endsWith(`/${UPLOAD_RECORD}`)) continue
      parts.push({ entry: part, offset: size })
      size += part.size
    }
    if (size !== objectSize(entry)) throw new S3Error('InternalError', `the parts of ${entry.path} hold ${size} bytes, not the ${objectSize(entry)} it was completed with`)
    return parts
  }

  private async * readParts (bucket: string, object: FileEntry, uploadId: string, offset: number, length: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
    const end = offset + length
    for (const { entry, offset: at } of await this.partsOf(bucket, object, uploadId)) {
      if (at + entry.size <= offset || at >= end) continue
      const from = Math.max(offset, at) - at
      yield * this.objects.read(entry, from, Math.min(end, at + entry.size) - at - from, signal)
    }
  }
}

/** Every entry of a directory, page by page; none when it is not there (or is a file). */
export async function * entriesOf (dirs: Pick<Directories, 'list'>, dir: string): AsyncGenerator<Entry> {
  let after: string | undefined
  for (;;) {
    let page
    try {
      page = await dirs.list(dir, after, 1000)
    } catch (err) {
      if (isAbsent(err)) return
      throw err
    }
    for (const entry of page.entries) {
      after = entry.path.slice(entry.path.lastIndexOf('/') + 1)
      yield entry
    }
    if (!page.more || page.entries.length === 0) return
  }
}

export function bodyOf (stored: StoredBody): StoredBody {
  return { fileId: stored.fileId, size: stored.size, sha256: stored.sha256, replicas: stored.replicas }
}

/** The size S3 shows for an entry: an object made of parts has a body of none. */
export function objectSize (entry: FileEntry): number {
  const parts = entry.meta?.[SIZE_FIELD]
  return parts === undefined ? entry.size : Number(parts)
}

/** A body of bytes in hand. */
export async function * bytesOf (...chunks: Buffer[]): AsyncGenerator<Buffer> {
  yield * chunks
}

/** A body passed on as it is, its MD5 taken on the way. */
export async function * withMd5 (source: AsyncIterable<Buffer>, md5: Hash): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    md5.update(chunk)
    yield chunk
  }
}

export function md5Hash (): Hash {
  return createHash('md5')
}

export function isAbsent (err: unknown): boolean {
  const code = (err as { code?: string }).code
  return code === DirectoryErrorCode.NOT_FOUND || code === DirectoryErrorCode.NOT_EMPTY || code === DirectoryErrorCode.NOT_A_DIRECTORY || code === 'ERR_NOT_FOUND'
}

export function noSuchBucket (bucket: string): S3Error {
  return new S3Error('NoSuchBucket', `The specified bucket does not exist: ${bucket}`)
}

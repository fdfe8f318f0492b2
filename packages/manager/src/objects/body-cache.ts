import { INLINE_BODY_BYTES } from '@mirrorcast/wire'

// 16 MiB: some 4,000 bodies of 4 KiB, a small part of the manager's memory
export const DEFAULT_BODY_CACHE_BYTES = 16 * 1024 * 1024
// 96 bytes: what the map and the buffer's header cost besides the body
const ENTRY_OVERHEAD_BYTES = 96

/**
 * The small bodies most recently written or read through this manager, by
 * file id, least recently used out first. A file id's content never changes
 * (an overwrite draws a new id), so a cached body is never stale, whichever
 * manager changed the namespace since: the entry, always asked of the
 * directory, says which id a path has now. Serving one spares a round trip to
 * a storage node; on the development VM that hop is a third of a 4 KiB GET.
 */
export class BodyCache {
  private readonly bodies = new Map<string, Buffer>()
  private bytes = 0
  hits = 0
  misses = 0

  constructor (private readonly maxBytes: number) {
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError('the body cache size must be a whole number of bytes (0: off)')
  }

  get (fileId: string): Buffer | undefined {
    const body = this.bodies.get(fileId)
    if (body === undefined) {
      this.misses++
      return undefined
    }
    this.hits++
    // Most recently used last: the map's order is the eviction order.
    this.bodies.delete(fileId)
    this.bodies.set(fileId, body)
    return body
  }

  /** Keeps `body` (copied when it is a view of a larger buffer, which it would keep alive); bodies larger than an inline body are not kept. */
  add (fileId: string, body: Buffer): void {
    const cost = body.length + ENTRY_OVERHEAD_BYTES
    if (body.length > INLINE_BODY_BYTES || cost > this.maxBytes) return
    this.delete(fileId)
    const own = body.byteOffset === 0 && body.buffer.byteLength === body.length ? body : Buffer.from(body)
    this.bodies.set(fileId, own)
    this.bytes += cost
    for (const [oldest, old] of this.bodies) {
      if (this.bytes <= this.maxBytes) break
      this.bodies.delete(oldest)
      this.bytes -= old.length + ENTRY_OVERHEAD_BYTES
    }
  }

  delete (fileId: string): void {
    const body = this.bodies.get(fileId)
    if (body === undefined) return
    this.bodies.delete(fileId)
    this.bytes -= body.length + ENTRY_OVERHEAD_BYTES
  }

  stats (): { bodies: number, bytes: number, maxBytes: number, hits: number, misses: number } {
    return { bodies: this.bodies.size, bytes: this.bytes, maxBytes: this.maxBytes, hits: this.hits, misses: this.misses }
  }
}

import { createRequire } from 'node:module'
import type { Logger } from '@mirrorcast/logger'

/*
 * Large bodies are kept out of the page cache, as Swift's object server keeps
 * them: a body of BODY_UNCACHED_BYTES or more has its pages dropped once it is
 * durable, and a read drops each block behind it. Streaming big files then
 * neither evicts the small files that are read again and again, nor makes the
 * kernel find fresh pages for every byte written (on a VM whose memory was
 * never touched, that alone cost a node 40 ms of system time per 16 MiB).
 * Node has no binding for posix_fadvise: native/page-cache.c is one, built at
 * install. Where it could not be built, pages stay cached and the node says so once.
 */
// 4 MiB: smaller bodies stay cached (Swift's keep_cache_size is 5 MiB)
export const BODY_UNCACHED_BYTES = 4 * 1024 * 1024

interface Binding {
  dropCache: (fd: number, offset: number, length: number) => number
  alignedBuffer: (alignment: number, size: number) => Buffer
}

let binding: Binding | undefined
let loadError: string | undefined

function load (): Binding | undefined {
  if (binding !== undefined || loadError !== undefined) return binding
  try {
    binding = createRequire(import.meta.url)('../../native/build/Release/page_cache.node') as Binding
  } catch (err) {
    loadError = (err as Error).message
  }
  return binding
}

/** A zeroed buffer of `size` bytes at an address that is a multiple of `alignment`, as O_DIRECT needs; undefined without the addon. */
export function alignedBuffer (alignment: number, size: number): Buffer | undefined {
  return load()?.alignedBuffer(alignment, size)
}

/** Drops the pages of bytes [offset, offset + length) of an open file (0 length: to its end); their data must be durable already. */
export class PageCache {
  private warned = false

  constructor (private readonly logger: Logger) {}

  /** Whether dropping pages works here (the addon is built). */
  get available (): boolean {
    return load() !== undefined
  }

  drop (fd: number, offset: number, length: number): void {
    const native = load()
    if (native === undefined) {
      if (!this.warned) this.logger.warn('large bodies stay in the page cache: the page-cache addon is not built (npm run build:native)', { error: loadError })
      this.warned = true
      return
    }
    // Advice, not a promise: a file system that ignores it costs only the cache.
    native.dropCache(fd, offset, length)
  }
}

import { CodedError } from './errors.js'
import { CommonErrorCode } from './error-codes.js'
import { MAX_PATH_LENGTH } from './messages.js'

// 255 bytes: NAME_MAX of every common file system
export const MAX_NAME_BYTES = 255

export class PathError extends CodedError {
  constructor (message: string) {
    super(CommonErrorCode.BAD_PATH, message)
  }
}

/**
 * Checks a namespace path and returns its canonical form: absolute, no trailing
 * slash (but `/` itself), no `.`/`..`, no empty segment, no NUL, bounded lengths.
 * Nothing is silently rewritten: a path that is not canonical but for one
 * trailing slash is refused, so a client never writes somewhere it did not name.
 */
export function normalizePath (input: unknown): string {
  if (typeof input !== 'string') throw new PathError('path must be a string')
  if (!input.startsWith('/')) throw new PathError(`path ${JSON.stringify(input.slice(0, 100))} must start with /`)
  if (input.includes('\0')) throw new PathError('path must not contain NUL')
  if (input.length > MAX_PATH_LENGTH || Buffer.byteLength(input) > MAX_PATH_LENGTH) {
    throw new PathError(`path is longer than ${MAX_PATH_LENGTH} bytes`)
  }
  if (input === '/') return '/'
  const trimmed = input.endsWith('/') ? input.slice(0, -1) : input
  for (const segment of trimmed.slice(1).split('/')) {
    if (segment === '') throw new PathError(`path ${JSON.stringify(input.slice(0, 100))} has an empty segment`)
    if (segment === '.' || segment === '..') throw new PathError(`path ${JSON.stringify(input.slice(0, 100))} must not contain . or .. segments`)
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) throw new PathError(`name ${JSON.stringify(segment.slice(0, 40) + '…')} is longer than ${MAX_NAME_BYTES} bytes`)
  }
  return trimmed
}

/** `/a/b` → `/a`; `/a` → `/`. */
export function parentPath (path: string): string {
  const at = path.lastIndexOf('/')
  return at <= 0 ? '/' : path.slice(0, at)
}

export function baseName (path: string): string {
  return path.slice(path.lastIndexOf('/') + 1)
}

/** True when `path` is `ancestor` or lies below it. */
export function isWithin (path: string, ancestor: string): boolean {
  return ancestor === '/' || path === ancestor || path.startsWith(ancestor + '/')
}

import { MAX_LIST_ENTRIES, MAX_NAME_BYTES, normalizePath } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from '../errors.js'

/**
 * The query parameters of the native API, each checked before anything is
 * asked of a member: a value a member would refuse, or choke on, never leaves
 * the manager, and the client learns which parameter to fix (400
 * ERR_HTTP_BAD_PARAMETER, the parameter named). The path of the URL itself
 * keeps its own code, ERR_BAD_PATH.
 */

const FILE_ID = /^[0-9a-f]{32}$/

function badParameter (name: string, reason: string, cause?: unknown): ManagerError {
  return new ManagerError(ManagerErrorCode.BAD_PARAMETER, `query parameter "${name}" ${reason}`, cause === undefined ? undefined : { cause })
}

/** The one value of a parameter, or undefined; given twice it is refused, since which one counts would be a guess. */
export function single (q: URLSearchParams, name: string): string | undefined {
  const values = q.getAll(name)
  if (values.length > 1) throw badParameter(name, `is given ${values.length} times: give it once`)
  return values[0]
}

/**
 * A switch (`?recursive`): on when present bare, or as 1 or true. Any other
 * value is refused rather than read as on: `?recursive=false` must not remove a subtree.
 */
export function flag (q: URLSearchParams, name: string): boolean {
  const value = single(q, name)
  if (value === undefined) return false
  if (value === '' || value === '1' || value === 'true') return true
  throw badParameter(name, `is a switch: give it bare (?${name}), not ${JSON.stringify(value.slice(0, 40))}`)
}

/** `after`: a listing continues after this name, one name of a directory (empty: from the start). */
export function listingCursor (q: URLSearchParams): string | undefined {
  const after = single(q, 'after')
  if (after === undefined || after === '') return undefined
  if (after.includes('/')) throw badParameter('after', 'must be one name of the directory, without /')
  if (after.includes('\0')) throw badParameter('after', 'must not contain NUL')
  const bytes = Buffer.byteLength(after)
  if (bytes > MAX_NAME_BYTES) throw badParameter('after', `is ${bytes} bytes, longer than any name (${MAX_NAME_BYTES} bytes at most)`)
  return after
}

/** `limit`: entries of a listing page, 1 to the most a page holds. */
export function listingLimit (q: URLSearchParams): number | undefined {
  const limit = single(q, 'limit')
  if (limit === undefined) return undefined
  const n = Number(limit)
  if (!/^\d{1,9}$/.test(limit) || n < 1 || n > MAX_LIST_ENTRIES) throw badParameter('limit', `must be a whole number from 1 to ${MAX_LIST_ENTRIES}, got ${JSON.stringify(limit.slice(0, 40))}`)
  return n
}

/** A body's size in bytes (`size`), required, at most `max`. */
export function sizeParameter (q: URLSearchParams, max: number): number {
  const value = single(q, 'size') ?? ''
  const n = Number(value)
  if (!/^\d{1,16}$/.test(value) || !Number.isSafeInteger(n)) throw badParameter('size', `must be the body's size in bytes, got ${JSON.stringify(value.slice(0, 40))}`)
  if (n > max) throw new ManagerError(ManagerErrorCode.TOO_LARGE, `body of ${n} bytes exceeds the limit of ${max}`)
  return n
}

/** A namespace path given as a parameter (`move-to`), held to the path rules. */
export function pathParameter (q: URLSearchParams, name: string): string {
  const value = single(q, name) ?? ''
  try {
    return normalizePath(value)
  } catch (err) {
    throw badParameter(name, `is not a valid path: ${(err as Error).message}`, err)
  }
}

/** `key` of a search, as given: a file id (32 hex digits) or the path of a file. */
export function searchKey (q: URLSearchParams): { key: string, fileId: string } | { key: string, path: string } {
  const key = single(q, 'key')
  if (key === undefined || key === '') throw badParameter('key', 'is required: a file\'s path or its id (32 hex digits)')
  if (FILE_ID.test(key)) return { key, fileId: key }
  return { key, path: pathParameter(q, 'key') }
}

/** `center` of a search: one of the cluster's centers, or undefined for all of them. */
export function centerParameter (q: URLSearchParams, centers: readonly string[]): string | undefined {
  const center = single(q, 'center')
  if (center === undefined) return undefined
  if (!centers.includes(center)) throw badParameter('center', `must be a center of this cluster (${centers.join(', ')}), got ${JSON.stringify(center.slice(0, 40))}`)
  return center
}

/** `pair` of a reconciliation: the index of a storage pair the cluster has. */
export function pairParameter (q: URLSearchParams, pairs: readonly number[]): number | undefined {
  const pair = single(q, 'pair')
  if (pair === undefined) return undefined
  const n = Number(pair)
  if (!/^\d{1,5}$/.test(pair) || !pairs.includes(n)) throw badParameter('pair', `must be the index of a storage pair of this cluster (${pairs.join(', ') || 'none heard yet'}), got ${JSON.stringify(pair.slice(0, 40))}`)
  return n
}

/** A percent-encoded part of the URL's path that names something (a member's id). */
export function decodePart (name: string, raw: string): string {
  try {
    return decodeURIComponent(raw)
  } catch (err) {
    throw new ManagerError(ManagerErrorCode.BAD_PARAMETER, `the ${name} in the path is not valid percent-encoding`, { cause: err })
  }
}

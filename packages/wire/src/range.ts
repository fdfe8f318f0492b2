import { CodedError } from './errors.js'

export interface ByteRange { offset: number, length: number }

/**
 * One `bytes=` range of a body of `size` bytes (a client needing several makes
 * several requests). Undefined for no Range header; ERR_RANGE_NOT_SATISFIABLE
 * (416) for one that cannot be served.
 */
export function parseRange (header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  const unsatisfiable = new CodedError('ERR_RANGE_NOT_SATISFIABLE', `range ${header.slice(0, 60)} cannot be served from ${size} bytes`)
  if (m === null || (m[1] === '' && m[2] === '')) throw unsatisfiable
  let start: number
  let end: number
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) throw unsatisfiable
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  if (!Number.isSafeInteger(start) || start >= size || end < start) throw unsatisfiable
  return { offset: start, length: end - start + 1 }
}

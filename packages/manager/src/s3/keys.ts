import { MAX_NAME_BYTES, MAX_PATH_LENGTH } from '@mirrorcast/wire'
import { S3Error } from './errors.js'

/**
 * How S3 names map onto the namespace: a bucket is a top-level directory, an
 * object key a path below it, split on `/`. What the path rules refuse gets a
 * reversible escape, so every key round-trips: an empty segment (`a//b`, the
 * `a/` of a folder marker) is `%`, a `.` or `..` segment is `%2E` or
 * `%2E%2E`, and a literal `%` is `%25`. Nothing else is escaped, so the
 * namespace shows keys as they are (`photos/2024/img 1.jpg`).
 */

// S3's limit on a key, in UTF-8 bytes
export const MAX_KEY_BYTES = 1024
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/

/** A bucket name as S3 allows it (3-63 lowercase letters, digits, dots and hyphens, no IP address), or InvalidBucketName. */
export function checkBucketName (name: string): string {
  if (!BUCKET_NAME.test(name) || name.includes('..') || /^\d+\.\d+\.\d+\.\d+$/.test(name)) {
    throw new S3Error('InvalidBucketName', `${JSON.stringify(name.slice(0, 80))} is not a valid bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit`)
  }
  return name
}

export function bucketPath (bucket: string): string {
  return `/${bucket}`
}

export function encodeSegment (segment: string): string {
  if (segment === '') return '%'
  if (segment === '.') return '%2E'
  if (segment === '..') return '%2E%2E'
  return segment.replaceAll('%', '%25')
}

export function decodeSegment (name: string): string {
  if (name === '%') return ''
  if (name === '%2E') return '.'
  if (name === '%2E%2E') return '..'
  return name.replaceAll('%25', '%')
}

/** The namespace path of an object, or KeyTooLongError / InvalidArgument for a key no path can hold. */
export function objectPath (bucket: string, key: string): string {
  if (key === '') throw new S3Error('InvalidArgument', 'an object key must not be empty')
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError', `the key is ${Buffer.byteLength(key)} bytes; the most S3 allows is ${MAX_KEY_BYTES}`)
  if (key.includes('\0')) throw new S3Error('InvalidArgument', 'an object key must not contain NUL')
  const names = key.split('/').map(encodeSegment)
  for (const name of names) {
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw new S3Error('KeyTooLongError', `a part of the key between slashes is ${Buffer.byteLength(name)} bytes once escaped; the namespace holds names of ${MAX_NAME_BYTES} bytes at most`)
  }
  const path = `${bucketPath(bucket)}/${names.join('/')}`
  if (Buffer.byteLength(path) > MAX_PATH_LENGTH) throw new S3Error('KeyTooLongError', `the key's path is longer than ${MAX_PATH_LENGTH} bytes`)
  return path
}

/** The key of the object at a namespace path below its bucket's directory. */
export function keyOf (bucket: string, path: string): string {
  const below = path.slice(bucketPath(bucket).length + 1)
  return below.split('/').map(decodeSegment).join('/')
}

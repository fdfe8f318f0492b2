import { createHash, type Hash } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { crc32 } from 'node:zlib'
import { Crc32c } from '@aws-crypto/crc32c'
import { Crc64Nvme } from '@aws-sdk/crc64-nvme'
import { S3Error } from './errors.js'

/** The checksum algorithms S3 takes, by the name its headers use (`x-amz-checksum-<name>`). */
export const CHECKSUM_ALGORITHMS = ['crc32', 'crc32c', 'crc64nvme', 'sha1', 'sha256'] as const

export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number]

// the digest's length in bytes: a value that decodes to another length is not one of its kind
const DIGEST_BYTES: Record<ChecksumAlgorithm, number> = { crc32: 4, crc32c: 4, crc64nvme: 8, sha1: 20, sha256: 32 }

/** A checksum computed as the bytes arrive; `digest()` answers it in base64, as S3 does. */
export interface Checksummer {
  readonly algorithm: ChecksumAlgorithm
  update: (data: Uint8Array) => void
  /** Call once, after the last update. */
  digest: () => Promise<string>
}

/** A new incremental checksum of that algorithm. */
export function createChecksummer (algorithm: ChecksumAlgorithm): Checksummer {
  switch (algorithm) {
    case 'crc32': {
      let value = 0
      return { algorithm, update: (data) => { value = crc32(data, value) }, digest: async () => uint32Base64(value) }
    }
    case 'crc32c': {
      const crc = new Crc32c()
      return { algorithm, update: (data) => { crc.update(data) }, digest: async () => uint32Base64(crc.digest()) }
    }
    case 'crc64nvme': {
      // the SDK's digest is big-endian already, and asynchronous because it may run in the AWS CRT
      const crc = new Crc64Nvme()
      return { algorithm, update: (data) => { crc.update(data) }, digest: async () => Buffer.from(await crc.digest()).toString('base64') }
    }
    case 'sha1':
    case 'sha256': {
      const hash: Hash = createHash(algorithm)
      return { algorithm, update: (data) => { hash.update(data) }, digest: async () => hash.digest('base64') }
    }
  }
}

/** The checksum of bytes at hand, in base64. */
export async function checksumOf (algorithm: ChecksumAlgorithm, data: Uint8Array): Promise<string> {
  const checksum = createChecksummer(algorithm)
  checksum.update(data)
  return await checksum.digest()
}

// S3 sends a CRC as its 4 bytes, most significant first
function uint32Base64 (value: number): string {
  const bytes = Buffer.alloc(4)
  bytes.writeUInt32BE(value >>> 0)
  return bytes.toString('base64')
}

/** The algorithm of that name, in any case (`CRC32C` as x-amz-sdk-checksum-algorithm spells it, `crc32c` as a header does). */
export function checksumAlgorithm (name: string): ChecksumAlgorithm | undefined {
  const lower = name.trim().toLowerCase()
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(lower) ? lower as ChecksumAlgorithm : undefined
}

/** The header (or trailer) that carries a checksum of that algorithm. */
export function checksumHeader (algorithm: ChecksumAlgorithm): string {
  return `x-amz-checksum-${algorithm}`
}

/** BadDigest in AWS's words: "The CRC32 you specified did not match the calculated checksum." */
export function checksumMismatch (algorithm: ChecksumAlgorithm): S3Error {
  return new S3Error('BadDigest', `The ${algorithm.toUpperCase()} you specified did not match the calculated checksum.`)
}

/**
 * A checksum value as a client sent it, held to being base64 of a digest of
 * its algorithm's length; answers it as sent. InvalidRequest otherwise, as AWS
 * answers "Value for x-amz-checksum-crc32 header is invalid."
 */
export function checkChecksumValue (algorithm: ChecksumAlgorithm, value: string, where: 'header' | 'trailing header'): string {
  if (!isBase64Of(value, DIGEST_BYTES[algorithm])) throw new S3Error('InvalidRequest', `Value for ${checksumHeader(algorithm)} ${where} is invalid.`)
  return value
}

// canonical base64 only: a value that decodes but re-encodes otherwise would compare unequal to the digest anyway
function isBase64Of (value: string, bytes: number): boolean {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value) || value.length % 4 !== 0) return false
  const decoded = Buffer.from(value, 'base64')
  return decoded.length === bytes && decoded.toString('base64') === value
}

/** What a request's headers say of its checksum. */
export interface DeclaredChecksum {
  /** The algorithm to compute over the object's bytes, if any is asked for. */
  algorithm?: ChecksumAlgorithm
  /** The value an `x-amz-checksum-<algorithm>` header gives, base64. */
  expected?: string
  /** True if the value comes in the aws-chunked body's trailer, as `x-amz-trailer` announces. */
  trailer: boolean
}

// x-amz-checksum-* headers that carry no checksum: the algorithm parts will use (CreateMultipartUpload), GET's ask for one, the kind of a multipart one
const NOT_CHECKSUMS = new Set(['x-amz-checksum-algorithm', 'x-amz-checksum-mode', 'x-amz-checksum-type'])

/**
 * Reads `x-amz-checksum-<algorithm>`, `x-amz-trailer` and
 * `x-amz-sdk-checksum-algorithm`: at most one checksum, of an algorithm S3
 * knows, its value well formed, the three agreeing. InvalidRequest otherwise,
 * with AWS's messages where AWS has one.
 */
export function declaredChecksum (headers: IncomingHttpHeaders): DeclaredChecksum {
  const named = Object.keys(headers).filter((h) => h.startsWith('x-amz-checksum-') && !NOT_CHECKSUMS.has(h))
  const fromTrailer = trailerAlgorithm(headers['x-amz-trailer'])
  if (named.length + (fromTrailer === undefined ? 0 : 1) > 1) throw new S3Error('InvalidRequest', 'Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed.')
  const sdk = headers['x-amz-sdk-checksum-algorithm']
  const sdkAlgorithm = typeof sdk === 'string' ? checksumAlgorithm(sdk) : undefined
  if (sdk !== undefined && sdkAlgorithm === undefined) throw new S3Error('InvalidRequest', 'Value for x-amz-sdk-checksum-algorithm header is invalid.')
  const header = named[0]
  let declared: DeclaredChecksum = { trailer: false }
  if (header !== undefined) {
    const algorithm = checksumAlgorithm(header.slice('x-amz-checksum-'.length))
    if (algorithm === undefined) throw new S3Error('InvalidRequest', `${header} names no checksum algorithm S3 knows (${CHECKSUM_ALGORITHMS.join(', ')})`)
    const value = headers[header]
    declared = { algorithm, expected: checkChecksumValue(algorithm, typeof value === 'string' ? value : String(value), 'header'), trailer: false }
  } else if (fromTrailer !== undefined) {
    declared = { algorithm: fromTrailer, trailer: true }
  } else if (sdkAlgorithm !== undefined) {
    throw new S3Error('InvalidRequest', 'x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.')
  }
  if (sdkAlgorithm !== undefined && sdkAlgorithm !== declared.algorithm) {
    throw new S3Error('InvalidRequest', `x-amz-sdk-checksum-algorithm ${sdkAlgorithm.toUpperCase()} is not the algorithm of the checksum sent (${String(declared.algorithm).toUpperCase()})`)
  }
  return declared
}

function trailerAlgorithm (value: string | string[] | undefined): ChecksumAlgorithm | undefined {
  if (value === undefined) return undefined
  const name = typeof value === 'string' ? value.trim().toLowerCase() : ''
  const algorithm = name.startsWith('x-amz-checksum-') ? checksumAlgorithm(name.slice('x-amz-checksum-'.length)) : undefined
  // S3 takes no trailing header but a checksum, and one at most
  if (algorithm === undefined) throw new S3Error('InvalidRequest', `x-amz-trailer must name one x-amz-checksum-<algorithm> (${CHECKSUM_ALGORITHMS.join(', ')}), not ${JSON.stringify(String(value).slice(0, 80))}`)
  return algorithm
}

/** The Content-MD5 header (base64), if sent; InvalidDigest if it is not 16 bytes in base64. */
export function contentMd5 (headers: IncomingHttpHeaders): string | undefined {
  const value = headers['content-md5']
  if (value === undefined) return undefined
  if (typeof value !== 'string' || !isBase64Of(value.trim(), 16)) throw new S3Error('InvalidDigest', 'The Content-MD5 you specified was invalid.')
  return value.trim()
}

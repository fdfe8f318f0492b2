import { createHash, type Hash } from 'node:crypto'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { requestBody } from '../http/respond.js'
import { checkChecksumValue, checksumHeader, checksumMismatch, contentMd5, createChecksummer, declaredChecksum, type ChecksumAlgorithm, type Checksummer } from './checksums.js'
import { S3Error } from './errors.js'
import type { ChunkChain, PayloadMode } from './sigv4.js'

// 16 MiB: the largest aws-chunked chunk taken; SDKs send 64 KiB to 1 MiB, and a size line naming more is refused before any of its data is read
export const MAX_CHUNK_BYTES = 16 * 1024 * 1024
// 4 KiB: the longest chunk-size or trailer line; a real one is under 100 bytes (a 64-digit signature), so a longer one is garbage, not worth buffering
const MAX_LINE_BYTES = 4096
// the most trailer lines (a checksum and its signature are two)
const MAX_TRAILER_LINES = 8

/** An S3 request's body, its framing taken off and held to what its headers and signature say. */
export interface S3Body {
  /**
   * The object's bytes as they arrive. It throws an S3Error before it ends if
   * the body is not the one signed or declared, so what it yielded counts only
   * once it ended. A client hanging up surfaces as requestBody's ManagerError
   * ERR_UPLOAD_INCOMPLETE.
   */
  body: AsyncGenerator<Buffer>
  /** The object's length: Content-Length, or x-amz-decoded-content-length for aws-chunked. */
  size: number
  /** The MD5 of the object's bytes in hex (its ETag); valid once `body` ended. */
  md5: () => string
  /** Algorithm → base64 checksum of the object's bytes, for the checksum the request declared (verified); valid once `body` ended. */
  checksums: () => Partial<Record<ChecksumAlgorithm, string>>
}

/**
 * Reads an S3 request's body: plain, or aws-chunked (Content-Encoding
 * aws-chunked, or a streaming payload mode) with its chunk signatures and
 * trailer. Its headers are checked here, synchronously (MissingContentLength,
 * EntityTooLarge above maxBytes, malformed Content-MD5 or checksum headers);
 * the bytes as `body` yields them.
 */
export function s3Body (req: IncomingMessage, payload: PayloadMode, maxBytes: number): S3Body {
  const headers = req.headers
  const chunked = payload.kind.startsWith('streaming') || isAwsChunked(headers)
  const declared = declaredChecksum(headers)
  const md5Expected = contentMd5(headers)
  if (declared.trailer && !chunked) throw new S3Error('InvalidRequest', 'x-amz-trailer needs an aws-chunked body to carry the trailer')
  if (declared.trailer && payload.kind === 'streaming-signed' && !payload.trailer) {
    throw new S3Error('InvalidRequest', 'x-amz-trailer with STREAMING-AWS4-HMAC-SHA256-PAYLOAD: a signed trailer needs STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER')
  }
  const size = declaredSize(headers, chunked, maxBytes)
  const md5 = createHash('md5')
  const checksum = declared.algorithm === undefined ? undefined : createChecksummer(declared.algorithm)
  const verified: { md5?: string, checksums?: Partial<Record<ChecksumAlgorithm, string>> } = {}

  async function * read (): AsyncGenerator<Buffer> {
    // x-amz-content-sha256 signs the body as sent, framing and all
    const raw = payload.kind === 'sha256' ? createHash('sha256') : undefined
    const decoder = chunked ? new AwsChunkedDecoder(size, payload, declared.trailer ? declared.algorithm : undefined) : undefined
    let received = 0
    for await (const bytes of requestBody(req)) {
      raw?.update(bytes)
      for (const data of decoder === undefined ? [bytes] : decoder.push(bytes)) {
        received += data.length
        if (received > size) throw incomplete(`the body holds more than its ${size} bytes`)
        md5.update(data)
        checksum?.update(data)
        yield data
      }
    }
    decoder?.end()
    if (received !== size) throw incomplete(`the body ended after ${received} of its ${size} bytes`)
    if (raw !== undefined && payload.kind === 'sha256' && raw.digest('hex') !== payload.sha256) {
      throw new S3Error('XAmzContentSHA256Mismatch', 'The provided \'x-amz-content-sha256\' header does not match what was computed.')
    }
    const md5Hex = md5.digest('hex')
    if (md5Expected !== undefined && Buffer.from(md5Expected, 'base64').toString('hex') !== md5Hex) {
      throw new S3Error('BadDigest', 'The Content-MD5 you specified did not match what we received.')
    }
    verified.checksums = await checkedChecksum(checksum, declared.expected ?? decoder?.trailerValue())
    verified.md5 = md5Hex
  }

  return {
    body: read(),
    size,
    md5: () => ended(verified.md5),
    checksums: () => ended(verified.checksums)
  }
}

function isAwsChunked (headers: IncomingHttpHeaders): boolean {
  return (headers['content-encoding'] ?? '').split(',').some((e) => e.trim().toLowerCase() === 'aws-chunked')
}

function declaredSize (headers: IncomingHttpHeaders, chunked: boolean, maxBytes: number): number {
  const name = chunked ? 'x-amz-decoded-content-length' : 'content-length'
  const text = headers[name]
  if (text === undefined) throw new S3Error('MissingContentLength', `You must provide the ${chunked ? 'x-amz-decoded-content-length' : 'Content-Length'} HTTP header.`)
  if (typeof text !== 'string' || !/^\d{1,16}$/.test(text.trim())) throw new S3Error('InvalidArgument', `${name} ${JSON.stringify(String(text).slice(0, 40))} is not a length in bytes`)
  const size = Number(text.trim())
  if (size > maxBytes) throw new S3Error('EntityTooLarge', `Your proposed upload of ${size} bytes exceeds the maximum allowed object size of ${maxBytes} bytes.`)
  return size
}

async function checkedChecksum (checksum: Checksummer | undefined, expected: string | undefined): Promise<Partial<Record<ChecksumAlgorithm, string>>> {
  if (checksum === undefined) return {}
  const value = await checksum.digest()
  if (expected !== undefined && value !== expected) throw checksumMismatch(checksum.algorithm)
  return { [checksum.algorithm]: value }
}

function ended<T> (value: T | undefined): T {
  // a programming error of the caller: the digests exist only once the body was read to its end
  if (value === undefined) throw new S3Error('InternalError', 'the body\'s digests were asked for before it was read to its end')
  return value
}

function incomplete (why: string): S3Error {
  return new S3Error('IncompleteBody', `You did not provide the number of bytes specified by the Content-Length HTTP header: ${why}`)
}

type State = 'size-line' | 'data' | 'data-end' | 'trailer' | 'done'

/**
 * Takes the aws-chunked framing off a body read in pieces split anywhere:
 * `<hex size>[;chunk-signature=<sig>]\r\n<data>\r\n` … a chunk of size 0, then
 * trailer lines `name:value\r\n` and an empty line. Holds at most one line in
 * memory; data passes through as it comes.
 */
class AwsChunkedDecoder {
  private state: State = 'size-line'
  private line: Buffer[] = []
  private lineBytes = 0
  private left = 0
  private crlf = 0
  private decoded = 0
  private chunkHash: Hash | undefined
  private chunkSignature = ''
  private readonly trailers: Array<[string, string]> = []
  private readonly chain: ChunkChain | undefined
  private readonly signedTrailer: boolean
  private trailerChecksum: string | undefined

  constructor (private readonly size: number, payload: PayloadMode, private readonly trailer: ChecksumAlgorithm | undefined) {
    this.chain = payload.kind === 'streaming-signed' ? payload.chain : undefined
    this.signedTrailer = payload.kind === 'streaming-signed' && payload.trailer
  }

  /** The data in these bytes, as slices of them. */
  * push (bytes: Buffer): Generator<Buffer> {
    let at = 0
    while (at < bytes.length) {
      if (this.state === 'data') {
        const data = bytes.subarray(at, at + this.left)
        at += data.length
        this.left -= data.length
        this.chunkHash?.update(data)
        if (this.left === 0) this.chunkEnded()
        yield data
      } else if (this.state === 'data-end') {
        if (bytes[at] !== (this.crlf === 0 ? 0x0d : 0x0a)) throw new S3Error('InvalidChunkSizeError', 'a chunk of the aws-chunked body is longer than its size line says')
        at++
        if (++this.crlf === 2) this.state = 'size-line'
      } else if (this.state === 'done') {
        throw new S3Error('InvalidRequest', 'bytes after the end of the aws-chunked body')
      } else {
        const line = this.takeLine(bytes, at)
        if (line === undefined) return
        at = line.next
        if (this.state === 'size-line') this.sizeLine(line.text)
        else this.trailerLine(line.text)
      }
    }
  }

  /** Checks the body ended where it may end. */
  end (): void {
    // the AWS SDK for JavaScript ends a body without trailer at `0\r\n`, without the empty line
    const bareEnd = this.state === 'trailer' && this.trailers.length === 0 && this.lineBytes === 0 && this.trailer === undefined && !this.signedTrailer
    if (this.state !== 'done' && !bareEnd) throw incomplete('the aws-chunked body ended before its last chunk and trailer')
  }

  /** The checksum the trailer gave (base64), once the body ended. */
  trailerValue (): string | undefined {
    return this.trailerChecksum
  }

  // a line ends at \r\n; its start may have come in earlier pieces, held in this.line
  private takeLine (bytes: Buffer, at: number): { text: string, next: number } | undefined {
    const lf = bytes.indexOf(0x0a, at)
    const piece = bytes.subarray(at, lf < 0 ? bytes.length : lf + 1)
    this.lineBytes += piece.length
    if (this.lineBytes > MAX_LINE_BYTES) throw this.malformed('a line of the aws-chunked body is too long')
    this.line.push(piece)
    if (lf < 0) return undefined
    const whole = Buffer.concat(this.line, this.lineBytes)
    this.line = []
    this.lineBytes = 0
    if (whole.length < 2 || whole[whole.length - 2] !== 0x0d) throw this.malformed('a line of the aws-chunked body does not end in \\r\\n')
    return { text: whole.subarray(0, whole.length - 2).toString('latin1'), next: lf + 1 }
  }

  private malformed (why: string): S3Error {
    return this.state === 'trailer' ? new S3Error('MalformedTrailerError', `The request contained trailing data that was not well-formed: ${why}`) : new S3Error('InvalidChunkSizeError', `the aws-chunked body is malformed: ${why}`)
  }

  private sizeLine (text: string): void {
    const match = this.chain === undefined ? /^([0-9a-fA-F]{1,16})$/.exec(text) : /^([0-9a-fA-F]{1,16});chunk-signature=([0-9a-f]{64})$/.exec(text)
    if (match === null) {
      throw this.malformed(`${JSON.stringify(text.slice(0, 100))} is not a chunk-size line (<hex size>${this.chain === undefined ? '' : ';chunk-signature=<signature>'})`)
    }
    const size = parseInt(match[1] as string, 16)
    if (size > MAX_CHUNK_BYTES) throw this.malformed(`a chunk of ${size} bytes is above the ${MAX_CHUNK_BYTES} taken`)
    if (this.decoded + size > this.size) throw incomplete(`the chunks hold more than the ${this.size} bytes of x-amz-decoded-content-length`)
    this.decoded += size
    this.chunkSignature = match[2] ?? ''
    this.chunkHash = this.chain === undefined ? undefined : createHash('sha256')
    this.left = size
    if (size > 0) {
      this.state = 'data'
      return
    }
    this.chunkEnded()
    if (this.decoded !== this.size) throw incomplete(`the chunks hold ${this.decoded} bytes, not the ${this.size} of x-amz-decoded-content-length`)
    this.state = 'trailer'
  }

  private chunkEnded (): void {
    if (this.chain !== undefined && this.chunkHash !== undefined) this.chain.verifyChunk(this.chunkHash.digest('hex'), this.chunkSignature)
    this.chunkHash = undefined
    this.state = 'data-end'
    this.crlf = 0
  }

  private trailerLine (text: string): void {
    if (text !== '') {
      const colon = text.indexOf(':')
      if (colon <= 0) throw this.malformed(`${JSON.stringify(text.slice(0, 100))} is not name:value`)
      if (this.trailers.length === MAX_TRAILER_LINES) throw this.malformed('too many trailer lines')
      this.trailers.push([text.slice(0, colon).trim().toLowerCase(), text.slice(colon + 1).trim()])
      return
    }
    this.checkTrailer()
    this.state = 'done'
  }

  private checkTrailer (): void {
    const signature = this.trailers.filter(([name]) => name === 'x-amz-trailer-signature')
    const fields = this.trailers.filter(([name]) => name !== 'x-amz-trailer-signature')
    if (this.signedTrailer) {
      const [only, ...more] = signature
      if (only === undefined || more.length > 0) throw this.malformed('a signed trailer needs one x-amz-trailer-signature')
      this.chain?.verifyTrailer(fields.map(([name, value]) => `${name}:${value}\n`).join(''), only[1])
    } else if (signature.length > 0) {
      throw this.malformed('x-amz-trailer-signature in the trailer of a body whose trailer is not signed')
    }
    const expected = this.trailer === undefined ? undefined : checksumHeader(this.trailer)
    const other = fields.find(([name]) => name !== expected)
    if (other !== undefined) throw this.malformed(`the trailer ${other[0].slice(0, 60)} is not the one x-amz-trailer declares (${expected ?? 'none'})`)
    if (fields.length > 1) throw this.malformed(`${expected ?? ''} twice in the trailer`)
    const field = fields[0]
    if (this.trailer === undefined) return
    if (field === undefined) throw this.malformed(`x-amz-trailer declares ${expected ?? ''}, and the trailer lacks it`)
    this.trailerChecksum = checkChecksumValue(this.trailer, field[1], 'trailing header')
  }
}

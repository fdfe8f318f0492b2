import test, { type ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { Readable } from 'node:stream'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { s3Body, MAX_CHUNK_BYTES, type S3Body } from '../src/s3/body.js'
import { CHECKSUM_ALGORITHMS, checksumOf, createChecksummer, type ChecksumAlgorithm } from '../src/s3/checksums.js'
import { S3Error, type S3ErrorCode } from '../src/s3/errors.js'
import { verifySigV4, type PayloadMode, type S3Key } from '../src/s3/sigv4.js'
import { DOC_NOW, DOC_REQUEST, docKeyOf } from './aws-examples.js'

const KEY: S3Key = { accessKeyId: 'AKIDMIRRORCAST0001', secretAccessKey: 'sEcReT/with+slash', name: 'test key', access: 'read-write' }
const keyOf = (id: string): S3Key | undefined => id === KEY.accessKeyId ? KEY : undefined
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0)
const MAX = 1 << 30
const DATA = Buffer.from('The quick brown fox jumps over the lazy dog, 0123456789.')
const UNSIGNED: PayloadMode = { kind: 'unsigned' }
const TRAILER: PayloadMode = { kind: 'streaming-unsigned-trailer' }

const signer = new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { accessKeyId: KEY.accessKeyId, secretAccessKey: KEY.secretAccessKey }, sha256: Hash.bind(null, 'sha256'), uriEscapePath: false })

/** What requestBody reads of an IncomingMessage: its async iteration, and `complete` once the body came whole. */
function request (headers: IncomingHttpHeaders, pieces: Buffer[], complete = true): IncomingMessage {
  return Object.assign(Readable.from(pieces), { headers, complete }) as unknown as IncomingMessage
}

// every way of cutting a body in two, and byte by byte: a frame boundary must be handled wherever a TCP read ends
function cuts (body: Buffer): Buffer[][] {
  const all: Buffer[][] = [[body], [...body].map((b) => Buffer.from([b]))]
  for (let at = 1; at < body.length; at++) all.push([body.subarray(0, at), body.subarray(at)])
  return all
}

async function read (body: S3Body): Promise<Buffer> {
  const out: Buffer[] = []
  for await (const piece of body.body) out.push(piece)
  return Buffer.concat(out)
}

async function refused (t: ExecutionContext, run: () => Promise<unknown>, code: S3ErrorCode, why?: string): Promise<S3Error | undefined> {
  const err = await t.throwsAsync(run, { instanceOf: S3Error }, why)
  t.is(err?.code, code, why)
  return err
}

function refusedNow (t: ExecutionContext, run: () => unknown, code: S3ErrorCode, why?: string): void {
  const err = t.throws(run, { instanceOf: S3Error }, why)
  t.is(err?.code, code, why)
}

const md5Hex = (data: Buffer): string => createHash('md5').update(data).digest('hex')
const sha256Hex = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex')

// an aws-chunked encoder written apart from the decoder, from the framing botocore and aws-sdk-js-v3 send
function frameUnsigned (data: Buffer, chunkSize: number, trailer?: string): Buffer {
  const parts: Buffer[] = []
  for (let at = 0; at < data.length; at += chunkSize) {
    const chunk = data.subarray(at, at + chunkSize)
    parts.push(Buffer.from(`${chunk.length.toString(16)}\r\n`), chunk, Buffer.from('\r\n'))
  }
  parts.push(Buffer.from('0\r\n' + (trailer ?? '') + '\r\n'))
  return Buffer.concat(parts)
}

async function frameSigned (data: Buffer, chunkSize: number, seed: string, trailer?: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let prior = seed
  const chunks: Buffer[] = []
  for (let at = 0; at < data.length; at += chunkSize) chunks.push(data.subarray(at, at + chunkSize))
  for (const chunk of [...chunks, Buffer.alloc(0)]) {
    prior = await signer.sign({ headers: new Uint8Array(0), payload: chunk }, { signingDate: new Date(NOW), priorSignature: prior })
    parts.push(Buffer.from(`${chunk.length.toString(16)};chunk-signature=${prior}\r\n`), chunk)
    if (chunk.length > 0) parts.push(Buffer.from('\r\n'))
  }
  if (trailer === undefined) return Buffer.concat([...parts, Buffer.from('\r\n')])
  const toSign = ['AWS4-HMAC-SHA256-TRAILER', '20260115T120000Z', '20260115/us-east-1/s3/aws4_request', prior, sha256Hex(trailer.replace(/\r\n/g, '\n'))].join('\n')
  const signature = await signer.sign(toSign, { signingDate: new Date(NOW) })
  return Buffer.concat([...parts, Buffer.from(`${trailer}x-amz-trailer-signature:${signature}\r\n\r\n`)])
}

/** Signs a request as the SDK would and verifies it: its headers and payload mode, ready for s3Body. */
async function signedRequest (headers: Record<string, string>, body?: Buffer): Promise<{ headers: IncomingHttpHeaders, payload: PayloadMode, seed: string }> {
  const out = await signer.sign({ method: 'PUT', protocol: 'http:', hostname: 'mirror.local', path: '/bkt/obj', query: {}, headers: { host: 'mirror.local', ...headers }, body }, { signingDate: new Date(NOW) })
  const received: IncomingHttpHeaders = {}
  for (const [name, value] of Object.entries(out.headers)) received[name.toLowerCase()] = value
  const { payload } = verifySigV4({ method: 'PUT', url: '/bkt/obj', headers: received }, keyOf, NOW)
  return { headers: received, payload, seed: /Signature=([0-9a-f]{64})$/.exec(String(received.authorization))?.[1] ?? '' }
}

test('checksums: the standard check values of "123456789", big-endian, in base64', async (t) => {
  const check = Buffer.from('123456789')
  const hex = async (alg: ChecksumAlgorithm): Promise<string> => Buffer.from(await checksumOf(alg, check), 'base64').toString('hex')
  t.is(await hex('crc32'), 'cbf43926')
  t.is(await hex('crc32c'), 'e3069283')
  t.is(await hex('crc64nvme'), 'ae8b14860a799888')
  t.is(await hex('sha1'), createHash('sha1').update(check).digest('hex'))
  t.is(await hex('sha256'), sha256Hex(check))
  for (const alg of CHECKSUM_ALGORITHMS) {
    const pieces = createChecksummer(alg)
    for (const b of check) pieces.update(Buffer.from([b]))
    t.is(await pieces.digest(), await checksumOf(alg, check), `${alg} fed byte by byte`)
  }
})

test('a plain body is passed through, its size Content-Length, its MD5 and declared checksum computed', async (t) => {
  for (const pieces of cuts(DATA).slice(0, 6)) {
    const body = s3Body(request({ 'content-length': String(DATA.length), 'content-md5': createHash('md5').update(DATA).digest('base64') }, pieces), UNSIGNED, MAX)
    t.is(body.size, DATA.length)
    t.deepEqual(await read(body), DATA)
    t.is(body.md5(), md5Hex(DATA))
    t.deepEqual(body.checksums(), {})
  }
  const early = s3Body(request({ 'content-length': String(DATA.length) }, [DATA]), UNSIGNED, MAX)
  refusedNow(t, () => early.md5(), 'InternalError', 'the MD5 is not there before the body ended')
})

test('a plain body is refused: no Content-Length, above the limit, shorter or longer than declared', async (t) => {
  refusedNow(t, () => s3Body(request({}, [DATA]), UNSIGNED, MAX), 'MissingContentLength')
  refusedNow(t, () => s3Body(request({ 'content-length': '101' }, [DATA]), UNSIGNED, 100), 'EntityTooLarge')
  refusedNow(t, () => s3Body(request({ 'content-length': '-1' }, [DATA]), UNSIGNED, 100), 'InvalidArgument')
  await refused(t, async () => await read(s3Body(request({ 'content-length': String(DATA.length + 1) }, [DATA]), UNSIGNED, MAX)), 'IncompleteBody', 'short')
  await refused(t, async () => await read(s3Body(request({ 'content-length': String(DATA.length - 1) }, [DATA]), UNSIGNED, MAX)), 'IncompleteBody', 'long')
})

test('a client that hangs up surfaces as requestBody\'s ERR_UPLOAD_INCOMPLETE', async (t) => {
  const body = s3Body(request({ 'content-length': String(DATA.length) }, [DATA.subarray(0, 10)], false), UNSIGNED, MAX)
  const err = await t.throwsAsync(read(body))
  t.is((err as Error & { code?: string }).code, 'ERR_UPLOAD_INCOMPLETE', String(err))
})

test('a signed payload: the body must have its sha256, else XAmzContentSHA256Mismatch before the body ends', async (t) => {
  const { headers, payload } = await signedRequest({ 'content-length': String(DATA.length) }, DATA)
  t.is(payload.kind, 'sha256')
  t.deepEqual(await read(s3Body(request(headers, [DATA]), payload, MAX)), DATA)
  const other = Buffer.from(DATA)
  other[3] = 0x21
  await refused(t, async () => await read(s3Body(request(headers, [other]), payload, MAX)), 'XAmzContentSHA256Mismatch')
})

test('Content-MD5: a mismatch is BadDigest, a malformed value InvalidDigest', async (t) => {
  const md5 = (data: Buffer): string => createHash('md5').update(data).digest('base64')
  await refused(t, async () => await read(s3Body(request({ 'content-length': String(DATA.length), 'content-md5': md5(Buffer.from('other')) }, [DATA]), UNSIGNED, MAX)), 'BadDigest')
  for (const bad of ['', 'not base64!', Buffer.alloc(15).toString('base64'), md5(DATA).slice(0, -2)]) {
    refusedNow(t, () => s3Body(request({ 'content-length': String(DATA.length), 'content-md5': bad }, [DATA]), UNSIGNED, MAX), 'InvalidDigest', JSON.stringify(bad))
  }
})

test('an x-amz-checksum-* header of each algorithm is verified; a mismatch is BadDigest in AWS\'s words', async (t) => {
  for (const alg of CHECKSUM_ALGORITHMS) {
    const value = await checksumOf(alg, DATA)
    const headers = { 'content-length': String(DATA.length), [`x-amz-checksum-${alg}`]: value, 'x-amz-sdk-checksum-algorithm': alg.toUpperCase() }
    const body = s3Body(request(headers, [DATA.subarray(0, 7), DATA.subarray(7)]), UNSIGNED, MAX)
    t.deepEqual(await read(body), DATA)
    t.deepEqual(body.checksums(), { [alg]: value }, alg)
    const wrong = { ...headers, [`x-amz-checksum-${alg}`]: await checksumOf(alg, Buffer.from('other')) }
    const err = await refused(t, async () => await read(s3Body(request(wrong, [DATA]), UNSIGNED, MAX)), 'BadDigest', alg)
    t.is(err?.message, `The ${alg.toUpperCase()} you specified did not match the calculated checksum.`)
  }
})

test('malformed checksum headers are refused before the body is read, as AWS refuses them', async (t) => {
  const crc32 = await checksumOf('crc32', DATA)
  const length = { 'content-length': String(DATA.length) }
  const at = (headers: IncomingHttpHeaders): () => S3Body => () => s3Body(request({ ...length, ...headers }, [DATA]), UNSIGNED, MAX)
  refusedNow(t, at({ 'x-amz-checksum-crc32': 'AAAAAAAA' }), 'InvalidRequest', 'a CRC32 of 6 bytes')
  refusedNow(t, at({ 'x-amz-checksum-sha256': crc32 }), 'InvalidRequest', 'a sha256 of 4 bytes')
  refusedNow(t, at({ 'x-amz-checksum-crc32': 'zz!=' }), 'InvalidRequest', 'not base64')
  refusedNow(t, at({ 'x-amz-checksum-md5': crc32 }), 'InvalidRequest', 'an algorithm S3 does not know')
  refusedNow(t, at({ 'x-amz-checksum-crc32': crc32, 'x-amz-checksum-crc32c': crc32 }), 'InvalidRequest', 'two checksums')
  refusedNow(t, at({ 'x-amz-checksum-crc32': crc32, 'x-amz-sdk-checksum-algorithm': 'SHA1' }), 'InvalidRequest', 'the SDK algorithm is another')
  refusedNow(t, at({ 'x-amz-sdk-checksum-algorithm': 'CRC32' }), 'InvalidRequest', 'an SDK algorithm and no checksum')
  refusedNow(t, at({ 'x-amz-checksum-crc32': crc32, 'x-amz-sdk-checksum-algorithm': 'ADLER' }), 'InvalidRequest', 'an unknown SDK algorithm')
  refusedNow(t, at({ 'x-amz-trailer': 'x-amz-checksum-crc32' }), 'InvalidRequest', 'a trailer on a plain body')
  refusedNow(t, () => s3Body(request({ 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '1', 'x-amz-trailer': 'x-amz-meta-a' }, []), TRAILER, MAX), 'InvalidRequest', 'a trailer that is no checksum')
})

test('an unsigned aws-chunked body with a trailing checksum decodes for every algorithm, cut anywhere', async (t) => {
  for (const alg of CHECKSUM_ALGORITHMS) {
    const value = await checksumOf(alg, DATA)
    const framed = frameUnsigned(DATA, 16, `x-amz-checksum-${alg}:${value}\r\n`)
    const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length), 'x-amz-trailer': `x-amz-checksum-${alg}` }
    for (const pieces of alg === 'crc32' ? cuts(framed) : cuts(framed).slice(0, 2)) {
      const body = s3Body(request(headers, pieces), TRAILER, MAX)
      t.is(body.size, DATA.length)
      const data = await read(body)
      if (!data.equals(DATA)) return t.fail(`${alg}: cut at ${pieces[0]?.length ?? 0}`)
      t.deepEqual(body.checksums(), { [alg]: value })
      t.is(body.md5(), md5Hex(DATA))
    }
  }
})

test('aws-chunked: the data is yielded as it arrives, before the rest of the body came', async (t) => {
  const framed = frameUnsigned(DATA, 16)
  const source = new Readable({ read () {} })
  const req = Object.assign(source, { headers: { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length) }, complete: true }) as unknown as IncomingMessage
  const body = s3Body(req, TRAILER, MAX)
  source.push(framed.subarray(0, 12)) // the first chunk's size line and 8 of its 16 bytes
  const first = await body.body.next()
  t.deepEqual(first.value, DATA.subarray(0, 8))
  source.push(framed.subarray(12))
  source.push(null)
  const rest: Buffer[] = []
  for await (const piece of body.body) rest.push(piece)
  t.deepEqual(Buffer.concat([first.value as Buffer, ...rest]), DATA)
})

test('an unsigned aws-chunked body that ends at `0\\r\\n` (the JavaScript SDK without a checksum) or with an empty trailer is whole', async (t) => {
  const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length) }
  const framed = frameUnsigned(DATA, 20)
  t.deepEqual(await read(s3Body(request(headers, [framed]), TRAILER, MAX)), DATA)
  t.deepEqual(await read(s3Body(request(headers, [framed.subarray(0, -2)]), TRAILER, MAX)), DATA)
  const empty = frameUnsigned(Buffer.alloc(0), 20)
  t.deepEqual(await read(s3Body(request({ ...headers, 'x-amz-decoded-content-length': '0' }, [empty]), TRAILER, MAX)), Buffer.alloc(0))
})

test('aws-chunked trailers: missing, not the one declared, undeclared or malformed are MalformedTrailerError; a wrong value BadDigest', async (t) => {
  const crc32 = await checksumOf('crc32', DATA)
  const headers = { 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length), 'x-amz-trailer': 'x-amz-checksum-crc32' }
  const decode = async (trailer: string, h: IncomingHttpHeaders = headers): Promise<Buffer> => await read(s3Body(request(h, [frameUnsigned(DATA, 16, trailer)]), TRAILER, MAX))
  await refused(t, async () => await decode(''), 'MalformedTrailerError', 'missing')
  await refused(t, async () => await read(s3Body(request(headers, [frameUnsigned(DATA, 16).subarray(0, -2)]), TRAILER, MAX)), 'IncompleteBody', 'the body ended where the trailer was due')
  await refused(t, async () => await decode(`x-amz-checksum-crc32c:${crc32}\r\n`), 'MalformedTrailerError', 'another algorithm')
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${crc32}\r\nx-amz-meta-a:b\r\n`), 'MalformedTrailerError', 'an extra trailer')
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${crc32}\r\nx-amz-checksum-crc32:${crc32}\r\n`), 'MalformedTrailerError', 'twice')
  await refused(t, async () => await decode(`x-amz-checksum-crc32 ${crc32}\r\n`), 'MalformedTrailerError', 'no colon')
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${crc32}\n`), 'MalformedTrailerError', 'a bare \\n')
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${crc32}\r\nx-amz-trailer-signature:${'0'.repeat(64)}\r\n`), 'MalformedTrailerError', 'a signature on an unsigned trailer')
  const { 'x-amz-trailer': _declared, ...undeclared } = headers
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${crc32}\r\n`, undeclared), 'MalformedTrailerError', 'not declared')
  await refused(t, async () => await decode('x-amz-checksum-crc32:AAAA\r\n'), 'InvalidRequest', 'not a CRC32')
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${await checksumOf('crc32', Buffer.from('x'))}\r\n`), 'BadDigest', 'another CRC32')
  await refused(t, async () => await decode(`x-amz-checksum-crc32:${crc32}\r\n\r\nmore`), 'InvalidRequest', 'bytes after the end')
})

test('aws-chunked framing: sizes that are not hex, chunks above 16 MiB, long lines and chunks longer than said are InvalidChunkSizeError', async (t) => {
  const headers = (length = DATA.length): IncomingHttpHeaders => ({ 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(length) })
  const decode = async (body: Buffer, h = headers()): Promise<Buffer> => await read(s3Body(request(h, [body]), TRAILER, MAX))
  const framed = frameUnsigned(DATA, 16)
  await refused(t, async () => await decode(Buffer.concat([Buffer.from('zz\r\n'), framed])), 'InvalidChunkSizeError', 'not hex')
  await refused(t, async () => await decode(Buffer.from(framed.toString('latin1').replace('10\r\n', '0x10\r\n'), 'latin1')), 'InvalidChunkSizeError', '0x')
  await refused(t, async () => await decode(Buffer.from(framed.toString('latin1').replace('10\r\n', '10;x=y\r\n'), 'latin1')), 'InvalidChunkSizeError', 'an extension on an unsigned chunk')
  await refused(t, async () => await decode(Buffer.from(framed.toString('latin1').replace('10\r\n', '10\n'), 'latin1')), 'InvalidChunkSizeError', 'a bare \\n')
  await refused(t, async () => await decode(Buffer.from(framed.toString('latin1').replace('10\r\n', '0f\r\n'), 'latin1')), 'InvalidChunkSizeError', 'data longer than its size')
  await refused(t, async () => await decode(Buffer.from('1'.repeat(5000))), 'InvalidChunkSizeError', 'a size line without end')
  // refused on its size line alone: none of its 16 MiB + 1 is awaited, nor held
  const big = (MAX_CHUNK_BYTES + 1).toString(16)
  await refused(t, async () => await decode(Buffer.from(`${big}\r\n`), headers(MAX_CHUNK_BYTES + 1)), 'InvalidChunkSizeError', 'above 16 MiB')
})

test('aws-chunked lengths: x-amz-decoded-content-length required, at most maxBytes, and held to; a cut body is IncompleteBody', async (t) => {
  const framed = frameUnsigned(DATA, 16)
  refusedNow(t, () => s3Body(request({ 'content-encoding': 'aws-chunked', 'content-length': String(framed.length) }, [framed]), TRAILER, MAX), 'MissingContentLength')
  refusedNow(t, () => s3Body(request({ 'x-amz-decoded-content-length': '1001' }, [framed]), TRAILER, 1000), 'EntityTooLarge', 'the streaming mode alone makes it aws-chunked')
  const decode = async (length: number, body = framed): Promise<Buffer> => await read(s3Body(request({ 'content-encoding': 'gzip, aws-chunked', 'x-amz-decoded-content-length': String(length) }, [body]), UNSIGNED, MAX))
  t.deepEqual(await decode(DATA.length), DATA, 'Content-Encoding aws-chunked among others, with UNSIGNED-PAYLOAD')
  await refused(t, async () => await decode(DATA.length + 1), 'IncompleteBody', 'fewer bytes than declared')
  await refused(t, async () => await decode(DATA.length - 1), 'IncompleteBody', 'more bytes than declared')
  await refused(t, async () => await decode(DATA.length, framed.subarray(0, framed.length - 5)), 'IncompleteBody', 'cut before the last chunk')
  await refused(t, async () => await decode(DATA.length, framed.subarray(0, 30)), 'IncompleteBody', 'cut in a chunk')
})

test('a chunk-signed body (STREAMING-AWS4-HMAC-SHA256-PAYLOAD) signed by the SDK signer decodes, cut anywhere', async (t) => {
  const { headers, payload, seed } = await signedRequest({ 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length) })
  const framed = await frameSigned(DATA, 20, seed)
  for (const pieces of cuts(framed)) {
    // the chain is spent by a read: each decoding needs the request verified again
    const fresh = verifySigV4({ method: 'PUT', url: '/bkt/obj', headers }, keyOf, NOW).payload
    const data = await read(s3Body(request(headers, pieces), fresh, MAX))
    if (!data.equals(DATA)) return t.fail(`cut at ${pieces[0]?.length ?? 0}`)
  }
  t.is(payload.kind, 'streaming-signed')
  t.pass()
})

test('a chunk-signed body with a changed byte, signature, chunk order or a chunk without signature is refused', async (t) => {
  const { headers, seed } = await signedRequest({ 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length) })
  const framed = await frameSigned(DATA.subarray(0, 40), 20, seed)
  const decode = async (body: Buffer, length = 40): Promise<Buffer> => {
    const { payload } = verifySigV4({ method: 'PUT', url: '/bkt/obj', headers }, keyOf, NOW)
    return await read(s3Body(request({ ...headers, 'x-amz-decoded-content-length': String(length) }, [body]), payload, MAX))
  }
  const text = framed.toString('latin1')
  const byte = Buffer.from(framed)
  const at = text.indexOf('\r\n') + 5
  byte[at] = (byte[at] ?? 0) ^ 1
  await refused(t, async () => await decode(byte), 'SignatureDoesNotMatch', 'a changed byte')
  const sig = /chunk-signature=([0-9a-f]{64})/.exec(text)?.[1] ?? ''
  await refused(t, async () => await decode(Buffer.from(text.replace(sig, sig.slice(0, 63) + (sig.endsWith('0') ? '1' : '0')), 'latin1')), 'SignatureDoesNotMatch', 'a changed signature')
  const [first, second, ...rest] = text.split(/(?=14;chunk-signature=)/)
  await refused(t, async () => await decode(Buffer.from([second, first, ...rest].join(''), 'latin1')), 'SignatureDoesNotMatch', 'chunks swapped')
  await refused(t, async () => await decode(Buffer.from(text.replace(/;chunk-signature=[0-9a-f]{64}/, ''), 'latin1')), 'InvalidChunkSizeError', 'a chunk without signature')
  const last = text.lastIndexOf('0;chunk-signature=')
  await refused(t, async () => await decode(Buffer.from(text.slice(0, last) + text.slice(last).replace(/=[0-9a-f]{64}/, '=' + '0'.repeat(64)), 'latin1')), 'SignatureDoesNotMatch', 'the final chunk\'s signature')
})

test('a chunk-signed body with a signed trailer: verified; a changed, unsigned or wrong trailing checksum is refused', async (t) => {
  const crc32c = await checksumOf('crc32c', DATA)
  const { headers, payload, seed } = await signedRequest({
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': String(DATA.length), 'x-amz-trailer': 'x-amz-checksum-crc32c'
  })
  t.like(payload, { kind: 'streaming-signed', trailer: true })
  const decode = async (body: Buffer): Promise<S3Body> => {
    const { payload } = verifySigV4({ method: 'PUT', url: '/bkt/obj', headers }, keyOf, NOW)
    const s3 = s3Body(request(headers, [body.subarray(0, 33), body.subarray(33)]), payload, MAX)
    await read(s3)
    return s3
  }
  const good = await frameSigned(DATA, 24, seed, `x-amz-checksum-crc32c:${crc32c}\r\n`)
  t.deepEqual((await decode(good)).checksums(), { crc32c })
  const other = await checksumOf('crc32c', Buffer.from('other'))
  await refused(t, async () => await decode(Buffer.from(good.toString('latin1').replace(crc32c, other), 'latin1')), 'SignatureDoesNotMatch', 'the trailer changed')
  await refused(t, async () => await decode(Buffer.from(good.toString('latin1').replace(/x-amz-trailer-signature:[0-9a-f]{64}\r\n/, ''), 'latin1')), 'MalformedTrailerError', 'the trailer signature dropped')
  await refused(t, async () => await decode(await frameSigned(DATA, 24, seed, `x-amz-checksum-crc32c:${other}\r\n`)), 'BadDigest', 'signed, but not the data\'s CRC32C')
  await refused(t, async () => await decode(await frameSigned(DATA, 24, seed)), 'MalformedTrailerError', 'no trailer at all')
})

// the chunked-upload example of AWS's documentation, byte for byte, with the signatures AWS published
test('AWS\'s documented chunk-signed PUT (66,560 bytes of a, 3 chunks) decodes, and a changed byte is refused', async (t) => {
  const headers = DOC_REQUEST.headers
  const data = Buffer.alloc(66560, 'a')
  const framed = Buffer.concat([
    Buffer.from('10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n'), data.subarray(0, 65536),
    Buffer.from('\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n'), data.subarray(65536),
    Buffer.from('\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n')
  ])
  t.is(framed.length, 66824, 'the documented Content-Length')
  const decode = async (body: Buffer): Promise<Buffer> => {
    const { payload } = verifySigV4(DOC_REQUEST, docKeyOf, DOC_NOW)
    const pieces: Buffer[] = []
    for (let at = 0; at < body.length; at += 1000) pieces.push(body.subarray(at, at + 1000))
    return await read(s3Body(request(headers, pieces), payload, MAX))
  }
  t.deepEqual(await decode(framed), data)
  const changed = Buffer.from(framed)
  changed[1000] = 0x62
  await refused(t, async () => await decode(changed), 'SignatureDoesNotMatch')
})

const FIXTURES = new URL('../../test/fixtures/', import.meta.url)
const CLI_KEY: S3Key = { accessKeyId: 'AKIDMIRRORCASTTEST', secretAccessKey: 'mirrorcast-test-secret', name: 'aws-cli capture', access: 'read-write' }

function fixture (name: string): { method: string, url: string, headers: IncomingHttpHeaders } {
  return JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8')) as { method: string, url: string, headers: IncomingHttpHeaders }
}

function verifyCaptured (req: { method: string, url: string, headers: IncomingHttpHeaders }): PayloadMode {
  const d = String(req.headers['x-amz-date'])
  const at = Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)), Number(d.slice(9, 11)), Number(d.slice(11, 13)), Number(d.slice(13, 15)))
  return verifySigV4(req, (id) => id === CLI_KEY.accessKeyId ? CLI_KEY : undefined, at + 1000).payload
}

test('what aws-cli (botocore) sent over HTTPS: STREAMING-UNSIGNED-PAYLOAD-TRAILER with a trailing CRC32, decoded cut anywhere', async (t) => {
  // captured from `aws s3api put-object --key 'dir/a b+c.txt'` against a local server, dummy credentials
  const req = fixture('aws-cli-put-trailer.json')
  const framed = readFileSync(new URL('aws-cli-put-trailer.body', FIXTURES))
  const expected = Buffer.from('hello, mirrorcast\n')
  for (const pieces of cuts(framed)) {
    const body = s3Body(request(req.headers, pieces), verifyCaptured(req), MAX)
    if (!(await read(body)).equals(expected)) return t.fail(`cut at ${pieces[0]?.length ?? 0}`)
    t.deepEqual(body.checksums(), { crc32: await checksumOf('crc32', expected) })
  }
  const wrong = Buffer.from(framed)
  wrong[5] = (wrong[5] ?? 0) ^ 1
  await refused(t, async () => await read(s3Body(request(req.headers, [wrong]), verifyCaptured(req), MAX)), 'BadDigest', 'a byte changed under the trailing CRC32')
})

test('what aws-cli sent over HTTP: a signed sha256 payload with an x-amz-checksum-crc32 header', async (t) => {
  // captured from `aws s3api put-object --key 'ünï ~%.bin' --body <70,000 bytes of m>`
  const req = fixture('aws-cli-put-sha256.json')
  const data = Buffer.alloc(70000, 'm')
  const payload = verifyCaptured(req)
  t.is(payload.kind, 'sha256')
  const body = s3Body(request(req.headers, [data.subarray(0, 65536), data.subarray(65536)]), payload, MAX)
  t.deepEqual(await read(body), data)
  t.deepEqual(body.checksums(), { crc32: req.headers['x-amz-checksum-crc32'] as string })
  data[100] = 0x6e
  await refused(t, async () => await read(s3Body(request(req.headers, [data]), verifyCaptured(req), MAX)), 'XAmzContentSHA256Mismatch')
})

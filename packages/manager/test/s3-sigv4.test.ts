import test, { type ExecutionContext } from 'ava'
import { createHash, createHmac } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { Hash } from '@smithy/hash-node'
import { SignatureV4 } from '@smithy/signature-v4'
import { S3Error, type S3ErrorCode } from '../src/s3/errors.js'
import { DOC_KEY, DOC_NOW, DOC_REQUEST, DOC_SIGNATURES, docKeyOf } from './aws-examples.js'
import { ChunkChain, signedHeaders, verifySigV4, type PayloadMode, type S3Key, type SignedParts } from '../src/s3/sigv4.js'

// verifySigV4 against the signer the AWS SDK for JavaScript v3 uses, set up as its S3 client sets it up
const KEY: S3Key = { accessKeyId: 'AKIDMIRRORCAST0001', secretAccessKey: 'sEcReT/with+slash=and+plus', name: 'test key', access: 'read-write' }
const keyOf = (id: string): S3Key | undefined => id === KEY.accessKeyId ? KEY : undefined
const NOW = Date.UTC(2026, 0, 15, 12, 0, 0)
const HOST = 'mirror.local:9000'
const MINUTE = 60_000

type SmithyRequest = Parameters<SignatureV4['sign']>[0] & Parameters<SignatureV4['presign']>[0]

function signer (secretAccessKey = KEY.secretAccessKey, accessKeyId = KEY.accessKeyId): SignatureV4 {
  return new SignatureV4({ service: 's3', region: 'us-east-1', credentials: { accessKeyId, secretAccessKey }, sha256: Hash.bind(null, 'sha256'), uriEscapePath: false })
}

// how the SDK escapes a key's segments and query values: encodeURIComponent, and !'()* too
function sdkEscape (text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

function objectPath (bucket: string, key: string): string {
  return `/${bucket}/${key.split('/').map(sdkEscape).join('/')}`
}

interface RequestSpec {
  method?: string
  path: string
  query?: Record<string, string>
  headers?: Record<string, string>
  body?: string
}

function smithyRequest (spec: RequestSpec): SmithyRequest {
  return { method: spec.method ?? 'PUT', protocol: 'http:', hostname: 'mirror.local', port: 9000, path: spec.path, query: spec.query ?? {}, headers: { host: HOST, ...spec.headers }, body: spec.body }
}

// what the server sees of the signed request: the target as the SDK's HTTP handler writes it, headers in lower case
function asReceived (request: { method: string, path: string, query?: Record<string, unknown>, headers: Record<string, string> }): SignedParts {
  const pairs = Object.entries(request.query ?? {}).map(([k, v]) => `${sdkEscape(k)}=${sdkEscape(String(v))}`)
  const headers: IncomingHttpHeaders = {}
  for (const [name, value] of Object.entries(request.headers)) headers[name.toLowerCase()] = value
  return { method: request.method, url: request.path + (pairs.length === 0 ? '' : '?' + pairs.join('&')), headers }
}

async function signed (spec: RequestSpec, at = NOW, by = signer()): Promise<SignedParts> {
  const out = await by.sign(smithyRequest(spec), { signingDate: new Date(at) })
  return asReceived(out as { method: string, path: string, query?: Record<string, unknown>, headers: Record<string, string> })
}

async function presigned (spec: RequestSpec, expiresIn: number, at = NOW): Promise<SignedParts> {
  // as @aws-sdk/s3-request-presigner does: the payload is unsigned
  const request = smithyRequest({ ...spec, headers: { ...spec.headers, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
  const out = await signer().presign(request, { signingDate: new Date(at), expiresIn })
  return asReceived(out as { method: string, path: string, query?: Record<string, unknown>, headers: Record<string, string> })
}

function refused (t: ExecutionContext, req: SignedParts, code: S3ErrorCode, now = NOW, why?: string, keys = keyOf): void {
  const err = t.throws(() => verifySigV4(req, keys, now), { instanceOf: S3Error }, why)
  t.is(err?.code, code, why)
}

function sha256Hex (text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex')
}

test('a signed payload: accepted, and the body must then have the sha256 that was signed', async (t) => {
  const body = 'hello, mirrorcast\n'
  const verified = verifySigV4(await signed({ path: '/bkt/hello.txt', body, headers: { 'content-length': String(body.length), 'content-type': 'text/plain' } }), keyOf, NOW)
  t.is(verified.key, KEY)
  t.is(verified.region, 'us-east-1')
  t.deepEqual(verified.payload, { kind: 'sha256', sha256: sha256Hex(body) })
})

test('the project\'s own signer (the bench\'s) signs as the SDK does, and what it signs verifies', async (t) => {
  const path = objectPath('bkt', 'a key/with ünïcode+plus')
  const payloadHash = sha256Hex('body')
  const ours = signedHeaders({ method: 'PUT', path, host: HOST, payloadHash }, KEY, 'us-east-1', NOW)
  const sdk = asReceived(await signer().sign(smithyRequest({ path, headers: { 'x-amz-content-sha256': payloadHash } }), { signingDate: new Date(NOW) }) as { method: string, path: string, headers: Record<string, string> })
  t.is(ours.authorization, sdk.headers.authorization)
  t.deepEqual(verifySigV4({ method: 'PUT', url: path, headers: ours }, keyOf, NOW).payload, { kind: 'sha256', sha256: payloadHash })
})

test('UNSIGNED-PAYLOAD and STREAMING-UNSIGNED-PAYLOAD-TRAILER are accepted with their payload modes', async (t) => {
  const unsigned = await signed({ path: '/bkt/a', headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
  t.deepEqual(verifySigV4(unsigned, keyOf, NOW).payload, { kind: 'unsigned' })
  const trailer = await signed({
    path: '/bkt/a',
    headers: { 'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '5', 'x-amz-trailer': 'x-amz-checksum-crc32', 'x-amz-sdk-checksum-algorithm': 'CRC32' }
  })
  t.deepEqual(verifySigV4(trailer, keyOf, NOW).payload, { kind: 'streaming-unsigned-trailer' })
})

test('STREAMING-AWS4-HMAC-SHA256-PAYLOAD: the chunk chain starts at the request signature and takes the chunks the SDK signer signs, in order only', async (t) => {
  const by = signer()
  const req = await signed({ path: '/bkt/big', headers: { 'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'content-encoding': 'aws-chunked', 'x-amz-decoded-content-length': '6' } }, NOW, by)
  const seed = /Signature=([0-9a-f]{64})$/.exec(String(req.headers.authorization))?.[1] ?? ''
  const chunks = [Buffer.from('abc'), Buffer.from('def'), Buffer.alloc(0)]
  const signatures: string[] = []
  let prior = seed
  for (const payload of chunks) {
    prior = await by.sign({ headers: new Uint8Array(0), payload }, { signingDate: new Date(NOW), priorSignature: prior })
    signatures.push(prior)
  }
  const chain = (payload: PayloadMode): ChunkChain => {
    if (payload.kind !== 'streaming-signed') throw new Error(`payload mode ${payload.kind}`)
    t.false(payload.trailer)
    return payload.chain
  }
  const inOrder = chain(verifySigV4(req, keyOf, NOW).payload)
  chunks.forEach((c, i) => { t.notThrows(() => inOrder.verifyChunk(sha256Hex(c), signatures[i] as string), `chunk ${i}`) })

  const swapped = chain(verifySigV4(req, keyOf, NOW).payload)
  const err = t.throws(() => swapped.verifyChunk(sha256Hex(chunks[1] as Buffer), signatures[1] as string), { instanceOf: S3Error })
  t.is(err?.code, 'SignatureDoesNotMatch')
  const changed = chain(verifySigV4(req, keyOf, NOW).payload)
  t.throws(() => changed.verifyChunk(sha256Hex('abd'), signatures[0] as string), { instanceOf: S3Error })
})

test('keys with spaces, unicode, + % ~ and other reserved characters verify as the SDK signs them', async (t) => {
  const keys = ['a b.txt', 'dir/sub dir/ünïcödé 日本.bin', 'a+b+c', '100%.txt', '~user/file~', "it's (1)!*.txt", 'q?a=b&c;d:e@f$g,h', 'trailing/', 'x//y']
  for (const key of keys) {
    const req = await signed({ method: 'GET', path: objectPath('bkt', key), headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
    t.notThrows(() => verifySigV4(req, keyOf, NOW), key)
  }
})

test('a query with = and / in its values, in any order, verifies; changing any of it is refused', async (t) => {
  const query = { 'list-type': '2', prefix: 'photos/2026 jan/é+x', 'continuation-token': 'AbC/dEf+GhI==', delimiter: '/', 'start-after': 'a=b&c' }
  const req = await signed({ method: 'GET', path: '/bkt', query, headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
  t.notThrows(() => verifySigV4(req, keyOf, NOW))
  refused(t, { ...req, url: req.url.replace('list-type=2', 'list-type=1') }, 'SignatureDoesNotMatch', NOW, 'a value changed')
  refused(t, { ...req, url: req.url + '&max-keys=1' }, 'SignatureDoesNotMatch', NOW, 'a parameter added')
  refused(t, { ...req, url: req.url.replace(/&delimiter=[^&]*/, '') }, 'SignatureDoesNotMatch', NOW, 'a parameter dropped')
  const subresource = await signed({ method: 'POST', path: '/bkt/k', query: { uploads: '' }, headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
  t.notThrows(() => verifySigV4({ ...subresource, url: '/bkt/k?uploads' }, keyOf, NOW), 'a parameter without = (?uploads)')
})

test('a changed path, method or signed header is refused', async (t) => {
  const req = await signed({ path: objectPath('bkt', 'a b.txt'), headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-meta-color': 'blue' } })
  t.notThrows(() => verifySigV4(req, keyOf, NOW))
  refused(t, { ...req, url: '/bkt/a%20c.txt' }, 'SignatureDoesNotMatch', NOW, 'another key')
  refused(t, { ...req, url: '/other/a%20b.txt' }, 'SignatureDoesNotMatch', NOW, 'another bucket')
  refused(t, { ...req, method: 'DELETE' }, 'SignatureDoesNotMatch', NOW, 'another method')
  refused(t, { ...req, headers: { ...req.headers, 'x-amz-meta-color': 'red' } }, 'SignatureDoesNotMatch', NOW, 'a signed header changed')
  refused(t, { ...req, headers: { ...req.headers, host: 'elsewhere:9000' } }, 'SignatureDoesNotMatch', NOW, 'another host')
  refused(t, { ...req, headers: { ...req.headers, 'x-amz-content-sha256': sha256Hex('x') } }, 'SignatureDoesNotMatch', NOW, 'another payload hash')
})

test('an x-amz-* header added after signing is refused as AWS does (AccessDenied: headers not signed)', async (t) => {
  const req = await signed({ path: '/bkt/a', headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } })
  refused(t, { ...req, headers: { ...req.headers, 'x-amz-meta-owner': 'mallory' } }, 'AccessDenied', NOW, 'metadata')
  refused(t, { ...req, headers: { ...req.headers, 'x-amz-copy-source': '/bkt/secret' } }, 'AccessDenied', NOW, 'a copy source')
  const url = await presigned({ path: '/bkt/a' }, 600)
  refused(t, { ...url, headers: { ...url.headers, 'x-amz-meta-owner': 'mallory' } }, 'AccessDenied', NOW, 'on a presigned URL too')
})

test('the clock: 14 minutes either way is accepted, more than 15 refused with RequestTimeTooSkewed', async (t) => {
  const signedAt = async (skew: number): Promise<SignedParts> => await signed({ path: '/bkt/a', headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, NOW + skew)
  for (const skew of [-14 * MINUTE, 14 * MINUTE]) {
    const req = await signedAt(skew)
    t.notThrows(() => verifySigV4(req, keyOf, NOW), `${skew / MINUTE} min`)
  }
  for (const skew of [-16 * MINUTE, 16 * MINUTE, -24 * 60 * MINUTE]) refused(t, await signedAt(skew), 'RequestTimeTooSkewed', NOW, `${skew / MINUTE} min`)
})

test('a wrong secret is SignatureDoesNotMatch, an unknown key InvalidAccessKeyId', async (t) => {
  refused(t, await signed({ path: '/bkt/a', headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, NOW, signer('not the secret')), 'SignatureDoesNotMatch')
  refused(t, await signed({ path: '/bkt/a', headers: { 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }, NOW, signer(KEY.secretAccessKey, 'AKIDNOSUCHKEY')), 'InvalidAccessKeyId')
})

test('a presigned URL is accepted until it expires, then AccessDenied; tampered, SignatureDoesNotMatch', async (t) => {
  const url = await presigned({ method: 'GET', path: objectPath('bkt', 'photos/a b+c.jpg') }, 3600)
  t.regex(url.url, /X-Amz-Signature=[0-9a-f]{64}/)
  t.is(url.headers.authorization, undefined)
  t.deepEqual(verifySigV4(url, keyOf, NOW).payload, { kind: 'unsigned' })
  t.notThrows(() => verifySigV4(url, keyOf, NOW + 3599_000), 'a second before expiry')
  refused(t, url, 'AccessDenied', NOW + 3601_000, 'a second past expiry')
  refused(t, { ...url, url: url.url.replace('X-Amz-Expires=3600', 'X-Amz-Expires=7200') }, 'SignatureDoesNotMatch', NOW + 3601_000, 'expiry lengthened')
  refused(t, { ...url, url: url.url.replace('photos/', 'private/') }, 'SignatureDoesNotMatch', NOW, 'another key')
  refused(t, { ...url, method: 'PUT' }, 'SignatureDoesNotMatch', NOW, 'another method')
  refused(t, { ...url, url: url.url.replace(/X-Amz-Signature=([0-9a-f])/, (_m, c: string) => `X-Amz-Signature=${c === '0' ? '1' : '0'}`) }, 'SignatureDoesNotMatch', NOW, 'signature changed')
  refused(t, { ...url, url: url.url + '&response-content-type=text%2Fhtml' }, 'SignatureDoesNotMatch', NOW, 'a parameter added')
})

// AWS's documented chunked example (aws-examples.ts)
const DOC_CHUNKS = [Buffer.alloc(65536, 'a'), Buffer.alloc(1024, 'a'), Buffer.alloc(0)]

function docChain (): ChunkChain {
  const payload = verifySigV4(DOC_REQUEST, docKeyOf, DOC_NOW).payload
  if (payload.kind !== 'streaming-signed') throw new Error(`payload mode ${payload.kind}`)
  return payload.chain
}

test('AWS\'s chunked-upload example: the seed signature verifies and the three documented chunk signatures follow', (t) => {
  const chain = docChain()
  DOC_CHUNKS.forEach((c, i) => { t.notThrows(() => chain.verifyChunk(sha256Hex(c), DOC_SIGNATURES[i] as string), `chunk ${i + 1}`) })
  const skipped = docChain()
  t.throws(() => skipped.verifyChunk(sha256Hex(DOC_CHUNKS[1] as Buffer), DOC_SIGNATURES[1] as string), { instanceOf: S3Error }, 'the second chunk first')
  const changed = docChain()
  t.throws(() => changed.verifyChunk(sha256Hex(Buffer.alloc(65536, 'b')), DOC_SIGNATURES[0] as string), { instanceOf: S3Error }, 'other data')
  refused(t, { ...DOC_REQUEST, headers: { ...DOC_REQUEST.headers, 'x-amz-storage-class': 'STANDARD' } }, 'SignatureDoesNotMatch', DOC_NOW, 'a signed header changed', docKeyOf)
  refused(t, { ...DOC_REQUEST, headers: { ...DOC_REQUEST.headers, 'x-amz-decoded-content-length': '66561' } }, 'SignatureDoesNotMatch', DOC_NOW, 'the decoded length changed', docKeyOf)
})

test('AWS\'s trailing-checksum example: chunk signatures and the signed trailer x-amz-checksum-crc32c:sOO8/Q== verify', (t) => {
  // "Signature calculations for trailing headers": its seed is taken as given (the page does not print the whole request)
  let key: Buffer = Buffer.from('AWS4' + DOC_KEY.secretAccessKey)
  for (const part of ['20130524', 'us-east-1', 's3', 'aws4_request']) key = createHmac('sha256', key).update(part).digest()
  const chain = () => new ChunkChain(key, '20130524T000000Z', '20130524/us-east-1/s3/aws4_request', '106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e')
  const signatures = ['b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2', '1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7', '2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992']
  const trailerSignature = 'd81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435'
  const good = chain()
  DOC_CHUNKS.forEach((c, i) => { good.verifyChunk(sha256Hex(c), signatures[i] as string) })
  t.notThrows(() => good.verifyTrailer('x-amz-checksum-crc32c:sOO8/Q==\n', trailerSignature))
  const other = chain()
  DOC_CHUNKS.forEach((c, i) => { other.verifyChunk(sha256Hex(c), signatures[i] as string) })
  const err = t.throws(() => other.verifyTrailer('x-amz-checksum-crc32c:sOO8/A==\n', trailerSignature), { instanceOf: S3Error })
  t.is(err?.code, 'SignatureDoesNotMatch')
})

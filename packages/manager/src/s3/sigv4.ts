import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { S3Error } from './errors.js'

const ALGORITHM = 'AWS4-HMAC-SHA256'
// AWS refuses a request whose time is further than this from its own
export const MAX_CLOCK_SKEW_MS = 15 * 60 * 1000
// 7 days: the longest X-Amz-Expires AWS accepts
const MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex')

/** An S3 access key: the id a client names and the secret it signs with. */
export interface S3Key {
  accessKeyId: string
  secretAccessKey: string
  /** The token's name, for logs. */
  name: string
  access: 'read-only' | 'read-write'
}

/** What the signature says of the body. */
export type PayloadMode =
  | { kind: 'unsigned' }
  /** The body must have this sha256 (hex). */
  | { kind: 'sha256', sha256: string }
  /** aws-chunked, each chunk signed in a chain that starts at the request's signature. */
  | { kind: 'streaming-signed', trailer: boolean, chain: ChunkChain }
  /** aws-chunked, unsigned, with trailing checksums. */
  | { kind: 'streaming-unsigned-trailer' }

export interface VerifiedRequest {
  key: S3Key
  payload: PayloadMode
  region: string
}

/** The parts of a request its signature covers. */
export interface SignedParts {
  method: string
  /** The request target as sent: path and query, still percent-encoded. */
  url: string
  headers: IncomingHttpHeaders
}

interface Signed {
  accessKeyId: string
  date: string
  region: string
  service: string
  signedHeaders: string[]
  signature: string
  datetime: string
  payloadHash: string
  /** The query pairs the canonical request covers (a presigned URL's signature is not among them). */
  query: Array<[string, string]>
  presignedExpires?: number
}

/**
 * Checks an AWS Signature Version 4, from the Authorization header or a
 * presigned URL's query, against the key it names; the time within 15 minutes
 * of ours (a presigned URL: not past its expiry either). Answers the key and
 * what the signature says of the body; anything else throws the S3Error AWS
 * would answer.
 */
export function verifySigV4 (req: SignedParts, keyOf: (accessKeyId: string) => S3Key | undefined, now = Date.now()): VerifiedRequest {
  const { path, query } = splitTarget(req.url)
  const signed = typeof req.headers.authorization === 'string' ? fromHeader(req.headers.authorization, req.headers, query) : fromQuery(query, req.headers)
  const key = keyOf(signed.accessKeyId)
  if (key === undefined) throw new S3Error('InvalidAccessKeyId', `no S3 key ${JSON.stringify(signed.accessKeyId.slice(0, 64))}`)
  checkTime(signed, now)
  const scope = `${signed.date}/${signed.region}/${signed.service}/aws4_request`
  const signingKey = deriveSigningKey(key.secretAccessKey, signed.date, signed.region, signed.service)
  const expected = signatureOf({ method: req.method, path, query: signed.query, headers: req.headers }, signed, scope, signingKey)
  if (!sameHex(expected, signed.signature)) throw new S3Error('SignatureDoesNotMatch', 'the request signature we calculated does not match the signature you provided: check your key and signing method')
  return { key, region: signed.region, payload: payloadMode(signed, { signingKey, scope }) }
}

function signatureOf (req: { method: string, path: string, query: Array<[string, string]>, headers: IncomingHttpHeaders }, signed: Pick<Signed, 'signedHeaders' | 'payloadHash' | 'datetime'>, scope: string, signingKey: Buffer): string {
  const canonical = [
    req.method,
    canonicalPath(req.path),
    canonicalQuery(req.query),
    signed.signedHeaders.map((h) => `${h}:${headerValue(req.headers, h)}\n`).join(''),
    signed.signedHeaders.join(';'),
    signed.payloadHash
  ].join('\n')
  return hmacHex(signingKey, [ALGORITHM, signed.datetime, scope, sha256Hex(canonical)].join('\n'))
}

/**
 * The headers that sign a request without a query (host, x-amz-date,
 * x-amz-content-sha256, Authorization), as the verifier checks them: for
 * load generators and tools of this project; clients bring their own signer.
 */
export function signedHeaders (req: { method: string, path: string, host: string, payloadHash: string }, key: Pick<S3Key, 'accessKeyId' | 'secretAccessKey'>, region: string, now = Date.now()): Record<string, string> {
  const datetime = new Date(now).toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '')
  const date = datetime.slice(0, 8)
  const headers = { host: req.host, 'x-amz-content-sha256': req.payloadHash, 'x-amz-date': datetime }
  const names = Object.keys(headers).sort()
  const scope = `${date}/${region}/s3/aws4_request`
  const signature = signatureOf({ method: req.method, path: req.path, query: [], headers }, { signedHeaders: names, payloadHash: req.payloadHash, datetime }, scope, deriveSigningKey(key.secretAccessKey, date, region, 's3'))
  return { ...headers, authorization: `${ALGORITHM} Credential=${key.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}` }
}

function fromHeader (authorization: string, headers: IncomingHttpHeaders, query: Array<[string, string]>): Signed {
  const malformed = (why: string): S3Error => new S3Error('AuthorizationHeaderMalformed', `the Authorization header is malformed: ${why}`)
  if (!authorization.startsWith(ALGORITHM + ' ')) throw malformed(`only ${ALGORITHM} (Signature Version 4) is supported`)
  const fields = new Map<string, string>()
  for (const part of authorization.slice(ALGORITHM.length + 1).split(',')) {
    const at = part.indexOf('=')
    if (at < 0) throw malformed(`"${part.trim().slice(0, 40)}" is not name=value`)
    fields.set(part.slice(0, at).trim(), part.slice(at + 1).trim())
  }
  const credential = fields.get('Credential')
  const signedHeaders = fields.get('SignedHeaders')
  const signature = fields.get('Signature')
  if (credential === undefined || signedHeaders === undefined || signature === undefined) throw malformed('it needs Credential, SignedHeaders and Signature')
  const datetime = single(headers['x-amz-date'])
  if (datetime === undefined) throw new S3Error('MissingSecurityHeader', 'a signed request needs x-amz-date')
  const payloadHash = single(headers['x-amz-content-sha256'])
  if (payloadHash === undefined) throw new S3Error('MissingSecurityHeader', 'a signed request needs x-amz-content-sha256')
  const names = signedHeaderList(signedHeaders, malformed)
  for (const name of ['host', 'x-amz-date', 'x-amz-content-sha256']) if (!names.includes(name)) throw malformed(`SignedHeaders must include ${name}`)
  refuseUnsigned(headers, names, [])
  return { ...credentialScope(credential, malformed), signedHeaders: names, signature, datetime: checkDatetime(datetime, malformed), payloadHash, query }
}

function fromQuery (query: Array<[string, string]>, headers: IncomingHttpHeaders): Signed {
  const bad = (why: string): S3Error => new S3Error('AuthorizationQueryParametersError', `presigned URL: ${why}`)
  const value = (name: string): string => {
    const found = query.filter(([k]) => k === name)
    if (found.length !== 1) throw found.length === 0 && name === 'X-Amz-Algorithm' ? unsignedError(query) : bad(`it needs one ${name}`)
    return (found[0] as [string, string])[1]
  }
  if (value('X-Amz-Algorithm') !== ALGORITHM) throw bad(`X-Amz-Algorithm must be ${ALGORITHM}`)
  const expires = Number(value('X-Amz-Expires'))
  if (!Number.isSafeInteger(expires) || expires < 1 || expires > MAX_PRESIGN_EXPIRES_S) throw bad(`X-Amz-Expires must be a whole number of seconds from 1 to ${MAX_PRESIGN_EXPIRES_S}`)
  const names = signedHeaderList(value('X-Amz-SignedHeaders'), bad)
  if (!names.includes('host')) throw bad('X-Amz-SignedHeaders must include host')
  // x-amz-content-sha256 says nothing of a presigned URL's body, whose payload is unsigned whatever it says
  refuseUnsigned(headers, names, ['x-amz-content-sha256'])
  return {
    ...credentialScope(value('X-Amz-Credential'), bad),
    signedHeaders: names,
    signature: value('X-Amz-Signature'),
    datetime: checkDatetime(value('X-Amz-Date'), bad),
    payloadHash: 'UNSIGNED-PAYLOAD',
    query: query.filter(([k]) => k !== 'X-Amz-Signature'),
    presignedExpires: expires
  }
}

// aws-cli v1 presigns with Signature Version 2 unless told otherwise: say how, rather than only "not signed"
function unsignedError (query: Array<[string, string]>): S3Error {
  if (query.some(([k]) => k === 'AWSAccessKeyId')) return new S3Error('AccessDenied', 'Signature Version 2 is not supported: sign with Signature Version 4 (aws-cli v1: set s3 signature_version = s3v4 in the profile)')
  return new S3Error('AccessDenied', 'the request is not signed')
}

// an unsigned x-amz-* header (metadata, a copy source, an ACL) could have been added on the way: AWS answers AccessDenied (HeadersNotSigned)
function refuseUnsigned (headers: IncomingHttpHeaders, signed: string[], exempt: string[]): void {
  const unsigned = Object.keys(headers).filter((name) => name.startsWith('x-amz-') && !signed.includes(name) && !exempt.includes(name))
  if (unsigned.length > 0) throw new S3Error('AccessDenied', `There were headers present in the request which were not signed: ${unsigned.join(', ').slice(0, 200)}`)
}

function credentialScope (credential: string, bad: (why: string) => S3Error): Pick<Signed, 'accessKeyId' | 'date' | 'region' | 'service'> {
  const parts = credential.split('/')
  const [accessKeyId = '', date = '', region = '', service = '', terminator] = parts
  if (parts.length !== 5 || accessKeyId === '' || region === '' || terminator !== 'aws4_request') throw bad('the credential must be <access key id>/<yyyymmdd>/<region>/s3/aws4_request')
  if (!/^\d{8}$/.test(date)) throw bad(`the credential's date ${JSON.stringify(date.slice(0, 20))} is not yyyymmdd`)
  if (service !== 's3') throw bad(`the credential's service must be s3, not ${JSON.stringify(service.slice(0, 20))}`)
  return { accessKeyId, date, region, service }
}

function signedHeaderList (list: string, bad: (why: string) => S3Error): string[] {
  const names = list.split(';')
  if (names.some((n) => !/^[a-z0-9-]+$/.test(n))) throw bad('signed header names must be lowercase, separated by ;')
  if (names.some((n, i) => i > 0 && (names[i - 1] as string) >= n)) throw bad('signed header names must be sorted, each once')
  return names
}

function checkDatetime (datetime: string, bad: (why: string) => S3Error): string {
  if (!/^\d{8}T\d{6}Z$/.test(datetime)) throw bad(`the date ${JSON.stringify(datetime.slice(0, 30))} is not yyyymmddThhmmssZ`)
  return datetime
}

function checkTime (signed: Signed, now: number): void {
  if (!signed.datetime.startsWith(signed.date)) throw new S3Error('SignatureDoesNotMatch', `the credential's date ${signed.date} is not the request's ${signed.datetime.slice(0, 8)}`)
  const d = signed.datetime
  const at = Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)), Number(d.slice(9, 11)), Number(d.slice(11, 13)), Number(d.slice(13, 15)))
  if (Number.isNaN(at)) throw new S3Error('AuthorizationHeaderMalformed', `the date ${d} is not a date`)
  if (signed.presignedExpires !== undefined) {
    if (at - now > MAX_CLOCK_SKEW_MS) throw new S3Error('RequestTimeTooSkewed', `the presigned URL starts at ${d}, more than 15 minutes from now`)
    if (now > at + signed.presignedExpires * 1000) throw new S3Error('AccessDenied', `request has expired: the presigned URL was valid until ${new Date(at + signed.presignedExpires * 1000).toISOString()}`)
    return
  }
  if (Math.abs(at - now) > MAX_CLOCK_SKEW_MS) throw new S3Error('RequestTimeTooSkewed', `the difference between the request time ${d} and the manager's time ${new Date(now).toISOString()} is more than 15 minutes`)
}

function payloadMode (signed: Signed, chain: { signingKey: Buffer, scope: string }): PayloadMode {
  switch (signed.payloadHash) {
    case 'UNSIGNED-PAYLOAD': return { kind: 'unsigned' }
    case 'STREAMING-UNSIGNED-PAYLOAD-TRAILER': return { kind: 'streaming-unsigned-trailer' }
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD':
    case 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER':
      return { kind: 'streaming-signed', trailer: signed.payloadHash.endsWith('-TRAILER'), chain: new ChunkChain(chain.signingKey, signed.datetime, chain.scope, signed.signature) }
  }
  if (!/^[0-9a-f]{64}$/.test(signed.payloadHash)) throw new S3Error('InvalidArgument', `x-amz-content-sha256 ${JSON.stringify(signed.payloadHash.slice(0, 80))} is neither a sha256 in hex nor a payload mode S3 knows`)
  return { kind: 'sha256', sha256: signed.payloadHash }
}

/**
 * The signatures of an aws-chunked body's chunks: each signs its data's
 * sha256 and the signature before it, starting at the request's, so a chunk
 * can be neither changed, dropped, reordered nor added; the trailer, if any,
 * is signed last in the same chain.
 */
export class ChunkChain {
  constructor (
    private readonly signingKey: Buffer,
    private readonly datetime: string,
    private readonly scope: string,
    private previous: string
  ) {}

  /** Checks the signature of the next chunk, whose data has this sha256 (hex); throws SignatureDoesNotMatch. */
  verifyChunk (dataSha256: string, signature: string): void {
    this.advance(['AWS4-HMAC-SHA256-PAYLOAD', this.datetime, this.scope, this.previous, EMPTY_SHA256, dataSha256].join('\n'), signature, 'a chunk')
  }

  /** Checks the trailer's signature; `trailer` is its header lines, each ending in \n. */
  verifyTrailer (trailer: string, signature: string): void {
    this.advance(['AWS4-HMAC-SHA256-TRAILER', this.datetime, this.scope, this.previous, sha256Hex(trailer)].join('\n'), signature, 'the trailer')
  }

  private advance (stringToSign: string, signature: string, what: string): void {
    const expected = hmacHex(this.signingKey, stringToSign)
    if (!sameHex(expected, signature)) throw new S3Error('SignatureDoesNotMatch', `the signature of ${what} of the body does not match`)
    this.previous = expected
  }
}

// A key's signing key changes once a day: four HMACs a request saved. Bounded, as every access key id and scope could be new.
const signingKeys = new Map<string, Buffer>()
const MAX_SIGNING_KEYS = 256

function deriveSigningKey (secret: string, date: string, region: string, service: string): Buffer {
  const id = `${date}/${region}/${service}/${secret}`
  const known = signingKeys.get(id)
  if (known !== undefined) return known
  let key: Buffer = Buffer.from('AWS4' + secret, 'utf8')
  for (const part of [date, region, service, 'aws4_request']) key = createHmac('sha256', key).update(part).digest()
  if (signingKeys.size >= MAX_SIGNING_KEYS) signingKeys.clear()
  signingKeys.set(id, key)
  return key
}

/** AWS's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XX, upper case. */
export function awsEncode (text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())
}

/** Percent-decoding only (a `+` stays a `+`, as S3 reads it), refusing malformed escapes. */
export function percentDecode (text: string): string {
  try {
    return decodeURIComponent(text)
  } catch {
    throw new S3Error('InvalidURI', `${JSON.stringify(text.slice(0, 100))} is not valid percent-encoding`)
  }
}

function splitTarget (url: string): { path: string, query: Array<[string, string]> } {
  const at = url.indexOf('?')
  const path = at < 0 ? url : url.slice(0, at)
  const raw = at < 0 ? '' : url.slice(at + 1)
  const query = raw.split('&').filter((p) => p !== '').map((pair): [string, string] => {
    const eq = pair.indexOf('=')
    return eq < 0 ? [percentDecode(pair), ''] : [percentDecode(pair.slice(0, eq)), percentDecode(pair.slice(eq + 1))]
  })
  return { path, query }
}

// S3 signs the path as sent, encoded once: decode and encode again, so an escape a client left out or put in needlessly signs the same
function canonicalPath (path: string): string {
  return path.split('/').map((segment) => awsEncode(percentDecode(segment))).join('/')
}

function canonicalQuery (query: Array<[string, string]>): string {
  return query.map(([k, v]): [string, string] => [awsEncode(k), awsEncode(v)]).sort(([ak, av], [bk, bv]) => ak < bk ? -1 : ak > bk ? 1 : av < bv ? -1 : av > bv ? 1 : 0).map(([k, v]) => `${k}=${v}`).join('&')
}

function headerValue (headers: IncomingHttpHeaders, name: string): string {
  const value = headers[name]
  const text = Array.isArray(value) ? value.join(',') : value ?? ''
  return text.trim().replace(/ {2,}/g, ' ')
}

function single (value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}

function sha256Hex (text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex')
}

function hmacHex (key: Buffer, text: string): string {
  return createHmac('sha256', key).update(text, 'utf8').digest('hex')
}

function sameHex (expected: string, given: string): boolean {
  return given.length === expected.length && /^[0-9a-f]+$/.test(given) && timingSafeEqual(Buffer.from(expected, 'hex'), Buffer.from(given, 'hex'))
}

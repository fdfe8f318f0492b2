import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { isMeta, parseRange, type FileEntry } from '@mirrorcast/wire'
import { pipeBody } from '../http/respond.js'
import { S3Error } from './errors.js'
import { PARTS_FIELD, SIZE_FIELD, type S3Object } from './store.js'

// The headers S3 keeps with an object and gives back on GET and HEAD
const STORED_HEADERS = ['content-type', 'cache-control', 'content-disposition', 'content-encoding', 'content-language', 'expires'] as const
// S3's limit on x-amz-meta-* (names and values), in bytes
const MAX_USER_META_BYTES = 2048
// what S3 answers as the type of an object stored without one
const DEFAULT_CONTENT_TYPE = 'binary/octet-stream'
// GET's query parameters that set a header of the answer (a presigned link that downloads under a name)
const RESPONSE_OVERRIDES = ['content-type', 'content-language', 'expires', 'cache-control', 'content-disposition', 'content-encoding']

/** The metadata of an upload, as it is kept with the entry: the stored headers and x-amz-meta-*. */
export function requestMeta (headers: IncomingHttpHeaders): Record<string, string> {
  const meta: Record<string, string> = {}
  for (const name of STORED_HEADERS) {
    const value = headers[name]
    if (typeof value === 'string') meta[name] = value
  }
  // aws-chunked is how the body travelled, not how it is stored
  const encoding = meta['content-encoding']?.split(',').map((s) => s.trim()).filter((s) => s !== '' && s !== 'aws-chunked').join(', ')
  if (encoding === undefined || encoding === '') delete meta['content-encoding']
  else meta['content-encoding'] = encoding
  let userBytes = 0
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-meta-') || typeof value !== 'string') continue
    meta[name] = value
    userBytes += name.length - 'x-amz-meta-'.length + value.length
  }
  if (userBytes > MAX_USER_META_BYTES) throw new S3Error('MetadataTooLarge', `Your metadata headers exceed the maximum allowed metadata size: ${userBytes} bytes, ${MAX_USER_META_BYTES} at most`)
  if (!isMeta({ ...meta, etag: 'x'.repeat(64) })) throw new S3Error('MetadataTooLarge', 'the object\'s headers and metadata are too many or too long to keep with it')
  return meta
}

// what the front end keeps in an entry's metadata for itself, never sent as a header
const OWN_FIELDS = new Set(['etag', PARTS_FIELD, SIZE_FIELD])

/** The metadata a copy keeps (x-amz-metadata-directive COPY): the source's headers and x-amz-meta-*. */
export function copyMeta (entry: FileEntry): Record<string, string> {
  return Object.fromEntries(Object.entries(entry.meta ?? {}).filter(([name]) => !OWN_FIELDS.has(name)))
}

/** MD5 of the body for what came through S3; an object written by the native API has only its sha256. */
export function entryEtag (entry: FileEntry): string {
  return `"${entry.meta?.etag ?? entry.sha256}"`
}

function objectHeaders (entry: FileEntry, query: Map<string, string>): Record<string, string | number> {
  const headers: Record<string, string | number> = {
    'content-type': DEFAULT_CONTENT_TYPE,
    etag: entryEtag(entry),
    'last-modified': new Date(entry.mtime).toUTCString(),
    'accept-ranges': 'bytes'
  }
  Object.assign(headers, copyMeta(entry))
  for (const name of RESPONSE_OVERRIDES) {
    const value = query.get(`response-${name}`)
    if (value !== undefined) headers[name] = value
  }
  return headers
}

type Verdict = 200 | 304 | 412

/** RFC 7232 as S3 applies it: If-Match and If-Unmodified-Since fail with 412, If-None-Match and If-Modified-Since with 304. */
function preconditions (headers: IncomingHttpHeaders, entry: FileEntry): Verdict {
  const etag = entryEtag(entry)
  const modified = Math.floor(entry.mtime / 1000) * 1000
  const ifMatch = headers['if-match']
  const ifNoneMatch = headers['if-none-match']
  const since = (name: string): number | undefined => {
    const v = headers[name]
    const t = typeof v === 'string' ? Date.parse(v) : NaN
    return Number.isNaN(t) ? undefined : t
  }
  if (ifMatch !== undefined && !etagListMatches(ifMatch, etag)) return 412
  const unmodifiedSince = since('if-unmodified-since')
  if (ifMatch === undefined && unmodifiedSince !== undefined && modified > unmodifiedSince) return 412
  if (ifNoneMatch !== undefined && etagListMatches(ifNoneMatch, etag)) return 304
  const modifiedSince = since('if-modified-since')
  if (ifNoneMatch === undefined && modifiedSince !== undefined && modified <= modifiedSince) return 304
  return 200
}

function etagListMatches (list: string, etag: string): boolean {
  return list.split(',').map((s) => s.trim()).some((t) => t === '*' || t === etag || `"${t}"` === etag)
}

/** GET or HEAD of an object: conditional headers, one byte range, the stored headers, the body as its nodes give it. */
export async function sendObject (req: IncomingMessage, res: ServerResponse, object: S3Object, query: Map<string, string>): Promise<void> {
  const { entry, size } = object
  const headers = objectHeaders(entry, query)
  const verdict = preconditions(req.headers, entry)
  if (verdict === 412) throw new S3Error('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold')
  if (verdict === 304) {
    res.writeHead(304, { etag: headers.etag as string, 'last-modified': headers['last-modified'] as string }).end()
    return
  }
  const range = byteRange(req.headers.range, size)
  const offset = range?.offset ?? 0
  const length = range?.length ?? size
  headers['content-length'] = length
  if (range !== undefined) headers['content-range'] = `bytes ${offset}-${offset + length - 1}/${size}`
  const status = range === undefined ? 200 : 206
  if (req.method === 'HEAD' || length === 0) {
    res.writeHead(status, headers).end()
    return
  }
  const abort = new AbortController()
  res.once('close', () => { if (!res.writableFinished) abort.abort(new S3Error('IncompleteBody', 'the client went away')) })
  const body = object.read(offset, length, abort.signal)
  // the headers wait for the first bytes, so a read no replica can serve is still a clean error
  const head = await body.next()
  res.writeHead(status, headers)
  if (head.done !== true) res.write(head.value)
  await pipeBody(res, body)
  res.end()
}

/** One range of bytes, as S3 reads Range: a header it cannot parse (or of several ranges) is ignored, one past the end is InvalidRange. */
function byteRange (header: string | undefined, size: number): { offset: number, length: number } | undefined {
  if (header === undefined || !/^bytes=\d*-\d*$/.test(header.trim())) return undefined
  try {
    return parseRange(header, size)
  } catch {
    throw new S3Error('InvalidRange', `The requested range ${header.slice(0, 60)} is not satisfiable for an object of ${size} bytes`)
  }
}

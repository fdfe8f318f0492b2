import type { IncomingMessage, ServerResponse } from 'node:http'
import { S3Error } from './errors.js'
import { percentDecode, type VerifiedRequest } from './sigv4.js'

/** A request being served: what it addresses, and who signed it. */
export interface S3Ctx { req: IncomingMessage, res: ServerResponse, target: S3Target, auth: VerifiedRequest, requestId: string }

/** Work on a request's body, aborted when the client goes away before the body's end. */
export async function whileClientStays<T> (req: IncomingMessage, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const abort = new AbortController()
  const onClose = (): void => { if (!req.complete) abort.abort(new S3Error('IncompleteBody', 'the client went away before the body\'s end')) }
  req.once('close', onClose)
  try {
    return await work(abort.signal)
  } finally {
    req.off('close', onClose)
  }
}

/** What an S3 request addresses: a bucket (or none: the service) and a key (or none: the bucket). */
export interface S3Target {
  bucket: string | undefined
  key: string | undefined
  query: Map<string, string>
}

/**
 * Path-style (`/bucket/key`) or virtual-host-style (`Host: bucket.<domain>`,
 * the path then being the key): a Host below one of the front end's domains
 * names the bucket, anything else (an address, `localhost` itself) is path-style.
 */
export function s3Target (req: IncomingMessage, domains: readonly string[]): S3Target {
  const url = req.url ?? '/'
  const at = url.indexOf('?')
  const rawPath = at < 0 ? url : url.slice(0, at)
  const query = parseQuery(at < 0 ? '' : url.slice(at + 1))
  if (!rawPath.startsWith('/')) throw new S3Error('InvalidURI', 'the request path must start with /')
  const path = percentDecode(rawPath)
  const hostBucket = bucketOfHost(req.headers.host, domains)
  if (hostBucket !== undefined) return { bucket: hostBucket, key: path === '/' ? undefined : path.slice(1), query }
  const slash = path.indexOf('/', 1)
  if (path === '/') return { bucket: undefined, key: undefined, query }
  if (slash < 0) return { bucket: path.slice(1), key: undefined, query }
  const key = path.slice(slash + 1)
  return { bucket: path.slice(1, slash), key: key === '' ? undefined : key, query }
}

function bucketOfHost (host: string | undefined, domains: readonly string[]): string | undefined {
  if (host === undefined) return undefined
  const name = host.replace(/:\d+$/, '').toLowerCase()
  for (const domain of domains) {
    if (name.endsWith('.' + domain)) return name.slice(0, -domain.length - 1)
  }
  return undefined
}

/** Query parameters percent-decoded as S3 reads them (`+` stays `+`); one given twice is refused. */
function parseQuery (raw: string): Map<string, string> {
  const query = new Map<string, string>()
  for (const pair of raw.split('&')) {
    if (pair === '') continue
    const eq = pair.indexOf('=')
    const name = percentDecode(eq < 0 ? pair : pair.slice(0, eq))
    if (query.has(name)) throw new S3Error('InvalidArgument', `query parameter ${JSON.stringify(name.slice(0, 60))} is given twice`)
    query.set(name, eq < 0 ? '' : percentDecode(pair.slice(eq + 1)))
  }
  return query
}

/** A whole number parameter from 0 to max, or InvalidArgument. */
export function intParameter (query: Map<string, string>, name: string, fallback: number, max: number): number {
  const value = query.get(name)
  if (value === undefined) return fallback
  const n = Number(value)
  if (!/^\d{1,10}$/.test(value) || n > max) throw new S3Error('InvalidArgument', `${name} must be a whole number from 0 to ${max}, got ${JSON.stringify(value.slice(0, 40))}`)
  return n
}

import { request, type IncomingMessage } from 'node:http'
import { readSecretFile } from '@mirrorcast/wire'
import { CliError } from './errors.js'

// http://127.0.0.1:8700: where `mirrorcast up` puts the manager by default
export const DEFAULT_URL = 'http://127.0.0.1:8700'

export interface CallOptions {
  method: string
  path: string
  headers?: Record<string, string | number>
  body?: NodeJS.ReadableStream | Buffer
}

/** A minimal HTTP client for the manager API: node:http gives the streaming and Content-Length control fetch lacks. */
export class ManagerClient {
  readonly base: URL
  private readonly token: string | undefined

  /** `token`: the access token sent with every request (`Authorization: Bearer`). */
  constructor (url: string, token?: string) {
    this.token = token
    try {
      this.base = new URL(url)
    } catch {
      throw new CliError(`--url ${JSON.stringify(url)} is not a URL`)
    }
  }

  filesPath (remote: string, trailingSlash = false): string {
    if (!remote.startsWith('/')) remote = '/' + remote
    const encoded = remote.split('/').map(encodeURIComponent).join('/')
    return '/files' + encoded + (trailingSlash && !encoded.endsWith('/') ? '/' : '')
  }

  async call (opts: CallOptions): Promise<IncomingMessage> {
    return await new Promise((resolve, reject) => {
      const headers = this.token === undefined ? opts.headers : { ...opts.headers, authorization: `Bearer ${this.token}` }
      const req = request(new URL(opts.path, this.base), { method: opts.method, headers }, resolve)
      req.on('error', (err) => reject(new CliError(`cannot reach the manager at ${this.base.origin}: ${err.message}`)))
      if (opts.body === undefined) req.end()
      else if (Buffer.isBuffer(opts.body)) req.end(opts.body)
      else {
        opts.body.on('error', (err: Error) => { req.destroy(err) })
        opts.body.pipe(req)
      }
    })
  }

  /** A call whose JSON answer is returned; an error status becomes a CliError with the server's message. */
  async json (opts: CallOptions): Promise<Record<string, unknown>> {
    const res = await this.call(opts)
    return await readJson(res)
  }
}

export async function readJson (res: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  const text = Buffer.concat(chunks).toString('utf8')
  let parsed: Record<string, unknown> = {}
  try {
    parsed = text === '' ? {} : JSON.parse(text) as Record<string, unknown>
  } catch {
    if ((res.statusCode ?? 500) < 400) throw new CliError(`manager answered ${res.statusCode ?? '?'} with a body that is not JSON`)
  }
  failOnError(res, parsed)
  return parsed
}

export function failOnError (res: IncomingMessage, parsed?: Record<string, unknown>): void {
  const status = res.statusCode ?? 500
  if (status < 400) return
  const error = parsed?.error as { code?: string, message?: string } | undefined
  throw new CliError(`${error?.message ?? res.statusMessage ?? 'request failed'} (${status}${error?.code === undefined ? '' : ' ' + error.code})`)
}

/** The client's token file holds one token (the first line that is not a `#` comment). */
export async function readTokenFile (file: string): Promise<string> {
  let text: string
  try {
    text = await readSecretFile(file, 'token file')
  } catch (err) {
    throw new CliError((err as Error).message)
  }
  const token = text.split('\n').map((l) => l.replace(/#.*/, '').trim()).find((l) => l !== '')
  if (token === undefined || /\s/.test(token)) throw new CliError(`token file ${file} must hold one token on a line of its own`)
  return token
}

import test, { type ExecutionContext } from 'ava'
import { request } from 'node:http'
import { silentLogger } from '@mirrorcast/logger'
import { Authorizer, parseTokens } from '../src/http/auth.js'
import { HttpServer } from '../src/http/server.js'
import { Router } from '../src/http/router.js'
import { sendJson } from '../src/http/respond.js'
import { resolveHttpLimits } from '../src/config.js'

const TOKEN = 'c'.repeat(40)

/** A server whose one route answers any method, so that what is refused is refused by the guards. */
async function serve (t: ExecutionContext, host = '127.0.0.1', tokens = ''): Promise<number> {
  const answer = (_req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse): void => { sendJson(res, 200, { ok: true }) }
  const router = new Router([{ path: '/files', prefix: true, methods: { GET: answer, POST: answer, PUT: answer, DELETE: answer } }])
  const server = new HttpServer({ host, port: 0, auth: new Authorizer(parseTokens(tokens, 'tokens'), host), router, limits: resolveHttpLimits({}), logger: silentLogger() })
  await server.start()
  t.teardown(async () => { await server.close() })
  return server.port
}

/** One request to 127.0.0.1 (or `address`) with these headers, Host among them if given: status and error code. */
async function ask (port: number, headers: Record<string, string>, method = 'GET', address = '127.0.0.1'): Promise<{ status: number, code: string | undefined }> {
  return await new Promise((resolve, reject) => {
    const req = request({ host: address, port, method, path: '/files/a', headers: { ...headers, connection: 'close' }, setHost: headers.host === undefined }, (res) => {
      let text = ''
      res.on('data', (d: Buffer) => { text += d.toString() })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text) as { error?: { code: string } }).error?.code }) })
    })
    req.on('error', reject)
    req.end()
  })
}

test('without tokens on loopback, a Host other than the manager\'s loopback address or localhost is refused 403 ERR_HTTP_FORBIDDEN_HOST', async (t) => {
  const port = await serve(t)
  for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `localhost:${port}`, 'localhost', `LOCALHOST:${port}`, `[::1]:${port}`, '[::1]']) {
    t.deepEqual(await ask(port, { host }), { status: 200, code: undefined }, host)
  }
  t.deepEqual(await ask(port, {}), { status: 200, code: undefined }, 'the Host node:http sets itself, as curl does')
  for (const host of [`evil.example:${port}`, 'evil.example', `127.0.0.1.nip.io:${port}`, `localhost.:${port}`, `localhost:${port + 1}`, `127.0.0.2:${port}`, `10.1.0.100:${port}`]) {
    t.deepEqual(await ask(port, { host }, 'GET'), { status: 403, code: 'ERR_HTTP_FORBIDDEN_HOST' }, host)
  }
})

test('without tokens on loopback, a request from a web page of another origin is refused 403 ERR_HTTP_CROSS_SITE', async (t) => {
  const port = await serve(t)
  for (const origin of [`http://127.0.0.1:${port}`, `http://localhost:${port}`, `http://[::1]:${port}`]) {
    t.deepEqual(await ask(port, { origin }, 'POST'), { status: 200, code: undefined }, `the manager's own page: ${origin}`)
  }
  for (const origin of ['https://evil.example', `http://evil.example:${port}`, 'null', `http://localhost:${port + 1}`, `https://127.0.0.1:${port}`, `http://127.0.0.1:${port}.evil.example`]) {
    for (const method of ['POST', 'PUT', 'DELETE', 'GET']) t.deepEqual(await ask(port, { origin }, method), { status: 403, code: 'ERR_HTTP_CROSS_SITE' }, `${method} from ${origin}`)
  }
  t.deepEqual(await ask(port, { 'sec-fetch-site': 'cross-site' }, 'DELETE'), { status: 403, code: 'ERR_HTTP_CROSS_SITE' }, 'a page that sends no Origin but says it is cross-site')
  for (const site of ['same-origin', 'none']) t.deepEqual(await ask(port, { 'sec-fetch-site': site }, 'DELETE'), { status: 200, code: undefined }, site)
})

test('a manager on another loopback address answers requests addressed to it, with its port', async (t) => {
  const port = await serve(t, '127.0.0.2')
  t.deepEqual(await ask(port, { host: `127.0.0.2:${port}` }, 'GET', '127.0.0.2'), { status: 200, code: undefined })
  t.deepEqual(await ask(port, { host: `localhost:${port}` }, 'GET', '127.0.0.2'), { status: 200, code: undefined })
  t.deepEqual(await ask(port, { host: `evil.example:${port}` }, 'GET', '127.0.0.2'), { status: 403, code: 'ERR_HTTP_FORBIDDEN_HOST' })
})

test('with tokens the guards are off: a page has no token to send, and a request with one is served whatever its Host and Origin', async (t) => {
  const port = await serve(t, '127.0.0.1', `read-write admin ${TOKEN}`)
  const foreign = { host: `evil.example:${port}`, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' }
  t.deepEqual(await ask(port, foreign, 'POST'), { status: 401, code: 'ERR_UNAUTHORIZED' })
  t.deepEqual(await ask(port, { ...foreign, authorization: `Bearer ${TOKEN}` }, 'POST'), { status: 200, code: undefined })
})

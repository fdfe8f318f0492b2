import test, { type ExecutionContext } from 'ava'
import { once } from 'node:events'
import { request } from 'node:http'
import { connect, createServer as createNetServer, Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { createLogger, type Logger } from '@mirrorcast/logger'
import { until } from '@mirrorcast/testkit'
import { Authorizer } from '../src/http/auth.js'
import { ManagerError, ManagerErrorCode } from '../src/errors.js'
import { HttpServer } from '../src/http/server.js'
import { Router } from '../src/http/router.js'
import { pipeBody, requestBody, sendJson } from '../src/http/respond.js'
import { resolveHttpLimits, type HttpLimits } from '../src/config.js'
import { Manager } from '../src/manager.js'
import { connectionKey, parseProcNetTcp, SendQueues } from '../src/http/send-queue.js'
import { harness, serveApi } from './harness.js'

const MiB = 1024 * 1024

/** A logger whose entries land in an array, to wait on what the server did. */
function recordingLogger (): { logger: Logger, messages: string[] } {
  const messages: string[] = []
  const logger = createLogger({ level: 'debug' })
  logger.on('data', (info: { message: string }) => { messages.push(info.message) })
  logger.transports.forEach((tr) => { tr.silent = true })
  return { logger, messages }
}

interface Served { port: number, messages: string[], gate: { open: () => void } }

/**
 * A server with these limits and three routes: `/count` reads the body and
 * answers its length, `/gated` does the same once the test opens the gate,
 * `/big?mib=N` answers N MiB in 1 MiB chunks, as members send them.
 */
async function serve (t: ExecutionContext, limits: Partial<HttpLimits>): Promise<Served> {
  let open: () => void = () => {}
  const opened = new Promise<void>((resolve) => { open = resolve })
  const count = async (req: import('node:http').IncomingMessage): Promise<number> => {
    let bytes = 0
    for await (const chunk of requestBody(req)) bytes += chunk.length
    return bytes
  }
  const router = new Router([
    { path: '/count', methods: { PUT: async (req, res) => { sendJson(res, 200, { bytes: await count(req) }) } } },
    { path: '/refuse', methods: { PUT: async () => { throw new ManagerError(ManagerErrorCode.FORBIDDEN, 'refused before its body') } } },
    { path: '/gated', methods: { PUT: async (req, res) => { await opened; sendJson(res, 200, { bytes: await count(req) }) } } },
    {
      path: '/big',
      methods: {
        GET: async (_req, res, ctx) => {
          const mib = Number(ctx.query.get('mib'))
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': mib * MiB })
          await pipeBody(res, (async function * () { for (let i = 0; i < mib; i++) yield Buffer.alloc(MiB, i) })())
          res.end()
        }
      }
    }
  ])
  const { logger, messages } = recordingLogger()
  const server = new HttpServer({ host: '127.0.0.1', port: 0, auth: new Authorizer([], '127.0.0.1'), router, limits: resolveHttpLimits(limits), logger })
  await server.start()
  t.teardown(async () => { await server.close() })
  return { port: server.port, messages, gate: { open } }
}

/** A raw connection: what the server sends, as text, until it closes the connection. */
async function rawExchange (t: ExecutionContext, port: number, sent: string | Buffer): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
  socket.on('error', () => {})
  socket.write(sent)
  await once(socket, 'close')
  return text
}

function statusAndCode (answer: string): { status: number, code: unknown } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4)
  return { status, code: body === '' ? undefined : (JSON.parse(body) as { error: { code: string } }).error.code }
}

test('a body that keeps coming, a little at a time, for many idle timeouts is taken whole', async (t) => {
  const idle = 1000
  const { port } = await serve(t, { bodyIdleTimeoutMs: idle })
  const pieces = 15
  const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/count', headers: { 'content-length': pieces * 1024 } })
  const answer = once(req, 'response')
  for (let i = 0; i < pieces; i++) {
    req.write(Buffer.alloc(1024, i))
    // the stimulus: a slow sender, a piece every sixth of the timeout
    await sleep(idle / 6)
  }
  req.end()
  const [res] = await answer as [import('node:http').IncomingMessage]
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  t.is(res.statusCode, 200)
  t.deepEqual(JSON.parse(Buffer.concat(chunks).toString()), { bytes: pieces * 1024 })
})

test('a small body refused before it is read is read to its end and dropped: the client sees the answer and the connection serves on; a large one closes it', async (t) => {
  const { port } = await serve(t, {})
  const socket = connect(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let text = ''
  socket.on('data', (d: Buffer) => { text += d.toString('latin1') })
  const size = 600_000
  socket.write(`PUT /refuse HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${size}\r\n\r\n`)
  await until(() => text.includes('\r\n\r\n{'), { what: 'the refusal before the body', timeoutMs: 10_000 })
  t.is(statusAndCode(text).status, 403)
  t.notRegex(text, /connection: close/i)
  // the client goes on sending the body it began, as an HTTP client does, then asks again on the same connection
  for (let sent = 0; sent < size; sent += 60_000) socket.write(Buffer.alloc(60_000, 7))
  text = ''
  socket.write('PUT /count HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: 3\r\n\r\nabc')
  await until(() => text.includes('"bytes":3'), { what: 'the next request on the same connection answered', timeoutMs: 10_000 })
  t.true(text.startsWith('HTTP/1.1 200'))

  const large = await rawExchange(t, port, `PUT /refuse HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-length: ${64 * MiB}\r\n\r\n`)
  t.is(statusAndCode(large).status, 403)
  t.regex(large, /\r\nconnection: close\r\n/i)
})

test('a body that stops is answered 408 ERR_HTTP_BODY_TIMEOUT and the connection is closed', async (t) => {
  const { port, messages } = await serve(t, { bodyIdleTimeoutMs: 300 })
  const answer = await rawExchange(t, port, `PUT /count HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`)
  t.deepEqual(statusAndCode(answer), { status: 408, code: 'ERR_HTTP_BODY_TIMEOUT' })
  t.regex(answer, /\r\nconnection: close\r\n/i)
  t.true(messages.includes('request body stalled, connection closed'))
})

test('a body the server is slow to read is not the client\'s stall: it is taken once the server reads it', async (t) => {
  const idle = 300
  const { port, gate } = await serve(t, { bodyIdleTimeoutMs: idle })
  const size = 16 * MiB
  const req = request({ host: '127.0.0.1', port, method: 'PUT', path: '/gated', headers: { 'content-length': size } })
  const answer = once(req, 'response')
  req.end(Buffer.alloc(size))
  // the stimulus: the server holds the body unread for several timeouts, its buffers full
  await sleep(idle * 4)
  gate.open()
  const [res] = await answer as [import('node:http').IncomingMessage]
  const chunks: Buffer[] = []
  for await (const c of res) chunks.push(c as Buffer)
  t.is(res.statusCode, 200)
  t.deepEqual(JSON.parse(Buffer.concat(chunks).toString()), { bytes: size })
})

test('a response the client stops reading is ended after the idle timeout; one read slowly and steadily arrives whole', async (t) => {
  const idle = 1500
  const mib = 12
  const { port, messages } = await serve(t, { bodyIdleTimeoutMs: idle })
  const slice = 32 * 1024

  // A reader that takes 32 KiB every 40 ms: 800 KiB/s, so that one whole 1 MiB chunk takes longer to drain than the timeout.
  const steady = new Socket()
  t.teardown(() => steady.destroy())
  steady.connect(port, '127.0.0.1', () => { steady.write(`GET /big?mib=${mib} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`) })
  steady.pause()
  let got = 0
  const reader = setInterval(() => {
    const chunk = steady.readableLength === 0 ? steady.read(0) as Buffer | null : steady.read(Math.min(slice, steady.readableLength)) as Buffer | null
    if (chunk !== null) got += chunk.length
  }, 40)
  t.teardown(() => clearInterval(reader))
  // 'end' comes once every byte was read
  await once(steady, 'end')
  clearInterval(reader)
  t.true(got > mib * MiB && got < mib * MiB + 1024, `the steady reader got the headers and every byte (${got})`)
  t.false(messages.includes('response stalled, connection closed'), 'the steady reader was never cut')

  // A reader that stops after the request: the server ends the response once the socket took nothing for the timeout.
  const stopped = connect(port, '127.0.0.1')
  t.teardown(() => stopped.destroy())
  stopped.on('error', () => {})
  stopped.pause()
  stopped.write(`GET /big?mib=${mib} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  await until(() => messages.includes('response stalled, connection closed'), { what: 'the stalled response cut', timeoutMs: 30_000 })
  let partial = 0
  stopped.on('data', (d: Buffer) => { partial += d.length })
  stopped.resume()
  await once(stopped, 'close')
  t.true(partial < mib * MiB, `the stopped reader got ${partial} bytes of ${mib * MiB}, then the end of the connection`)
})

test('a client that sends its headers too slowly gets 408 and the connection is closed (headers-timeout-ms)', async (t) => {
  const { port } = await serve(t, { headersTimeoutMs: 200 })
  const answer = await rawExchange(t, port, `GET /big?mib=1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`)
  t.regex(answer, /^HTTP\/1\.1 408 /)
})

test('connections beyond max-connections are closed as they arrive, and taken again below it', async (t) => {
  const { port, messages } = await serve(t, { maxConnections: 2 })
  const held = await Promise.all([0, 1].map(async () => {
    const socket = connect(port, '127.0.0.1')
    t.teardown(() => socket.destroy())
    socket.setEncoding('latin1')
    socket.write(`GET /big?mib=0 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
    const [first] = await once(socket, 'data') as [string]
    t.regex(first, /^HTTP\/1\.1 200 /, 'each of the first two is served, and stays open')
    return socket
  }))
  t.is(await rawExchange(t, port, `GET /big?mib=0 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`), '', 'a third gets no answer, only the end of its connection')
  t.true(messages.includes('connections refused: max-connections reached'))
  held[0]?.destroy()
  await until(async () => (await rawExchange(t, port, `GET /big?mib=0 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`)).startsWith('HTTP/1.1 200 '), { what: 'a connection taken again', timeoutMs: 5000 })
  t.true(messages.includes('connections accepted again'))
})

test('the HTTP limits are checked against their bounds and named by their config key', (t) => {
  t.deepEqual(resolveHttpLimits({}), { bodyIdleTimeoutMs: 120_000, headersTimeoutMs: 10_000, maxConnections: 1024, maxSearches: 8 })
  const refused: Array<[Partial<HttpLimits>, RegExp]> = [
    [{ bodyIdleTimeoutMs: 0 }, /^body-idle-timeout-ms must be a whole number from 100 to 3600000, got 0$/],
    [{ bodyIdleTimeoutMs: 1.5e3 + 0.5 }, /body-idle-timeout-ms .* got 1500\.5/],
    [{ headersTimeoutMs: 600_001 }, /^headers-timeout-ms must be a whole number from 100 to 600000/],
    [{ maxConnections: -1 }, /^max-connections must be a whole number from 1 to 65536/],
    [{ maxConnections: Number.NaN }, /max-connections .* got NaN/],
    [{ maxSearches: 0 }, /^max-searches must be a whole number from 1 to 1024, got 0$/]
  ]
  for (const [limits, message] of refused) t.throws(() => resolveHttpLimits(limits), { code: 'ERR_CONFIG_INVALID', message })
  t.throws(() => new Manager({ key: Buffer.alloc(32), maxConnections: 0 }), { code: 'ERR_CONFIG_INVALID', message: /^max-connections/ })
})

test('a connection\'s key is written as /proc/net/tcp writes it, for IPv4, IPv6 and mapped IPv4 addresses', (t) => {
  t.is(connectionKey('127.0.0.1', 8700, '127.0.0.1', 41234), '0100007F:21FC 0100007F:A112')
  t.is(connectionKey('::1', 80, '::1', 443), '00000000000000000000000001000000:0050 00000000000000000000000001000000:01BB')
  t.is(connectionKey('::ffff:10.1.0.3', 1, 'fe80::1%eth0', 2), '0000000000000000FFFF00000300010A:0001 000080FE000000000000000001000000:0002')
  t.is(connectionKey(undefined, 1, '127.0.0.1', 2), undefined)
  const table = parseProcNetTcp([
    '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
    '   0: 0100007F:21FC 0100007F:A112 01 0038A000:00000000 01:00000014 00000000  1000        0 123 1 0 20 4 30 10 -1',
    'garbage'
  ].join('\n'))
  t.deepEqual([...table], [['0100007F:21FC 0100007F:A112', 0x38a000]])
})

test('the kernel\'s count of unacknowledged bytes is read for a live connection, and moves as its client reads', async (t) => {
  const queues = new SendQueues(0)
  const server = createNetServer()
  t.teardown(() => server.close())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = connect((server.address() as { port: number }).port, '127.0.0.1')
  t.teardown(() => client.destroy())
  client.pause()
  const [socket] = await once(server, 'connection') as [Socket]
  t.teardown(() => socket.destroy())
  socket.write(Buffer.alloc(8 * MiB))
  let first: number | undefined
  await until(async () => { first = await queues.of(socket); return (first ?? 0) > 0 }, { what: 'bytes waiting for the client', timeoutMs: 5000 })
  client.resume()
  await until(async () => (await queues.of(socket)) !== first, { what: 'the count moving as the client reads', timeoutMs: 5000 })
  t.pass()
})

test('at most max-searches searches run at once: one more is answered 503 ERR_HTTP_BUSY with Retry-After, and served once one ends', async (t) => {
  const h = harness(t)
  const running: Array<() => void> = []
  const search = async (): Promise<Array<Record<string, unknown>>> => { await new Promise<void>((resolve) => running.push(resolve)); return [] }
  const base = await serveApi(t, h, { search, maxSearches: 2 })
  const key = 'f'.repeat(32)
  const held = [fetch(`${base}/search?key=${key}&center=east`), fetch(`${base}/search?key=${key}&center=west`)]
  await until(() => running.length === 2, { what: 'two searches running' })
  const busy = await fetch(`${base}/search?key=${key}`)
  t.is(busy.status, 503)
  t.is(busy.headers.get('retry-after'), '1')
  t.is(((await busy.json()) as { error: { code: string } }).error.code, 'ERR_HTTP_BUSY')
  running.splice(0).forEach((release) => release())
  t.deepEqual(await Promise.all(held.map(async (r) => (await r).status)), [200, 200])
  const again = fetch(`${base}/search?key=${key}&center=east`)
  await until(() => running.length === 1, { what: 'a search running again' })
  running.splice(0).forEach((release) => release())
  t.is((await again).status, 200, 'a slot freed is taken again')
})

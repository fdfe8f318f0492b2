import test, { type ExecutionContext } from 'ava'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { ClientErrorCode, MirrorcastClient, type ClientError, type ClientOptions } from '../src/index.js'

type Handler = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>

interface Fake { server: Server, url: string, sockets: Socket[] }

/** A node:http server playing the manager, on port 0 (or a Unix socket), closed at the test's end. */
async function fakeManager (t: ExecutionContext, handler: Handler, socketPath?: string): Promise<Fake> {
  const sockets: Socket[] = []
  const server = createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((err: Error) => { res.destroy(err) })
  })
  server.on('connection', (s: Socket) => sockets.push(s))
  if (socketPath === undefined) server.listen(0, '127.0.0.1')
  else server.listen(socketPath)
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  const address = server.address()
  const url = typeof address === 'object' && address !== null ? `http://127.0.0.1:${address.port}` : 'http://manager'
  return { server, url, sockets }
}

function client (t: ExecutionContext, options: ClientOptions): MirrorcastClient {
  const c = new MirrorcastClient(options)
  t.teardown(async () => { await c.close() })
  return c
}

function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) }).end(text)
}

async function drain (req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

test('an error answer becomes a ClientError with the manager\'s code, status and the line the CLI prints', async (t) => {
  const fake = await fakeManager(t, (req, res) => {
    if (req.url === '/files/docs') sendJson(res, 409, { error: { code: 'ERR_DIR_NOT_EMPTY', message: '/docs is not empty' } })
    else res.writeHead(502).end('<html>bad gateway</html>')
  })
  const c = client(t, { url: fake.url })
  const err = await t.throwsAsync<ClientError>(c.remove('/docs'))
  t.is(err?.code, 'ERR_DIR_NOT_EMPTY')
  t.is(err?.status, 409)
  t.is(err?.message, '/docs is not empty (409 ERR_DIR_NOT_EMPTY)')
  const plain = await t.throwsAsync<ClientError>(c.cluster())
  t.is(plain?.code, ClientErrorCode.HTTP_STATUS)
  t.is(plain?.message, 'Bad Gateway (502)')
  t.is(((await c.send({ path: '/cluster' })).status), 502, 'the raw call answers any status')
})

test('a manager that is not there: ERR_CLIENT_UNREACHABLE, naming where', async (t) => {
  const fake = await fakeManager(t, () => {})
  const url = fake.url
  await new Promise((resolve) => fake.server.close(resolve))
  const c = client(t, { url })
  const err = await t.throwsAsync<ClientError>(c.cluster())
  t.is(err?.code, ClientErrorCode.UNREACHABLE)
  t.regex(err?.message ?? '', new RegExp(`^cannot reach the manager at ${url}: connect ECONNREFUSED`))
  const noSocket = client(t, { url: 'http://manager', socketPath: join(tmpdir(), `no-such-${process.pid}.sock`) })
  t.is((await t.throwsAsync<ClientError>(noSocket.cluster()))?.code, ClientErrorCode.UNREACHABLE)
})

test('through a Unix socket: the URL\'s host goes in Host, the token in Authorization', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'mirrorcast-client-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const socketPath = join(dir, 'manager.sock')
  const seen: Array<{ host?: string, auth?: string }> = []
  await fakeManager(t, (req, res) => {
    seen.push({ host: req.headers.host, auth: req.headers.authorization })
    sendJson(res, 200, { manager: { id: 'mgr-1', url: 'http://10.1.2.1:8700' }, centers: ['east', 'west'], twins: 'centers', directoryPartitions: 1, nodes: [], pairs: [], integrity: { restored: 0, failed: 0 } })
  }, socketPath)
  const c = client(t, { url: 'http://manager', socketPath, token: 'secret-token' })
  t.is((await c.cluster()).manager.id, 'mgr-1')
  t.deepEqual(seen, [{ host: 'manager', auth: 'Bearer secret-token' }])
})

test('a streamed PUT goes out with its Content-Length, not chunked; a stream without size or that fails is refused', async (t) => {
  const fake = await fakeManager(t, async (req, res) => {
    const body = await drain(req)
    sendJson(res, 201, { path: '/a/b.bin', name: 'b.bin', type: 'file', id: 'f'.repeat(32), size: body.length, sha256: createHash('sha256').update(body).digest('hex'), version: 1, mtime: new Date(0).toISOString(), replicas: [], length: req.headers['content-length'], chunked: req.headers['transfer-encoding'] ?? null, type_: req.headers['content-type'], sum: req.headers['x-mirrorcast-sha256'] })
  })
  const c = client(t, { url: fake.url })
  const chunks = Array.from({ length: 5 }, (_, i) => Buffer.alloc(100_000, i))
  const whole = Buffer.concat(chunks)
  const sha = createHash('sha256').update(whole).digest('hex')
  const entry = await c.put('/a/b.bin', Readable.from(chunks), { size: whole.length, sha256: sha }) as unknown as Record<string, unknown>
  t.is(entry.size, whole.length)
  t.is(entry.sha256, sha)
  t.is(entry.length, String(whole.length))
  t.is(entry.chunked, null)
  t.is(entry.type_, 'application/octet-stream')
  t.is(entry.sum, sha)

  t.is((await t.throwsAsync<ClientError>(c.put('/a/c.bin', Readable.from(chunks))))?.code, ClientErrorCode.INVALID_REQUEST)
  const failing = new Readable({ read () { this.destroy(new Error('disk gone')) } })
  const err = await t.throwsAsync<ClientError>(c.put('/a/d.bin', failing, { size: 10 }))
  t.is(err?.code, ClientErrorCode.BODY_FAILED)
  t.regex(err?.message ?? '', /disk gone/)
})

test('no answer within the headers timeout, or a body that stalls: ERR_CLIENT_TIMEOUT', async (t) => {
  const fake = await fakeManager(t, (req, res) => {
    if (req.url === '/files/stall') res.writeHead(200, { 'content-length': 100 }).write(Buffer.alloc(10))
    // else: never answers
  })
  const c = client(t, { url: fake.url, headersTimeoutMs: 200, bodyTimeoutMs: 200 })
  const err = await t.throwsAsync<ClientError>(c.cluster())
  t.is(err?.code, ClientErrorCode.TIMEOUT)
  t.regex(err?.message ?? '', /no answer from the manager at .* within 200 ms/)
  const download = await c.get('/stall')
  t.is(download.length, 100)
  const stalled = await t.throwsAsync<ClientError>(async () => { for await (const _ of download.body) { /* drained: only the error matters */ } })
  t.is(stalled?.code, ClientErrorCode.TIMEOUT)
})

test('an answer cut mid-body fails its stream with ERR_CLIENT_CONNECTION_LOST', async (t) => {
  const fake = await fakeManager(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 100_000, etag: `"${'a'.repeat(64)}"`, 'x-mirrorcast-version': 3, 'x-mirrorcast-id': 'b'.repeat(32) })
    res.write(Buffer.alloc(1000), () => { res.destroy() })
  })
  const c = client(t, { url: fake.url })
  const download = await c.get('/big')
  t.like(download, { size: 100_000, sha256: 'a'.repeat(64), version: 3, id: 'b'.repeat(32) })
  const err = await t.throwsAsync<ClientError>(async () => { for await (const _ of download.body) { /* drained: only the error matters */ } })
  t.is(err?.code, ClientErrorCode.CONNECTION_LOST)
})

test('the raw request sends its path exactly, and custom headers', async (t) => {
  const seen: string[] = []
  const fake = await fakeManager(t, (req, res) => {
    seen.push(`${req.method ?? ''} ${req.url ?? ''} ${req.headers.range ?? ''}`)
    res.writeHead(400).end()
  })
  const c = client(t, { url: fake.url })
  for (const path of ['/files/a/../etc/passwd', '/files/a/%2e%2e/b', '/files/a//b', '/files/a%00b']) t.is((await c.send({ method: 'PUT', path, body: Buffer.from('x') })).status, 400)
  await c.send({ path: '/files/x', headers: { Range: 'bytes=-10' } })
  t.deepEqual(seen, ['PUT /files/a/../etc/passwd ', 'PUT /files/a/%2e%2e/b ', 'PUT /files/a//b ', 'PUT /files/a%00b ', 'GET /files/x bytes=-10'])
})

test('typed calls build their paths: ranges, listing page after page, a directory asked as a file', async (t) => {
  const names = ['a', 'b', 'c', 'd', 'e']
  const seen: string[] = []
  const fake = await fakeManager(t, (req, res) => {
    seen.push(req.url ?? '')
    const url = new URL(req.url ?? '/', 'http://x')
    if (url.pathname === '/files/my%20dir/') {
      const after = url.searchParams.get('after')
      const rest = names.filter((n) => after === null || n > after)
      sendJson(res, 200, { path: '/my dir', type: 'dir', entries: rest.slice(0, 2).map((name) => ({ path: `/my dir/${name}`, name, type: 'dir', version: 1, mtime: '' })), more: rest.length > 2 })
    } else if (url.pathname === '/files/dir') {
      sendJson(res, 200, { path: '/dir', type: 'dir', entries: [], more: false })
    } else {
      res.writeHead(206, { 'content-length': 10, 'content-range': 'bytes 5-14/1000' }).end(Buffer.alloc(10))
    }
  })
  const c = client(t, { url: fake.url })
  const got: string[] = []
  for await (const e of c.listAll('/my dir')) got.push(e.name)
  t.deepEqual(got, names)
  t.deepEqual(seen.splice(0), ['/files/my%20dir/', '/files/my%20dir/?after=b', '/files/my%20dir/?after=d'])
  const part = await c.get('/f', { range: { offset: 5, length: 10 } })
  t.like(part, { status: 206, length: 10, size: 1000 })
  part.body.resume()
  t.is((await t.throwsAsync<ClientError>(c.get('/dir')))?.code, ClientErrorCode.IS_A_DIRECTORY)
})

test('keep-alive: connections reused for sequential requests, closed by the client when idle, before the server would', async (t) => {
  const fake = await fakeManager(t, async (req, res) => {
    await drain(req)
    sendJson(res, 201, {})
  })
  // The server's keep-alive is the manager's (node:http's 5 s); the client's is shorter. Not much shorter:
  // with 100 ms a busy machine let a connection go idle between two requests, and the pool opened more.
  const c = client(t, { url: fake.url, keepAliveTimeoutMs: 2000 })
  for (let i = 0; i < 10; i++) await c.cluster()
  // undici's pool may open a second connection while the first is being handed back; no more.
  t.true(fake.sockets.length <= 2, `${fake.sockets.length} connections for 10 requests one after the other`)
  const used = [...fake.sockets]
  const closedBy = await Promise.all(used.map(async (s) => {
    let by = 'server'
    s.once('end', () => { by = 'client' })
    await once(s, 'close')
    return by
  }))
  t.deepEqual(closedBy, used.map(() => 'client'), 'the client closed each idle connection (the server got its FIN first)')
  // A streamed PUT after that goes out on a new connection.
  await c.put('/x', Readable.from([Buffer.from('hello')]), { size: 5 })
  t.is(fake.sockets.length, used.length + 1)
})

test('close() aborts what is in flight; the client refuses requests afterwards; bad options are refused', async (t) => {
  const fake = await fakeManager(t, () => {})
  const c = new MirrorcastClient({ url: fake.url })
  const pending = c.cluster()
  await once(fake.server, 'request')
  await c.close()
  await c.close()
  t.is((await t.throwsAsync<ClientError>(pending))?.code, ClientErrorCode.CLOSED)
  t.is((await t.throwsAsync<ClientError>(c.cluster()))?.code, ClientErrorCode.CLOSED)
  t.is(t.throws<ClientError>(() => new MirrorcastClient({ url: 'not a url' }))?.code, ClientErrorCode.INVALID_OPTION)
  t.is(t.throws<ClientError>(() => new MirrorcastClient({ headersTimeoutMs: -1 }))?.code, ClientErrorCode.INVALID_OPTION)
  const aborted = new MirrorcastClient({ url: fake.url })
  t.teardown(async () => { await aborted.close() })
  const ac = new AbortController()
  const call = aborted.cluster({ signal: ac.signal })
  await once(fake.server, 'request')
  ac.abort()
  t.is((await t.throwsAsync<ClientError>(call))?.code, ClientErrorCode.ABORTED)
})

test('a direct get follows the manager\'s 307 to the node; a node that cannot serve it, or a file replaced while the node failed, is met through the manager or with ERR_CLIENT_FILE_CHANGED', async (t) => {
  const body = Buffer.alloc(300_000, 7)
  let version = 'f1'
  let nodeMode: 'serve' | 'refuse' | 'cut' = 'serve'
  const node = await fakeManager(t, (req, res) => {
    if (nodeMode === 'refuse') {
      res.writeHead(403, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'ERR_NODE_LOCATOR_EXPIRED', message: 'expired' } }))
      return
    }
    res.writeHead(200, { 'content-length': body.length })
    // cut: half the body, then the connection dies
    if (nodeMode === 'cut') res.write(body.subarray(0, 100_000), () => { res.destroy() })
    else res.end(body)
  })
  const seen: Array<{ redirect: unknown, range: unknown }> = []
  const manager = await fakeManager(t, (req, res) => {
    seen.push({ redirect: req.headers['x-mirrorcast-redirect'], range: req.headers.range })
    const headers = { 'x-mirrorcast-id': version, 'x-mirrorcast-version': 1, etag: '"abc"' }
    if (req.headers['x-mirrorcast-redirect'] === 'allow') {
      res.writeHead(307, { ...headers, location: `${node.url}/blobs/x?e=1&s=2`, 'content-length': 0 }).end()
      return
    }
    const from = Number(/^bytes=(\d+)-/.exec(String(req.headers.range ?? ''))?.[1] ?? 0)
    res.writeHead(from === 0 ? 200 : 206, { ...headers, 'content-length': body.length - from, ...(from === 0 ? {} : { 'content-range': `bytes ${from}-${body.length - 1}/${body.length}` }) })
    res.end(body.subarray(from))
  })
  const c = client(t, { url: manager.url })
  const read = async (): Promise<{ bytes: Buffer, notes: string[] }> => {
    const notes: string[] = []
    const file = await c.get('/f', { direct: true, onNote: (m) => notes.push(m) })
    const parts: Buffer[] = []
    for await (const p of file.body) parts.push(p as Buffer)
    return { bytes: Buffer.concat(parts), notes }
  }

  const served = await read()
  t.true(served.bytes.equals(body))
  t.deepEqual(served.notes, [])
  t.deepEqual(seen.splice(0), [{ redirect: 'allow', range: undefined }], 'the node served it all')

  nodeMode = 'refuse'
  const refused = await read()
  t.true(refused.bytes.equals(body))
  t.regex(refused.notes[0] ?? '', /refused the download: expired \(403 ERR_NODE_LOCATOR_EXPIRED\); the file comes through the manager/)
  t.deepEqual(seen.splice(0), [{ redirect: 'allow', range: undefined }, { redirect: undefined, range: undefined }])

  nodeMode = 'cut'
  const cut = await read()
  t.true(cut.bytes.equals(body))
  t.regex(cut.notes[0] ?? '', /failed after 100000 of 300000 bytes .*the rest comes through the manager/)
  t.deepEqual(seen.splice(0), [{ redirect: 'allow', range: undefined }, { redirect: undefined, range: 'bytes=100000-299999' }])

  // the manager names another file id when the client comes back: the two halves would not be one file
  const file = await c.get('/f', { direct: true })
  version = 'f2'
  const err = await t.throwsAsync(async () => { for await (const _ of file.body) { /* drain */ } })
  t.is((err as ClientError).code, ClientErrorCode.FILE_CHANGED)
})

test('a direct put sends the body to the node the manager names and then names the file with the node\'s receipt; a node that fails or refuses means the body goes to the manager, with a note', async (t) => {
  const body = Buffer.alloc(2 * 1024 * 1024, 5)
  let nodeMode: 'take' | 'refuse' | 'cut' = 'take'
  const atNode: number[] = []
  const node = await fakeManager(t, async (req, res) => {
    if (nodeMode === 'cut') {
      req.once('data', () => { req.socket.destroy() })
      return
    }
    atNode.push((await drain(req)).length)
    if (nodeMode === 'refuse') sendJson(res, 502, { error: { code: 'ERR_NODE_TWIN_FAILED', message: 'the twin could not take its copy' } })
    else sendJson(res, 201, { fileId: 'f1', size: body.length, sha256: 'x', receipt: 'R.1' })
  })
  const seen: Array<{ method: unknown, path: unknown, receipt: unknown, bytes: number }> = []
  const manager = await fakeManager(t, async (req, res) => {
    const bytes = (await drain(req)).length
    seen.push({ method: req.method, path: req.url, receipt: req.headers['x-mirrorcast-receipt'], bytes })
    if (req.method === 'POST') sendJson(res, 200, { url: `${node.url}/blobs/f1?n=${body.length}`, fileId: 'f1', expiresAt: 1 })
    else sendJson(res, 201, { path: '/f', type: 'file', id: 'f1', size: body.length })
  })
  const c = client(t, { url: manager.url })
  const put = async (given: Buffer | Readable, reopen?: () => Readable): Promise<string[]> => {
    const notes: string[] = []
    await c.put('/f', given, { size: body.length, direct: true, onNote: (m) => notes.push(m), ...(reopen === undefined ? {} : { reopen }) })
    return notes
  }

  t.deepEqual(await put(body), [])
  t.deepEqual(atNode.splice(0), [body.length])
  t.deepEqual(seen.splice(0), [
    { method: 'POST', path: `/files/f?upload-locator&size=${body.length}`, receipt: undefined, bytes: 0 },
    { method: 'PUT', path: '/files/f', receipt: 'R.1', bytes: 0 }
  ], 'the manager got no byte of the body')

  nodeMode = 'refuse'
  const refused = await put(Readable.from([body]), () => Readable.from([body]))
  t.regex(refused[0] ?? '', /refused the upload: the twin could not take its copy \(502 ERR_NODE_TWIN_FAILED\); the file goes through the manager/)
  t.deepEqual(seen.splice(0).map((s) => [s.method, s.receipt, s.bytes]), [['POST', undefined, 0], ['PUT', undefined, body.length]])
  t.deepEqual(atNode.splice(0), [body.length])

  nodeMode = 'cut'
  const cut = await put(body)
  t.regex(cut[0] ?? '', /the storage node at 127\.0\.0\.1:\d+ failed during the upload .*; the file goes through the manager/)
  t.deepEqual(seen.splice(0).map((s) => [s.method, s.receipt, s.bytes]), [['POST', undefined, 0], ['PUT', undefined, body.length]])

  // A stream that cannot be opened again is not sent to a node: a failure there could not be made good.
  nodeMode = 'take'
  t.deepEqual(await put(Readable.from([body])), [])
  t.deepEqual(seen.splice(0).map((s) => [s.method, s.bytes]), [['PUT', body.length]])
  t.deepEqual(atNode, [])
})

import test, { type ExecutionContext } from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { connect, createServer, type Server, type Socket } from 'node:net'
import { encodeMessage, FrameDecoder, FRAME_LENGTH_BYTES, WireErrorCode, type AnyEnvelope } from '@mirrorcast/wire'
import { until } from '@mirrorcast/testkit'
import { recordingLogger, type LogEntry } from './fixtures/recording-logger.js'
import { CHUNK_BYTES, Channel, RemoteError, RequestContext, RpcClient, RpcError, RpcErrorCode, RpcServer, isTransportFailure, type RpcClientOptions } from '../src/index.js'

const KEY = Buffer.alloc(32, 5)
const FILE_ID = '0123456789abcdef0123456789abcdef'
const STUCK_ID = 'f'.repeat(32)
const ZERO_ID = '0'.repeat(32)
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const identity = { id: 'srv-1', role: 'storage', center: 'east', slot: 1, address: '127.0.0.1', port: 0, bootId: 'boot-1' } as const

async function within<X> (promise: Promise<X>, ms: number, what: string): Promise<X> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

/** The server-side socket behind a request: private to the context, read here only to measure backpressure. */
function serverSocket (ctx: RequestContext): Socket {
  return (ctx as unknown as { channel: Channel }).channel.socket
}

interface State {
  requests: Array<{ t: string, peer: string }>
  uploads: Array<{ chunkSizes: number[], sha256: string, bytes: number }>
  bodyErrors: string[]
  download: { sent: number, waiting: boolean, maxWritable: number, socket: Socket | undefined }
  dropped: (code: string) => boolean
  entries: LogEntry[]
}

async function startServer (t: ExecutionContext, extra: { maxFrameBytes?: number, key?: Buffer } = {}): Promise<{ server: RpcServer, state: State }> {
  const { logger, entries } = recordingLogger()
  let release: () => void = () => {}
  const never = new Promise<void>((resolve) => { release = resolve })
  const state: State = {
    requests: [],
    uploads: [],
    bodyErrors: [],
    download: { sent: 0, waiting: false, maxWritable: 0, socket: undefined },
    dropped: (code) => entries.some((e) => e.message === 'dropped a session' && e.meta.code === code),
    entries
  }
  const handler = async (req: AnyEnvelope, ctx: RequestContext): Promise<void> => {
    state.requests.push({ t: req.t, peer: ctx.peer })
    switch (req.t) {
      case 'blob.stat':
        if (req.body.fileId === ZERO_ID) throw Object.assign(new Error('no such blob'), { code: 'ERR_NOT_FOUND' })
        await ctx.reply('blob.stat.ok', { fileId: req.body.fileId, size: req.seq, sha256: 'ab'.repeat(32) })
        return
      case 'blob.delete':
        throw new Error('disk on fire')
      case 'blob.put': {
        // Refused before any of its body is read, as a full node refuses it.
        if (req.body.fileId === ZERO_ID) throw Object.assign(new Error('no space left for it'), { code: 'ERR_NODE_NO_SPACE' })
        // Taken, then never read: a peer stuck (paused, cut off) with the sender's bytes piling up.
        if (req.body.fileId === STUCK_ID) { await never; return }
        const hash = createHash('sha256')
        const chunkSizes: number[] = []
        try {
          for await (const chunk of ctx.body()) {
            chunkSizes.push(chunk.length)
            hash.update(chunk)
          }
        } catch (err) {
          state.bodyErrors.push(String((err as { code?: string }).code))
          throw err
        }
        const bytes = chunkSizes.reduce((a, b) => a + b, 0)
        const sha256 = hash.digest('hex')
        state.uploads.push({ chunkSizes, sha256, bytes })
        await ctx.reply('blob.put.ok', { fileId: req.body.fileId, size: bytes, sha256 })
        return
      }
      case 'blob.get': {
        const total = req.body.length ?? 0
        await ctx.reply('blob.get.ok', { fileId: req.body.fileId, size: total, sha256: 'ab'.repeat(32), offset: 0, length: total })
        const socket = serverSocket(ctx)
        state.download.socket = socket
        for (let index = 0; index * CHUNK_BYTES < total; index++) {
          const chunk = Buffer.alloc(Math.min(CHUNK_BYTES, total - index * CHUNK_BYTES), index & 0xff)
          chunk.writeUInt32BE(index, 0)
          state.download.waiting = true
          await ctx.sendChunk(chunk)
          state.download.waiting = false
          state.download.sent += chunk.length
          state.download.maxWritable = Math.max(state.download.maxWritable, socket.writableLength)
        }
        await ctx.end()
        return
      }
      case 'dir.info':
        await never // a server that accepts the request and never answers
        return
      default:
        throw Object.assign(new Error(`unexpected ${req.t}`), { code: 'ERR_UNEXPECTED' })
    }
  }
  const server = new RpcServer({ key: extra.key ?? KEY, identity, handler, logger, streamingRequests: ['blob.put'], ...(extra.maxFrameBytes === undefined ? {} : { maxFrameBytes: extra.maxFrameBytes }) })
  await server.start()
  t.teardown(async () => {
    release()
    await server.close()
  })
  return { server, state }
}

function newClient (t: ExecutionContext, port: number, options: Partial<RpcClientOptions> = {}): RpcClient {
  const client = new RpcClient({ key: KEY, selfId: 'cli-1', host: '127.0.0.1', port, ...options })
  t.teardown(async () => { await client.close() })
  return client
}

async function rawSocket (t: ExecutionContext, port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port })
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {}) // a reset from the server is expected in these tests
  await once(socket, 'connect')
  return socket
}

/** A TCP server that accepts and never says a word. */
async function silentServer (t: ExecutionContext): Promise<{ port: number, accepted: () => number }> {
  const sockets = new Set<Socket>()
  let count = 0
  const server = createServer((socket) => { count++; sockets.add(socket); socket.on('error', () => {}) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return { port: portOf(server), accepted: () => count }
}

function portOf (server: Server): number {
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('not listening')
  return address.port
}

async function codeOf (t: ExecutionContext, promise: Promise<unknown>): Promise<string | undefined> {
  const err = await t.throwsAsync(promise)
  return (err as { code?: string } | undefined)?.code
}

/** The server still answers a fresh, well-behaved client. */
async function stillServes (t: ExecutionContext, port: number): Promise<void> {
  const client = newClient(t, port, { selfId: 'bystander' })
  const reply = await client.request('blob.stat', { fileId: FILE_ID })
  t.is(reply.body.fileId, FILE_ID)
}

test('a request gets its reply, with the server identity from the handshake', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const reply = await client.request('blob.stat', { fileId: FILE_ID })
  t.is(reply.t, 'blob.stat.ok')
  t.is(reply.from, 'srv-1')
  t.deepEqual(reply.body, { fileId: FILE_ID, size: 1, sha256: 'ab'.repeat(32) })
  t.is(client.peer?.id, 'srv-1')
  t.is(client.peer?.port, server.port)
  t.is(state.requests.length, 1)
  t.regex(state.requests[0]?.peer ?? '', /^cli-1@127\.0\.0\.1:\d+$/)
})

test('a remote error is a RemoteError with the server\'s code, and the session stays usable', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const err = await t.throwsAsync(client.request('blob.stat', { fileId: ZERO_ID }))
  t.true(err instanceof RemoteError)
  t.is((err as RemoteError).code, 'ERR_NOT_FOUND')
  t.is(err?.message, 'no such blob')
  t.false(isTransportFailure(err))
  // a handler's untyped failure reaches the client as ERR_INTERNAL
  t.is(await codeOf(t, client.request('blob.delete', { fileId: FILE_ID })), 'ERR_INTERNAL')
  await client.request('blob.stat', { fileId: FILE_ID })
  t.is(new Set(state.requests.map((r) => r.peer)).size, 1, 'one session served all three')
})

test('sequential requests reuse one pooled session', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const first = await client.request('blob.stat', { fileId: FILE_ID })
  const second = await client.request('blob.stat', { fileId: FILE_ID })
  t.is(state.requests.length, 2)
  t.is(state.requests[0]?.peer, state.requests[1]?.peer, 'same client port')
  // the sequence numbers run on within the session
  t.is(first.body.size, 1)
  t.is(second.body.size, 2)
  // concurrent requests need a second session, which is pooled in turn
  await Promise.all([client.request('blob.stat', { fileId: FILE_ID }), client.request('blob.stat', { fileId: FILE_ID })])
  await client.request('blob.stat', { fileId: FILE_ID })
  t.is(new Set(state.requests.map((r) => r.peer)).size, 2)
})

test('a multi-MiB upload arrives complete and in order, in chunks of at most CHUNK_BYTES', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const body = randomBytes(5 * 1024 * 1024 + 12_345)
  const upload = await client.upload('blob.put', { fileId: FILE_ID, size: body.length })
  for (const [from, to] of [[0, 1], [1, 1_000_001], [1_000_001, 1_000_001], [1_000_001, 4_500_000], [4_500_000, body.length]] as const) {
    await upload.write(body.subarray(from, to))
  }
  const reply = await upload.finish()
  t.deepEqual(reply.body, { fileId: FILE_ID, size: body.length, sha256: sha(body) })
  t.is(state.uploads.length, 1)
  t.is(state.uploads[0]?.bytes, body.length)
  t.true(state.uploads[0]?.chunkSizes.every((n) => n > 0 && n <= CHUNK_BYTES))
})

test('a download streams with backpressure: a stalled reader makes the server\'s sends wait', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const total = 48 * 1024 * 1024 + 1000
  const { head, body } = await client.download('blob.get', { fileId: FILE_ID, offset: 0, length: total })
  t.is(head.body.length, total)
  const chunks = body[Symbol.asyncIterator]()
  const first = await chunks.next()
  t.false(first.done)
  // the reader stalls: the server must end up waiting in a send, far from done,
  // its socket holding about one chunk rather than the whole body
  await until(() => state.download.waiting && state.download.socket?.writableNeedDrain === true, { what: 'the server to block on a stalled reader' })
  t.true(state.download.sent < total / 2, `server ran ahead by ${state.download.sent} bytes`)
  const bound = CHUNK_BYTES + 64 * 1024
  t.true(state.download.maxWritable <= bound, `server buffered ${state.download.maxWritable} bytes`)
  t.true((state.download.socket?.writableLength ?? 0) <= bound)

  // the slow reader goes on to the end: every chunk, complete and in order (each starts with its index;
  // the stream may hand a chunk on in the slices it arrived in)
  let received = 0
  const check = (piece: Buffer): void => {
    for (let at = 0; at < piece.length; at++, received++) {
      if (received % CHUNK_BYTES === 0 && piece.length - at >= 4 && piece.readUInt32BE(at) !== received / CHUNK_BYTES) t.fail(`chunk ${piece.readUInt32BE(at)} where ${received / CHUNK_BYTES} was due`)
    }
  }
  check(first.value as Buffer)
  for (let next = await chunks.next(); next.done !== true; next = await chunks.next()) check(next.value)
  t.is(received, total)
  t.is(state.download.sent, total)
  t.true(state.download.maxWritable <= bound, `server buffered ${state.download.maxWritable} bytes`)
  // read to its end, the session went back to the pool
  await client.request('blob.stat', { fileId: FILE_ID })
  t.is(new Set(state.requests.map((r) => r.peer)).size, 1)
})

test('a client with the wrong key fails the handshake and the server goes on serving', async (t) => {
  const { server, state } = await startServer(t)
  const intruder = newClient(t, server.port, { key: Buffer.alloc(32, 6) })
  const err = await t.throwsAsync(intruder.request('blob.stat', { fileId: FILE_ID }))
  t.true(err instanceof RpcError)
  t.is((err as RpcError).code, RpcErrorCode.HANDSHAKE)
  t.true(isTransportFailure(err))
  await until(() => state.dropped(WireErrorCode.BAD_MAC), { what: 'the server to log the bad MAC' })
  t.is(state.requests.length, 0)
  await stillServes(t, server.port)
})

test('a refused connection is RpcError ERR_RPC_CONNECT', async (t) => {
  const probe = createServer()
  probe.listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const port = portOf(probe)
  await new Promise((resolve) => probe.close(resolve))
  const client = newClient(t, port)
  const err = await t.throwsAsync(client.request('blob.stat', { fileId: FILE_ID }))
  t.true(err instanceof RpcError)
  t.is((err as RpcError).code, RpcErrorCode.CONNECT)
})

test('a peer that accepts and never answers is ERR_RPC_TIMEOUT, in the handshake and in a request', async (t) => {
  const silent = await silentServer(t)
  const started = Date.now()
  const byRequestTimeout = newClient(t, silent.port, { requestTimeoutMs: 150 })
  t.is(await codeOf(t, byRequestTimeout.request('blob.stat', { fileId: FILE_ID })), RpcErrorCode.TIMEOUT)
  // the connect timeout bounds the handshake too, however long a request may take
  const byConnectTimeout = newClient(t, silent.port, { connectTimeoutMs: 150, requestTimeoutMs: 60_000 })
  t.is(await codeOf(t, byConnectTimeout.request('blob.stat', { fileId: FILE_ID })), RpcErrorCode.TIMEOUT)
  t.true(Date.now() - started < 5000)
  t.is(silent.accepted(), 2)

  // a real server whose handler never replies
  const { server, state } = await startServer(t)
  // 1 s, not less: on a loaded machine the handshake alone may take a few hundred ms, and the request must reach the handler
  const client = newClient(t, server.port, { requestTimeoutMs: 1000 })
  t.is(await codeOf(t, client.request('dir.info', {})), RpcErrorCode.TIMEOUT)
  t.is(state.requests.length, 1)
  await stillServes(t, server.port)
})

/** A TCP relay that keeps every byte the client sent. */
async function recordingProxy (t: ExecutionContext, port: number): Promise<{ port: number, sent: Buffer[] }> {
  const sent: Buffer[] = []
  const sockets = new Set<Socket>()
  const proxy = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port })
    sockets.add(inbound).add(outbound)
    for (const s of [inbound, outbound]) s.on('error', () => { inbound.destroy(); outbound.destroy() })
    inbound.on('data', (d: Buffer) => sent.push(Buffer.from(d)))
    inbound.pipe(outbound)
    outbound.pipe(inbound)
  })
  proxy.listen(0, '127.0.0.1')
  await once(proxy, 'listening')
  t.teardown(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => proxy.close(resolve))
  })
  return { port: portOf(proxy), sent }
}

/** The frames of a byte stream, each with its length prefix. */
function framesOf (stream: Buffer): Buffer[] {
  return new FrameDecoder(1 << 24).push(stream).map((f) => {
    const prefix = Buffer.alloc(FRAME_LENGTH_BYTES)
    prefix.writeUInt32BE(f.length)
    return Buffer.concat([prefix, f])
  })
}

test('frames replayed from another session are refused as a bad MAC and the session dropped', async (t) => {
  const { server, state } = await startServer(t)
  const proxy = await recordingProxy(t, server.port)
  const client = newClient(t, proxy.port)
  await client.request('blob.stat', { fileId: FILE_ID })
  await client.close()
  const captured = framesOf(Buffer.concat(proxy.sent))
  t.is(captured.length, 2, 'open, then the request')
  t.is(state.requests.length, 1)

  // without the key: the whole captured stream, replayed on a new connection. The open is
  // answered (it carries nothing fresh), the request is MAC'd under the old session's nonces.
  const replayer = await rawSocket(t, server.port)
  // read (and drop) the hello: a socket whose data is never read never sees its end
  replayer.resume()
  replayer.write(Buffer.concat(captured))
  await within(once(replayer, 'close'), 5000, 'the server to drop the replaying session')
  await until(() => state.dropped(WireErrorCode.BAD_MAC), { what: 'the bad MAC in the log' })

  // with a handshake of its own first: the old request frame still does not verify
  const socket = await rawSocket(t, server.port)
  const channel = new Channel(socket, { key: KEY, selfId: 'replayer', maxFrameBytes: 1 << 20, idleTimeoutMs: 5000 })
  t.teardown(async () => { await channel.close() })
  await channel.openAsClient()
  const before = state.entries.length
  socket.write(captured[1] as Buffer)
  await within(once(socket, 'close'), 5000, 'the server to drop the session')
  await until(() => state.entries.slice(before).some((e) => e.meta.code === WireErrorCode.BAD_MAC), { what: 'the bad MAC in the log' })

  t.is(state.requests.length, 1, 'no replayed request reached the handler')
  await stillServes(t, server.port)
})

test('a truncated frame makes the server drop that session without crashing', async (t) => {
  const { server, state } = await startServer(t)
  // half an open frame, then the connection closes
  const [head] = encodeMessage(KEY, Buffer.from('mirrorcast-open-v1'), { t: 'open', from: 'half', seq: 1, body: { nonce: randomBytes(16) } }, true)
  const half = await rawSocket(t, server.port)
  half.end(head.subarray(0, head.length >> 1))
  await within(once(half, 'close'), 5000, 'the session to end')
  await until(() => state.dropped(WireErrorCode.TRUNCATED), { what: 'the truncation in the log' })

  // half a request frame after a real handshake
  const socket = await rawSocket(t, server.port)
  const channel = new Channel(socket, { key: KEY, selfId: 'half', maxFrameBytes: 1 << 20, idleTimeoutMs: 5000 })
  t.teardown(async () => { await channel.close() })
  await channel.openAsClient()
  const before = state.entries.filter((e) => e.meta.code === WireErrorCode.TRUNCATED).length
  const [request] = encodeMessage(KEY, Buffer.alloc(32), { t: 'blob.stat', from: 'half', seq: 1, body: { fileId: FILE_ID } }, true)
  socket.end(request.subarray(0, request.length - 3))
  await within(once(socket, 'close'), 5000, 'the session to end')
  await until(() => state.entries.filter((e) => e.meta.code === WireErrorCode.TRUNCATED).length > before, { what: 'the second truncation in the log' })
  t.is(state.requests.length, 0)
  await stillServes(t, server.port)
})

test('a frame length above the limit is refused before its bytes arrive', async (t) => {
  const { server, state } = await startServer(t, { maxFrameBytes: 1024 * 1024 })
  const socket = await rawSocket(t, server.port)
  const prefix = Buffer.alloc(FRAME_LENGTH_BYTES)
  prefix.writeUInt32BE(1024 * 1024 + 1)
  socket.write(prefix)
  await within(once(socket, 'close'), 5000, 'the server to drop the session')
  await until(() => state.dropped(WireErrorCode.OVERSIZE), { what: 'the oversize frame in the log' })
  // and a client refuses a reply frame above its own limit (a 1 MiB chunk from a server whose limit is 8 MiB)
  const { server: big } = await startServer(t)
  const small = newClient(t, big.port, { maxFrameBytes: 64 * 1024 })
  const err = await t.throwsAsync(async () => {
    // the head and the first chunk may come in one read: then download() itself fails
    const { body } = await small.download('blob.get', { fileId: FILE_ID, offset: 0, length: CHUNK_BYTES })
    for await (const _ of body) t.fail('no chunk fits')
  })
  t.is((err as { code?: string }).code, WireErrorCode.OVERSIZE)
  await stillServes(t, server.port)
})

test('an aborted upload makes the server\'s body() throw ERR_RPC_ABORTED', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const upload = await client.upload('blob.put', { fileId: FILE_ID, size: 10 * CHUNK_BYTES })
  await upload.write(randomBytes(3 * CHUNK_BYTES))
  upload.abort('changed my mind')
  upload.abort('twice is harmless')
  await until(() => state.bodyErrors.length > 0, { what: 'the handler to see the abort' })
  t.deepEqual(state.bodyErrors, [RpcErrorCode.ABORTED])
  t.is(state.uploads.length, 0)
  // the aborted session is not reused
  await client.request('blob.stat', { fileId: FILE_ID })
  const peers = state.requests.map((r) => r.peer)
  t.not(peers[0], peers[1])
})

test('an AbortSignal aborts a pending request, a handshake, and a request not yet sent', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  const ac = new AbortController()
  const pending = client.request('dir.info', {}, { signal: ac.signal })
  await until(() => state.requests.length === 1, { what: 'the server to receive the request' })
  ac.abort()
  const err = await t.throwsAsync(pending)
  t.true(err instanceof RpcError)
  t.is((err as RpcError).code, RpcErrorCode.ABORTED)
  t.false(isTransportFailure(err))

  // already aborted: nothing is sent, the error is still typed
  const pre = new AbortController()
  pre.abort()
  t.is(await codeOf(t, client.request('blob.stat', { fileId: FILE_ID }, { signal: pre.signal })), RpcErrorCode.ABORTED)
  t.is(state.requests.length, 1)

  // during a handshake with a peer that never answers
  const silent = await silentServer(t)
  const stuck = newClient(t, silent.port, { connectTimeoutMs: 60_000, requestTimeoutMs: 60_000 })
  const hs = new AbortController()
  const connecting = stuck.request('blob.stat', { fileId: FILE_ID }, { signal: hs.signal })
  await until(() => silent.accepted() === 1, { what: 'the connection' })
  hs.abort()
  t.is(await codeOf(t, within(connecting, 5000, 'the aborted handshake')), RpcErrorCode.ABORTED)

  await stillServes(t, server.port)
})

function tcpHandles (): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length
}

// serial: it counts the process's TCP handles, so no other test of this file may hold any meanwhile
test.serial('close() of client and server resolves, fails what is in flight and leaves no open handles', async (t) => {
  const baseline = tcpHandles()
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  await client.request('blob.stat', { fileId: FILE_ID }) // one idle pooled session
  const pending = client.request('dir.info', {}) // one busy session
  await until(() => state.requests.length === 2, { what: 'the second request' })
  const connecting = newClient(t, (await silentServer(t)).port)
  const stuck = connecting.request('blob.stat', { fileId: FILE_ID }) // a session still in its handshake
  t.true(tcpHandles() > baseline)

  await within(Promise.all([client.close(), connecting.close()]), 5000, 'the clients to close')
  t.is(await codeOf(t, pending), RpcErrorCode.CLOSED)
  t.is(await codeOf(t, stuck), RpcErrorCode.CLOSED)
  t.is(await codeOf(t, client.request('blob.stat', { fileId: FILE_ID })), RpcErrorCode.CLOSED)
  await within(server.close(), 5000, 'the server to close')
  await server.close() // idempotent
  await client.close()
  t.throws(() => server.port)
  // the silent server is the test's own; every handle of client and server is gone
  await until(() => tcpHandles() === baseline + 1, { what: 'handles to be released', timeoutMs: 2000 })
  t.pass()
})

test('an upload refused before its body was read ends with the server\'s reason, not a reset connection', async (t) => {
  const { server } = await startServer(t)
  const client = newClient(t, server.port)
  for (let attempt = 0; attempt < 3; attempt++) {
    const upload = await client.upload('blob.put', { fileId: ZERO_ID, size: 64 * 1024 * 1024 })
    const refused = await t.throwsAsync(async () => {
      for (let i = 0; i < 64; i++) await upload.write(randomBytes(1024 * 1024))
      await upload.finish()
    })
    t.true(refused instanceof RemoteError, `${(refused as Error).message}`)
    t.is((refused as RemoteError).code, 'ERR_NODE_NO_SPACE')
  }
  await stillServes(t, server.port)
})

test('an upload to a peer that stops reading fails with ERR_RPC_TIMEOUT after the idle timeout, not never', async (t) => {
  const { server } = await startServer(t)
  const client = newClient(t, server.port, { requestTimeoutMs: 300 })
  const upload = await client.upload('blob.put', { fileId: STUCK_ID, size: 256 * 1024 * 1024 })
  const err = await t.throwsAsync(async () => { for (let i = 0; i < 256; i++) await upload.write(Buffer.alloc(1024 * 1024)) })
  t.is((err as { code?: string }).code, RpcErrorCode.TIMEOUT)
})

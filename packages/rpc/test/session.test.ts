import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { connect, createServer, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { encodeSigned, FRAME_LENGTH_BYTES, WireErrorCode, type AnyEnvelope, type MessageAuth, type MessageBody, type MessageType } from '@mirrorcast/wire'
import { until } from '@mirrorcast/testkit'
import { recordingLogger, type LogEntry } from './fixtures/recording-logger.js'
import { CHUNK_BYTES, Channel, RemoteError, RpcClient, RpcErrorCode, RpcServer, isTransportFailure, type RequestContext, type RpcClientOptions, type RpcServerOptions } from '../src/index.js'

const KEY = Buffer.alloc(32, 5)
const FILE_ID = '0123456789abcdef0123456789abcdef'
const MiB = 1024 * 1024
// 1 s: a server idle timeout far below the pauses of the tests, far above a keepalive every 50 ms
// (a loaded 2-core machine may starve the client for hundreds of ms between keepalives)
const IDLE_MS = 1000
// 3 s: a client pause, three idle timeouts
const PAUSE_MS = 3 * IDLE_MS
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const identity = { id: 'srv-1', role: 'storage', center: 'east', slot: 1, address: '127.0.0.1', port: 0, bootId: 'boot-1' } as const

interface State {
  requests: Array<{ t: string, peer: string }>
  uploads: Array<{ chunks: number, sha256: string }>
  bodyErrors: string[]
  blocked: () => boolean
  entries: LogEntry[]
}

/** A server whose handler stores uploads, streams `length` bytes of a seeded body for a get, and never answers dir.info. */
async function startServer (t: ExecutionContext, options: Partial<RpcServerOptions> = {}): Promise<{ server: RpcServer, state: State }> {
  const { logger, entries } = recordingLogger()
  let sending: Socket | undefined
  const state: State = { requests: [], uploads: [], bodyErrors: [], blocked: () => sending?.writableNeedDrain === true, entries }
  const handler = async (req: AnyEnvelope, ctx: RequestContext): Promise<void> => {
    state.requests.push({ t: req.t, peer: ctx.peer })
    switch (req.t) {
      case 'blob.stat':
        await ctx.reply('blob.stat.ok', { fileId: req.body.fileId, size: req.seq, sha256: 'ab'.repeat(32) })
        return
      case 'blob.put': {
        const hash = createHash('sha256')
        let chunks = 0
        try {
          for await (const chunk of ctx.body()) { chunks++; hash.update(chunk) }
        } catch (err) {
          state.bodyErrors.push(String((err as { code?: string }).code))
          throw err
        }
        const sha256 = hash.digest('hex')
        state.uploads.push({ chunks, sha256 })
        await ctx.reply('blob.put.ok', { fileId: req.body.fileId, size: 0, sha256 })
        return
      }
      case 'blob.get': {
        const body = seeded(req.body.length ?? 0)
        await ctx.reply('blob.get.ok', { fileId: req.body.fileId, size: body.length, sha256: sha(body), offset: 0, length: body.length })
        sending = (ctx as unknown as { channel: Channel }).channel.socket
        for (let at = 0; at < body.length; at += CHUNK_BYTES) await ctx.sendChunk(body.subarray(at, at + CHUNK_BYTES))
        await ctx.end()
        return
      }
      case 'dir.info':
        await sleep(60_000, undefined, { ref: false })
        return
      default:
        throw Object.assign(new Error(`unexpected ${req.t}`), { code: 'ERR_UNEXPECTED' })
    }
  }
  const server = new RpcServer({ key: KEY, identity, handler, logger, streamingRequests: ['blob.put'], ...options })
  await server.start()
  t.teardown(async () => { await server.close() })
  return { server, state }
}

/** The same bytes for the same length: what a download must deliver. */
function seeded (length: number): Buffer {
  const out = Buffer.alloc(length)
  for (let at = 0; at + 4 <= length; at += 4) out.writeUInt32BE(at >>> 2, at)
  return out
}

function newClient (t: ExecutionContext, port: number, options: Partial<RpcClientOptions> = {}): RpcClient {
  const client = new RpcClient({ key: KEY, selfId: 'cli-1', host: '127.0.0.1', port, ...options })
  t.teardown(async () => { await client.close() })
  return client
}

async function rawSocket (t: ExecutionContext, port: number, localAddress = '127.0.0.1'): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port, localAddress })
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await once(socket, 'connect')
  return socket
}

/** A raw session, for frames a well-behaved RpcClient would never send. */
async function rawChannel (t: ExecutionContext, port: number): Promise<Channel> {
  const channel = new Channel(await rawSocket(t, port), { key: KEY, selfId: 'cli-1', maxFrameBytes: 1 << 24, idleTimeoutMs: 5000 })
  t.teardown(async () => { await channel.close() })
  await channel.openAsClient()
  return channel
}

/**
 * A frame with a valid MAC and sequence number whose body fails its schema: `body` encoded,
 * then `from` replaced in the header by `to` (same length) and the MAC computed again, as a
 * member of another version (or a bug) would send it.
 */
function tampered<T extends MessageType> (channel: Channel, t: T, body: MessageBody<T>, from: string, to: string): Buffer {
  const c = channel as unknown as { sendAuth: MessageAuth, sendSeq: number, options: { selfId: string } }
  const seq = ++c.sendSeq
  const [head] = encodeSigned(c.sendAuth, { t, from: c.options.selfId, seq, body }, true)
  head.write(to, head.indexOf(from), 'latin1')
  c.sendAuth.sign(head.subarray(FRAME_LENGTH_BYTES + c.sendAuth.macBytes), undefined, seq).copy(head, FRAME_LENGTH_BYTES)
  return head
}

/** Resolves when the socket is closed, whether the server reset it or not (events.once would reject on the reset). */
async function closed (socket: Socket): Promise<void> {
  if (socket.destroyed) return
  await new Promise((resolve) => socket.once('close', resolve))
}

async function codeOf (t: ExecutionContext, promise: Promise<unknown>): Promise<string | undefined> {
  const err = await t.throwsAsync(promise)
  return (err as { code?: string } | undefined)?.code
}

const dropped = (state: State, code: string): boolean => state.entries.some((e) => e.message === 'dropped a session' && e.meta.code === code)

// --- idle timers measure the peer -------------------------------------------------

test('an upload whose chunks come 3 s apart completes against a server idle timeout of 1 s', async (t) => {
  const { server, state } = await startServer(t, { idleTimeoutMs: IDLE_MS })
  const client = newClient(t, server.port, { keepaliveMs: 50 })
  const chunks = [randomBytes(64 * 1024), randomBytes(64 * 1024), randomBytes(1000)]
  const upload = await client.upload('blob.put', { fileId: FILE_ID, size: 0 })
  for (const chunk of chunks) {
    await sleep(PAUSE_MS)
    await upload.write(chunk)
  }
  const reply = await upload.finish()
  t.is(reply.body.sha256, sha(Buffer.concat(chunks)))
  // the keepalives never reached the handler: it saw one request and exactly its bytes (a chunk may come in the slices of its reads)
  t.is(state.uploads.length, 1)
  t.like(state.uploads[0], { sha256: sha(Buffer.concat(chunks)) })
  t.true((state.uploads[0]?.chunks ?? 0) >= 3)
  t.deepEqual(state.requests.map((r) => r.t), ['blob.put'])
})

test('a download whose reader pauses 3 s while the server is blocked on a full socket completes with the right bytes', async (t) => {
  const { server, state } = await startServer(t, { idleTimeoutMs: IDLE_MS })
  const client = newClient(t, server.port, { keepaliveMs: 50 })
  const total = 24 * MiB + 123
  const { head, body } = await client.download('blob.get', { fileId: FILE_ID, offset: 0, length: total })
  const parts: Buffer[] = []
  const reader = body[Symbol.asyncIterator]()
  const first = await reader.next()
  parts.push(first.value as Buffer)
  await until(() => state.blocked(), { what: 'the server to block on the paused reader' })
  await sleep(PAUSE_MS)
  t.true(state.blocked(), 'the server waited in drain() all along')
  for (let next = await reader.next(); next.done !== true; next = await reader.next()) parts.push(next.value)
  const got = Buffer.concat(parts)
  t.is(got.length, total)
  t.is(sha(got), head.body.sha256)
  t.true(got.equals(seeded(total)))
})

test('an idle pooled session sends no keepalive: the server\'s idle timeout still reaps it', async (t) => {
  const { server, state } = await startServer(t, { idleTimeoutMs: IDLE_MS })
  const client = newClient(t, server.port, { keepaliveMs: 50 })
  await client.request('blob.stat', { fileId: FILE_ID })
  await sleep(PAUSE_MS)
  // the pooled session was closed by the server: the next request takes a new one
  await client.request('blob.stat', { fileId: FILE_ID })
  t.is(state.requests.length, 2)
  t.not(state.requests[0]?.peer, state.requests[1]?.peer)
})

test('a client that really goes silent mid-upload still fails its session at the server\'s idle timeout', async (t) => {
  const { server, state } = await startServer(t, { idleTimeoutMs: IDLE_MS })
  const client = newClient(t, server.port, { keepaliveMs: 0 })
  const upload = await client.upload('blob.put', { fileId: FILE_ID, size: 0 })
  await upload.write(randomBytes(1000))
  await until(() => state.bodyErrors.length > 0, { what: 'the server to give up on the silent client', timeoutMs: 5000 })
  t.deepEqual(state.bodyErrors, [RpcErrorCode.TIMEOUT])
  t.is(await codeOf(t, upload.finish()), RpcErrorCode.CLOSED)
})

test('a server that really goes silent still times the request out, whatever keepalives the client sends', async (t) => {
  const { server } = await startServer(t)
  const client = newClient(t, server.port, { keepaliveMs: 50, requestTimeoutMs: 300 })
  const started = Date.now()
  t.is(await codeOf(t, client.request('dir.info', {})), RpcErrorCode.TIMEOUT)
  t.true(Date.now() - started < 5000)
})

function timers (): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

// serial: it counts the process's timers, so no other test may hold any meanwhile
test.serial('close() leaves no timers behind: keepalives, idle watches and handshake deadlines all stop', async (t) => {
  const baseline = timers()
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port, { keepaliveMs: 50 })
  await client.request('blob.stat', { fileId: FILE_ID }) // a pooled idle session
  const upload = await client.upload('blob.put', { fileId: FILE_ID, size: 0 }) // a busy one, keeping alive
  await upload.write(Buffer.alloc(10))
  await until(() => state.requests.length === 2, { what: 'the upload to reach the server' })
  t.true(timers() > baseline)
  await client.close()
  await server.close()
  await until(() => timers() <= baseline, { what: 'every timer to be cleared', timeoutMs: 2000 })
  t.pass()
})

// --- refused content ---------------------------------------------------------------

test('a request whose content fails the schema is answered ERR_RPC_BAD_REQUEST and the session serves the next one', async (t) => {
  const { server, state } = await startServer(t)
  const channel = await rawChannel(t, server.port)
  channel.socket.write(tampered(channel, 'blob.stat', { fileId: FILE_ID }, FILE_ID, 'G'.repeat(32)))
  const refusal = await channel.next()
  t.is(refusal.t, 'error')
  t.is((refusal.body as { code: string }).code, RpcErrorCode.BAD_REQUEST)
  t.is(state.requests.length, 0, 'the handler never saw it')
  await channel.send('blob.stat', { fileId: FILE_ID })
  const reply = await channel.next()
  t.is(reply.t, 'blob.stat.ok')
  t.false(channel.closed)
  t.false(state.entries.some((e) => e.message === 'dropped a session'))
})

test('a request the client cannot send as given fails locally, is no transport failure, and leaves the session usable', async (t) => {
  const { server, state } = await startServer(t)
  const client = newClient(t, server.port)
  await client.request('blob.stat', { fileId: FILE_ID })
  const err = await t.throwsAsync(client.request('blob.stat', { fileId: 'not a file id' }))
  t.is((err as { code?: string }).code, WireErrorCode.INVALID_OUTGOING)
  t.false(isTransportFailure(err))
  const long = await t.throwsAsync(client.request('dir.list', { path: '/', after: 'a'.repeat(5000) }))
  t.is((long as { code?: string }).code, WireErrorCode.INVALID_OUTGOING)
  await client.request('blob.stat', { fileId: FILE_ID })
  t.is(state.requests.length, 2, 'nothing refused reached the server')
  t.is(new Set(state.requests.map((r) => r.peer)).size, 1, 'one session served all')
})

test('a RemoteError is never a transport failure, whatever its code', (t) => {
  for (const code of [RpcErrorCode.CLOSED, RpcErrorCode.TIMEOUT, WireErrorCode.BAD_MAC, 'ERR_NODE_NO_SPACE']) {
    t.false(isTransportFailure(new RemoteError(code, 'relayed', 'peer')), code)
  }
})

/** A server speaking the protocol by hand: its first reply's content fails the schema, the next ones are sound. */
async function badReplyServer (t: ExecutionContext): Promise<{ port: number, sessions: () => number }> {
  let sessions = 0
  let replies = 0
  const server = createServer((socket) => {
    sessions++
    socket.on('error', () => {})
    const channel = new Channel(socket, { key: KEY, selfId: 'srv-1', maxFrameBytes: 1 << 20, idleTimeoutMs: 5000 })
    void (async () => {
      await channel.acceptAsServer(identity)
      for (;;) {
        const req = await channel.next()
        if (req.t !== 'blob.stat') return
        if (replies++ === 0) socket.write(tampered(channel, 'blob.stat.ok', { fileId: req.body.fileId, size: 1, sha256: 'ab'.repeat(32) }, 'ab'.repeat(32), 'AB'.repeat(32)))
        else await channel.send('blob.stat.ok', { fileId: req.body.fileId, size: 1, sha256: 'ab'.repeat(32) })
      }
    })().catch(() => {}).finally(() => { void channel.close() })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => { await new Promise((resolve) => server.close(resolve)) })
  return { port: (server.address() as { port: number }).port, sessions: () => sessions }
}

test('a reply whose content fails the schema fails that request with ERR_RPC_BAD_REPLY, no transport failure; its session is not reused', async (t) => {
  const peer = await badReplyServer(t)
  const client = newClient(t, peer.port)
  const err = await t.throwsAsync(client.request('blob.stat', { fileId: FILE_ID }))
  t.is((err as { code?: string }).code, RpcErrorCode.BAD_REPLY)
  t.false(isTransportFailure(err))
  const reply = await client.request('blob.stat', { fileId: FILE_ID })
  t.is(reply.body.sha256, 'ab'.repeat(32))
  t.is(peer.sessions(), 2)
})

// --- session MAC context and sender ------------------------------------------------

test('a frame of the server reflected back to it does not verify: the MAC context names the direction', async (t) => {
  const { server, state } = await startServer(t)
  const channel = await rawChannel(t, server.port)
  const fromServer: Buffer[] = []
  channel.socket.on('data', (d: Buffer) => fromServer.push(Buffer.from(d)))
  await channel.send('blob.get', { fileId: FILE_ID, offset: 0, length: 10 })
  await until(() => Buffer.concat(fromServer).length > 0 && channel.queuedError() === undefined && (channel as unknown as { queue: unknown[] }).queue.length >= 2, { what: 'the head, the chunk and the end' })
  // the server's second frame (seq 2) is what the server expects next from the client (seq 2)
  const stream = Buffer.concat(fromServer)
  const firstLength = stream.readUInt32BE(0)
  const second = stream.subarray(FRAME_LENGTH_BYTES + firstLength, 2 * FRAME_LENGTH_BYTES + firstLength + stream.readUInt32BE(FRAME_LENGTH_BYTES + firstLength))
  channel.socket.write(second)
  await until(() => dropped(state, WireErrorCode.BAD_MAC), { what: 'the server to refuse the reflected frame' })
  t.is(state.requests.length, 1)
})

test('a MAC-valid frame naming another sender than the session\'s peer drops the session', async (t) => {
  const { server, state } = await startServer(t)
  const channel = await rawChannel(t, server.port)
  ;(channel as unknown as { options: { selfId: string } }).options.selfId = 'impostor'
  await channel.send('blob.stat', { fileId: FILE_ID })
  await until(() => dropped(state, RpcErrorCode.PROTOCOL), { what: 'the server to drop the session' })
  t.is(state.requests.length, 0)
})

// --- before authentication ---------------------------------------------------------

test('before the handshake a frame may be 4 KiB at most, and the handshake has a deadline', async (t) => {
  const { server, state } = await startServer(t, { handshakeTimeoutMs: 200 })
  const big = await rawSocket(t, server.port)
  const prefix = Buffer.alloc(FRAME_LENGTH_BYTES)
  prefix.writeUInt32BE(8 * 1024)
  big.write(prefix)
  await closed(big)
  await until(() => dropped(state, WireErrorCode.OVERSIZE), { what: 'the oversize open in the log' })
  const silent = await rawSocket(t, server.port)
  const started = Date.now()
  await closed(silent)
  t.true(Date.now() - started < 3000, 'closed at the handshake deadline, not the idle timeout')
  // a real client is not affected: after its handshake, frames of MiBs go through
  const upload = await newClient(t, server.port).upload('blob.put', { fileId: FILE_ID, size: 0 })
  await upload.write(randomBytes(2 * MiB))
  t.is((await upload.finish()).body.fileId, FILE_ID)
})

test('sockets over the per-address cap of unauthenticated sockets are destroyed at once; other addresses are served', async (t) => {
  const { server } = await startServer(t, { maxUnauthenticatedPerAddress: 4 })
  const holding = await Promise.all([1, 2, 3, 4].map(async () => await rawSocket(t, server.port, '127.0.0.2')))
  await until(() => (server as unknown as { unauthenticatedCount: number }).unauthenticatedCount === 4, { what: 'the four to be accepted' })
  const over = await rawSocket(t, server.port, '127.0.0.2')
  await closed(over)
  t.is(server.refusedConnections, 1)
  const reply = await newClient(t, server.port).request('blob.stat', { fileId: FILE_ID })
  t.is(reply.body.fileId, FILE_ID)
  t.true(holding.every((s) => !s.destroyed))
})

async function vmRssMiB (pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

/** One connection that sends an 8 MiB length prefix then `zeros` bytes, until the server cuts it. */
async function floodOne (port: number, localAddress: string, zeros: Buffer, times: number): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port, localAddress })
  socket.on('error', () => {})
  const prefix = Buffer.alloc(FRAME_LENGTH_BYTES)
  prefix.writeUInt32BE(8 * MiB)
  socket.write(prefix)
  for (let i = 0; i < times && !socket.destroyed; i++) socket.write(zeros)
  const timer = setTimeout(() => socket.destroy(), 10_000)
  await closed(socket)
  clearTimeout(timer)
}

// serial: the flooding side runs in this process and would starve the timers of the tests beside it
test.serial('a flood of 1,000 connections sending 8 MiB length prefixes leaves the server\'s RSS flat, and a real client is served meanwhile', async (t) => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./fixtures/flood-server.js', import.meta.url))], { stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const [line] = await once(child.stdout, 'data') as [Buffer]
  const { port } = JSON.parse(line.toString()) as { port: number }
  const pid = child.pid as number
  const client = newClient(t, port)
  await client.request('blob.stat', { fileId: FILE_ID })
  const before = await vmRssMiB(pid)
  let peak = before
  let served = 0
  let flooding = true
  const sampler = (async () => { while (flooding) { peak = Math.max(peak, await vmRssMiB(pid)); await sleep(50) } })()
  const bystander = (async () => {
    while (flooding) {
      await client.request('blob.stat', { fileId: FILE_ID }).then(() => { served++ }, () => {})
      await sleep(100)
    }
  })()
  const zeros = Buffer.alloc(MiB)
  for (let wave = 0; wave < 10; wave++) {
    await Promise.all(Array.from({ length: 100 }, async (_, i) => await floodOne(port, `127.0.1.${1 + (i % 50)}`, zeros, 4)))
  }
  flooding = false
  await Promise.all([sampler, bystander])
  await client.request('blob.stat', { fileId: FILE_ID })
  const after = await vmRssMiB(pid)
  t.log(`server RSS: before ${before.toFixed(1)} MiB, peak during ${peak.toFixed(1)} MiB, after ${after.toFixed(1)} MiB; ${served} requests served during the flood`)
  t.true(peak - before < 64, `RSS grew by ${(peak - before).toFixed(1)} MiB`)
  t.true(served > 0, 'the real client was served during the flood')
})

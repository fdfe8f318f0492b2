import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { CLI_BIN } from '@mirrorcast/cli'
import { DirectoryServer } from '@mirrorcast/directory'
import { StorageNode } from '@mirrorcast/node'
import { ensureDebianPackages, hasCommand } from '@mirrorcast/testbed'
import { until } from '@mirrorcast/testkit'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { http, randomPort, tempDir, type FileJson } from './helpers/cluster.js'
import { members } from './helpers/failover.js'
import { holdClusterSlot } from './helpers/slots.js'

// The manager's HTTP hardening as a user meets it: a real manager process
// started from a config file with a short body idle timeout, real members,
// and curl or a raw socket as the client. Everything on 127.0.0.1.

const MiB = 1024 * 1024
// 1.5 s: short enough that a test outlasts it many times over in seconds
const IDLE_MS = 1500

interface Cluster { url: string, port: number, dir: string, logged: (message: string) => boolean }

/**
 * One pair of storage nodes and one of directory servers in this process, and
 * `mirrorcast manager --config FILE` as a process of its own, with
 * `body-idle-timeout-ms` in the file; its log lines are kept.
 */
async function startCluster (t: ExecutionContext, idleMs = IDLE_MS): Promise<Cluster> {
  await holdClusterSlot(t)
  const dir = await tempDir(t)
  const key = generateClusterKey()
  const keyFile = join(dir, 'cluster.key')
  await writeClusterKeyFile(keyFile, key)
  const mcastPort = randomPort()
  const presence = { port: mcastPort, heartbeatMs: 100, dnsSd: false }
  const parts = [
    ...['east', 'west'].map((center) => new StorageNode({ dataDir: join(dir, `node-${center}`), key, center, slot: 1, presence, scrub: { bytesPerSecond: 0 } })),
    ...['east', 'west'].map((center) => new DirectoryServer({ dataDir: join(dir, `dir-${center}`), key, center, slot: 1, presence }))
  ]
  for (const part of parts) {
    await part.start()
    t.teardown(async () => { await part.close() })
  }
  const config = join(dir, 'manager.toml')
  await writeFile(config, [
    'role = "manager"',
    `data = "${join(dir, 'manager')}"`,
    `key-file = "${keyFile}"`,
    'host = "127.0.0.1"',
    'port = 0',
    `mcast-port = ${mcastPort}`,
    'heartbeat-ms = 100',
    `body-idle-timeout-ms = ${idleMs}`
  ].join('\n') + '\n')
  const child = spawn(process.execPath, [CLI_BIN, 'manager', '--config', config], { stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(async () => {
    if (child.exitCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  })
  const messages: string[] = []
  let port: number | undefined
  let pending = ''
  child.stderr.on('data', (d: Buffer) => {
    pending += d.toString()
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      const entry = JSON.parse(line) as { message: string, port?: number }
      messages.push(entry.message)
      if (entry.message === 'ready') port = entry.port
    }
  })
  await until(() => port !== undefined || child.exitCode !== null, { what: 'the manager ready', timeoutMs: 30_000 })
  if (port === undefined) throw new Error(`the manager exited ${String(child.exitCode)}: ${messages.join('; ')}`)
  const url = `http://127.0.0.1:${port}`
  await until(async () => (await members(url)).filter((m) => m.status === 'healthy').length === 4, { what: 'every member healthy', timeoutMs: 30_000 })
  return { url, port, dir, logged: (message) => messages.includes(message) }
}

async function curl (args: string[]): Promise<{ status: number, body: string }> {
  if (!hasCommand('curl')) await ensureDebianPackages([{ debianPackage: 'curl', present: () => hasCommand('curl') }])
  const child = spawn('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString('latin1') })
  const [code] = await once(child, 'close') as [number]
  if (code !== 0) throw new Error(`curl exited with ${code}`)
  const at = out.lastIndexOf('\n')
  return { status: Number(out.slice(at + 1)), body: out.slice(0, at) }
}

function errorCode (body: string): string | undefined {
  return (JSON.parse(body) as { error?: { code: string } }).error?.code
}

async function everyMemberHealthy (url: string): Promise<string[]> {
  return [...new Set((await members(url)).map((m) => m.status))]
}

test('uploads: a body that keeps flowing slowly for several idle timeouts completes 201; one that stalls is cut with 408 ERR_HTTP_BODY_TIMEOUT', async (t) => {
  const c = await startCluster(t)
  const body = randomBytes(MiB + 333)
  const file = join(c.dir, 'slow.bin')
  await writeFile(file, body)
  const started = Date.now()
  // 128 KiB/s: about 8 s, over five idle timeouts, yet never a second without bytes
  const put = await curl(['--limit-rate', '128k', '-T', file, `${c.url}/files/slow.bin`])
  t.log(`the slow PUT took ${Date.now() - started} ms with a ${IDLE_MS} ms idle timeout`)
  t.is(put.status, 201, put.body)
  t.is((JSON.parse(put.body) as FileJson).sha256, createHash('sha256').update(body).digest('hex'))

  // headers and 64 KiB of a 10 MiB body, then nothing: the client is gone without saying so
  const socket = connect(c.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let answer = ''
  socket.on('data', (d: Buffer) => { answer += d.toString('latin1') })
  socket.on('error', () => {})
  socket.write(`PUT /files/stalled.bin HTTP/1.1\r\nHost: 127.0.0.1:${c.port}\r\nContent-Length: ${10 * MiB}\r\n\r\n`)
  socket.write(randomBytes(64 * 1024))
  await once(socket, 'close')
  t.regex(answer, /^HTTP\/1\.1 408 /)
  t.is(errorCode(answer.slice(answer.indexOf('\r\n\r\n') + 4)), 'ERR_HTTP_BODY_TIMEOUT')
  t.true(c.logged('request body stalled, connection closed'))
  t.is((await http(c.url, 'GET', '/files/stalled.bin')).status, 404, 'nothing of the stalled upload was kept')
  t.deepEqual(await everyMemberHealthy(c.url), ['healthy'], 'a client that went silent fails no member over')
})

test('guards: a foreign Host and a foreign Origin get 403 with their codes, loopback curl gets 200; a listing after a 5,000-byte name is 400 ERR_HTTP_BAD_PARAMETER and every member stays healthy', async (t) => {
  const c = await startCluster(t)
  const rebound = await curl(['-H', `Host: evil.example:${c.port}`, `${c.url}/cluster`])
  t.is(rebound.status, 403)
  t.is(errorCode(rebound.body), 'ERR_HTTP_FORBIDDEN_HOST')
  const crossSite = await curl(['-X', 'POST', '-H', 'Origin: https://evil.example', `${c.url}/files/planted/?mkdir`])
  t.is(crossSite.status, 403)
  t.is(errorCode(crossSite.body), 'ERR_HTTP_CROSS_SITE')
  t.is((await curl([`${c.url}/files/planted?stat`])).status, 404, 'the cross-site POST made nothing')
  t.is((await curl([`${c.url}/cluster`])).status, 200, 'plain curl from loopback')
  t.is((await curl([`http://localhost:${c.port}/cluster`])).status, 200, 'by the name localhost')

  const long = await curl([`${c.url}/files/?after=${'a'.repeat(5000)}`])
  t.is(long.status, 400)
  t.is(errorCode(long.body), 'ERR_HTTP_BAD_PARAMETER')
  t.regex((JSON.parse(long.body) as { error: { message: string } }).error.message, /"after"/)
  t.deepEqual(await everyMemberHealthy(c.url), ['healthy'])
  t.is((await curl([`${c.url}/files/`])).status, 200, 'the directory server answers listings as before')
})

test('downloads: a response the client stops reading is ended after the idle timeout; a client reading slowly and steadily gets every byte', async (t) => {
  t.timeout(5 * 60_000)
  // 3 s: twice the others', so that a timer of this busy machine late by a second cannot look like a stall
  const idleMs = 3000
  const c = await startCluster(t, idleMs)
  const big = randomBytes(16 * MiB)
  t.is((await http(c.url, 'PUT', '/files/big.bin', big)).status, 201)

  const stopped = connect(c.port, '127.0.0.1')
  t.teardown(() => stopped.destroy())
  stopped.on('error', () => {})
  stopped.pause()
  stopped.write(`GET /files/big.bin HTTP/1.1\r\nHost: 127.0.0.1:${c.port}\r\n\r\n`)
  await until(() => c.logged('response stalled, connection closed'), { what: 'the manager ending the stalled response', timeoutMs: 60_000 })
  let received = 0
  stopped.on('data', (d: Buffer) => { received += d.length })
  stopped.resume()
  await once(stopped, 'close')
  t.true(received < big.length, `the stopped reader got ${received} of ${big.length} bytes, then the end of the connection`)

  // A reader that takes 32 KiB every 40 ms, 800 KiB/s. (curl --limit-rate is no steady reader of a
  // download: it keeps an average since the start, and its receive buffer, grown in a first burst,
  // hides its reading from the manager for seconds at a time; see the README.)
  const steadyBody = big.subarray(0, 10 * MiB)
  t.is((await http(c.url, 'PUT', '/files/steady.bin', steadyBody)).status, 201)
  const steady = connect(c.port, '127.0.0.1')
  t.teardown(() => steady.destroy())
  steady.pause()
  steady.write(`GET /files/steady.bin HTTP/1.1\r\nHost: 127.0.0.1:${c.port}\r\nConnection: close\r\n\r\n`)
  const parts: Buffer[] = []
  const reader = setInterval(() => {
    const chunk = steady.readableLength === 0 ? steady.read(0) as Buffer | null : steady.read(Math.min(32 * 1024, steady.readableLength)) as Buffer | null
    if (chunk !== null) parts.push(chunk)
  }, 40)
  t.teardown(() => clearInterval(reader))
  const started = Date.now()
  await once(steady, 'end')
  clearInterval(reader)
  t.log(`the steady GET took ${Date.now() - started} ms with a ${idleMs} ms idle timeout`)
  const answer = Buffer.concat(parts)
  t.regex(answer.subarray(0, 20).toString('latin1'), /^HTTP\/1\.1 200 /)
  t.true(answer.subarray(answer.indexOf('\r\n\r\n') + 4).equals(steadyBody), 'every byte, in order')
  t.deepEqual(await everyMemberHealthy(c.url), ['healthy'])
})

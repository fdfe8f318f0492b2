import test, { type ExecutionContext } from 'ava'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ensureDebianPackages, hasCommand } from '@mirrorcast/testbed'
import { DirectoryServer } from '@mirrorcast/directory'
import { StorageNode } from '@mirrorcast/node'
import { Manager } from '@mirrorcast/manager'
import { until } from '@mirrorcast/testkit'
import { clientOf, http, json, randomPort, startUp, tempDir, type FileJson } from './helpers/cluster.js'
import { holdClusterSlot } from './helpers/slots.js'
import { members, readClusterJson } from './helpers/failover.js'

// Failover on evidence, as a user sees it: a slow client or a paused reader
// is a slow client, not a dead node.

const MiB = 1024 * 1024
const KEY = randomBytes(32)

async function statuses (url: string): Promise<string[]> {
  return (await members(url)).map((m) => m.status)
}

/**
 * A one-pair cluster in this process, on loopback and a multicast port of its
 * own, whose members close a silent session after `idleMs` (60 s in
 * production), so that the test can outlast it by far in seconds.
 */
async function smallCluster (t: ExecutionContext, idleMs: number): Promise<Manager> {
  await holdClusterSlot(t)
  const dir = await tempDir(t)
  const presence = { port: randomPort(), heartbeatMs: 100, dnsSd: false }
  const members = [
    ...['east', 'west'].map((center) => new StorageNode({ dataDir: join(dir, `node-${center}`), key: KEY, center, slot: 1, presence, sessionIdleTimeoutMs: idleMs, scrub: { bytesPerSecond: 0 } })),
    ...['east', 'west'].map((center) => new DirectoryServer({ dataDir: join(dir, `dir-${center}`), key: KEY, center, slot: 1, presence, sessionIdleTimeoutMs: idleMs }))
  ]
  for (const m of members) {
    await m.start()
    t.teardown(async () => { await m.close() })
  }
  const manager = new Manager({ key: KEY, port: 0, dataDir: join(dir, 'manager'), multicast: { port: presence.port }, heartbeatMs: 100 })
  await manager.start()
  t.teardown(async () => { await manager.close() })
  await until(async () => (await statuses(manager.url)).filter((s) => s === 'healthy').length === 4, { what: 'every member healthy', timeoutMs: 20_000 })
  return manager
}

async function curl (args: string[]): Promise<{ status: number, body: string }> {
  if (!hasCommand('curl')) await ensureDebianPackages([{ debianPackage: 'curl', present: () => hasCommand('curl') }])
  const child = spawn('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const [code] = await once(child, 'close') as [number]
  if (code !== 0) throw new Error(`curl exited with ${code}`)
  const at = out.lastIndexOf('\n')
  return { status: Number(out.slice(at + 1)), body: out.slice(0, at) }
}

test('a PUT whose client sends far slower than the members\' session idle timeout completes, and nobody is failed over', async (t) => {
  const idleMs = 1500
  const manager = await smallCluster(t, idleMs)
  const dir = await tempDir(t)
  const file = join(dir, 'slow.bin')
  const body = randomBytes(2 * MiB + 77)
  await writeFile(file, body)
  const failovers: string[] = []
  const started = Date.now()
  // 256 KiB/s: each 1 MiB block the manager relays takes about 4 s to arrive, over twice the idle timeout
  const put = await curl(['--limit-rate', '256k', '-T', file, `${manager.url}/files/slow.bin`])
  t.log(`PUT of ${body.length} bytes took ${Date.now() - started} ms`)
  t.is(put.status, 201, put.body)
  const entry = JSON.parse(put.body) as FileJson
  t.is(entry.sha256, createHash('sha256').update(body).digest('hex'))
  t.is(entry.replicas.length, 2)
  const view = await members(manager.url)
  for (const m of view) if (m.failover !== null) failovers.push(`${m.role} ${m.center}/${m.slot}: ${m.failover.reason}`)
  t.deepEqual(failovers, [], 'no member was failed over')
  t.true(view.every((m) => m.status === 'healthy'))
  const back = await http(manager.url, 'GET', '/files/slow.bin')
  t.true(back.body.equals(body))
})

test('a GET whose client pauses 75 s in the middle of 64 MiB gets every byte right, and nobody is failed over', async (t) => {
  t.timeout(5 * 60_000)
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--nodes', '1'])
  const body = randomBytes(64 * MiB)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/big.bin', body))
  const answer = await clientOf(c.url).request({ path: '/files/big.bin' })
  t.is(answer.status, 200)
  const res = answer.body
  const hash = createHash('sha256')
  let bytes = 0
  let paused = false
  res.on('data', (chunk: Buffer) => {
    hash.update(chunk)
    bytes += chunk.length
    if (!paused && bytes >= 8 * MiB) {
      paused = true
      res.pause()
      // 75 s: past the node's 60 s session idle timeout, below the HTTP body idle timeout
      void sleep(75_000).then(() => res.resume())
    }
  })
  await once(res, 'end')
  t.true(paused)
  t.is(bytes, body.length)
  t.is(hash.digest('hex'), entry.sha256)
  t.deepEqual([...new Set(await statuses(c.url))], ['healthy'])
  const log = await readFile(join(dir, 'logs', 'manager.log'), 'utf8')
  t.false(log.includes('member failed over'), 'the manager failed nobody over')
})

test('a manager that stands still for 3 s (SIGSTOP) fails nobody over when it runs again', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--nodes', '1'])
  const { manager } = await readClusterJson(dir)
  t.is((await http(c.url, 'PUT', '/files/before.txt', Buffer.from('before'))).status, 201)
  // Every member keeps announcing while the manager is stopped: their datagrams wait in its socket.
  process.kill(manager.pid, 'SIGSTOP')
  try {
    await sleep(3000)
  } finally {
    process.kill(manager.pid, 'SIGCONT')
  }
  const after = await http(c.url, 'GET', '/files/before.txt')
  t.is(after.status, 200)
  t.is(after.body.toString(), 'before')
  t.is((await http(c.url, 'PUT', '/files/after.txt', Buffer.from('after'))).status, 201)
  t.deepEqual([...new Set(await statuses(c.url))], ['healthy'])
  const log = await readFile(join(dir, 'logs', 'manager.log'), 'utf8')
  t.false(log.includes('member failed over'), 'the manager failed nobody over')
  t.true(log.includes('this process stood still'), 'the manager saw its own pause')
})

import test, { type ExecutionContext } from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:net'
import { join } from 'node:path'
import { CLI_BIN, launchUp } from '@mirrorcast/cli'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { randomPort, startUp, tempDir } from './helpers/cluster.js'

// 20 s: a refused start exits well within this even on a loaded machine; longer is a process left hanging
const EXIT_WITHIN_MS = 20_000

interface Exit { code: number | null, stderr: string, pid: number }

/** Runs `mirrorcast <args>` to its end; a process still running after EXIT_WITHIN_MS fails the test (and is killed). */
async function runCli (args: string[]): Promise<Exit> {
  const child = spawn(process.execPath, [CLI_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_WITHIN_MS)
  const [code, signal] = await once(child, 'exit') as [number | null, string | null]
  clearTimeout(timer)
  if (signal === 'SIGKILL') throw new Error(`mirrorcast ${args.join(' ')} did not exit within ${EXIT_WITHIN_MS} ms: ${stderr}`)
  return { code, stderr, pid: child.pid as number }
}

/** Starts a long-running `mirrorcast <args>` and waits for its ready line; stopped at the test's end. */
async function serve (t: ExecutionContext, args: string[]): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI_BIN, ...args, '--log-level', 'info'], { stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(async () => { await stop(child) })
  let text = ''
  await new Promise<void>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString()
      if (text.includes('"message":"ready"')) resolve()
    })
    child.once('exit', (code) => { reject(new Error(`mirrorcast ${args.join(' ')} exited ${String(code)}: ${text}`)) })
  })
  return child
}

async function stop (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  await exited
}

function running (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

async function exists (file: string): Promise<boolean> {
  return await access(file).then(() => true, () => false)
}

/** A TCP port held by the test, so that the process under test finds it taken. */
async function takePort (t: ExecutionContext, host = '127.0.0.1', port = 0): Promise<{ server: Server, port: number }> {
  const server = createServer()
  server.listen(port, host)
  await once(server, 'listening')
  t.teardown(() => { server.close() })
  return { server, port: (server.address() as { port: number }).port }
}

/** Whether this test can bind the UDP port now: a process that failed left no socket on it. */
async function udpFree (port: number): Promise<boolean> {
  const socket = createSocket('udp4')
  try {
    socket.bind(port, '127.0.0.1')
    await once(socket, 'listening')
    return true
  } catch {
    return false
  } finally {
    socket.close()
  }
}

interface Setup { dir: string, keyFile: string, peerPort: number, member: (data: string, port?: number) => string[], manager: (data: string, port: number) => string[] }

/** A key file and the flags of a member or manager that reach only each other, on ports of this test. */
async function setup (t: ExecutionContext): Promise<Setup> {
  const dir = await tempDir(t)
  const keyFile = join(dir, 'cluster.key')
  await writeClusterKeyFile(keyFile, generateClusterKey())
  const mcast = randomPort()
  const peerPort = randomPort()
  const discovery = ['--no-multicast', '--mcast-port', String(mcast), '--peers', `127.0.0.1:${mcast}`, '--peer-port', String(peerPort)]
  return {
    dir,
    keyFile,
    peerPort,
    member: (data, port = 0) => ['--data', data, '--key-file', keyFile, '--center', 'east', '--slot', '1', '--port', String(port), ...discovery],
    manager: (data, port) => ['manager', '--data', data, '--key-file', keyFile, '--port', String(port), '--no-multicast', '--mcast-port', String(mcast), '--peer-port', String(peerPort)]
  }
}

test('a storage node or directory server on a data dir another process holds exits 1 naming the dir and the holder; the holder runs on', async (t) => {
  const s = await setup(t)
  const data = join(s.dir, 'node1')
  const first = await serve(t, ['node', ...s.member(data)])
  const lockFile = join(data, 'mirrorcast.lock')
  t.is(JSON.parse(await readFile(lockFile, 'utf8')).pid, first.pid)
  for (const role of ['node', 'directory']) {
    const second = await runCli([role, ...s.member(data)])
    t.is(second.code, 1, second.stderr)
    t.regex(second.stderr, new RegExp(`^mirrorcast: data dir ${data} is in use by a storage node, pid ${String(first.pid)} .*\\(ERR_DATA_DIR_LOCKED\\)$`, 'm'))
    t.false(running(second.pid))
  }
  t.false(await exists(join(data, 'namespace.lmdb')), 'the refused directory server opened nothing in the dir')
  t.is(first.exitCode, null, 'the holder still runs')
  t.is(JSON.parse(await readFile(lockFile, 'utf8')).pid, first.pid, 'and still holds the lock')
  await stop(first)
  t.false(await exists(lockFile), 'a clean stop removes the lock')
})

test('a node killed with SIGKILL leaves a stale lock that the next start on its dir takes over', async (t) => {
  const s = await setup(t)
  const data = join(s.dir, 'node1')
  const first = await serve(t, ['node', ...s.member(data)])
  const exited = once(first, 'exit')
  first.kill('SIGKILL')
  await exited
  t.true(await exists(join(data, 'mirrorcast.lock')))
  const next = await serve(t, ['node', ...s.member(data)])
  t.is(JSON.parse(await readFile(join(data, 'mirrorcast.lock'), 'utf8')).pid, next.pid)
})

test('a node whose protocol port is taken exits 1 naming the port, with no lock, socket or process left', async (t) => {
  const s = await setup(t)
  const { port } = await takePort(t)
  const data = join(s.dir, 'node1')
  const r = await runCli(['node', ...s.member(data, port)])
  t.is(r.code, 1, r.stderr)
  t.regex(r.stderr, new RegExp(`^mirrorcast: the node protocol port 127\\.0\\.0\\.1:${port} \\(TCP, --port\\) is in use by another process.*\\(ERR_PORT_IN_USE\\)$`, 'm'))
  t.notRegex(r.stderr, /still open/)
  t.false(running(r.pid))
  t.false(await exists(join(data, 'mirrorcast.lock')), 'the lock was released')
  t.true(await udpFree(s.peerPort), 'its UDP socket was closed')
  // the same dir starts at once on a free port: nothing of the failed start is in the way
  await serve(t, ['node', ...s.member(data)])
})

test('a node or manager whose UDP peer port is taken exits 1 naming it, and closes the TCP port it had opened', async (t) => {
  const s = await setup(t)
  const blocker = createSocket('udp4')
  blocker.bind(s.peerPort, '127.0.0.1')
  await once(blocker, 'listening')
  t.teardown(() => { blocker.close() })
  for (const [name, args] of [['node', (port: number) => ['node', ...s.member(join(s.dir, 'node1'), port)]], ['manager', (port: number) => s.manager(join(s.dir, 'manager'), port)]] as const) {
    // its TCP port (node protocol or HTTP) is listened on before the UDP socket is bound, so the rollback must close it
    const port = randomPort()
    const r = await runCli(args(port))
    t.is(r.code, 1, r.stderr)
    t.regex(r.stderr, new RegExp(`^mirrorcast: the UDP port 127\\.0\\.0\\.1:${s.peerPort} \\(--peer-port or --mcast-port\\) is in use.*\\(ERR_PORT_IN_USE\\)$`, 'm'), name)
    t.false(running(r.pid))
    const { server } = await takePort(t, '127.0.0.1', port)
    server.close()
    t.false(await exists(join(s.dir, name === 'node' ? 'node1' : 'manager', 'mirrorcast.lock')), name)
  }
})

test('a manager whose HTTP or S3 port is taken, or whose data dir another manager holds, exits 1 with the reason and leaves nothing', async (t) => {
  const s = await setup(t)
  const { server, port } = await takePort(t)
  const data = join(s.dir, 'manager')
  const r = await runCli(s.manager(data, port))
  t.is(r.code, 1, r.stderr)
  t.regex(r.stderr, new RegExp(`^mirrorcast: the HTTP port 127\\.0\\.0\\.1:${port} \\(TCP, --port\\) is in use by another process.*\\(ERR_PORT_IN_USE\\)$`, 'm'))
  t.false(running(r.pid))
  const s3 = await runCli([...s.manager(data, 0), '--s3-port', String(port)])
  t.is(s3.code, 1, s3.stderr)
  t.regex(s3.stderr, new RegExp(`^mirrorcast: the S3 port 127\\.0\\.0\\.1:${port} \\(TCP, --s3-port\\) is in use by another process.*\\(ERR_PORT_IN_USE\\)$`, 'm'))
  t.false(await exists(join(data, 'mirrorcast.lock')))
  t.true(await udpFree(s.peerPort))

  server.close()
  await once(server, 'close')
  const first = await serve(t, s.manager(data, port))
  const second = await runCli(s.manager(data, 0))
  t.is(second.code, 1, second.stderr)
  t.regex(second.stderr, new RegExp(`^mirrorcast: data dir ${data} is in use by a manager, pid ${String(first.pid)} .*\\(ERR_DATA_DIR_LOCKED\\)$`, 'm'))
  t.is(first.exitCode, null)
})

test('a config file that cannot be read or is invalid stops the process with exit 1 and the reason, before its data dir is touched', async (t) => {
  const s = await setup(t)
  const data = join(s.dir, 'never')
  const config = join(s.dir, 'node.toml')
  await writeFile(config, `role = "node"\ndata = "${data}"\nslot = [1\n`)
  const invalid = await runCli(['node', '--config', config])
  t.is(invalid.code, 1)
  t.regex(invalid.stderr, /^mirrorcast: .*node\.toml:\d+:\d+/m)
  await mkdir(join(s.dir, 'a-dir.toml'))
  const unreadable = await runCli(['node', '--config', join(s.dir, 'a-dir.toml')])
  t.is(unreadable.code, 1)
  t.regex(unreadable.stderr, /^mirrorcast: cannot read config file .*a-dir\.toml/m)
  t.false(await exists(data))
})

test('mirrorcast up on a dir a running up uses is refused, naming it, and starts nothing; the running cluster serves on', async (t) => {
  const dir = await tempDir(t)
  const cluster = await startUp(t, dir, ['--nodes', '1'])
  const second = launchUp(dir, ['--port', '0', '--node-port', '0', '--mcast-port', String(randomPort()), '--nodes', '1'])
  const err = await t.throwsAsync(second)
  t.regex(err?.message ?? '', new RegExp(`exited 1: mirrorcast: data dir ${dir} is in use by a mirrorcast up, pid ${String(cluster.child.pid)} .*\\(ERR_DATA_DIR_LOCKED\\)`))
  t.notRegex(err?.message ?? '', /ready \(/, 'it started no process')
  const res = await fetch(`${cluster.url}/cluster`)
  t.is(res.status, 200)
  await cluster.stop()
  t.false(await exists(join(dir, 'mirrorcast.lock')), 'a stopped up releases its dir')
})

import test, { type ExecutionContext } from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLogger } from '@mirrorcast/logger'
import { DataDirLock, LOCK_FILE, type LockHolder } from '../src/index.js'

const LOCK_MODULE = new URL('../src/data-dir-lock.js', import.meta.url).href

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'mirrorcast-lock-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** A process that takes the lock and prints what happened: `held` (then waits for stdin to close) or the error's code. */
function locker (t: ExecutionContext, dir: string): { child: ChildProcess, said: Promise<string> } {
  const script = `import { DataDirLock } from ${JSON.stringify(LOCK_MODULE)}
    try { await DataDirLock.acquire(${JSON.stringify(dir)}, 'test'); console.log('held'); process.stdin.resume() } catch (err) { console.log(err.code) }`
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  })
  const said = new Promise<string>((resolve) => { child.stdout.once('data', (d: Buffer) => { resolve(d.toString().trim()) }) })
  return { child, said }
}

async function deadPid (): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' })
  await once(child, 'exit')
  return child.pid as number
}

function lockText (over: Partial<LockHolder>): string {
  return JSON.stringify({ pid: 1, host: hostname(), bootId: '', startedAt: '2020-01-01T00:00:00.000Z', role: 'storage node', nonce: 'x', ...over }) + '\n'
}

/** A logger whose lines land in an array, to see what the lock logged. */
function recordingLogger (): { logger: ReturnType<typeof createLogger>, lines: string[] } {
  const lines: string[] = []
  const logger = createLogger({ level: 'warn' })
  logger.on('data', (info: { message: string }) => { lines.push(info.message) })
  logger.transports.forEach((tr) => { tr.silent = true })
  return { logger, lines }
}

test('the lock names its holder and refuses a second taker in this process, with the dir and the pid', async (t) => {
  const dir = await tempDir(t)
  const lock = await DataDirLock.acquire(dir, 'storage node')
  const holder = JSON.parse(await readFile(join(dir, LOCK_FILE), 'utf8')) as LockHolder
  t.is(holder.pid, process.pid)
  t.is(holder.role, 'storage node')
  const err = await t.throwsAsync(DataDirLock.acquire(dir, 'directory server'))
  t.is((err as { code?: string }).code, 'ERR_DATA_DIR_LOCKED')
  t.true(err?.message.includes(dir))
  t.true(err?.message.includes(`pid ${process.pid}`))
  const link = `${dir}-link`
  await symlink(dir, link)
  t.teardown(async () => { await rm(link, { force: true }) })
  t.is((await t.throwsAsync(DataDirLock.acquire(link, 'storage node')) as { code?: string }).code, 'ERR_DATA_DIR_LOCKED', 'the same dir through a symlink')
  await lock.release()
  await t.throwsAsync(readFile(join(dir, LOCK_FILE)), { code: 'ENOENT' }, 'released: the lock file is gone')
  const again = await DataDirLock.acquire(dir, 'storage node')
  await again.release()
})

test('a lock held by another live process is refused, naming that process', async (t) => {
  const dir = await tempDir(t)
  const other = locker(t, dir)
  t.is(await other.said, 'held')
  const err = await t.throwsAsync(DataDirLock.acquire(dir, 'manager'))
  t.is((err as { code?: string }).code, 'ERR_DATA_DIR_LOCKED')
  t.true(err?.message.includes(`pid ${String(other.child.pid)}`))
})

test('a lock of a dead process, of an earlier boot, or that is no lock is taken over and logged; one of another host is not', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, LOCK_FILE)
  const stale = [lockText({ pid: await deadPid() }), lockText({ pid: process.ppid, bootId: 'an-earlier-boot' }), 'garbage\n']
  for (const text of stale) {
    await writeFile(file, text)
    const { logger, lines } = recordingLogger()
    const lock = await DataDirLock.acquire(dir, 'storage node', logger)
    t.is(JSON.parse(await readFile(file, 'utf8')).pid, process.pid, text)
    t.true(lines.some((l) => l.includes('stale data dir lock')), text)
    await lock.release()
  }
  await writeFile(file, lockText({ pid: await deadPid(), host: 'another-host' }))
  const err = await t.throwsAsync(DataDirLock.acquire(dir, 'storage node'))
  t.is((err as { code?: string }).code, 'ERR_DATA_DIR_LOCKED')
  t.true(err?.message.includes('another-host'))
})

test('of many processes racing for a stale lock, exactly one takes it', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, LOCK_FILE), lockText({ pid: await deadPid() }))
  const said = await Promise.all(Array.from({ length: 6 }, async () => await locker(t, dir).said))
  t.deepEqual(said.filter((s) => s === 'held').length, 1, said.join(' '))
  t.true(said.every((s) => s === 'held' || s === 'ERR_DATA_DIR_LOCKED'), said.join(' '))
})

test('a release never removes a lock another process took over', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, LOCK_FILE)
  const lock = await DataDirLock.acquire(dir, 'storage node')
  const theirs = lockText({ pid: process.ppid, nonce: 'theirs' })
  await writeFile(file, theirs)
  await lock.release()
  t.is(await readFile(file, 'utf8'), theirs)
})

test('a data dir that cannot be made is ERR_DATA_DIR_UNUSABLE, with the reason', async (t) => {
  const dir = await tempDir(t)
  await writeFile(join(dir, 'a-file'), '')
  const err = await t.throwsAsync(DataDirLock.acquire(join(dir, 'a-file', 'data'), 'manager'))
  t.is((err as { code?: string }).code, 'ERR_DATA_DIR_UNUSABLE')
  t.regex(err?.message ?? '', /ENOTDIR|EEXIST/)
})

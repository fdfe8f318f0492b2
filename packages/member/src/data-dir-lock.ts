import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { open, readFile, realpath, stat, unlink } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { CodedError, mkdirDurable, StartErrorCode, writeFileAtomic } from '@mirrorcast/wire'

/** The lock's name in a data dir (PostgreSQL's postmaster.pid, in short). */
export const LOCK_FILE = 'mirrorcast.lock'

/** What a lock file says of the process that holds it. */
export interface LockHolder {
  pid: number
  host: string
  /** The kernel's boot id when it was taken: a pid of an earlier boot names no live process. */
  bootId: string
  startedAt: string
  role: string
  /** Tells two locks of one pid apart, so that a release or a take-over never removes another's lock. */
  nonce: string
}

export class DataDirLockedError extends CodedError {
  declare readonly code: typeof StartErrorCode.DATA_DIR_LOCKED

  constructor (readonly dir: string, readonly lockFile: string, readonly holder: LockHolder) {
    super(StartErrorCode.DATA_DIR_LOCKED, `data dir ${dir} is in use by a ${holder.role}, pid ${holder.pid} on ${holder.host} since ${holder.startedAt}: ` +
      `stop that process first (if pid ${holder.pid} is no mirrorcast process, remove ${lockFile})`)
  }
}

export class DataDirUnusableError extends CodedError {
  declare readonly code: typeof StartErrorCode.DATA_DIR_UNUSABLE

  constructor (readonly dir: string, cause: unknown) {
    super(StartErrorCode.DATA_DIR_UNUSABLE, `data dir ${dir} cannot be locked: ${(cause as Error).message}`, { cause })
  }
}

// Locks this process holds, by file: a second member on one dir inside one process is refused too.
const heldHere = new Map<string, LockHolder>()
// 10 s: a take-over mutex older than this was left by a process that died while it broke a stale lock
const BREAK_STALE_MS = 10_000
// 20: tries to take the lock while others race for it (each try pauses a little)
const ATTEMPTS = 20

/**
 * An exclusive lock on a data dir, taken before anything in the dir is opened
 * and held until close. Node has no flock, so it is done the PostgreSQL way: a
 * file naming the holder, created only if absent. It is written whole to a temp
 * file, fsynced, then hard-linked into place: link() fails if the name exists,
 * so two processes can never both create it, and no reader sees half a lock.
 * A lock whose holder is dead (no such pid, or a pid of an earlier boot) is
 * stale and taken over, logged.
 */
export class DataDirLock {
  private held = true

  private constructor (readonly dir: string, readonly file: string, private readonly content: string) {}

  static async acquire (dir: string, role: string, logger: Logger = silentLogger()): Promise<DataDirLock> {
    // The real path: one dir reached through a symlink is still one dir to this process's own locks.
    const abs = await prepare(resolve(dir))
    const file = join(abs, LOCK_FILE)
    const mine = heldHere.get(file)
    if (mine !== undefined) throw new DataDirLockedError(abs, file, mine)
    const me = ownHolder(role)
    const content = JSON.stringify(me) + '\n'
    for (let i = 0; i < ATTEMPTS; i++) {
      if (await tryCreate(abs, file, content)) {
        heldHere.set(file, me)
        return new DataDirLock(abs, file, content)
      }
      const found = await readLock(file)
      if (found === undefined) continue
      if (found.holder !== undefined && isLive(found.holder, file)) throw new DataDirLockedError(abs, file, found.holder)
      await breakStale(file, found.text, logger)
      await sleep(10 + Math.random() * 40)
    }
    throw new DataDirUnusableError(abs, new Error(`${file} kept changing while ${ATTEMPTS} tries took it`))
  }

  /** Removes the lock file if it is still this lock (never one another process took over). */
  async release (): Promise<void> {
    if (!this.held) return
    this.held = false
    heldHere.delete(this.file)
    const now = await readFile(this.file, 'utf8').catch(() => undefined)
    if (now === this.content) await unlink(this.file).catch(() => {})
  }
}

/** Makes the dir if it is missing, durably (the state files written in it later go with it); its real path. */
async function prepare (dir: string): Promise<string> {
  try {
    await mkdirDurable(dir)
    return await realpath(dir)
  } catch (err) {
    throw new DataDirUnusableError(dir, err)
  }
}

function ownHolder (role: string): LockHolder {
  return { pid: process.pid, host: hostname(), bootId: kernelBootId(), startedAt: new Date().toISOString(), role, nonce: randomBytes(8).toString('hex') }
}

/** Linux's id of this boot; elsewhere none, and a lock is judged by its pid only. */
function kernelBootId (): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return ''
  }
}

/** Writes the lock whole under a temp name, then links it into place; false if a lock exists. */
async function tryCreate (dir: string, file: string, content: string): Promise<boolean> {
  try {
    await writeFileAtomic(file, content, { exclusive: true })
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw new DataDirUnusableError(dir, err)
  }
}

/** The lock as found: its text, and its holder unless the text is not a lock; undefined if it is gone. */
async function readLock (file: string): Promise<{ text: string, holder: LockHolder | undefined } | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  return { text, holder: parseHolder(text) }
}

function parseHolder (text: string): LockHolder | undefined {
  try {
    const h = JSON.parse(text) as Partial<LockHolder>
    if (!Number.isSafeInteger(h.pid) || typeof h.host !== 'string' || typeof h.bootId !== 'string') return undefined
    return { pid: h.pid as number, host: h.host, bootId: h.bootId, startedAt: String(h.startedAt), role: String(h.role), nonce: String(h.nonce) }
  } catch {
    return undefined
  }
}

/** Whether the holder may still run: a process of another host cannot be checked, so it counts as live. */
function isLive (h: LockHolder, file: string): boolean {
  if (h.host !== hostname()) return true
  const boot = kernelBootId()
  if (h.bootId !== '' && boot !== '' && h.bootId !== boot) return false
  // Our own pid, but not a lock of this process: an earlier life of a container whose pid was the same.
  if (h.pid === process.pid) return heldHere.has(file)
  try {
    process.kill(h.pid, 0)
    return true
  } catch (err) {
    // EPERM: the process exists, under another user
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Removes a stale lock so the next try can create one. Only one process breaks
 * at a time (a mutex file created with O_EXCL), and it removes the lock only if
 * it is still the stale one it read: a process that took the lock meanwhile
 * keeps it, and whoever then creates the lock first wins.
 */
async function breakStale (file: string, staleText: string, logger: Logger): Promise<void> {
  const mutex = `${file}.break`
  let fh
  try {
    fh = await open(mutex, 'wx')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    await clearDeadMutex(mutex, logger)
    return
  }
  try {
    const now = await readFile(file, 'utf8').catch(() => undefined)
    if (now !== staleText) return
    await unlink(file)
    logger.warn('took over a stale data dir lock: its holder is not running', { lockFile: file, holder: parseHolder(staleText) ?? staleText.slice(0, 200) })
  } finally {
    await fh.close()
    await unlink(mutex).catch(() => {})
  }
}

async function clearDeadMutex (mutex: string, logger: Logger): Promise<void> {
  const info = await stat(mutex).catch(() => undefined)
  if (info === undefined || Date.now() - info.mtimeMs < BREAK_STALE_MS) return
  logger.warn('removed a take-over mutex left by a process that died while taking a stale lock', { file: mutex })
  await unlink(mutex).catch(() => {})
}

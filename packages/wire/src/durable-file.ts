import { randomBytes } from 'node:crypto'
import { link, mkdir, open, rename, unlink } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'

/*
 * Small state files (member id, cluster key, repair journal, data dir lock)
 * and the writes under them. Here, in the bottom package, because the key file
 * is read and written here already and every package that keeps state on disk
 * depends on this one.
 */

/** The positional write of a file handle, as node:fs/promises has it; tests put short writes in its place. */
export interface PositionalWriter {
  write: (buffer: Uint8Array, offset: number, length: number, position: number) => Promise<{ bytesWritten: number }>
}

/** The gathering write of a file handle, for a body's trailer and footer in one call. */
export interface GatheringWriter extends PositionalWriter {
  writev: (buffers: Uint8Array[], position: number) => Promise<{ bytesWritten: number }>
}

/**
 * Writes all of `data` at `position`. write(2) may write fewer bytes than asked
 * (a signal, a file system near full, a network file system), and the promise
 * API reports that only in `bytesWritten`: the rest is written from where it
 * stopped.
 */
export async function writeAll (fh: PositionalWriter, data: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, position + done)
    // A write that makes no progress would loop for ever: fail like the I/O error it is.
    if (bytesWritten <= 0) throw Object.assign(new Error(`write made no progress at byte ${position + done}`), { code: 'EIO', syscall: 'write' })
    done += bytesWritten
  }
}

/** writev() of `buffers` at `position`, finishing a short one with writeAll(). */
export async function writevAll (fh: GatheringWriter, buffers: Uint8Array[], position: number): Promise<void> {
  const total = buffers.reduce((n, b) => n + b.length, 0)
  const { bytesWritten } = await fh.writev(buffers, position)
  if (bytesWritten < total) await writeAll(fh, Buffer.concat(buffers).subarray(bytesWritten), position + bytesWritten)
}

/** fsyncs a directory, which makes the names created, renamed or removed in it durable. */
export async function fsyncDir (dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/**
 * mkdir -p whose result survives a crash: each directory it created is made
 * durable in its parent, so a file written below it later is not lost with it.
 */
export async function mkdirDurable (dir: string): Promise<void> {
  const abs = resolve(dir)
  const first = await mkdir(abs, { recursive: true })
  if (first === undefined) return
  for (let d = abs; ; d = dirname(d)) {
    await fsyncDir(dirname(d))
    if (d === first || dirname(d) === d) return
  }
}

export interface AtomicWriteOptions {
  /** Mode of the file (default 0o644, less the umask). */
  mode?: number
  /** Refuse (EEXIST) rather than replace an existing file: hard link instead of rename. */
  exclusive?: boolean
}

/** The file-system calls of writeFileAtomic(); tests put failures in their place. */
export interface AtomicWriteFs {
  open: typeof open
  rename: typeof rename
  link: typeof link
  unlink: typeof unlink
  fsyncDir: typeof fsyncDir
}

const NODE_FS: AtomicWriteFs = { open, rename, link, unlink, fsyncDir }

/**
 * Replaces (or, exclusive, creates) a small file so that a crash at any point
 * leaves the old content or the new, never an empty or half file: written
 * whole under a temp name in the same directory, fsynced, renamed (or linked)
 * over the target, then the directory fsynced so the new name is durable
 * before this resolves. A failure removes the temp file.
 */
export async function writeFileAtomic (path: string, data: string | Uint8Array, options: AtomicWriteOptions = {}, fs: AtomicWriteFs = NODE_FS): Promise<void> {
  const dir = dirname(path)
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  let tmpExists = false
  try {
    const fh = await fs.open(tmp, 'wx', options.mode ?? 0o644)
    tmpExists = true
    try {
      await writeAll(fh, typeof data === 'string' ? Buffer.from(data, 'utf8') : data, 0)
      await fh.sync()
    } finally {
      await fh.close()
    }
    if (options.exclusive === true) {
      await fs.link(tmp, path)
    } else {
      await fs.rename(tmp, path)
      tmpExists = false
    }
  } finally {
    if (tmpExists) await fs.unlink(tmp).catch(() => {})
  }
  await fs.fsyncDir(dir)
}

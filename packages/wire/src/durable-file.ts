import { open } from 'node:fs/promises'

/*
 * Writes that must land whole. Here, in the bottom package, because every
 * package that keeps state on disk depends on this one.
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

import test, { type ExecutionContext } from 'ava'
import { link, mkdtemp, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fsyncDir, mkdirDurable, writeAll, writeFileAtomic, writevAll, type AtomicWriteFs, type GatheringWriter } from '../src/index.js'

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'wire-durable-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

/** The real calls, each recorded in order; `fail` names one to make fail with ENOSPC. */
function recordingFs (calls: string[], fail?: 'write' | 'sync' | 'rename' | 'link'): AtomicWriteFs {
  const enospc = (): Error => Object.assign(new Error('no space left on device'), { code: 'ENOSPC' })
  return {
    open: (async (path: string, flags: string, mode: number) => {
      calls.push('open')
      const fh = await open(path, flags, mode)
      if (fail === 'write') fh.write = async () => { throw enospc() }
      if (fail === 'sync') fh.sync = async () => { throw enospc() }
      return fh
    }) as AtomicWriteFs['open'],
    rename: async (from, to) => { calls.push('rename'); if (fail === 'rename') throw enospc(); await rename(from, to) },
    link: async (from, to) => { calls.push('link'); if (fail === 'link') throw enospc(); await link(from, to) },
    unlink: async (path) => { calls.push('unlink'); await unlink(path) },
    fsyncDir: async (dir) => { calls.push(`fsyncDir ${dir}`); await fsyncDir(dir) }
  }
}

test('writeFileAtomic replaces the content, leaves no temp file and fsyncs the directory after the rename', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'state')
  await writeFile(file, 'old\n')
  const calls: string[] = []
  await writeFileAtomic(file, 'new\n', {}, recordingFs(calls))
  t.is(await readFile(file, 'utf8'), 'new\n')
  t.deepEqual(await readdir(dir), ['state'])
  t.deepEqual(calls, ['open', 'rename', `fsyncDir ${dir}`])
})

for (const step of ['write', 'sync', 'rename'] as const) {
  test(`a failed ${step} leaves the old content whole and no temp file`, async (t) => {
    const dir = await tempDir(t)
    const file = join(dir, 'state')
    await writeFile(file, 'old content\n')
    const err = await t.throwsAsync(writeFileAtomic(file, 'new content that never lands\n', {}, recordingFs([], step)))
    t.is((err as { code?: string }).code, 'ENOSPC')
    t.is(await readFile(file, 'utf8'), 'old content\n')
    t.deepEqual(await readdir(dir), ['state'])
  })
}

test('a failed write of a new file leaves no file at all, not an empty one', async (t) => {
  const dir = await tempDir(t)
  await t.throwsAsync(writeFileAtomic(join(dir, 'member-id'), 'node-1\n', { exclusive: true }, recordingFs([], 'write')))
  t.deepEqual(await readdir(dir), [])
})

test('exclusive: creates with the mode asked, never replaces an existing file (EEXIST), and fsyncs the directory', async (t) => {
  const dir = await tempDir(t)
  const file = join(dir, 'cluster.key')
  const calls: string[] = []
  await writeFileAtomic(file, 'first\n', { mode: 0o600, exclusive: true }, recordingFs(calls))
  t.deepEqual(calls, ['open', 'link', 'unlink', `fsyncDir ${dir}`])
  t.is((await stat(file)).mode & 0o777, 0o600)
  const err = await t.throwsAsync(writeFileAtomic(file, 'second\n', { mode: 0o600, exclusive: true }))
  t.is((err as { code?: string }).code, 'EEXIST')
  t.is(await readFile(file, 'utf8'), 'first\n')
  t.deepEqual(await readdir(dir), ['cluster.key'])
})

test('mkdirDurable creates every missing level and is a no-op on an existing dir', async (t) => {
  const dir = await tempDir(t)
  const deep = join(dir, 'a', 'b', 'c')
  await mkdirDurable(deep)
  t.true((await stat(deep)).isDirectory())
  await mkdirDurable(deep)
  t.deepEqual(await readdir(join(dir, 'a')), ['b'])
})

/** A file handle that writes at most `max` bytes a call into `out`, as a short write(2) would. */
function shortWriter (out: Buffer, max: number): GatheringWriter & { calls: number } {
  const w = {
    calls: 0,
    write: async (buffer: Uint8Array, offset: number, length: number, position: number) => {
      w.calls++
      const n = Math.min(max, length)
      out.set(buffer.subarray(offset, offset + n), position)
      return { bytesWritten: n }
    },
    writev: async (buffers: Uint8Array[], position: number) => {
      w.calls++
      const first = buffers[0] ?? new Uint8Array(0)
      const n = Math.min(max, first.length)
      out.set(first.subarray(0, n), position)
      return { bytesWritten: n }
    }
  }
  return w
}

test('writeAll goes on after short writes until every byte is at its place', async (t) => {
  const data = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz')
  const out = Buffer.alloc(100, '.')
  const fh = shortWriter(out, 5)
  await writeAll(fh, data, 10)
  t.is(out.subarray(10, 10 + data.length).toString(), data.toString())
  t.is(out.subarray(0, 10).toString(), '.'.repeat(10))
  t.is(out.subarray(10 + data.length).toString(), '.'.repeat(100 - 10 - data.length))
  t.is(fh.calls, Math.ceil(data.length / 5))
})

test('writevAll finishes a short gathering write of several buffers', async (t) => {
  const parts = [Buffer.from('digests-'), Buffer.from('and-the-footer')]
  const out = Buffer.alloc(40, '.')
  await writevAll(shortWriter(out, 3), parts, 4)
  t.is(out.toString(), '....digests-and-the-footer' + '.'.repeat(14))
})

test('a write that makes no progress fails with EIO instead of looping', async (t) => {
  const stuck = { write: async () => ({ bytesWritten: 0 }) }
  const err = await t.throwsAsync(writeAll(stuck, Buffer.from('x'), 0))
  t.is((err as { code?: string }).code, 'EIO')
})

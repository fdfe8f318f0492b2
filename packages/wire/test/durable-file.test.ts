import test from 'ava'
import { writeAll, writevAll, type GatheringWriter } from '../src/index.js'

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

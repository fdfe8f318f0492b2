import test from 'ava'
import { httpStatusFor } from '../src/index.js'
import { parseRange } from '@mirrorcast/wire'

// What a client asking for `Range: <header>` of a 1,000-byte file gets: the bytes
// [offset, offset + length), the whole file (no Range), or 416.
const SIZE = 1000

test('a range is served as asked, clipped to the file: first, last and middle bytes, open ends, suffixes', (t) => {
  t.is(parseRange(undefined, SIZE), undefined, 'no Range: the whole file, 200')
  t.deepEqual(parseRange('bytes=0-0', SIZE), { offset: 0, length: 1 }, 'the first byte')
  t.deepEqual(parseRange('bytes=999-999', SIZE), { offset: 999, length: 1 }, 'the last byte')
  t.deepEqual(parseRange('bytes=100-199', SIZE), { offset: 100, length: 100 })
  t.deepEqual(parseRange('bytes=500-', SIZE), { offset: 500, length: 500 }, 'to the end')
  t.deepEqual(parseRange('bytes=0-', SIZE), { offset: 0, length: SIZE })
  t.deepEqual(parseRange('bytes=-1', SIZE), { offset: 999, length: 1 }, 'the last byte, as a suffix')
  t.deepEqual(parseRange('bytes=-300', SIZE), { offset: 700, length: 300 })
  t.deepEqual(parseRange('bytes=-5000', SIZE), { offset: 0, length: SIZE }, 'a suffix longer than the file is the whole file')
  t.deepEqual(parseRange('bytes=900-5000', SIZE), { offset: 900, length: 100 }, 'an end past the file is clipped')
  t.deepEqual(parseRange('bytes=0-99999999999999999999', SIZE), { offset: 0, length: SIZE }, 'even one past any integer')
  t.deepEqual(parseRange('  bytes=1-2  ', SIZE), { offset: 1, length: 2 }, 'surrounding blanks are ignored')
})

test('a range that cannot be served is refused with 416 ERR_RANGE_NOT_SATISFIABLE', (t) => {
  const refused = (header: string, size = SIZE): void => {
    const err = t.throws(() => parseRange(header, size), undefined, header) as (Error & { code?: string }) | undefined
    t.is(err?.code, 'ERR_RANGE_NOT_SATISFIABLE', header)
    t.is(httpStatusFor(err?.code), 416, header)
  }
  refused('bytes=1000-', SIZE) // starts at the end
  refused('bytes=1000-1000')
  refused('bytes=5000-6000') // wholly past the end
  refused('bytes=200-100') // ends before it starts
  refused('bytes=-0') // an empty suffix
  refused('bytes=-') // neither end
  refused('bytes=0-0', 0) // nothing to serve of an empty file
  refused('bytes=-5', 0)
  refused('bytes=99999999999999999999-') // a start past any integer
  refused('bytes=0-1,5-6') // several ranges: the manager serves one a request (README, HTTP API)
  refused('bytes=a-b')
  refused('bytes=1.5-2')
  refused('bytes 0-1')
  refused('0-1')
  const long = t.throws(() => parseRange('bytes=x' + 'y'.repeat(5000), SIZE))
  t.true((long?.message.length ?? Infinity) < 200, 'the refusal quotes a bounded part of the header')
})

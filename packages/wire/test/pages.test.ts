import test from 'ava'
import { DEFAULT_MAX_FRAME_BYTES, encodedBytes, encodeMessage, MAX_LIST_ENTRIES, MAX_PAGE_BYTES, MAX_PATH_LENGTH, PageBudget, pageFrom, type FileEntry } from '../src/index.js'

// The longest path the rules allow: 4,096 bytes.
const entry = (i: number): FileEntry => ({
  type: 'file',
  path: `/${String(i).padStart(6, '0')}`.padEnd(MAX_PATH_LENGTH, 'x'),
  fileId: i.toString(16).padStart(32, '0'),
  size: i,
  sha256: 'cd'.repeat(32),
  version: 1,
  mtime: 1_700_000_000_000 + i,
  replicas: [{ node: 'node-1', center: 'east', slot: 1 }, { node: 'node-2', center: 'west', slot: 1 }]
})

test('a page stops before its bytes pass the budget: a whole listing of the longest paths goes out in frames that fit, nothing lost or repeated', (t) => {
  const all = Array.from({ length: MAX_LIST_ENTRIES }, (_, i) => entry(i))
  t.true(encodedBytes(all) > DEFAULT_MAX_FRAME_BYTES, 'one page by count alone would not fit a frame')
  const seen: FileEntry[] = []
  let pages = 0
  for (let from = 0, more = true; more; pages++) {
    const page = pageFrom(all, from)
    t.true(encodedBytes(page.items) <= MAX_PAGE_BYTES)
    const [head] = encodeMessage(Buffer.alloc(32), Buffer.from('test'), { t: 'dir.list.ok', from: 'dir-1', seq: 1, body: { entries: page.items, more: page.more } }, true)
    t.true(head.length <= DEFAULT_MAX_FRAME_BYTES, `page ${pages}: a frame of ${head.length} bytes`)
    seen.push(...page.items)
    from += page.items.length
    more = page.more
  }
  t.true(pages >= 10, `${pages} pages`)
  t.deepEqual(seen.map((e) => e.path), all.map((e) => e.path))
})

test('a page holds at most its count, and always its first item whatever its size', (t) => {
  const small = Array.from({ length: 10 }, (_, i) => i)
  t.deepEqual(pageFrom(small, 2, new PageBudget({ maxItems: 3 })), { items: [2, 3, 4], more: true })
  t.deepEqual(pageFrom(small, 8, new PageBudget({ maxItems: 3 })), { items: [8, 9], more: false })
  t.deepEqual(pageFrom(small, 10), { items: [], more: false })
  const big = ['x'.repeat(100), 'y', 'z']
  t.deepEqual(pageFrom(big, 0, new PageBudget({ maxBytes: 10 })), { items: [big[0]], more: true }, 'a reader paging through always moves on')
  const budget = new PageBudget({ maxBytes: 10 })
  t.true(budget.admit('abc'))
  t.true(budget.admit('def'))
  t.false(budget.admit('ghijkl'), '4 + 4 + 7 bytes pass 10')
  t.deepEqual([budget.count, budget.size], [2, 8])
})

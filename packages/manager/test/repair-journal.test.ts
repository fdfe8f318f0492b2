import test from 'ava'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RepairJournal, type RepairOp } from '../src/index.js'

const source = { node: 'node-east-1', center: 'east', slot: 1 }
const put = (n: number): RepairOp => ({ op: 'put', fileId: n.toString(16).padStart(32, '0'), size: n, sha256: 'a'.repeat(64), source })

test('the journal on disk: appends survive a restart, done() rewrites the file whole and leaves no temp file', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'mc-journal-'))
  t.teardown(async () => { await rm(base, { recursive: true, force: true }) })
  const dir = join(base, 'repair-journal')
  const first = new RepairJournal(dir)
  await first.open()
  t.teardown(async () => { await first.close() })
  for (const n of [1, 2, 3]) await first.append('node-west-1', put(n))
  await first.append('node-west-1', { op: 'delete', fileId: put(4).fileId })
  await first.close()

  const second = new RepairJournal(dir)
  await second.open()
  t.teardown(async () => { await second.close() })
  t.deepEqual(await second.pending('node-west-1'), [put(1), put(2), put(3), { op: 'delete', fileId: put(4).fileId }])
  await second.done('node-west-1', 2)
  await second.append('node-west-1', put(5))
  t.deepEqual(await readdir(dir), ['node-west-1.jsonl'])
  const lines = (await readFile(join(dir, 'node-west-1.jsonl'), 'utf8')).trimEnd().split('\n').map((l) => JSON.parse(l) as RepairOp)
  t.deepEqual(lines, [put(3), { op: 'delete', fileId: put(4).fileId }, put(5)])
  await second.close()

  const third = new RepairJournal(dir)
  await third.open()
  t.teardown(async () => { await third.close() })
  t.deepEqual(await third.pending('node-west-1'), lines)
})

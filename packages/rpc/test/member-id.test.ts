import test, { type ExecutionContext } from 'ava'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { StartErrorCode } from '@mirrorcast/wire'
import { loadOrCreateMemberId, MEMBER_ID_FILE } from '../src/index.js'

async function tempDir (t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rpc-member-id-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

test('a member id is created once, whole, and read back on every later start', async (t) => {
  const dir = join(await tempDir(t), 'data')
  const id = await loadOrCreateMemberId(dir, 'node')
  t.regex(id, /^node-[0-9a-f]{12}$/)
  t.is(await readFile(join(dir, MEMBER_ID_FILE), 'utf8'), id + '\n')
  t.is(await loadOrCreateMemberId(dir, 'node'), id)
  t.deepEqual(await readdir(dir), [MEMBER_ID_FILE])
})

for (const [what, text] of [['an empty', ''], ['a blank', ' \n'], ['a damaged', 'node-\u0000\u0000\u0000\n']] as const) {
  test(`${what} member-id file stops the start with ERR_MEMBER_ID_INVALID and what to do; it is left as found`, async (t) => {
    const dir = await tempDir(t)
    const file = join(dir, MEMBER_ID_FILE)
    await writeFile(file, text)
    const err = await t.throwsAsync(loadOrCreateMemberId(dir, 'dir'))
    t.is((err as { code?: string }).code, StartErrorCode.MEMBER_ID_INVALID)
    t.true(err?.message.includes(file), 'names the file')
    t.regex(err?.message ?? '', /put this member's id back in it .* or remove it to start under a new id/)
    t.is(await readFile(file, 'utf8'), text)
  })
}

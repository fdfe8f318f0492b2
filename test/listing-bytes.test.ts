import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import { deepDir, longName, until } from '@mirrorcast/testkit'
import { pickSlot } from '@mirrorcast/topology'
import { MAX_PAGE_BYTES } from '@mirrorcast/wire'
import { clientOf, http, json, startUp, tempDir, type ListJson } from './helpers/cluster.js'
import { holdClusterSlot } from './helpers/slots.js'

const exec = promisify(execFile)

// 3,000 entries of 4,000-byte paths (the rules allow 4,096, names of 255) are
// some 12 MiB of directory entries, more than the 8 MiB frame: their listing,
// the subtree a rename carries to another partition and the files a recursive
// remove drops all travel in pages of at most MAX_PAGE_BYTES, and no member is
// failed over for it.
const FILES = 3000
// entries made at once
const CONCURRENCY = 16
// Two entries in five are files (1,200: their removed list alone is above a page), the others
// directories, which cost no body on the storage nodes: the test runs in half the time.
const isFile = (i: number): boolean => i % 5 < 2

interface ClusterJson { nodes: Array<{ id: string, role: string, status: string, failover?: unknown, files: number }> }

async function members (url: string): Promise<ClusterJson['nodes']> {
  return json<ClusterJson>(await http(url, 'GET', '/cluster')).nodes
}

/** Every entry of a directory by raw HTTP pages (`after` = the last name), and how many pages it took. */
async function listPages (url: string, path: string): Promise<{ names: string[], pages: number }> {
  const names: string[] = []
  let pages = 0
  for (let more = true; more; pages++) {
    const after = names.length === 0 ? '' : `?after=${encodeURIComponent(names[names.length - 1] as string)}`
    const page = json<ListJson>(await http(url, 'GET', `/files${path}/${after}`))
    names.push(...page.entries.map((e) => e.name))
    more = page.more
  }
  return { names, pages }
}

test('a directory of 3,000 entries with 4,000-byte paths is listed, renamed to another partition and removed through the HTTP API and the CLI, every entry once, nobody failed over', async (t) => {
  // 3,000 entries removed in one change hold both directory servers of a partition for some
  // 150 ms each on an idle core; with other clusters on the same two cores, several times that
  await holdClusterSlot(t, { exclusive: true })
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--dirs', '2'])
  const partitions = [1, 2]
  const tops = Array.from({ length: 50 }, (_, i) => `top${i}`)
  const a = tops[0] as string
  const b = tops.find((n) => pickSlot(n, partitions) !== pickSlot(a, partitions)) as string
  const from = deepDir(a)
  const to = `/${b}` + from.slice(a.length + 1)
  t.is(Buffer.byteLength(`${from}/${longName(0)}`), 4000)
  const names = Array.from({ length: FILES }, (_, i) => longName(i))

  let next = 0
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    while (next < FILES) {
      const i = next++
      const made = isFile(i)
        ? await http(c.url, 'PUT', `/files${from}/${names[i] as string}`, Buffer.from(String(i)))
        : await http(c.url, 'POST', `/files${from}/${names[i] as string}/?mkdir&parents`)
      if (made.status !== 201) throw new Error(`entry ${i}: ${made.status} ${made.body.toString().slice(0, 300)}`)
    }
  }))

  const listed = await listPages(c.url, from)
  t.deepEqual(listed.names, names, 'every entry once, in order')
  t.true(listed.pages >= 3, `${listed.pages} pages of at most ${MAX_PAGE_BYTES} bytes of entries`)
  const all: string[] = []
  for await (const e of clientOf(c.url).listAll(from)) all.push(e.name)
  t.deepEqual(all, names, 'the client pages through on its own')
  const ls = await exec(process.execPath, [CLI_BIN, '--url', c.url, 'ls', '--json', from], { maxBuffer: 64 * 1024 * 1024 })
  t.deepEqual((JSON.parse(ls.stdout) as Array<{ name: string }>).map((e) => e.name), names, 'and so does the CLI')

  // /a and /b live in different partitions: the whole subtree moves between them.
  const moved = await http(c.url, 'POST', `/files/${a}?move-to=/${b}`)
  t.is(moved.status, 200, moved.body.toString().slice(0, 300))
  t.deepEqual((await listPages(c.url, to)).names, names, 'every entry once, in order, at its new place')
  t.is((await http(c.url, 'GET', `/files/${a}?stat`)).status, 404)
  const body = await http(c.url, 'GET', `/files${to}/${names[FILES - 4] as string}`)
  t.is(body.body.toString(), String(FILES - 4), 'a file moved with its body')

  const removed = await http(c.url, 'DELETE', `/files/${b}?recursive`)
  t.is(removed.status, 200, removed.body.toString().slice(0, 300))
  t.is(json<{ removed: number }>(removed).removed, names.filter((_, i) => isFile(i)).length, 'every removed file is known, so every body goes')
  t.is((await http(c.url, 'GET', `/files/${b}?stat`)).status, 404)
  await until(async () => (await members(c.url)).filter((m) => m.role === 'storage').every((m) => m.files === 0), { what: 'every body to be deleted', timeoutMs: 30_000 })

  for (const m of await members(c.url)) {
    t.is(m.status, 'healthy', `${m.id}: ${JSON.stringify(m.failover)}`)
    t.is(m.failover, null)
  }
})

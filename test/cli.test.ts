import test from 'ava'
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import { until } from '@mirrorcast/testkit'
import { clientOf, startUp, tempDir } from './helpers/cluster.js'

const exec = promisify(execFile)

async function cli (url: string, ...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI_BIN, ...args], { env: { ...process.env, MIRRORCAST_URL: url }, maxBuffer: 64 * 1024 * 1024 })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

test('the CLI puts, gets, lists, stats, moves and removes like a file system, and fails with a message', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const local = join(dir, 'in.bin')
  const body = randomBytes(2 * 1024 * 1024 + 7)
  await writeFile(local, body)

  const put = await cli(c.url, 'put', local, '/docs/in.bin', '--json')
  t.is(put.code, 0, put.stderr)
  t.is(JSON.parse(put.stdout).size, body.length)
  t.is((await cli(c.url, 'mkdir', '-p', '/docs/sub/deeper')).code, 0)

  const out = join(dir, 'out.bin')
  t.is((await cli(c.url, 'get', '/docs/in.bin', out)).code, 0)
  t.true((await readFile(out)).equals(body))
  const toStdout = await exec(process.execPath, [CLI_BIN, '--url', c.url, 'get', '/docs/in.bin', '-'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })
  t.true(toStdout.stdout.equals(body))

  const ls = await cli(c.url, 'ls', '/docs')
  t.regex(ls.stdout, /in\.bin/)
  t.regex(ls.stdout, /sub\//)
  const stat = JSON.parse((await cli(c.url, 'stat', '/docs/in.bin')).stdout) as { replicas: unknown[], sha256: string }
  t.is(stat.replicas.length, 2)

  t.is((await cli(c.url, 'mv', '/docs/in.bin', '/docs/sub/moved.bin')).code, 0)
  t.deepEqual((JSON.parse((await cli(c.url, 'ls', '/docs/sub', '--json')).stdout) as Array<{ name: string }>).map((e) => e.name), ['deeper', 'moved.bin'])

  const notEmpty = await cli(c.url, 'rm', '/docs')
  t.is(notEmpty.code, 1)
  t.regex(notEmpty.stderr, /^mirrorcast: .*not empty.*409 ERR_DIR_NOT_EMPTY/m)
  t.is((await cli(c.url, 'rm', '-r', '/docs')).code, 0)
  const gone = await cli(c.url, 'get', '/docs/sub/moved.bin', join(dir, 'gone.bin'))
  t.is(gone.code, 1)
  t.regex(gone.stderr, /404/)
  t.false((await readdir(dir)).some((f) => f.startsWith('gone.bin')), 'a failed download leaves no file behind')

  const missing = await cli(c.url, 'put', join(dir, 'no-such-file'), '/x')
  t.is(missing.code, 1)
  t.regex(missing.stderr, /cannot read/)
  const unreachable = await cli('http://127.0.0.1:1', 'ls')
  t.is(unreachable.code, 1)
  t.regex(unreachable.stderr, /cannot reach the manager/)
})

test('mirrorcast search asks the backup center first, then the primary; failover, failback and status show each twin pair', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const local = join(dir, 'f.bin')
  await writeFile(local, randomBytes(100_000))
  const entry = JSON.parse((await cli(c.url, 'put', local, '/s/f.bin', '--json')).stdout) as { id: string, replicas: Array<{ node: string, center: string, slot: number }> }
  const [home, twin] = entry.replicas

  const search = await cli(c.url, 'search', '/s/f.bin')
  t.is(search.code, 0, search.stderr)
  const lines = search.stdout.split('\n')
  t.is(lines[0], `file ${entry.id}`)
  t.regex(lines[1] ?? '', /^center west:/, 'the backup center is asked first')
  t.true((lines[2] ?? '').includes(twin?.node ?? '?'))
  t.regex(lines[3] ?? '', /^center east:/, 'then the primary center')
  t.true((lines[4] ?? '').includes(home?.node ?? '?'))
  t.regex(lines[2] ?? '', /\d+(\.\d+)? ms$/, 'each holder with its reply time')
  const scoped = JSON.parse((await cli(c.url, 'search', entry.id, '--center', 'east', '--json')).stdout) as { rounds: Array<{ center: string, holders: Array<{ id: string }> }> }
  t.deepEqual(scoped.rounds.map((r) => [r.center, r.holders.map((h) => h.id)]), [['east', [home?.node]]])

  const out = await cli(c.url, 'failover', home?.node ?? '')
  t.is(out.stdout.trim(), `${home?.node ?? ''}: failed-over`)
  const status = await cli(c.url, 'status')
  const pairLine = status.stdout.split('\n').find((l) => l.startsWith(`storage ${home?.slot ?? 0} `))
  t.regex(pairLine ?? '', new RegExp(`east/node${home?.slot ?? 0} \\S+ failed-over since \\S+ \\(by hand\\)\\s+west/node${twin?.slot ?? 0} \\S+ healthy`))
  const redundancy = status.stdout.split('\n').slice(status.stdout.split('\n').indexOf('redundancy of the storage pairs (pair anti-entropy):') + 2)
  t.regex(redundancy.find((l) => l.startsWith(`${home?.slot ?? 0} `)) ?? '', /^\d+\s+1 file, 97\.7 KiB\s+0 files, 0 B\s+\d{4}-\d\d-\d\dT\S+/, 'the pair with a node out: its file has one copy, since the failover')
  const back = await cli(c.url, 'failback', home?.node ?? '')
  t.regex(back.stdout, /: (resyncing|healthy)$/m)
  await until(async () => (await clientOf(c.url).cluster()).nodes.every((n) => n.status === 'healthy'), { what: 'the node back' })
  const { discovery, nodes } = await clientOf(c.url).cluster()
  t.deepEqual(discovery, { members: nodes.length + 1, heartbeatMs: 100, maxAnnounceRate: 1000 }, 'the manager hears every member and keeps the default period')
  const round = await cli(c.url, 'reconcile', '--pair', String(home?.slot ?? 0))
  t.is(round.code, 0, round.stderr)
  t.regex(round.stdout, new RegExp(`^${home?.slot ?? 0}\\s+\\d+/\\d+\\s+0 \\(0 B\\)\\s+0 \\(0 B\\)\\s+0\\s+0 \\(0 B\\)`, 'm'), 'a pair in sync: nothing copied, removed or lost')
  const after = await cli(c.url, 'status')
  t.regex(after.stdout, new RegExp(`^${home?.slot ?? 0}\\s+0 files, 0 B\\s+0 files, 0 B\\s+-\\s+\\d{4}-`, 'm'), 'both copies again, with the time of the round')
  const unknown = await cli(c.url, 'failover', 'node-nope')
  t.is(unknown.code, 1)
  t.regex(unknown.stderr, /no member "node-nope"/)
})

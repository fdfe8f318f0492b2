import test from 'ava'
import { execFile } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { http, json, REPO, startUp, tempDir, type FileJson } from './helpers/cluster.js'
import { netnsTest, TestNet } from './helpers/netns.js'
import { cliIn, dropMulticastFrom, fakeTime, startIn, startLanCluster, writeConfig, type CliResult, type LanCluster } from './helpers/lan.js'

const run = promisify(execFile)

interface Report { checks: Array<{ status: string, check: string, subject?: string, message: string }>, summary: { ok: number, warn: number, fail: number } }

/** `mirrorcast diag` on the manager's host, with the manager's config file, as an operator would run it there. */
async function diag (c: LanCluster, ...extra: string[]): Promise<CliResult> {
  return await cliIn(c.net, c.managerHost, ['diag', '--config', c.configs.get('mgr') as string, '--listen', '2', ...extra])
}

/** The report's lines that are not ok. */
function problems (out: string): string[] {
  return out.split('\n').filter((l) => /^(warn|fail)\s/.test(l))
}

test('npm run netdiag -- --data DIR --json on a healthy `up` cluster: every check ok, one JSON document, exit 0', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/probe.bin', Buffer.from('probe')))
  const { stdout } = await run('npm', ['run', '-s', 'netdiag', '--', '--data', dir, '--json', '--listen', '1.5', '--file-id', entry.id], { cwd: REPO })
  const report = JSON.parse(stdout) as Report
  t.deepEqual(report.checks.filter((c) => c.status !== 'ok'), [])
  t.is(report.summary.fail, 0)
  t.is(report.checks.filter((c) => c.check === 'member').length, 7, '4 nodes, 2 directory servers, the manager')
  t.is(report.checks.filter((c) => c.check === 'unicast').length, 7)
  t.regex(report.checks.find((c) => c.check === 'search')?.message ?? '', /multicast search answered by .* \(.* ms\), .* \(.* ms\)/)
})

netnsTest(test, 'netdiag on a healthy LAN cluster: every check ok, exit 0', async (t) => {
  const dir = await tempDir(t)
  const c = await startLanCluster(await TestNet.create(t), dir)
  await writeFile(join(dir, 'f.txt'), 'probe')
  const put = await cliIn(c.net, c.managerHost, ['--url', 'http://127.0.0.1:8700', 'put', join(dir, 'f.txt'), '/f.txt', '--json'])
  const r = await diag(c, '--file-id', (JSON.parse(put.stdout) as FileJson).id)
  t.is(r.code, 0, r.stdout)
  t.deepEqual(problems(r.stdout), [])
  t.regex(r.stdout, /^ok\s+interface\s+10\.1\.0\.100: on eth0: up, carrier, multicast$/m)
  t.regex(r.stdout, /^ok\s+route\s+239\.192\.77\.1: the group's route leaves through eth0$/m)
  t.regex(r.stdout, /^ok\s+listen\s+heard 2 storage node\(s\), 2 directory server\(s\), 1 manager\(s\)/m)
  t.regex(r.stdout, /^ok\s+twins\s+2 twin pair\(s\), every member has its twin in the other center; twin addresses differ only in the subnet part \(east 10\.1\.0\.0\/16 ↔ west 10\.2\.0\.0\/16\)$/m)
  t.regex(r.stdout, /^OK: \d+ ok, 0 warn, 0 fail$/m)
})

netnsTest(test, 'netdiag names multicast dropped between two hosts: the node answers by unicast but is not heard', async (t) => {
  const dir = await tempDir(t)
  const c = await startLanCluster(await TestNet.create(t), dir, { manager: false, directories: false })
  await dropMulticastFrom(c.net, c.managerHost, '10.1.0.1')
  const r = await diag(c)
  t.log(r.stdout)
  t.is(r.code, 1)
  t.regex(r.stdout, /^ok\s+listen\s+heard 1 storage node\(s\)/m)
  const fails = problems(r.stdout).filter((l) => l.startsWith('fail'))
  t.is(fails.length, 1, r.stdout)
  t.regex(fails[0] ?? '', /^fail\s+unicast\s+east\/node1: 10\.1\.0\.1:8701 answers by unicast as east\/node1 \(node-[0-9a-f]+\), but none of its announcements was heard on the group$/)
  t.regex(r.stdout, /→ multicast is blocked or filtered between 10\.1\.0\.1 and this host/)
})

netnsTest(test, 'netdiag names a node with another cluster key by its address', async (t) => {
  const dir = await tempDir(t)
  const c = await startLanCluster(await TestNet.create(t), dir, { manager: false, directories: false })
  const otherKey = join(dir, 'other.key')
  await writeClusterKeyFile(otherKey, generateClusterKey())
  const host = await c.net.addHost('stranger', '10.1.0.9')
  await startIn(c.net, host, ['node', '--config', await writeConfig(join(dir, 'stranger.toml'), { role: 'node', data: join(dir, 'stranger'), 'key-file': otherKey, center: 'east', slot: 9, address: '10.1.0.9', interface: '10.1.0.9', port: 8701, 'dns-sd': false })])
  const r = await diag(c)
  t.log(r.stdout)
  t.is(r.code, 1)
  const fails = problems(r.stdout).filter((l) => l.startsWith('fail'))
  t.is(fails.length, 1, r.stdout)
  t.regex(fails[0] ?? '', /^fail\s+datagrams\s+10\.1\.0\.9: \d+ datagram\(s\) from 10\.1\.0\.9 failed the MAC check: sent with another cluster key$/)
  t.regex(r.stdout, /^ok\s+listen\s+heard 2 storage node\(s\)/m)
})

netnsTest(test, 'netdiag names a twin whose address breaks the subnet rule, with the address it should have', async (t) => {
  const dir = await tempDir(t)
  const c = await startLanCluster(await TestNet.create(t), dir, { manager: false, directories: false, addressOf: (m) => m.name === 'west-n1' ? '10.2.0.7' : undefined })
  const r = await diag(c)
  t.log(r.stdout)
  t.is(r.code, 1)
  const fails = problems(r.stdout).filter((l) => l.startsWith('fail'))
  t.is(fails.length, 1, r.stdout)
  t.regex(fails[0] ?? '', /^fail\s+twins\s+east\/node1 ↔ west\/node1: twins 10\.1\.0\.1 and 10\.2\.0\.7 differ outside the subnet part: by the mapping the twin of 10\.1\.0\.1 is 10\.2\.0\.1$/)
  t.regex(r.stdout, /→ give west\/node1 the address 10\.2\.0\.1/)
})

netnsTest(test, 'netdiag names a node whose clock is off (libfaketime shifts its Date.now by 90 s)', async (t) => {
  const clock = await fakeTime('+90s')
  const dir = await tempDir(t)
  const c = await startLanCluster(await TestNet.create(t), dir, {
    manager: false,
    directories: false,
    env: (m) => m.name === 'west-n1' ? clock : {}
  })
  const r = await diag(c)
  t.log(r.stdout)
  t.is(r.code, 1)
  const fails = problems(r.stdout).filter((l) => l.startsWith('fail'))
  t.is(fails.length, 1, r.stdout)
  t.regex(fails[0] ?? '', /^fail\s+member\s+west\/node1: .* clock \+(89|90)\d{3} ms — its clock is (89\.\d|90(\.\d)?) s ahead: every member drops its datagrams as stale \(limit 30 s\)$/)
  t.regex(r.stdout, /→ synchronise the clock of 10\.2\.0\.1/)
})

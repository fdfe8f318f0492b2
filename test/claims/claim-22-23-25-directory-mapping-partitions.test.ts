import test from 'ava'
import { until } from '@mirrorcast/testkit'
import { http, json, startUp, tempDir, type ListJson } from '../helpers/cluster.js'
import { directoryLocateLog, failoverByHand, killMember, members, readClusterJson, startByHand, statusOf } from '../helpers/failover.js'

// Top-level names that land in partition 1 and in partition 2 of two (rendezvous
// hashing of the name, the same function the manager uses).
const IN_P1 = ['alpha', 'beta', 'gamma']
const IN_P2 = ['a', 'b', 'x']

// Claims 22–23: the directory manager finds the duplicate of a failed directory
// server by the mapping between their addresses, which differ only in the subnet
// portion. Claim 25: several directory servers per center, server k of one center
// twinned with server k of the other, each pair holding its own part.
test('two directory partitions: each pair holds its part, and a failed directory server\'s twin is found by the subnet mapping', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--dirs', '2', '--no-multicast-search', '--no-point-to-point'])
  const cluster = await readClusterJson(dir)
  const dirs = cluster.nodes.filter((n) => n.role === 'directory')
  t.deepEqual(dirs.map((d) => `${d.center}/${d.slot} ${d.address}`).sort(), ['east/1 127.1.1.1', 'east/2 127.1.1.2', 'west/1 127.2.1.1', 'west/2 127.2.1.2'])

  for (const name of [...IN_P1, ...IN_P2]) t.is((await http(c.url, 'POST', `/files/${name}/sub/?mkdir&parents`)).status, 201)
  const entries = async (): Promise<Record<string, number>> => Object.fromEntries((await members(c.url)).filter((m) => m.role === 'directory').map((m) => [`${m.center}/${m.slot}`, (m as unknown as { files: number }).files]))
  // Counts come with heartbeats: the followers' may lag the leaders' by one.
  await until(async () => Object.values(await entries()).every((n) => n === 6), { what: 'announced entry counts', timeoutMs: 5000 })
  t.deepEqual(await entries(), { 'east/1': 6, 'east/2': 6, 'west/1': 6, 'west/2': 6 }, 'each partition holds its three top-level trees, twice')
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/')).entries.map((e) => e.path), ['/a', '/alpha', '/b', '/beta', '/gamma', '/x'], 'the root lists every partition')
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/?limit=4')).entries.map((e) => e.path), ['/a', '/alpha', '/b', '/beta'])
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/?after=beta&limit=4')).entries.map((e) => e.path), ['/gamma', '/x'])

  const east2 = dirs.find((d) => d.center === 'east' && d.slot === 2)
  await failoverByHand(c.url, east2?.id ?? '')
  t.is((await http(c.url, 'POST', '/files/x/made-during/?mkdir')).status, 201)
  t.is((await http(c.url, 'GET', '/files/a/sub?stat')).status, 200)
  // The last: a manager may also log one at its start, when a pair's backup server is heard before its primary.
  t.like((await directoryLocateLog(dir)).filter((l) => l.partition === 2).at(-1), { method: 'twin-subnet-mapping', center: 'west', member: 'west/dir2' })
  await failoverByHand(c.url, east2?.id ?? '', 'failback')
  await until(async () => await statusOf(c.url, east2?.id ?? '') === 'healthy', { what: 'east/dir2 to catch up' })
  await failoverByHand(c.url, dirs.find((d) => d.center === 'west' && d.slot === 2)?.id ?? '')
  t.is((await http(c.url, 'GET', '/files/x/made-during?stat')).status, 200, 'the returning server caught up with the change made without it')
})

// Claim 25 with 21: a rename between two partitions is one operation for the
// client: it sees the subtree at one place or the other, never both nor
// neither, also while a directory server of one partition is killed.
test('a rename across partitions is atomic for the client, also when a directory server dies during the moves', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--dirs', '2'])
  const cluster = await readClusterJson(dir)
  // /alpha and /a are top-level names of different partitions: the tree moves between them.
  for (let i = 0; i < 5; i++) t.is((await http(c.url, 'PUT', `/files/alpha/d${i}/f${i}`, Buffer.from(`file ${i}`))).status, 201)
  t.is((await http(c.url, 'POST', '/files/b/?mkdir')).status, 201)

  let moves = 0
  let failures = 0
  let observations = 0
  const bad: string[] = []
  let running = true
  const mover = async (): Promise<void> => {
    for (let i = 0; running; i++) {
      const [from, to] = i % 2 === 0 ? ['/alpha', '/a'] : ['/a', '/alpha']
      const r = await http(c.url, 'POST', `/files${from}?move-to=${to}`).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }))
      if (r.status !== 200) { failures++; t.log(`mv ${from} ${to}: ${r.status} ${r.body.toString().slice(0, 200)}`) }
      moves++
    }
  }
  // One listing of the root is one read: it must show the tree at exactly one of its two names.
  const observer = async (): Promise<void> => {
    while (running) {
      const r = await http(c.url, 'GET', '/files/')
      observations++
      if (r.status !== 200) { bad.push(`root listing answered ${r.status}`); continue }
      const names = json<ListJson>(r).entries.map((e) => e.path)
      if (names.filter((n) => n === '/alpha' || n === '/a').length !== 1) bad.push(`root lists ${names.join(',')}`)
    }
  }
  const workers = [mover(), observer(), observer()]
  await until(() => moves > 10, { what: 'moves before the kill', timeoutMs: 20_000 })
  const victim = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'east' && n.slot === 1)
  if (victim === undefined) { t.fail('no east/dir1'); return }
  await killMember([c.url], victim)
  const atKill = moves
  await until(() => moves > atKill + 10, { what: 'moves during the failover', timeoutMs: 20_000 })
  startByHand(t, victim.argv)
  await until(async () => await statusOf(c.url, victim.id) === 'healthy', { what: 'east/dir1 healthy again', timeoutMs: 20_000 })
  running = false
  await Promise.all(workers)

  t.is(failures, 0, 'no move failed')
  t.deepEqual(bad, [], 'no observer saw the tree twice or the root torn')
  t.true(observations > 20)
  const at = moves % 2 === 0 ? '/alpha' : '/a'
  for (let i = 0; i < 5; i++) {
    const r = await http(c.url, 'GET', `/files${at}/d${i}/f${i}`)
    t.is(r.body.toString(), `file ${i}`, `f${i} moved with its tree ${moves} times and is whole`)
  }
  t.is((await http(c.url, 'GET', `/files${moves % 2 === 0 ? '/a' : '/alpha'}?stat`)).status, 404, 'and is nowhere else')
  t.log(`${moves} moves, ${observations} observations`)
})

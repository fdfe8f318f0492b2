import test from 'ava'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { storedBlobIds, until } from '@mirrorcast/testkit'
import { http, json, startUp, tempDir, type FileJson, type ListJson } from './helpers/cluster.js'
import { failoverByHand, killMember, readClusterJson, secondManager, startByHand, statusOf } from './helpers/failover.js'

// README, consistency model: two managers share the directory servers, so a
// write acknowledged by one is read through the other at once; each journals
// what a failed-over node missed through it and replays it at its return.
test('two managers: each reads the other\'s writes at once; a node killed while both write gets the writes of both back', async (t) => {
  const dir = await tempDir(t)
  const a = await startUp(t, dir, ['--nodes', '1'])
  const cluster = await readClusterJson(dir)
  const b = await secondManager(t, dir, cluster)
  await until(async () => json<{ nodes: unknown[] }>(await http(b, 'GET', '/cluster')).nodes.length === 4, { what: 'manager b to hear every member' })

  const body = randomBytes(50_000)
  t.is((await http(a.url, 'PUT', '/files/shared/from-a', body)).status, 201)
  t.true((await http(b, 'GET', '/files/shared/from-a')).body.equals(body), 'b reads what a acknowledged')
  t.is((await http(b, 'PUT', '/files/shared/from-b', body)).status, 201)
  t.true((await http(a.url, 'GET', '/files/shared/from-b')).body.equals(body), 'a reads what b acknowledged')

  const victim = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'east')
  if (victim === undefined) { t.fail('no east node'); return }
  await killMember([a.url, b], victim)
  const written: string[] = []
  for (let i = 0; i < 10; i++) {
    for (const [name, url] of [['a', a.url], ['b', b]] as const) {
      const r = await http(url, 'PUT', `/files/shared/out-${name}-${i}`, randomBytes(20_000))
      t.is(r.status, 201)
      written.push(json<FileJson>(r).id)
    }
  }
  startByHand(t, victim.argv)
  for (const url of [a.url, b]) await until(async () => await statusOf(url, victim.id) === 'healthy', { what: `${url} to resync the node`, timeoutMs: 20_000 })
  const held = await storedBlobIds(join(dir, 'east', 'east-node1'))
  t.deepEqual(written.filter((id) => !held.has(id)), [], 'the returning node holds every file written through either manager')
})

// README, consistency model: both nodes of a pair lost → its files answer 503
// until one returns; new files go to the other pairs.
test('both nodes of a pair lost: its files answer 503, new files go to the other pair, and it serves again when one returns', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const cluster = await readClusterJson(dir)
  let entry: FileJson | undefined
  for (let i = 0; entry === undefined || entry.replicas[0]?.slot !== 1; i++) entry = json<FileJson>(await http(c.url, 'PUT', `/files/pair/f${i}`, Buffer.from(`f${i}`)))
  const pair = cluster.nodes.filter((n) => n.role === 'storage' && n.slot === 1)
  for (const n of pair) await failoverByHand(c.url, n.id)

  const lost = await http(c.url, 'GET', `/files${entry.path}`)
  t.is(lost.status, 503)
  t.is(json<{ error: { code: string } }>(lost).error.code, 'ERR_NO_REPLICA')
  for (let i = 0; i < 10; i++) {
    const r = json<FileJson>(await http(c.url, 'PUT', `/files/pair/new${i}`, Buffer.from(`new${i}`)))
    t.deepEqual(r.replicas.map((x) => x.slot), [2, 2], 'new files go to the pair that lives')
  }
  await failoverByHand(c.url, pair[1]?.id ?? '', 'failback')
  await until(async () => await statusOf(c.url, pair[1]?.id ?? '') === 'healthy', { what: 'the west node to come back' })
  const back = await http(c.url, 'GET', `/files${entry.path}`)
  t.is(back.status, 200)
  t.is(back.body.toString(), entry.path.slice('/pair/'.length))
})

// A whole cluster stopped while a directory server was failed over comes back
// with the copy that holds every acknowledged change as leader, whichever
// center it is in: the other catches up from it and nothing acknowledged is lost.
test('a cluster restarted after the primary directory server missed changes follows the copy that has them', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const cluster = await readClusterJson(dir)
  const east = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'east')
  t.is((await http(c.url, 'POST', '/files/before/?mkdir')).status, 201)
  await failoverByHand(c.url, east?.id ?? '')
  for (let i = 0; i < 5; i++) t.is((await http(c.url, 'PUT', `/files/during/f${i}`, Buffer.from(`f${i}`))).status, 201)
  await c.stop()

  const again = await startUp(t, dir)
  const listing = json<ListJson>(await http(again.url, 'GET', '/files/during/'))
  t.deepEqual(listing.entries.map((e) => e.name), ['f0', 'f1', 'f2', 'f3', 'f4'], 'the changes made while east/dir1 was out survive the restart')
  t.is((await http(again.url, 'GET', '/files/during/f3')).body.toString(), 'f3')
  // Both copies agree: read with the west copy failed over, from the one that caught up.
  const west = (await readClusterJson(dir)).nodes.find((n) => n.role === 'directory' && n.center === 'west')
  await until(async () => (await http(again.url, 'GET', '/files/during/f4?stat')).status === 200, { what: 'a read', timeoutMs: 5000 })
  await failoverByHand(again.url, west?.id ?? '')
  t.deepEqual(json<ListJson>(await http(again.url, 'GET', '/files/during/')).entries.map((e) => e.name), ['f0', 'f1', 'f2', 'f3', 'f4'], 'east/dir1 caught up')
  t.is((await http(again.url, 'GET', '/files/before?stat')).status, 200)
})

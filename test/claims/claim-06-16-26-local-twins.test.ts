import test from 'ava'
import { randomBytes } from 'node:crypto'
import { http, json, startUp, tempDir, type FileJson, type ListJson } from '../helpers/cluster.js'
import { directoryLocateLog, failoverByHand, homeOf, locateLog, members, readClusterJson } from '../helpers/failover.js'

// Claims 6, 16, 26: the file and its duplicate, and the file-system information
// and its duplicate, on two nodes (two directory servers) of the same center.
test('with local twins, the file and its duplicate live in one center; each survives the failover of the other', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--local-twins'])
  const cluster = await readClusterJson(dir)
  t.deepEqual([...new Set(cluster.nodes.map((n) => n.center))], ['east'], 'every member is in the one center')
  t.is(cluster.nodes.filter((n) => n.role === 'storage').length, 4, 'two twin pairs of storage nodes')

  const body = randomBytes(250_000)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/local/a.bin', body))
  t.deepEqual(entry.replicas.map((r) => r.center), ['east', 'east'])
  const [home, twin] = entry.replicas
  t.is(Math.ceil((home?.slot ?? 0) / 2), Math.ceil((twin?.slot ?? 0) / 2), 'the twins are the two slots of one pair')
  t.not(home?.node, twin?.node)

  // The storage twin: the home node failed over, the local twin serves.
  await failoverByHand(c.url, homeOf(cluster, entry).id)
  const got = await http(c.url, 'GET', '/files/local/a.bin')
  t.is(got.status, 200)
  t.true(got.body.equals(body))
  t.like((await locateLog(dir)).find((l) => l.fileId === entry.id), { method: 'twin-slot-mapping', center: 'east', member: `east/node${twin?.slot ?? 0}` })

  // The directory twin: east/dir1 failed over, east/dir2 holds the same namespace and takes the changes.
  const dirs = (await members(c.url)).filter((m) => m.role === 'directory')
  const primary = dirs.find((m) => m.slot === 1)
  t.is(dirs.length, 2)
  await failoverByHand(c.url, primary?.id ?? '')
  t.is((await http(c.url, 'POST', '/files/local/made-during/?mkdir')).status, 201)
  const listing = json<ListJson>(await http(c.url, 'GET', '/files/local/'))
  t.deepEqual(listing.entries.map((e) => e.path), ['/local/a.bin', '/local/made-during'])
  t.like((await directoryLocateLog(dir)).at(-1), { partition: 1, method: 'twin-slot-mapping', center: 'east', member: 'east/dir2' })

  const status = json<{ twins: string, pairs: Array<{ role: string, index: number, primary: { name: string } | null, twin: { name: string } | null }> }>(await http(c.url, 'GET', '/cluster'))
  t.is(status.twins, 'local')
  t.deepEqual(status.pairs.map((p) => `${p.role} ${p.index}: ${p.primary?.name ?? '-'} + ${p.twin?.name ?? '-'}`), [
    'storage 1: east/node1 + east/node2',
    'storage 2: east/node3 + east/node4',
    'directory 1: east/dir1 + east/dir2'
  ])
})

import test from 'ava'
import { randomBytes } from 'node:crypto'
import { http, json, startUp, tempDir, type FileJson } from '../helpers/cluster.js'
import { failoverByHand, homeOf, locateLog, readClusterJson } from '../helpers/failover.js'

// Claims 2–3, 12–13: the twin's address is found by a mapping between the two
// addresses, which differ only in the subnet portion. Claims 5, 15: the nodes of
// the two centers map one to one (slot k ↔ slot k).
test('with search and point-to-point off, a failed-over node\'s files are read from the twin found by the subnet mapping', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--no-multicast-search', '--no-point-to-point'])
  const cluster = await readClusterJson(dir)
  for (const n of cluster.nodes.filter((x) => x.center === 'east')) {
    const twin = cluster.nodes.find((x) => x.center === 'west' && x.role === n.role && x.slot === n.slot)
    t.is(twin?.address, n.address.replace(/^127\.1\./, '127.2.'), `${n.role} ${n.slot}: one-to-one, differing only in the subnet part`)
  }
  const body = randomBytes(300_000)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/mapped.bin', body))
  const home = homeOf(cluster, entry)
  t.is(home.center, 'east')
  await failoverByHand(c.url, home.id)
  const got = await http(c.url, 'GET', '/files/mapped.bin')
  t.is(got.status, 200)
  t.true(got.body.equals(body))
  const log = (await locateLog(dir)).filter((l) => l.fileId === entry.id)
  t.is(log[0]?.method, 'twin-subnet-mapping')
  t.is(log[0]?.center, 'west')
  t.is(log[0]?.member, `west/node${home.slot}`)
})

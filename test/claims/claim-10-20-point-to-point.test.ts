import test from 'ava'
import { randomBytes } from 'node:crypto'
import { http, json, startUp, tempDir, type FileJson } from '../helpers/cluster.js'
import { failoverByHand, homeOf, locateLog, readClusterJson } from '../helpers/failover.js'

// Claims 10, 20: where multicast cannot reach, the file is searched for with the
// point-to-point protocol between the manager and each node.
test('with the mapping and multicast search off, point-to-point queries find the file in the backup center', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--no-mapping', '--no-multicast-search'])
  const cluster = await readClusterJson(dir)
  const body = randomBytes(150_000)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/p2p.bin', body))
  const home = homeOf(cluster, entry)
  await failoverByHand(c.url, home.id)
  const got = await http(c.url, 'GET', '/files/p2p.bin')
  t.true(got.body.equals(body))
  t.like((await locateLog(dir)).find((l) => l.fileId === entry.id), { method: 'point-to-point', center: 'west', member: `west/node${home.slot}` })
})

import test from 'ava'
import { http, json, startUp, tempDir, type ListJson } from '../helpers/cluster.js'
import { directoryLocateLog, failoverByHand, readClusterJson } from '../helpers/failover.js'

// Claim 30: where multicast cannot reach, the directory manager asks the
// directory servers one by one with the point-to-point protocol.
test('with the mapping and multicast search off, point-to-point queries find a failed directory server\'s copy in the backup center', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--no-mapping', '--no-multicast-search'])
  const cluster = await readClusterJson(dir)
  const east = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'east')
  t.is((await http(c.url, 'PUT', '/files/p2p/one.txt', Buffer.from('one'))).status, 201)
  await failoverByHand(c.url, east?.id ?? '')
  t.is((await http(c.url, 'PUT', '/files/p2p/two.txt', Buffer.from('two'))).status, 201)
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/p2p/')).entries.map((e) => e.path), ['/p2p/one.txt', '/p2p/two.txt'])
  t.like((await directoryLocateLog(dir)).at(-1), { partition: 1, method: 'point-to-point', center: 'west', member: 'west/dir1' })
})

import test from 'ava'
import { cp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { until } from '@mirrorcast/testkit'
import { http, startUp, tempDir } from '../helpers/cluster.js'
import { directoryLocateLog, failoverByHand, members, readClusterJson, startByHand, statusOf } from '../helpers/failover.js'

// Claims 27, 29: after the failover of a directory server, the directory manager
// searches the backup center for the file-system information with the multicast
// protocol; claim 28: then the primary center.
test('with the mapping and point-to-point off, a multicast search finds a partition\'s copy in the backup center, then in the primary center', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--no-mapping', '--no-point-to-point'])
  const cluster = await readClusterJson(dir)
  const east = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'east')
  const west = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'west')
  if (east === undefined || west === undefined) { t.fail('no directory pair'); return }
  t.is((await http(c.url, 'PUT', '/files/kept/file.txt', Buffer.from('kept'))).status, 201)

  await failoverByHand(c.url, east.id)
  t.is((await http(c.url, 'POST', '/files/kept/during/?mkdir')).status, 201)
  t.like((await directoryLocateLog(dir)).at(-1), { partition: 1, method: 'multicast-search', center: 'west', member: 'west/dir1' })
  await failoverByHand(c.url, east.id, 'failback')
  await until(async () => await statusOf(c.url, east.id) === 'healthy', { what: 'east/dir1 caught up' })

  // A third copy of partition 1 in the primary center: east/dir1's store, copied while idle, under a new id.
  const spareData = join(dir, 'east', 'east-dir3')
  await cp(join(dir, 'east', 'east-dir1'), spareData, { recursive: true })
  // The copy carries east/dir1's identity and its lock (a live pid): an operator making a spare drops both.
  await rm(join(spareData, 'member-id'))
  await rm(join(spareData, 'mirrorcast.lock'))
  const argv = [...east.argv]
  const set = (flag: string, value: string): void => { argv[argv.indexOf(flag) + 1] = value }
  set('--data', spareData)
  set('--slot', '3')
  set('--address', '127.1.1.3')
  set('--port', '0')
  argv.push('--partition', '1')
  startByHand(t, argv)
  await until(async () => (await members(c.url)).some((m) => m.role === 'directory' && m.slot === 3 && m.state === 'healthy'), { what: 'the spare to be heard' })

  // Both places of the pair out: the backup center has no usable copy, the primary center's spare is found.
  await failoverByHand(c.url, west.id)
  await failoverByHand(c.url, east.id)
  const r = await http(c.url, 'GET', '/files/kept/file.txt')
  t.is(r.status, 200, r.body.toString().slice(0, 200))
  t.is(r.body.toString(), 'kept')
  t.like((await directoryLocateLog(dir)).at(-1), { partition: 1, method: 'multicast-search', center: 'east', member: 'east/dir3' })
})

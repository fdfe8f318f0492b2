import test from 'ava'
import { randomBytes } from 'node:crypto'
import { mkdir, rename } from 'node:fs/promises'
import { join } from 'node:path'
import { blobPath } from '@mirrorcast/testkit'
import { http, json, startUp, tempDir, type FileJson } from '../helpers/cluster.js'
import { failoverByHand, homeOf, locateLog, readClusterJson } from '../helpers/failover.js'

/** Where storage node `slot` of a center, as `mirrorcast up` lays it out, keeps a body. */
const blobAt = (dir: string, center: string, slot: number, id: string): string => blobPath(join(dir, center, `${center}-node${slot}`), id)

// Claims 7, 9, 17, 19: after entering failover the file is searched for in the
// backup center with the multicast protocol; claims 8, 18: then in the primary center.
test('with the mapping and point-to-point off, a multicast search finds the file in the backup center, then in the primary center', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--no-mapping', '--no-point-to-point'])
  const cluster = await readClusterJson(dir)
  const first = randomBytes(200_000)
  const a = json<FileJson>(await http(c.url, 'PUT', '/files/a.bin', first))
  const homeA = homeOf(cluster, a)
  await failoverByHand(c.url, homeA.id)
  const got = await http(c.url, 'GET', '/files/a.bin')
  t.true(got.body.equals(first))
  t.like((await locateLog(dir)).find((l) => l.fileId === a.id), { method: 'multicast-search', center: 'west' })
  await failoverByHand(c.url, homeA.id, 'failback')

  // A file whose only copy sits on another node of the primary center: found by the second search.
  const second = randomBytes(200_000)
  const b = json<FileJson>(await http(c.url, 'PUT', '/files/b.bin', second))
  const homeB = homeOf(cluster, b)
  const other = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'east' && n.slot !== homeB.slot)
  if (other === undefined) { t.fail('need a second east node'); return }
  const to = blobAt(dir, 'east', other.slot, b.id)
  await mkdir(join(to, '..'), { recursive: true })
  await rename(blobAt(dir, 'east', homeB.slot, b.id), to)
  const twin = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'west' && n.slot === homeB.slot)
  await failoverByHand(c.url, homeB.id)
  await failoverByHand(c.url, twin?.id ?? '')
  const got2 = await http(c.url, 'GET', '/files/b.bin')
  t.is(got2.status, 200, got2.body.toString().slice(0, 200))
  t.true(got2.body.equals(second))
  t.like((await locateLog(dir)).find((l) => l.fileId === b.id), { method: 'multicast-search', center: 'east', member: `east/node${other.slot}` })

  const search = json<{ rounds: Array<{ center: string, holders: Array<{ id: string }> }> }>(await http(c.url, 'GET', `/search?key=${b.id}`))
  t.deepEqual(search.rounds.map((r) => r.center), ['west', 'east'], 'the backup center is asked first')
  t.deepEqual(search.rounds[1]?.holders.map((h) => h.id), [other.id])
})

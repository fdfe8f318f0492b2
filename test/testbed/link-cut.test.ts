import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import type { Testbed } from '@mirrorcast/testbed'
import { tolerant, until } from '@mirrorcast/testkit'
import { netnsTest, startTestbed } from '../helpers/netns.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

async function must (bed: Testbed, method: string, path: string, body?: Buffer): Promise<Buffer> {
  const r = await bed.client.send({ method, path, body })
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.body.toString().slice(0, 200)}`)
  return r.body
}

async function listing (bed: Testbed, dir: string): Promise<string[]> {
  return (JSON.parse((await must(bed, 'GET', `/files${dir}/`)).toString()) as { entries: Array<{ name: string }> }).entries.map((e) => e.name)
}

// README, consistency model: when the link between the two centers is cut, the
// manager fails the far center's members over and goes on with one copy; when
// the link is back, they catch up before they serve, and hold every change
// made without them.
netnsTest(test, 'the link between the centers cut: reads, writes and renames go on with one copy; after the heal the far center holds every change', async (t) => {
  const bed = await startTestbed(t, { topology: 'routed' })
  const before = new Map<string, Buffer>()
  for (let i = 0; i < 4; i++) {
    const body = randomBytes(100_000 + i)
    await must(bed, 'PUT', `/files/keep/b${i}`, body)
    before.set(`/keep/b${i}`, body)
  }

  const router = bed.net.host('router')
  await bed.net.setLink(router, false)
  const west = bed.members.filter((m) => m.center === 'west')
  await until(tolerant(async () => {
    const seen = await bed.cluster()
    return west.every((m) => seen.find((s) => s.id === m.id)?.status === 'failed-over')
  }), { what: 'every west member failed over', timeoutMs: 15_000, intervalMs: 100 })

  for (const [path, body] of before) t.is(sha(await must(bed, 'GET', `/files${path}`)), sha(body), `${path} read with the link cut`)
  const during = new Map<string, Buffer>()
  for (let i = 0; i < 4; i++) {
    const body = randomBytes(80_000 + i)
    await must(bed, 'PUT', `/files/cut/c${i}`, body)
    during.set(`/cut/c${i}`, body)
  }
  await must(bed, 'POST', '/files/cut/made/?mkdir')
  await must(bed, 'POST', '/files/keep/b0?move-to=/cut/moved-b0')
  await must(bed, 'DELETE', '/files/keep/b1')
  during.set('/cut/moved-b0', before.get('/keep/b0') as Buffer)

  await bed.net.setLink(router, true)
  await bed.waitHealthy(60_000)

  // Every east member out by hand: what is read now comes from the west copies alone.
  const east = bed.members.filter((m) => m.center === 'east')
  for (const m of east) await must(bed, 'POST', `/cluster/nodes/${m.id}/failover`)
  t.deepEqual(await listing(bed, '/cut'), ['c0', 'c1', 'c2', 'c3', 'made', 'moved-b0'], 'the west directory caught up with the namespace')
  t.deepEqual(await listing(bed, '/keep'), ['b2', 'b3'], 'the rename and the delete made during the cut are there too')
  for (const [path, body] of during) t.is(sha(await must(bed, 'GET', `/files${path}`)), sha(body), `${path} read from the west copy`)
  t.is((await bed.client.send({ path: '/files/keep/b1' })).status, 404)
  for (const m of east) await must(bed, 'POST', `/cluster/nodes/${m.id}/failback`)
})

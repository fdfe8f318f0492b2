import test, { type ExecutionContext } from 'ava'
import { randomBytes } from 'node:crypto'
import type { MemberHandle, Testbed } from '@mirrorcast/testbed'
import { tolerant, until } from '@mirrorcast/testkit'
import { netnsTest, startTestbed } from '../helpers/netns.js'

interface Entry { id: string, replicas: Array<{ node: string, center: string, slot: number, address: string }> }

async function putFile (bed: Testbed, path: string, body: Buffer): Promise<Entry> {
  const r = await bed.client.send({ method: 'PUT', path: `/files${path}`, body })
  if (r.status !== 201) throw new Error(`PUT ${path}: ${r.status} ${r.body.toString()}`)
  return JSON.parse(r.body.toString()) as Entry
}

async function located (bed: Testbed, fileId: string): Promise<Record<string, unknown> | undefined> {
  return (await bed.managerLogLines('file located after failover')).find((l) => l.fileId === fileId)
}

/**
 * kill -9 of the file's home node, then a read: the whole body must come back,
 * found as `how` says (method, center, member). Returns the killed node.
 */
async function readAfterKillingHome (t: ExecutionContext, bed: Testbed, path: string, entry: Entry, body: Buffer, how: Record<string, unknown>): Promise<MemberHandle> {
  const victim = bed.byId(entry.replicas[0]?.node ?? '') ?? t.fail('home not found') as never
  await victim.kill('SIGKILL')
  const got = await bed.client.send({ path: `/files${path}` })
  t.is(got.status, 200)
  t.true(got.body.equals(body))
  t.like(await located(bed, entry.id), how)
  return victim
}

async function statusOf (bed: Testbed, id: string): Promise<string | undefined> {
  return (await bed.cluster()).find((m) => m.id === id)?.status
}

netnsTest(test, 'topology a: both centers\' subnets on one segment; members found by multicast, a node killed with -9 is failed over and its twin found by the subnet mapping', async (t) => {
  const bed = await startTestbed(t, { topology: 'one-segment' })
  const seen = await bed.cluster()
  t.deepEqual(seen.map((m) => m.address).sort(), ['10.1.0.1', '10.1.0.2', '10.1.1.1', '10.2.0.1', '10.2.0.2', '10.2.1.1'])
  const body = randomBytes(300_000)
  const entry = await putFile(bed, '/a/one.bin', body)
  const [home, twin] = entry.replicas
  t.is(twin?.address, home?.address.replace(/^10\.1\./, '10.2.'), 'twins differ only in the subnet part')
  const victim = await readAfterKillingHome(t, bed, '/a/one.bin', entry, body, { method: 'twin-subnet-mapping', center: 'west', member: `west/node${home?.slot ?? 0}` })
  await until(tolerant(async () => await statusOf(bed, victim.id) === 'failed-over'), { what: 'the killed node failed over', timeoutMs: 10_000, intervalMs: 100 })
  await victim.start()
  await bed.waitHealthy()
})

netnsTest(test, 'topology b: two segments joined by a router that forwards no multicast; with the mapping off, a failed node\'s file is found by point-to-point search across the router', async (t) => {
  const bed = await startTestbed(t, { topology: 'routed', managerArgs: ['--no-mapping'] })
  t.is((await bed.cluster()).filter((m) => m.center === 'west' && m.status === 'healthy').length, 3, 'west members heard across the router (static peers)')
  const body = randomBytes(150_000)
  const entry = await putFile(bed, '/b/far.bin', body)
  const [home, twin] = entry.replicas
  t.is(twin?.center, 'west')

  // Multicast reaches only the manager's own segment.
  const search = await bed.client.search(entry.id, { center: 'east' })
  t.deepEqual(search.rounds[0]?.holders.map((h) => h.id), [home?.node])
  const far = await bed.client.search(entry.id, { center: 'west' })
  t.deepEqual(far.rounds[0]?.holders, [], 'the west twin holds it, but the search never crosses the router')

  await readAfterKillingHome(t, bed, '/b/far.bin', entry, body, { method: 'point-to-point', center: 'west', member: `west/node${home?.slot ?? 0}` })
})

netnsTest(test, 'topology c: local twins in one center; a killed node\'s file comes from its local twin, a killed directory server\'s namespace from the other', async (t) => {
  const bed = await startTestbed(t, { topology: 'local-twins' })
  const seen = await bed.cluster()
  t.deepEqual([...new Set(seen.map((m) => m.center))], ['east'])
  t.is(seen.filter((m) => m.role === 'storage').length, 4)
  const body = randomBytes(120_000)
  const entry = await putFile(bed, '/c/near.bin', body)
  const [home, twin] = entry.replicas
  t.deepEqual(entry.replicas.map((r) => r.center), ['east', 'east'])
  t.is(Math.ceil((home?.slot ?? 0) / 2), Math.ceil((twin?.slot ?? 0) / 2), 'the two slots of one pair')

  await readAfterKillingHome(t, bed, '/c/near.bin', entry, body, { method: 'twin-slot-mapping', center: 'east', member: `east/node${twin?.slot ?? 0}` })

  await bed.directory('east', 1).kill('SIGKILL')
  t.is((await bed.client.send({ method: 'POST', path: '/files/c/made-after/?mkdir' })).status, 201)
  const listing = await bed.client.list('/c')
  t.deepEqual(listing.entries.map((e) => e.path), ['/c/made-after', '/c/near.bin'])
})

import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import type { ClusterMember } from '@mirrorcast/testbed'
import { blobState, flipByte, tolerant, until } from '@mirrorcast/testkit'
import { netnsTest, startTestbed } from '../helpers/netns.js'

interface Entry { id: string, sha256: string, replicas: Array<{ node: string, center: string }> }
interface ScrubView extends ClusterMember { quarantined: number, scrub: { passes: number, files: number, bytes: number, corrupt: number } | null }

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

netnsTest(test, 'bit rot found by a read: the twin serves the whole file without a client error, the bad copy is quarantined and restored from the twin', async (t) => {
  // Scrub off: only the read can find the damage.
  const bed = await startTestbed(t, { nodeArgs: ['--scrub-mb-per-s', '0'] })
  const body = randomBytes(3 * 1024 * 1024 + 12_345)
  const put = await bed.client.send({ method: 'PUT', path: '/files/rot/big.bin', body })
  t.is(put.status, 201)
  const entry = JSON.parse(put.body.toString()) as Entry
  const home = bed.byId(entry.replicas[0]?.node ?? '') ?? t.fail('home node not in the test bed') as never
  // A byte in the second 1 MiB block: the first block has already gone to the client when it is found.
  await flipByte(home.dataDir, entry.id, 1024 * 1024 + 777)
  t.is(await blobState(home.dataDir, entry.id), 'corrupt')

  const got = await bed.client.send({ path: '/files/rot/big.bin' })
  t.is(got.status, 200)
  t.is(sha(got.body), entry.sha256, 'the client got every byte right, the rest from the twin')

  await until(tolerant(async () => (await bed.managerLogLines('restored a corrupt copy')).some((l) => l.fileId === entry.id)), { what: 'the home copy restored', timeoutMs: 30_000, intervalMs: 100 })
  t.is(await blobState(home.dataDir, entry.id), 'intact')
  const failed = await bed.managerLogLines('read failed, trying the next place')
  t.true(failed.some((l) => l.fileId === entry.id && l.code === 'ERR_NODE_CORRUPT' && l.member === `east/node${home.slot}`))
  t.true((await readFile(home.logFile, 'utf8')).split('\n').some((l) => l.includes('quarantined a corrupt body') && l.includes(entry.id)))
  await until(tolerant(async () => (await bed.cluster() as ScrubView[]).find((m) => m.id === home.id)?.quarantined === 0), { what: 'the quarantine count back to 0', timeoutMs: 10_000, intervalMs: 100 })
  // The restored copy serves on its own.
  await bed.client.failover(bed.storage('west', home.slot).id)
  t.is(sha((await bed.client.send({ path: '/files/rot/big.bin' })).body), entry.sha256)
})

netnsTest(test, 'bit rot found by the background scrub without any read: quarantined, restored from the twin; scrub progress in /cluster', async (t) => {
  const bed = await startTestbed(t, { nodeArgs: ['--scrub-mb-per-s', '32', '--scrub-interval-s', '1'] })
  const body = randomBytes(200_000)
  const entry = JSON.parse((await bed.client.send({ method: 'PUT', path: '/files/rot/quiet.bin', body })).body.toString()) as Entry
  // The backup copy: reads go to the home node, so only the scrub looks at this one.
  const twin = bed.byId(entry.replicas[1]?.node ?? '') ?? t.fail('twin not in the test bed') as never
  t.is(twin.center, 'west')
  await flipByte(twin.dataDir, entry.id)

  await until(tolerant(async () => (await bed.managerLogLines('restored a corrupt copy')).some((l) => l.fileId === entry.id)), { what: 'the scrub to find it and the manager to restore it', timeoutMs: 30_000, intervalMs: 100 })
  t.is(await blobState(twin.dataDir, entry.id), 'intact')
  t.false((await bed.managerLogLines('read failed, trying the next place')).some((l) => l.fileId === entry.id), 'no read was involved')
  // The next heartbeat says the quarantine is empty again.
  await until(tolerant(async () => (await bed.cluster() as ScrubView[]).find((m) => m.id === twin.id)?.quarantined === 0), { what: 'the quarantine count back to 0', timeoutMs: 10_000, intervalMs: 100 })
  const view = (await bed.cluster() as ScrubView[]).find((m) => m.id === twin.id)
  t.true((view?.scrub?.passes ?? 0) >= 1, JSON.stringify(view?.scrub))
  t.true((view?.scrub?.corrupt ?? 0) >= 1)
  t.true((await bed.client.cluster()).integrity.restored >= 1)
  // And the restored copy is the one that serves when its twin is out.
  await bed.client.failover(bed.storage('east', twin.slot).id)
  t.true((await bed.client.send({ path: '/files/rot/quiet.bin' })).body.equals(body))
})

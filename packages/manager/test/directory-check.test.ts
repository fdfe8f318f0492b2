import test, { type ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { Roster } from '@mirrorcast/discovery'
import { DirectoryServer } from '@mirrorcast/directory'
import { silentLogger } from '@mirrorcast/logger'
import { until } from '@mirrorcast/testkit'
import { TwinMap } from '@mirrorcast/topology'
import { DirectoryManager, Locator, Membership } from '../src/index.js'

// The directory manager against two real directory servers (LMDB, node
// protocol on loopback): a follower whose store is changed behind its back
// is found out by comparing the twins' whole states, and rebuilt.

const KEY = Buffer.alloc(32, 9)

async function server (t: ExecutionContext, center: string): Promise<{ server: DirectoryServer, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), `mc-check-${center}-`))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const s = new DirectoryServer({ dataDir: dir, key: KEY, center, slot: 1, address: '127.0.0.1', port: 0 })
  await s.start()
  t.teardown(async () => { await s.close() })
  return { server: s, dir }
}

test('an out-of-band write to the follower\'s store is found by the periodic state check and the follower is rebuilt from the leader\'s log', async (t) => {
  const [{ server: east }, { server: west, dir: westDir }] = [await server(t, 'east'), await server(t, 'west')]
  const logger = silentLogger()
  const twins = new TwinMap(['east', 'west'])
  const roster = new Roster({})
  const membership = new Membership({ key: KEY, selfId: 'mgr-test', twins, roster, logger })
  const locator = new Locator(membership, twins, undefined, () => undefined, {}, logger)
  const directories = new DirectoryManager(membership, twins, locator, { partitions: 1, checkMs: 50 }, logger)
  directories.start()
  const heartbeat = (): void => {
    for (const s of [east, west]) roster.observe({ cluster: 'mirrorcast', id: s.id, role: 'directory', center: s.center, slot: s.slot, address: '127.0.0.1', port: s.port, bootId: s.bootId, heartbeatMs: 1000, free: 0, files: 0 })
  }
  heartbeat()
  const beat = setInterval(heartbeat, 100)
  t.teardown(async () => {
    clearInterval(beat)
    directories.close()
    await membership.close()
  })

  const replicas = [{ node: 'node-e', center: 'east', slot: 1 }, { node: 'node-w', center: 'west', slot: 1 }]
  for (let i = 1; i <= 5; i++) await directories.put({ type: 'file', path: `/a/f${i}`, fileId: i.toString(16).padStart(32, '0'), size: i, sha256: 'c'.repeat(64), replicas })
  t.is(west.namespace.seq, east.namespace.seq, 'replicated')
  const state = await east.namespace.stateDigest()
  await until(async () => (await west.namespace.stateDigest()).digest === state.digest, { what: 'the twins agree', timeoutMs: 10_000, intervalMs: 10 })

  // Behind the server's back: an entry in the follower's store that no change made (its
  // sequence number stays the leader's, so replication alone never sees it).
  const raw = open({ path: join(westDir, 'namespace.lmdb'), compression: false })
  const nodes = raw.openDB<unknown, Buffer>({ name: 'nodes', keyEncoding: 'binary' })
  await nodes.put(Buffer.concat([Buffer.alloc(8), Buffer.from('ghost')]), { type: 'file', fileId: 'f'.repeat(32), size: 1, sha256: 'a'.repeat(64), version: 1, mtime: 1, replicas: [] })
  await raw.close()
  t.is(west.namespace.lookup('/ghost')?.type, 'file', 'the follower holds it')
  t.is(west.namespace.seq, east.namespace.seq)

  await until(async () => west.namespace.lookup('/ghost') === undefined, { what: 'the follower rebuilt', timeoutMs: 15_000, intervalMs: 10 })
  const follower = membership.byId(west.id)
  await until(() => follower?.health === 'healthy', { what: 'the follower back in use', timeoutMs: 15_000, intervalMs: 10 })
  t.deepEqual(await west.namespace.stateDigest(), await east.namespace.stateDigest(), 'the states match again')
  t.is(west.namespace.lookup('/a/f5')?.type, 'file', 'rebuilt from the leader\'s whole log')

  // And it follows again: a change made now reaches it, and the states still match.
  await directories.put({ type: 'file', path: '/a/f6', fileId: '6'.repeat(32), size: 6, sha256: 'c'.repeat(64), replicas })
  t.is(west.namespace.lookup('/a/f6')?.type, 'file')
  t.deepEqual(await west.namespace.stateDigest(), await east.namespace.stateDigest())
})

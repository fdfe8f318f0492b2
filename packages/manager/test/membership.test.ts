import test from 'ava'
import { randomBytes } from 'node:crypto'
import { Roster } from '@mirrorcast/discovery'
import { silentLogger } from '@mirrorcast/logger'
import { TwinMap } from '@mirrorcast/topology'
import { until } from '@mirrorcast/testkit'
import { Locator, Membership, ObjectManager, RepairJournal, type Member } from '../src/index.js'

const announce = (id: string, center: string, slot: number) => ({ cluster: 'mirrorcast', id, role: 'storage' as const, center, slot, address: '127.0.0.1', port: 1, bootId: 'b00t', heartbeatMs: 100, free: 0, files: 0 })

test('twin pairs come from the twin map, in two centers or as local twins', (t) => {
  const roster = new Roster()
  const membership = new Membership({ key: Buffer.alloc(32), selfId: 'mgr-test', twins: new TwinMap(['east', 'west']), roster, logger: silentLogger() })
  t.teardown(async () => { await membership.close() })
  for (const [id, c, s] of [['e1', 'east', 1], ['w1', 'west', 1], ['e2', 'east', 2]] as const) roster.observe(announce(id, c, s))
  t.deepEqual(membership.pairs('storage').map((p) => [p.index, p.members.map((m) => m.id)]), [[1, ['e1', 'w1']]], 'slot 2 has no twin yet: no pair')
  t.is(membership.twinOf(membership.byId('w1') as Member)?.id, 'e1')

  const localRoster = new Roster()
  const local = new Membership({ key: Buffer.alloc(32), selfId: 'mgr-test', twins: new TwinMap(['east'], 'local'), roster: localRoster, logger: silentLogger() })
  t.teardown(async () => { await local.close() })
  for (const s of [1, 2, 3, 4]) localRoster.observe(announce(`n${s}`, 'east', s))
  t.deepEqual(local.pairs('storage').map((p) => [p.index, p.members.map((m) => m.id)]), [[1, ['n1', 'n2']], [2, ['n3', 'n4']]])
  t.is(local.twinOf(local.byId('n3') as Member)?.id, 'n4')
})

// A member failed over by an error of the node protocol while it keeps
// announcing itself sees no detector transition: the manager tries it again.
test('a member failed over by a protocol error while still heard is tried again, and one failed over by hand is not', async (t) => {
  const roster = new Roster()
  const membership = new Membership({ key: Buffer.alloc(32), selfId: 'mgr-test', twins: new TwinMap(['east', 'west']), roster, logger: silentLogger() })
  membership.start()
  t.teardown(async () => { await membership.close() })
  roster.observe(announce('e1', 'east', 1))
  roster.observe(announce('e2', 'east', 2))
  const byError = membership.byId('e1') as Member
  const byHand = membership.byId('e2') as Member
  const failbacks: string[] = []
  membership.on('failback', (m) => failbacks.push(m.id))
  // Nothing listens at its port: the probe that follows the error confirms it.
  t.true(await membership.reportFailure(byError, Object.assign(new Error('read ECONNRESET'), { code: 'ERR_RPC_CLOSED' })))
  membership.enterFailover(byHand, 'by hand', true)
  t.is(byError.health, 'failed-over')
  await until(() => {
    // Still heard: its heartbeats keep arriving.
    roster.observe(announce('e1', 'east', 1))
    roster.observe(announce('e2', 'east', 2))
    return failbacks.length > 0
  }, { what: 'the member failed over by an error to be tried again', timeoutMs: 5000, intervalMs: 100 })
  t.deepEqual(failbacks, ['e1'])
  t.is(byError.health, 'resyncing')
  t.is(byHand.health, 'failed-over', 'only a failback by hand ends a failover by hand')
})

test('new bodies go to pairs whose nodes announce room for them; when none has room, to any pair', (t) => {
  const roster = new Roster()
  const membership = new Membership({ key: Buffer.alloc(32), selfId: 'mgr-test', twins: new TwinMap(['east', 'west']), roster, logger: silentLogger() })
  t.teardown(async () => { await membership.close() })
  const GiB = 1024 ** 3
  const free: Record<string, number> = { e1: GiB, w1: GiB, e2: 10 * 1024 * 1024, w2: GiB, e3: GiB, w3: GiB }
  for (const [id, f] of Object.entries(free)) roster.observe({ ...announce(id, id.startsWith('e') ? 'east' : 'west', Number(id.slice(1))), free: f })
  const locator = new Locator(membership, new TwinMap(['east', 'west']), undefined, () => undefined, {}, silentLogger())
  const objects = new ObjectManager(membership, new RepairJournal(), locator, silentLogger())
  const slots = (size: number): Set<number> => new Set(Array.from({ length: 300 }, () => objects.place(randomBytes(16).toString('hex'), size)[0]?.slot as number))
  t.deepEqual([...slots(1024 * 1024)].sort(), [1, 3], 'pair 2 has a node with 10 MiB free: it gets nothing')
  t.deepEqual([...slots(2 * GiB)].sort(), [1, 2, 3], 'no pair has room for 2 GiB: the nodes will refuse it themselves')
})

test('a member that announces a new address keeps its failover condition and gets sessions to the new address', async (t) => {
  const roster = new Roster()
  const membership = new Membership({ key: Buffer.alloc(32), selfId: 'mgr-test', twins: new TwinMap(['east', 'west']), roster, logger: silentLogger() })
  t.teardown(async () => { await membership.close() })
  roster.observe(announce('e1', 'east', 1))
  const before = membership.byId('e1') as Member
  membership.enterFailover(before, 'by hand', true)
  roster.observe({ ...announce('e1', 'east', 1), address: '127.0.0.2', port: 2 })
  const after = membership.byId('e1') as Member
  t.is(after.address, '127.0.0.2')
  t.is(after.client.port, 2)
  t.is(after.health, 'failed-over')
  t.like(after.failover, { reason: 'by hand', manual: true })
})

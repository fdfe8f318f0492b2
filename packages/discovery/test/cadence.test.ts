import test from 'ava'
import { MemberSimulator, randomGroupPort, until } from '@mirrorcast/testkit'
import { Announcer, Cadence, MemberPresence, MulticastChannel, PhiAccrualDetector, Roster, search } from '../src/index.js'

const KEY = Buffer.alloc(32, 7)
const info = { role: 'storage' as const, center: 'east', slot: 1, address: '127.1.0.1', port: 9, bootId: 'b1', free: 1, files: 0 }

async function manager (t: import('ava').ExecutionContext, port: number, maxRate: number, options: { multicast?: false, interface?: string } = {}): Promise<{ channel: MulticastChannel, roster: Roster, cadence: Cadence }> {
  const channel = new MulticastChannel('mgr-test', { key: KEY, port, join: ['announcements'], ...options })
  const roster = new Roster()
  const announcer = new Announcer(channel, () => ({ ...info, id: 'mgr-test', role: 'manager' }), 100)
  const cadence = new Cadence(channel, roster, announcer, { baseMs: 100, maxRate })
  await channel.start()
  roster.start(channel)
  await announcer.start()
  cadence.start()
  t.teardown(async () => {
    cadence.close()
    await announcer.close()
    roster.close()
    await channel.close()
  })
  return { channel, roster, cadence }
}

test('a member hears searches and cadences, never the cluster\'s heartbeats; a manager hears the heartbeats', async (t) => {
  const port = randomGroupPort()
  const { channel: mgr, roster } = await manager(t, port, 1000)
  const presence = new MemberPresence({ key: KEY, port, dnsSd: false, heartbeatMs: 50 }, () => ({ ...info, id: 'n1' }), async (_kind, key) => key === 'a'.repeat(32) ? { size: 7 } : undefined)
  await presence.start()
  t.teardown(async () => { await presence.close() })
  const sim = new MemberSimulator({ key: KEY, port, count: 20, heartbeatMs: 50 })
  await sim.start()
  t.teardown(async () => { await sim.close() })
  await until(() => roster.list().length >= 21, { what: 'the manager heard the member and the 20 simulated ones' })
  const heardBefore = presence.channel.received
  const managerBefore = mgr.received
  // 500 more heartbeats of the 21 members heard by the manager (about a second and a half)
  await until(() => mgr.received - managerBefore >= 500, { what: 'the manager hearing 500 more heartbeats' })
  t.is(presence.channel.received, heardBefore, 'the member heard none of them')
  const { replies } = await search(mgr, { kind: 'blob', key: 'a'.repeat(32), windowMs: 50, timeoutMs: 1000 })
  t.deepEqual(replies.map((r) => [r.reply.id, r.reply.size]), [['n1', 7]], 'and still answers searches')
})

test('past the announce rate, every member is asked for a longer period; detection and the roster carry on', async (t) => {
  const port = randomGroupPort()
  // 40 announcements a second for 1 manager + 1 member + 30 simulated members: 32 members → 800 ms
  const { roster, cadence } = await manager(t, port, 40)
  const presence = new MemberPresence({ key: KEY, port, dnsSd: false }, () => ({ ...info, id: 'n1' }), async () => undefined)
  await presence.start()
  t.teardown(async () => { await presence.close() })
  const sim = new MemberSimulator({ key: KEY, port, count: 30 })
  await sim.start()
  t.teardown(async () => { await sim.close() })
  const deaths: string[] = []
  roster.on('change', (m) => { if (m.state === 'dead') deaths.push(m.id) })
  await until(() => presence.heartbeatMs === 800 && sim.heartbeatMs === 800, { what: 'the member and the simulated ones at the cadence', timeoutMs: 10_000 })
  t.is(cadence.heartbeatMs, 800)
  t.is(cadence.members, 32)
  await until(() => roster.get('n1')?.heartbeatMs === 800 && roster.list().every((m) => m.heartbeatMs === 800), { what: 'the roster hears the longer periods' })
  // two periods at the new pace: nobody is taken for dead because it announces less often
  await new Promise((resolve) => setTimeout(resolve, 2000))
  t.deepEqual(deaths, [])
  const stoppedAt = Date.now()
  const id = sim.stop(3)
  await until(() => roster.get(id)?.state === 'dead', { what: 'a simulated member that fell silent found dead', timeoutMs: 10_000 })
  const detectedMs = Date.now() - stoppedAt
  t.true(detectedMs < 5000, `dead after ${detectedMs} ms at an 800 ms period`)
  t.deepEqual(deaths, [id])
})

test('the detector says when a silence reaches a threshold, as phi itself does', (t) => {
  for (const period of [100, 1000]) {
    const d = new PhiAccrualDetector(period)
    let now = 0
    for (let i = 0; i < 30; i++) d.heartbeat(now += period)
    for (const threshold of [3, 8]) {
      const silence = d.silenceToReach(threshold)
      t.true(Math.abs(d.phi(now + silence) - threshold) < 0.01, `period ${period}, phi ${threshold}: ${d.phi(now + silence)}`)
    }
  }
})

test('a heartbeat that goes out late because the event loop was held is logged, with how late', async (t) => {
  const warnings: Array<{ message: string, lateMs: number }> = []
  const logger = { warn: (message: string, meta: { lateMs: number }) => { warnings.push({ message, lateMs: meta.lateMs }) }, info: () => {}, debug: () => {} } as unknown as import('@mirrorcast/logger').Logger
  const channel = new MulticastChannel('n-late', { key: KEY, port: randomGroupPort(), join: [], logger })
  await channel.start()
  const announcer = new Announcer(channel, () => ({ ...info, id: 'n-late' }), 100)
  await announcer.start()
  t.teardown(async () => {
    await announcer.close()
    await channel.close()
  })
  await new Promise((resolve) => setTimeout(resolve, 150))
  const until = Date.now() + 500
  while (Date.now() < until);
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.true(warnings.some((w) => w.message === 'event loop held: heartbeats were late' && w.lateMs >= 350), JSON.stringify(warnings))
})

test('with multicast off, a member heard only as a static peer gets the cadence by unicast', async (t) => {
  const port = randomGroupPort()
  // 5 announcements a second for the manager and one member: 400 ms
  const { roster } = await manager(t, port, 5, { multicast: false, interface: '127.0.0.1' })
  const presence = new MemberPresence({ key: KEY, port, peerPort: 0, interface: '127.1.0.1', multicast: false, peers: [{ address: '127.0.0.1', port }] }, () => ({ ...info, id: 'n-peer' }), async () => undefined)
  await presence.start()
  t.teardown(async () => { await presence.close() })
  await until(() => presence.heartbeatMs === 400, { what: 'the static peer at the cadence', timeoutMs: 10_000 })
  await until(() => roster.get('n-peer')?.heartbeatMs === 400, { what: 'the manager hears the longer period' })
  t.is(roster.get('n-peer')?.state, 'healthy')
})

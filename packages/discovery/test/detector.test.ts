import test from 'ava'
import { PhiAccrualDetector, Roster, type Announcement } from '../src/index.js'

/** A deterministic PRNG (mulberry32) so a loss pattern is the same on every run. */
function rng (seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const announce = (id: string, bootId = 'boot-1'): Announcement => ({ cluster: 'c', id, role: 'storage', center: 'east', slot: 1, address: '127.1.0.1', port: 1, bootId, heartbeatMs: 100, free: 0, files: 0 })

function simulatedRoster (): { roster: Roster, clock: { now: number } } {
  const clock = { now: 1_000_000 }
  return { roster: new Roster({ now: () => clock.now }), clock }
}

test('a member that goes silent (kill -9) is dead within 1.5 s with the default heartbeat', (t) => {
  const { roster, clock } = simulatedRoster()
  for (let i = 0; i < 50; i++) {
    roster.observe(announce('n1'))
    clock.now += 100
    roster.tick()
  }
  const lastHeard = clock.now - 100
  const seen: string[] = []
  roster.on('change', (m) => seen.push(`${m.state}@${clock.now - lastHeard}`))
  while (roster.get('n1')?.state !== 'dead' && clock.now - lastHeard < 5000) {
    clock.now += 50
    roster.tick()
  }
  const detectedAfter = clock.now - lastHeard
  t.true(detectedAfter <= 1500, `dead after ${detectedAfter} ms (${seen.join(', ')})`)
  t.true(detectedAfter >= 500, 'not before a few heartbeats were missed')
  t.deepEqual(seen.map((s) => s.split('@')[0]), ['suspect', 'dead'])
})

test('5 % random datagram loss causes no false dead over 100,000 heartbeats', (t) => {
  const { roster, clock } = simulatedRoster()
  const random = rng(42)
  let deaths = 0
  roster.on('change', (m) => { if (m.state === 'dead') deaths++ })
  let lost = 0
  for (let i = 0; i < 100_000; i++) {
    // arrival jitter of ±10 ms on top of the 100 ms period
    clock.now += 90 + random() * 20
    if (random() < 0.05) lost++
    else roster.observe(announce('n1'))
    roster.tick()
  }
  t.true(lost > 4000, 'the loss was really injected')
  t.is(deaths, 0)
  t.is(roster.get('n1')?.state, 'healthy')
})

test('when this process stands still, members are not declared dead before the datagrams it missed are read', (t) => {
  const { roster, clock } = simulatedRoster()
  for (let i = 0; i < 50; i++) {
    roster.observe(announce('n1'))
    roster.observe(announce('n2'))
    clock.now += 50
    roster.tick()
  }
  const changes: string[] = []
  roster.on('change', (m) => changes.push(`${m.id} ${m.state}`))
  // Blocked for 3 s: both members kept sending, n1's datagrams wait in the socket, n2 really died.
  clock.now += 3000
  roster.tick()
  t.deepEqual(changes, [], 'no verdict on the tick that ends the pause')
  roster.observe(announce('n1'))
  clock.now += 50
  roster.tick()
  t.is(roster.get('n1')?.state, 'healthy')
  t.is(roster.get('n2')?.state, 'dead', 'a member that went silent is still found, one tick later')
})

test('a new boot id is reported as a restart and heals a dead member; a goodbye kills at once', (t) => {
  const { roster, clock } = simulatedRoster()
  const restarts: string[] = []
  roster.on('restart', (m, previous) => restarts.push(`${previous}->${m.bootId}`))
  roster.observe(announce('n1'))
  clock.now += 3000
  roster.tick()
  t.is(roster.get('n1')?.state, 'dead')
  roster.observe(announce('n1', 'boot-2'))
  t.is(roster.get('n1')?.state, 'healthy')
  t.deepEqual(restarts, ['boot-1->boot-2'])
  t.is(roster.get('n1')?.restarts, 1)
  roster.goodbye({ cluster: 'c', id: 'n1', role: 'storage', bootId: 'boot-1' })
  t.is(roster.get('n1')?.state, 'healthy', 'a goodbye of an old boot is ignored')
  roster.goodbye({ cluster: 'c', id: 'n1', role: 'storage', bootId: 'boot-2' })
  t.is(roster.get('n1')?.state, 'dead')
  t.is(roster.get('n1')?.reason, 'said goodbye')
})

test('phi grows with silence and adapts to a slower heartbeat', (t) => {
  const d = new PhiAccrualDetector(100)
  let now = 0
  for (let i = 0; i < 20; i++) d.heartbeat(now += 100)
  t.true(d.phi(now + 100) < 1)
  t.true(d.phi(now + 1000) > 8)
  const slow = new PhiAccrualDetector(1000)
  now = 0
  for (let i = 0; i < 20; i++) slow.heartbeat(now += 1000)
  t.true(slow.phi(now + 1000) < 1, 'one period of silence is normal at a 1 s heartbeat')
})

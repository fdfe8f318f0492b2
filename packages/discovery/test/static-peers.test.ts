import test from 'ava'
import { randomGroupPort, until } from '@mirrorcast/testkit'
import type { AnyEnvelope } from '@mirrorcast/wire'
import { Announcer, MemberPresence, MulticastChannel, parsePeers, Roster, search } from '../src/index.js'

const KEY = Buffer.alloc(32, 7)
const randomPort = randomGroupPort
const info = { role: 'storage' as const, center: 'east', slot: 1, address: '127.1.0.1', port: 9, bootId: 'b1', free: 1, files: 0 }

test('parsePeers reads address[:port] lists and names a bad entry', (t) => {
  t.deepEqual(parsePeers('10.1.0.1:7800, 10.2.0.1', 7700), [{ address: '10.1.0.1', port: 7800 }, { address: '10.2.0.1', port: 7700 }])
  t.deepEqual(parsePeers(['127.0.0.1:1']), [{ address: '127.0.0.1', port: 1 }])
  t.throws(() => parsePeers('10.1.0.1:70000'), { code: 'ERR_DISCOVERY_BAD_OPTIONS', message: /"10\.1\.0\.1:70000"/ })
  t.throws(() => parsePeers('manager.lan'), { code: 'ERR_DISCOVERY_BAD_OPTIONS' })
})

test('with multicast off, announcements reach a static peer by unicast on its known port; searches are refused', async (t) => {
  const port = randomPort()
  const receiver = new MulticastChannel('mgr', { key: KEY, port, interface: '127.0.0.1', multicast: false })
  await receiver.start()
  t.teardown(async () => { await receiver.close() })
  t.is(receiver.replyAddress.port, port, 'with multicast off the unicast socket listens on the known port')
  const roster = new Roster()
  roster.start(receiver)
  t.teardown(() => roster.close())

  const sender = new MulticastChannel('n1', { key: KEY, port, interface: '127.1.0.1', multicast: false, peers: [{ address: '127.0.0.1', port }] })
  await sender.start()
  t.teardown(async () => { await sender.close() })
  const seqs: number[] = []
  receiver.on('message', (m: AnyEnvelope) => { if (m.t === 'announce') seqs.push(m.seq) })
  const announcer = new Announcer(sender, () => ({ ...info, id: 'n1' }), 20)
  await announcer.start()
  await until(() => seqs.length >= 3, { what: 'three announcements by unicast' })
  t.is(roster.get('n1')?.state, 'healthy')
  t.is(receiver.dropped['bad-mac'] + receiver.dropped.replayed, 0)
  await announcer.close()
  await until(() => roster.get('n1')?.state === 'dead', { what: 'n1 dead after its goodbye' })
  t.is(roster.get('n1')?.reason, 'said goodbye', 'the goodbye went to the static peer too')

  await t.throwsAsync(search(sender, { kind: 'blob', key: 'f'.repeat(32) }), { code: 'ERR_DISCOVERY_MULTICAST_OFF' })
})

test('a member with multicast off and no static peer is refused: nobody would hear it', (t) => {
  t.throws(() => new MemberPresence({ key: KEY, multicast: false }, () => ({ ...info, id: 'n1' }), async () => undefined), { code: 'ERR_DISCOVERY_BAD_OPTIONS', message: /no static peers/ })
})

test('one heartbeat is one datagram under one sequence number, to the group and to every peer', async (t) => {
  const port = randomPort()
  const peerPort = randomPort()
  const onGroup = new MulticastChannel('g', { key: KEY, port })
  const peer = new MulticastChannel('p', { key: KEY, port, peerPort, interface: '127.0.0.1', multicast: false })
  for (const c of [onGroup, peer]) {
    await c.start()
    t.teardown(async () => { await c.close() })
  }
  const sender = new MulticastChannel('n1', { key: KEY, port, peers: [{ address: '127.0.0.1', port: peerPort }], peerPort: 0 })
  await sender.start()
  t.teardown(async () => { await sender.close() })
  const heard = { g: [] as number[], p: [] as number[] }
  onGroup.on('message', (m) => { if (m.from === 'n1') heard.g.push(m.seq) })
  peer.on('message', (m) => { if (m.from === 'n1') heard.p.push(m.seq) })
  const announcer = new Announcer(sender, () => ({ ...info, id: 'n1' }), 20)
  await announcer.start()
  t.teardown(async () => { await announcer.close() })
  await until(() => heard.g.length >= 5 && heard.p.length >= 5, { what: 'five announcements on the group and five from the peer' })
  const consecutive = (s: number[]): boolean => s.slice(1).every((x, i) => x === (s[i] as number) + 1)
  t.true(consecutive(heard.g.slice(0, 5)), `group: ${heard.g.join(',')}`)
  t.deepEqual(heard.p.slice(0, 5), heard.g.slice(0, 5))
})

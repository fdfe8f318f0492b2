import test from 'ava'
import { AnnouncementEncoder, DatagramDecoder, decodeDatagram, encodeDatagram, type MessageBody } from '../src/index.js'

const KEY = Buffer.alloc(32, 7)
const body: MessageBody<'announce'> = { cluster: 'mirrorcast', id: 'node-0123456789abcdef', role: 'storage', center: 'east', slot: 3, address: '10.1.0.3', port: 8701, bootId: 'b-42', heartbeatMs: 100, free: 1e12, files: 12, quarantined: 0, scrub: { passes: 1, files: 2, bytes: 3, corrupt: 0 } }

test('an announcement encoded once per change decodes, by any decoder, to what the generic encoder\'s would', (t) => {
  const encoder = new AnnouncementEncoder(KEY, body.id)
  const ts = 1_764_000_000_123
  const seq = 1_764_000_000_123_000
  const fast = encoder.encode(body, seq, ts)
  const generic = encodeDatagram(KEY, { t: 'announce', from: body.id, seq, ts, body })
  t.deepEqual(decodeDatagram(KEY, fast), decodeDatagram(KEY, generic))
  t.true(fast.length <= 1200)
  // the next heartbeat: same body, new numbers
  const next = decodeDatagram(KEY, encoder.encode(body, seq + 1, ts + 100))
  t.is(next.seq, seq + 1)
  t.is(next.ts, ts + 100)
  const changed = decodeDatagram(KEY, encoder.encode({ ...body, files: 13 }, seq + 2, ts + 200))
  t.is((changed.body as MessageBody<'announce'>).files, 13, 'a changed body is packed again')
  t.throws(() => encoder.encode({ ...body, slot: 0 }, seq + 3), { code: 'ERR_WIRE_INVALID_OUTGOING' })
})

test('the decoder reads a known sender\'s repeated body without msgpack and gives the same envelopes; anything else takes the full path', (t) => {
  const encoder = new AnnouncementEncoder(KEY, body.id)
  const decoder = new DatagramDecoder(KEY)
  for (let i = 0; i < 5; i++) {
    const buf = encoder.encode(i < 3 ? body : { ...body, free: 5 }, 1000 + i, 2000 + i)
    t.deepEqual(decoder.decode(buf), decodeDatagram(KEY, buf), `datagram ${i}`)
  }
  // a generic encoding of the same sender, another sender, and forged or altered bytes
  const generic = encodeDatagram(KEY, { t: 'announce', from: body.id, seq: 9, body })
  t.deepEqual(decoder.decode(generic), decodeDatagram(KEY, generic))
  const other = new AnnouncementEncoder(KEY, 'node-other').encode({ ...body, id: 'node-other' }, 1, 2)
  t.is(decoder.decode(other).from, 'node-other')
  const forged = new AnnouncementEncoder(Buffer.alloc(32, 8), body.id).encode(body, 2000, 3000)
  t.throws(() => decoder.decode(forged), { code: 'ERR_WIRE_BAD_MAC' })
  const altered = encoder.encode({ ...body, free: 5 }, 3000, 4000)
  altered.writeUInt8((altered.at(-1) as number) ^ 1, altered.length - 1)
  t.throws(() => decoder.decode(altered), { code: 'ERR_WIRE_BAD_MAC' })
  const search = encodeDatagram(KEY, { t: 'search', from: body.id, seq: 10, body: { cluster: 'mirrorcast', queryId: '0123456789abcdef', kind: 'blob', key: 'k', replyAddress: '127.0.0.1', replyPort: 9, windowMs: 10 } })
  t.is(decoder.decode(search).t, 'search')
})

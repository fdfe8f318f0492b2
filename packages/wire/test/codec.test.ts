import test, { type ExecutionContext } from 'ava'
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Packr } from 'msgpackr'
import {
  DATAGRAM_CONTEXT, DEFAULT_MAX_DATAGRAM_BYTES, DEFAULT_MAX_FRAME_BYTES, FRAME_LENGTH_BYTES, MAC_BYTES, MAX_LIST_ENTRIES, MAX_PATH_LENGTH, MESSAGE_TYPES, PROTOCOL_VERSION,
  FrameDecoder, InvalidBodyError, NONCE_BYTES, WireError, WireErrorCode, decodeDatagram, decodeMessage, decodeSigned, encodeDatagram, encodeMessage, encodeSigned,
  generateClusterKey, partsOf, sessionAuth, httpStatusFor, messageSchemas,
  parseClusterKey, readClusterKeyFile, writeClusterKeyFile, type FileEntry, type MessageType, type OutgoingMessage, type Payload, type WireErrorCodeValue
} from '../src/index.js'
import { FRAME_ONLY, HEADER_LENGTH_BYTES, prng, sampleBodies, signRaw } from './helpers.js'

const key = generateClusterKey()
const context = Buffer.from('session-context-for-tests-000000')
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })

function message<T extends MessageType> (t: T, extra: Partial<OutgoingMessage<T>> = {}): OutgoingMessage<T> {
  return { t, from: 'node-1', seq: 7, ts: 1_700_000_000_123, body: sampleBodies[t], ...(t === 'chunk' ? { payload: Buffer.from('chunk bytes') } : {}), ...extra }
}

function parts (payload: Payload | undefined): Uint8Array[] {
  return payload === undefined ? [] : payload instanceof Uint8Array ? [payload] : [...payload]
}

function frame (msg: OutgoingMessage): Buffer {
  const [head, payload] = encodeMessage(key, context, msg, true)
  return Buffer.concat([head, ...parts(payload)])
}

/** A header signed with the right key, so decoding gets past the MAC. */
function signedHeader (header: Record<string, unknown>, payload?: Uint8Array): Buffer {
  return signRaw(key, DATAGRAM_CONTEXT, packr.pack(header), payload)
}

function validHeader (over: Record<string, unknown> = {}): Record<string, unknown> {
  return { v: PROTOCOL_VERSION, t: 'ok', f: 'node-1', ts: 1, s: 1, b: {}, ...over }
}

/** The code of the WireError `fn` throws; anything else thrown fails the test. */
function code (t: ExecutionContext, fn: () => unknown): WireErrorCodeValue | undefined {
  const err = t.throws(fn)
  if (!(err instanceof WireError)) {
    t.fail(`expected a WireError, got ${String(err)}`)
    return undefined
  }
  return err.code
}

async function asyncCode (t: ExecutionContext, promise: Promise<unknown>): Promise<string | undefined> {
  const err = await t.throwsAsync(promise)
  return (err as { code?: string } | undefined)?.code
}

test('every message type survives a datagram and a frame round trip', (t) => {
  t.deepEqual(new Set(MESSAGE_TYPES), new Set(Object.keys(messageSchemas)))
  for (const type of MESSAGE_TYPES) {
    const msg = message(type)
    const expected = { t: type, from: 'node-1', ts: 1_700_000_000_123, seq: 7, body: sampleBodies[type], payload: Buffer.concat(parts(msg.payload)) }

    if (!FRAME_ONLY.has(type)) {
      const datagram = encodeDatagram(key, msg)
      t.true(datagram.length <= DEFAULT_MAX_DATAGRAM_BYTES, type)
      t.deepEqual(decodeDatagram(key, datagram), expected, `datagram ${type}`)
    }

    const bytes = frame(msg)
    t.is(bytes.readUInt32BE(0), bytes.length - FRAME_LENGTH_BYTES, type)
    const frames = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES).push(bytes)
    t.is(frames.length, 1)
    t.deepEqual(decodeMessage(key, context, frames[0] as Buffer, DEFAULT_MAX_FRAME_BYTES), expected, `frame ${type}`)
  }
})

test('a full listing page, its header far above 64 KiB, round-trips as a frame', (t) => {
  const entry = (i: number): FileEntry => ({ type: 'file', path: `/photos/2026/img-${String(i).padStart(6, '0')}.jpg`, fileId: i.toString(16).padStart(32, '0'), size: i, sha256: 'cd'.repeat(32), version: 1, mtime: 1_700_000_000_000 + i, replicas: [{ node: 'node-1', center: 'east', slot: 1 }, { node: 'node-2', center: 'west', slot: 2 }] })
  const body = { entries: Array.from({ length: MAX_LIST_ENTRIES }, (_, i) => entry(i)), more: true }
  const bytes = frame(message('dir.list.ok', { body }))
  t.true(bytes.length > 1024 * 1024 && bytes.length <= DEFAULT_MAX_FRAME_BYTES, `${bytes.length} bytes`)
  const [only] = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES).push(bytes)
  t.deepEqual(decodeMessage(key, context, only as Buffer, DEFAULT_MAX_FRAME_BYTES).body, body)
  // the header length field is a u32 after the MAC
  t.is(bytes.readUInt32BE(FRAME_LENGTH_BYTES + MAC_BYTES), bytes.length - FRAME_LENGTH_BYTES - MAC_BYTES - HEADER_LENGTH_BYTES)
})

test('the timestamp defaults to now', (t) => {
  const before = Date.now()
  const msg = decodeDatagram(key, encodeDatagram(key, { t: 'ok', from: 'n', seq: 0, body: {} }))
  t.true(msg.ts >= before && msg.ts <= Date.now())
})

test('FrameDecoder gives the same frames fed at once, byte by byte and in random slices', (t) => {
  const msgs = MESSAGE_TYPES.map((type, i) => message(type, { seq: i + 1 }))
  msgs.push(message('chunk', { seq: 1000, payload: Buffer.alloc(70_000, 9) }))
  msgs.push(message('chunk', { seq: 1001, payload: Buffer.alloc(0) }))
  const stream = Buffer.concat(msgs.map(frame))
  const decode = (frames: Buffer[]): unknown[] => frames.map((f) => decodeMessage(key, context, f, DEFAULT_MAX_FRAME_BYTES))

  const whole = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES)
  const expected = decode(whole.push(stream))
  t.is(expected.length, msgs.length)
  t.is(whole.pending, 0)

  const bytewise = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES)
  const got: Buffer[] = []
  for (let i = 0; i < stream.length; i++) got.push(...bytewise.push(stream.subarray(i, i + 1)))
  t.deepEqual(decode(got), expected)
  t.is(bytewise.pending, 0)

  const random = prng(42)
  for (let round = 0; round < 20; round++) {
    const sliced = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES)
    const out: Buffer[] = []
    for (let at = 0; at < stream.length;) {
      const n = Math.floor(random() * (random() < 0.5 ? 16 : 40_000))
      out.push(...sliced.push(stream.subarray(at, at + n)))
      at += n
    }
    t.deepEqual(decode(out), expected)
    t.is(sliced.pending, 0)
  }
})

test('FrameDecoder reports the bytes of an unfinished frame as pending', (t) => {
  const bytes = frame(message('ok'))
  const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES)
  t.deepEqual(decoder.push(bytes.subarray(0, bytes.length - 1)), [])
  t.is(decoder.pending, bytes.length - 1)
})

test('FrameDecoder passes an empty frame on, and decoding refuses it as missing its MAC', (t) => {
  const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES)
  const frames = decoder.push(Buffer.alloc(FRAME_LENGTH_BYTES))
  t.is(frames.length, 1)
  t.is(decoder.pending, 0)
  t.is(code(t, () => decodeMessage(key, context, frames[0] as Buffer, DEFAULT_MAX_FRAME_BYTES)), WireErrorCode.MISSING_MAC)
})

test('FrameDecoder refuses a length prefix above its limit before buffering the frame', (t) => {
  const decoder = new FrameDecoder(1000)
  const prefix = Buffer.alloc(FRAME_LENGTH_BYTES)
  prefix.writeUInt32BE(1001)
  t.is(code(t, () => decoder.push(prefix)), WireErrorCode.OVERSIZE)
  // at the limit itself the decoder waits for the bytes
  const ok = new FrameDecoder(1000)
  prefix.writeUInt32BE(1000)
  t.deepEqual(ok.push(prefix), [])
  // a prefix split over two pushes is refused as soon as it is whole
  const split = new FrameDecoder(1000)
  prefix.writeUInt32BE(0xffffffff)
  t.deepEqual(split.push(prefix.subarray(0, 2)), [])
  t.is(code(t, () => split.push(prefix.subarray(2))), WireErrorCode.OVERSIZE)
})

test('a message too short to hold a MAC is ERR_WIRE_MISSING_MAC', (t) => {
  for (const length of [0, 1, MAC_BYTES, MAC_BYTES + HEADER_LENGTH_BYTES - 1]) {
    t.is(code(t, () => decodeDatagram(key, Buffer.alloc(length))), WireErrorCode.MISSING_MAC, `${length} bytes`)
  }
})

test('a flipped bit anywhere in MAC, header or payload is ERR_WIRE_BAD_MAC', (t) => {
  for (const msg of [message('announce'), message('chunk')]) {
    const good = encodeDatagram(key, msg)
    for (let byte = 0; byte < good.length; byte++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(good)
        bad[byte] = (bad[byte] as number) ^ (1 << bit)
        const got = code(t, () => decodeDatagram(key, bad))
        // the header length itself is MAC'd; grown past the end it is caught as truncation first
        if (byte >= MAC_BYTES && byte < MAC_BYTES + HEADER_LENGTH_BYTES) t.true(got === WireErrorCode.BAD_MAC || got === WireErrorCode.TRUNCATED)
        else if (got !== WireErrorCode.BAD_MAC) t.fail(`byte ${byte} bit ${bit} gave ${String(got)}`)
      }
    }
  }
})

test('a wrong key or a wrong context is ERR_WIRE_BAD_MAC', (t) => {
  const datagram = encodeDatagram(key, message('announce'))
  t.is(code(t, () => decodeDatagram(generateClusterKey(), datagram)), WireErrorCode.BAD_MAC)
  const bytes = frame(message('ok')).subarray(FRAME_LENGTH_BYTES)
  t.is(code(t, () => decodeMessage(key, Buffer.from('another-session'), bytes, DEFAULT_MAX_FRAME_BYTES)), WireErrorCode.BAD_MAC)
  // a datagram is not a frame of any session, nor the reverse
  t.is(code(t, () => decodeMessage(key, context, datagram, DEFAULT_MAX_FRAME_BYTES)), WireErrorCode.BAD_MAC)
  t.is(code(t, () => decodeDatagram(key, bytes)), WireErrorCode.BAD_MAC)
})

test('a session frame is signed with GMAC under its direction\'s key: it verifies only under that key and at its own sequence number, and any flipped bit fails', (t) => {
  const auth = sessionAuth(key, context)
  const msg = message('chunk', { seq: 41, payload: Buffer.alloc(70_000, 3) })
  const [head, payload] = encodeSigned(auth, msg, false)
  const bytes = Buffer.concat([head, ...parts(payload)])
  t.is(auth.macBytes, 16)
  const [headOfParts, inParts] = encodeSigned(auth, { ...msg, payload: [Buffer.alloc(1000, 3), Buffer.alloc(0), Buffer.alloc(69_000, 3)] }, false)
  t.true(Buffer.concat([headOfParts, ...parts(inParts)]).subarray(0, 16).equals(head.subarray(0, 16)), 'a payload in parts signs as the same bytes in one')
  t.deepEqual(decodeSigned(sessionAuth(key, context), bytes, DEFAULT_MAX_FRAME_BYTES, 41).payload, msg.payload)
  t.is(code(t, () => decodeSigned(auth, bytes, DEFAULT_MAX_FRAME_BYTES, 42)), WireErrorCode.BAD_MAC, 'another place in the stream')
  t.is(code(t, () => decodeSigned(sessionAuth(key, Buffer.from('the other direction')), bytes, DEFAULT_MAX_FRAME_BYTES, 41)), WireErrorCode.BAD_MAC)
  t.is(code(t, () => decodeSigned(sessionAuth(generateClusterKey(), context), bytes, DEFAULT_MAX_FRAME_BYTES, 41)), WireErrorCode.BAD_MAC)
  t.true([WireErrorCode.BAD_MAC, WireErrorCode.TRUNCATED].includes(code(t, () => decodeMessage(key, context, bytes, DEFAULT_MAX_FRAME_BYTES)) as 'ERR_WIRE_BAD_MAC'), 'nor as an HMAC message')
  for (const at of [0, 15, 16, 20, head.length - 1, head.length, bytes.length - 1]) {
    const flipped = Buffer.from(bytes)
    flipped[at] = (flipped[at] as number) ^ 0x10
    const got = code(t, () => decodeSigned(auth, flipped, DEFAULT_MAX_FRAME_BYTES, 41))
    if (at >= 16 && at < 20) t.true(got === WireErrorCode.BAD_MAC || got === WireErrorCode.TRUNCATED, `byte ${at}`)
    else t.is(got, WireErrorCode.BAD_MAC, `byte ${at}`)
  }
})

test('a frame that spans several reads is handed on as their slices, never copied, and verifies as the same frame in one buffer', (t) => {
  const auth = sessionAuth(key, context)
  const body = Buffer.alloc(200_000, 7)
  const [head, payload] = encodeSigned(auth, message('chunk', { seq: 5, payload: body }), true)
  const stream = Buffer.concat([head, ...parts(payload)])
  const reads = [stream.subarray(0, 10), stream.subarray(10, 65_536), stream.subarray(65_536, 131_072), stream.subarray(131_072)]
  const decoder = new FrameDecoder(DEFAULT_MAX_FRAME_BYTES)
  const frames = reads.flatMap((r) => decoder.pushParts(r))
  t.is(frames.length, 1)
  const slices = frames[0] as Buffer[]
  t.true(slices.length > 1)
  t.true(slices.slice(1).every((s) => reads.some((r) => r.buffer === s.buffer)), 'slices of the reads themselves')
  const msg = decodeSigned(auth, slices, DEFAULT_MAX_FRAME_BYTES, 5)
  t.true(Buffer.concat(partsOf(msg)).equals(body))
  t.true(msg.payload.equals(body), 'the joined payload, on demand')
  const flipped = slices.map((s) => Buffer.from(s))
  const last = flipped.at(-1) as Buffer
  last[last.length - 1] = (last[last.length - 1] as number) ^ 1
  t.is(code(t, () => decodeSigned(auth, flipped, DEFAULT_MAX_FRAME_BYTES, 5)), WireErrorCode.BAD_MAC)
})

test('an unknown version or type under a valid MAC is refused with its own code', (t) => {
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ v: 2 })))), WireErrorCode.UNKNOWN_VERSION)
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ v: undefined })))), WireErrorCode.UNKNOWN_VERSION)
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ v: '1' })))), WireErrorCode.UNKNOWN_VERSION)
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ t: 'blob.explode' })))), WireErrorCode.UNKNOWN_TYPE)
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ t: 'toString' })))), WireErrorCode.UNKNOWN_TYPE)
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ t: 42 })))), WireErrorCode.UNKNOWN_TYPE)
  // fields whose conversion to a string would throw still get a typed error
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ v: { toString: 1 } })))), WireErrorCode.UNKNOWN_VERSION)
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ t: { toString: 1, valueOf: 2 } })))), WireErrorCode.UNKNOWN_TYPE)
  // the hand-built layout is the codec's: a valid header signed this way decodes
  t.is(decodeDatagram(key, signedHeader(validHeader())).t, 'ok')
})

test('an oversize datagram is refused on decode and on encode', (t) => {
  const big = Buffer.alloc(DEFAULT_MAX_DATAGRAM_BYTES + 1)
  t.is(code(t, () => decodeDatagram(key, big)), WireErrorCode.OVERSIZE)
  // even one that is otherwise valid
  const valid = encodeDatagram(key, message('chunk', { payload: Buffer.alloc(1190) }), 5000)
  t.true(valid.length > DEFAULT_MAX_DATAGRAM_BYTES)
  t.is(code(t, () => decodeDatagram(key, valid)), WireErrorCode.OVERSIZE)
  t.is(decodeDatagram(key, valid, 5000).payload.length, 1190)
  t.is(code(t, () => encodeDatagram(key, message('chunk', { payload: Buffer.alloc(1200) }))), WireErrorCode.OVERSIZE)
  t.is(code(t, () => encodeDatagram(key, message('search', { body: { ...sampleBodies.search, key: 'k'.repeat(900), replyAddress: 'a'.repeat(64) } }), 900)), WireErrorCode.OVERSIZE)
  // a frame above the caller's limit
  const bytes = frame(message('chunk', { payload: Buffer.alloc(2000) })).subarray(FRAME_LENGTH_BYTES)
  t.is(code(t, () => decodeMessage(key, context, bytes, 1000)), WireErrorCode.OVERSIZE)
})

test('a header length beyond the message is ERR_WIRE_TRUNCATED', (t) => {
  const good = encodeDatagram(key, message('announce'))
  t.is(code(t, () => decodeDatagram(key, good.subarray(0, good.length - 1))), WireErrorCode.TRUNCATED)
  const bad = Buffer.from(good)
  bad.writeUInt32BE(0xffffffff, MAC_BYTES)
  t.is(code(t, () => decodeDatagram(key, bad)), WireErrorCode.TRUNCATED)
  t.is(code(t, () => decodeDatagram(key, Buffer.concat([Buffer.alloc(MAC_BYTES), Buffer.from([0, 0, 0, 1])]))), WireErrorCode.TRUNCATED)
})

test('a signed header that is not msgpack, not a map, or carries a stray payload is ERR_WIRE_MALFORMED', (t) => {
  const malformed = (header: Uint8Array, payload?: Uint8Array): WireErrorCodeValue | undefined =>
    code(t, () => decodeDatagram(key, signRaw(key, DATAGRAM_CONTEXT, header, payload)))
  t.is(malformed(Buffer.alloc(0)), WireErrorCode.MALFORMED)
  t.is(malformed(Buffer.from([0xc1])), WireErrorCode.MALFORMED) // never used
  t.is(malformed(Buffer.from([0xa5, 0x61])), WireErrorCode.MALFORMED) // str cut short
  t.is(malformed(Buffer.from([0x80, 0x80])), WireErrorCode.MALFORMED) // trailing bytes
  t.is(malformed(Buffer.from('not msgpack at all, just text')), WireErrorCode.MALFORMED)
  t.is(malformed(packr.pack([1, 2, 3])), WireErrorCode.MALFORMED)
  t.is(malformed(packr.pack('a string')), WireErrorCode.MALFORMED)
  t.is(malformed(packr.pack(null)), WireErrorCode.MALFORMED)
  t.is(malformed(packr.pack(validHeader()), Buffer.from('stray')), WireErrorCode.MALFORMED)
  t.is(decodeDatagram(key, signedHeader(validHeader({ t: 'chunk' }), Buffer.from('fine'))).payload.toString(), 'fine')
})

test('signed length bombs, deep nesting and extensions are ERR_WIRE_MALFORMED', (t) => {
  const malformed = (hex: string): WireErrorCodeValue | undefined =>
    code(t, () => decodeMessage(key, DATAGRAM_CONTEXT, signRaw(key, DATAGRAM_CONTEXT, Buffer.from(hex.replace(/ /g, ''), 'hex')), 1 << 20))
  // {v: <bomb>}
  for (const bomb of ['dd ffffffff 01', 'dc ffff 01', 'df ffffffff 01 01', 'de ffff 0101', 'db ffffffff 61', 'c6 ffffffff 00', 'c9 ffffffff 01 00', 'da 0010 61']) {
    t.is(malformed('81 a176 ' + bomb), WireErrorCode.MALFORMED, bomb)
  }
  t.is(malformed('91'.repeat(60_000) + '01'), WireErrorCode.MALFORMED) // nested 60,000 deep
  t.is(malformed('81 a176 ' + '91'.repeat(40) + '01'), WireErrorCode.MALFORMED)
  t.is(malformed('81 a176 d4 72 00'), WireErrorCode.MALFORMED) // record definition
  t.is(malformed('81 a176 d6 69 00000000 91 01'), WireErrorCode.MALFORMED) // structured-clone id
  t.is(malformed('81 a176 d4 65 00 93 a14501c0'), WireErrorCode.MALFORMED) // Error extension
  t.is(malformed('81 a176 d4 78 00 92 a161a0'), WireErrorCode.MALFORMED) // RegExp extension
  t.is(malformed('81 a176 d6 ff 00000001'), WireErrorCode.MALFORMED) // Date
  // what msgpackr writes for `undefined` is accepted (an optional field set to undefined)
  t.is(decodeDatagram(key, signedHeader(validHeader({ t: 'blob.get', b: { fileId: '0'.repeat(32), offset: 0, length: undefined } }))).t, 'blob.get')
})

test('a sender id, timestamp, sequence or body field missing or wrong is ERR_WIRE_INVALID_FIELD', (t) => {
  const invalid = (over: Record<string, unknown>): WireErrorCodeValue | undefined => code(t, () => decodeDatagram(key, signedHeader(validHeader(over))))
  for (const over of [
    { f: undefined }, { f: '' }, { f: 'bad id!' }, { f: 'a\nb' }, { f: 'x'.repeat(65) }, { f: 7 },
    { ts: undefined }, { ts: -1 }, { ts: 1.5 }, { ts: '1' }, { s: undefined }, { s: Number.MAX_SAFE_INTEGER + 2 },
    { b: undefined }, { b: [] }, { b: 'x' },
    { t: 'error', b: { code: 'x' } },
    { t: 'error', b: { code: 1, message: 'x' } },
    { t: 'blob.stat', b: { fileId: '0123456789ABCDEF0123456789ABCDEF' } },
    { t: 'blob.stat', b: { fileId: '0123' } },
    { t: 'blob.stat', b: { fileId: 'g'.repeat(32) } },
    { t: 'dir.stat', b: { path: '' } },
    { t: 'open', b: { nonce: 'not bytes' } },
    { t: 'announce', b: { ...sampleBodies.announce, id: 'spaces are bad' } }
  ]) {
    t.is(invalid(over), WireErrorCode.INVALID_FIELD, JSON.stringify(over).slice(0, 100))
  }
  // over-long path in a frame, where it fits
  const longPath = { path: '/' + 'a'.repeat(MAX_PATH_LENGTH) }
  const long = signRaw(key, context, packr.pack(validHeader({ t: 'dir.stat', b: longPath })))
  t.is(code(t, () => decodeMessage(key, context, long, DEFAULT_MAX_FRAME_BYTES)), WireErrorCode.INVALID_FIELD)
  // which the codec refuses to send in the first place
  t.is(code(t, () => frame(message('dir.stat', { body: longPath }))), WireErrorCode.INVALID_OUTGOING)
  // the error names the field
  const err = t.throws(() => decodeDatagram(key, signedHeader(validHeader({ t: 'blob.stat', b: { fileId: 'x' } }))))
  t.regex(err?.message ?? '', /fileId/)
})

test('writeClusterKeyFile writes a 0600 file that readClusterKeyFile reads back', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wire-key-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const file = join(dir, 'cluster.key')
  const k = generateClusterKey()
  await writeClusterKeyFile(file, k)
  t.is((await stat(file)).mode & 0o777, 0o600)
  t.deepEqual(await readClusterKeyFile(file), k)
  // never overwrites an existing key
  await t.throwsAsync(writeClusterKeyFile(file, generateClusterKey()))
  t.deepEqual(await readClusterKeyFile(file), k)
})

test('readClusterKeyFile refuses a file others can read, a non-hex or short key and a missing file with ERR_WIRE_BAD_KEY', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wire-key-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  const open = join(dir, 'open.key')
  await writeFile(open, generateClusterKey().toString('hex'), { mode: 0o644 })
  await chmod(open, 0o644)
  t.is(await asyncCode(t, readClusterKeyFile(open)), WireErrorCode.BAD_KEY)
  for (const [name, text] of [['nothex.key', 'z'.repeat(64)], ['short.key', 'ab'.repeat(8)], ['odd.key', 'a'.repeat(33)], ['empty.key', '\n']]) {
    const file = join(dir, name as string)
    await writeFile(file, text as string, { mode: 0o600 })
    t.is(await asyncCode(t, readClusterKeyFile(file)), WireErrorCode.BAD_KEY, name)
  }
  t.is(await asyncCode(t, readClusterKeyFile(join(dir, 'missing.key'))), WireErrorCode.BAD_KEY)
  t.deepEqual(parseClusterKey(' ' + 'AB'.repeat(16) + '\n'), Buffer.alloc(16, 0xab))
})

test('an empty or damaged key file is refused with ERR_WIRE_BAD_KEY, the file named and what to do', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wire-key-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  for (const [name, text, says] of [['empty.key', '', /is empty/], ['blank.key', '\n', /is empty/], ['torn.key', 'ab'.repeat(7), /holds no valid key/]] as const) {
    const file = join(dir, name)
    await writeFile(file, text, { mode: 0o600 })
    const err = await t.throwsAsync(readClusterKeyFile(file))
    t.is((err as { code?: string }).code, WireErrorCode.BAD_KEY, name)
    t.true(err?.message.includes(file), name)
    t.regex(err?.message ?? '', says, name)
    t.regex(err?.message ?? '', /copy the key file of another host of this cluster over it/, name)
  }
})

test('a small body rides inline only in a blob.put or blob.get.ok marked inline; the MAC covers its sha256', (t) => {
  const put = { fileId: 'a'.repeat(32), size: 5 }
  const body = Buffer.from('small')
  t.is(decodeDatagram(key, signedHeader(validHeader({ t: 'blob.put', b: { ...put, inline: true } }), body)).payload.toString(), 'small')
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ t: 'blob.put', b: put }), body))), WireErrorCode.MALFORMED, 'a streamed put carries no payload')
  const head = { fileId: 'a'.repeat(32), size: 5, sha256: 'b'.repeat(64), offset: 0, length: 5 }
  t.is(decodeDatagram(key, signedHeader(validHeader({ t: 'blob.get.ok', b: { ...head, inline: true } }), body)).payload.toString(), 'small')
  t.is(code(t, () => decodeDatagram(key, signedHeader(validHeader({ t: 'blob.get.ok', b: head }), body))), WireErrorCode.MALFORMED)
  // The same header signed over other bytes: a swapped payload fails the MAC.
  const signed = signedHeader(validHeader({ t: 'blob.put', b: { ...put, inline: true } }), body)
  const swapped = Buffer.concat([signed.subarray(0, signed.length - 5), Buffer.from('SMALL')])
  t.is(code(t, () => decodeDatagram(key, swapped)), WireErrorCode.BAD_MAC)
  const [head2, payload] = encodeMessage(key, DATAGRAM_CONTEXT, { t: 'chunk', from: 'node-1', seq: 1, body: {}, payload: body }, false)
  t.is(decodeDatagram(key, Buffer.concat([head2, payload as Uint8Array])).payload.toString(), 'small', 'the codec and an independent signer agree')
})

test('encodeMessage refuses, before writing anything, a body or payload its receiver would refuse: ERR_WIRE_INVALID_OUTGOING, a 400', (t) => {
  for (const msg of [
    message('dir.list', { body: { path: '/', after: 'a'.repeat(MAX_PATH_LENGTH + 1) } }),
    message('dir.list', { body: { path: '/', limit: MAX_LIST_ENTRIES + 1 } }),
    message('blob.stat', { body: { fileId: 'not-hex' } }),
    message('open', { body: { nonce: Buffer.alloc(15) } }),
    message('hello', { body: { ...sampleBodies.hello, nonce: Buffer.alloc(17) } }),
    message('blob.stat', { payload: Buffer.from('no payload on a stat') }),
    { t: 'no.such.type', from: 'node-1', seq: 1, body: {} } as unknown as OutgoingMessage
  ]) {
    t.is(code(t, () => encodeMessage(key, context, msg, true)), WireErrorCode.INVALID_OUTGOING, msg.t)
  }
  t.is(httpStatusFor(WireErrorCode.INVALID_OUTGOING), 400)
  // the message names what was wrong
  t.regex(t.throws(() => encodeMessage(key, context, message('dir.list', { body: { path: '/', limit: 1e9 } }), true))?.message ?? '', /dir\.list not sent: limit/)
})

test('a frame whose body fails its schema is an InvalidBodyError that still says what it was, from whom and at which sequence number', (t) => {
  const refused = signRaw(key, context, packr.pack(validHeader({ t: 'dir.stat', f: 'mgr-1', s: 42, b: { path: '' } })))
  const err = t.throws(() => decodeMessage(key, context, refused, DEFAULT_MAX_FRAME_BYTES))
  t.true(err instanceof InvalidBodyError)
  t.like(err, { code: WireErrorCode.INVALID_FIELD, t: 'dir.stat', from: 'mgr-1', seq: 42 })
  // a bad sender id or sequence number is not a body refusal: there is nothing to answer
  const badSeq = t.throws(() => decodeMessage(key, context, signRaw(key, context, packr.pack(validHeader({ s: -1 }))), DEFAULT_MAX_FRAME_BYTES))
  t.false(badSeq instanceof InvalidBodyError)
})

test('a nonce is exactly 16 bytes', (t) => {
  for (const n of [0, 15, 17, 32]) t.false(messageSchemas.open.safeParse({ nonce: Buffer.alloc(n) }).success, String(n))
  t.true(messageSchemas.open.safeParse({ nonce: Buffer.alloc(NONCE_BYTES) }).success)
  t.is(NONCE_BYTES, 16)
})

test('a FrameDecoder\'s limit can be raised once a handshake is done', (t) => {
  const decoder = new FrameDecoder(4096)
  const prefix = Buffer.alloc(FRAME_LENGTH_BYTES)
  prefix.writeUInt32BE(8 * 1024)
  t.is(code(t, () => decoder.push(prefix)), WireErrorCode.OVERSIZE)
  const raised = new FrameDecoder(4096)
  raised.setLimit(1 << 20)
  t.deepEqual(raised.push(Buffer.concat([prefix, Buffer.alloc(8 * 1024)])).map((f) => f.length), [8 * 1024])
})

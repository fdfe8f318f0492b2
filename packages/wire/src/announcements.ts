import { Packr } from 'msgpackr'
import { timingSafeEqual } from 'node:crypto'
import { DATAGRAM_CONTEXT, decodeDatagram, DEFAULT_MAX_DATAGRAM_BYTES, ENVELOPE_OVERHEAD, mac, MAC_BYTES, PROTOCOL_VERSION, type AnyEnvelope, type Envelope } from './codec.js'
import { WireError, WireErrorCode } from './errors.js'
import { checkAnnounce } from './fast-checks.js'
import type { MessageBody } from './messages.js'

type Announce = MessageBody<'announce'>

/**
 * Announcements are the one message sent and read at the rate of heartbeats,
 * and from one member they hardly ever change: only the timestamp and the
 * sequence number do. So a member packs and checks its announcement's body
 * only when it changes, and a manager, having decoded a member's body once,
 * recognises the same bytes next time and skips msgpack and the schema check.
 * Both sides still compute and check the MAC of every datagram.
 *
 * The layout is plain msgpack, what any decoder reads:
 * `{ v, t: 'announce', f, ts: float64, s: float64, b: <body> }` (8-byte
 * doubles hold the clock and the sequence number exactly, below 2^53).
 */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false })
const FLOAT64 = 0xcb

function prefixFor (from: string): Buffer {
  return Buffer.concat([Buffer.from([0x86]), packr.pack('v'), packr.pack(PROTOCOL_VERSION), packr.pack('t'), packr.pack('announce'), packr.pack('f'), packr.pack(from), packr.pack('ts')])
}
const SEQ_KEY = packr.pack('s')
const BODY_KEY = packr.pack('b')
// after the prefix: float64 ts, key s, float64 s, key b
const NUMBERS_BYTES = 9 + SEQ_KEY.length + 9 + BODY_KEY.length

function sameAnnouncement (a: Announce, b: Announce): boolean {
  return a.cluster === b.cluster && a.id === b.id && a.role === b.role && a.center === b.center && a.slot === b.slot &&
    a.address === b.address && a.port === b.port && a.bootId === b.bootId && a.heartbeatMs === b.heartbeatMs &&
    a.free === b.free && a.files === b.files && a.quarantined === b.quarantined &&
    a.scrub?.passes === b.scrub?.passes && a.scrub?.files === b.scrub?.files && a.scrub?.bytes === b.scrub?.bytes && a.scrub?.corrupt === b.scrub?.corrupt
}

/** One member's announcements, signed: the body packed and checked once per change. */
export class AnnouncementEncoder {
  private readonly key: Uint8Array
  private readonly prefix: Buffer
  private last: { body: Announce, bytes: Buffer } | undefined

  constructor (key: Uint8Array, from: string) {
    this.key = key
    this.prefix = prefixFor(from)
  }

  encode (body: Announce, seq: number, ts = Date.now()): Buffer {
    if (this.last === undefined || !sameAnnouncement(this.last.body, body)) {
      const checked = checkAnnounce(body)
      if (!checked.ok) throw new WireError(WireErrorCode.INVALID_OUTGOING, `announce not sent: ${checked.error}`.slice(0, 300))
      this.last = { body: { ...body, ...(body.scrub === undefined ? {} : { scrub: { ...body.scrub } }) }, bytes: packr.pack(checked.value) }
    }
    const headerLength = this.prefix.length + NUMBERS_BYTES + this.last.bytes.length
    const out = Buffer.allocUnsafe(ENVELOPE_OVERHEAD + headerLength)
    out.writeUInt32BE(headerLength, MAC_BYTES)
    let at = ENVELOPE_OVERHEAD + this.prefix.copy(out, ENVELOPE_OVERHEAD)
    out[at] = FLOAT64
    at = out.writeDoubleBE(ts, at + 1)
    at += SEQ_KEY.copy(out, at)
    out[at] = FLOAT64
    at = out.writeDoubleBE(seq, at + 1)
    at += BODY_KEY.copy(out, at)
    this.last.bytes.copy(out, at)
    mac(this.key, DATAGRAM_CONTEXT, out.subarray(MAC_BYTES), undefined).copy(out, 0)
    return out
  }
}

/**
 * Decodes datagrams as `decodeDatagram` does, remembering each sender's last
 * announcement: a datagram whose MAC verifies, laid out as AnnouncementEncoder
 * writes it, with the same body bytes as that sender's last one, is read
 * without msgpack. Anything else takes the full path.
 */
export class DatagramDecoder {
  private readonly key: Uint8Array
  private readonly known = new Map<string, { prefix: Buffer, bytes: Buffer, body: Announce }>()
  private readonly maxSenders: number

  constructor (key: Uint8Array, maxSenders = 4096) {
    this.key = key
    this.maxSenders = maxSenders
  }

  decode (buf: Buffer): AnyEnvelope {
    const fast = this.recognise(buf)
    if (fast !== undefined) return fast
    const msg = decodeDatagram(this.key, buf)
    if (msg.t === 'announce') this.remember(msg, buf)
    return msg
  }

  private recognise (buf: Buffer): Envelope<'announce'> | undefined {
    if (buf.length < ENVELOPE_OVERHEAD + 32 || buf.length > DEFAULT_MAX_DATAGRAM_BYTES || ENVELOPE_OVERHEAD + buf.readUInt32BE(MAC_BYTES) !== buf.length) return undefined
    const sender = senderOf(buf)
    const known = sender === undefined ? undefined : this.known.get(sender)
    if (known === undefined) return undefined
    const bodyAt = bodyOffset(buf, known.prefix)
    if (bodyAt === undefined || !buf.subarray(bodyAt).equals(known.bytes)) return undefined
    const expected = mac(this.key, DATAGRAM_CONTEXT, buf.subarray(MAC_BYTES), undefined)
    // a MAC that fails here fails on the full path too, which says why
    if (!timingSafeEqual(expected, buf.subarray(0, MAC_BYTES))) return undefined
    const at = ENVELOPE_OVERHEAD + known.prefix.length
    const ts = buf.readDoubleBE(at + 1)
    const seq = buf.readDoubleBE(at + 10 + SEQ_KEY.length)
    if (!Number.isSafeInteger(ts) || ts < 0 || !Number.isSafeInteger(seq) || seq < 0) return undefined
    return { t: 'announce', from: sender as string, ts, seq, body: { ...known.body }, payload: buf.subarray(buf.length) }
  }

  private remember (msg: Envelope<'announce'>, buf: Buffer): void {
    const prefix = prefixFor(msg.from)
    const bodyAt = bodyOffset(buf, prefix)
    if (bodyAt === undefined) {
      this.known.delete(msg.from)
      return
    }
    if (!this.known.has(msg.from) && this.known.size >= this.maxSenders) this.known.delete(this.known.keys().next().value as string)
    this.known.set(msg.from, { prefix, bytes: Buffer.from(buf.subarray(bodyAt)), body: msg.body })
  }
}

/** Where the body starts, if `buf` is laid out as AnnouncementEncoder writes it with this sender's prefix. */
function bodyOffset (buf: Buffer, prefix: Buffer): number | undefined {
  const at = ENVELOPE_OVERHEAD + prefix.length
  if (buf.length < at + NUMBERS_BYTES || !buf.subarray(ENVELOPE_OVERHEAD, at).equals(prefix)) return undefined
  if (buf[at] !== FLOAT64 || buf[at + 9 + SEQ_KEY.length] !== FLOAT64) return undefined
  if (!buf.subarray(at + 9, at + 9 + SEQ_KEY.length).equals(SEQ_KEY) || !buf.subarray(at + 18 + SEQ_KEY.length, at + NUMBERS_BYTES).equals(BODY_KEY)) return undefined
  return at + NUMBERS_BYTES
}

/** The sender id of a datagram in the announcement layout, read from the bytes where that layout puts it. */
function senderOf (buf: Buffer): string | undefined {
  // fixmap 6, 'v', 1, 't', 'announce', 'f', then the id: a fixstr, or a str8 past 31 characters
  const at = ENVELOPE_OVERHEAD + 1 + 2 + 1 + 2 + 9 + 2
  const marker = buf[at]
  if (marker === undefined) return undefined
  if (marker >= 0xa0 && marker <= 0xbf) return buf.toString('latin1', at + 1, at + 1 + (marker & 0x1f))
  if (marker === 0xd9) return buf.toString('latin1', at + 2, at + 2 + (buf[at + 1] ?? 0))
  return undefined
}

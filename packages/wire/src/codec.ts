import { createCipheriv, createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto'
import { Packr } from 'msgpackr'
import type { z } from 'zod'
import { sha256Of } from './digests.js'
import { WireError, WireErrorCode } from './errors.js'
import { isMessageType, messageSchemas, type MessageBody, type MessageType } from './messages.js'
import { checkAnnounce, checkBlobGet, checkBlobGetOk, checkBlobPut, checkBlobPutOk, checkDirStat, checkDirStatOk, isId, isUint, type FastCheck } from './fast-checks.js'

export const PROTOCOL_VERSION = 1
export const MAC_BYTES = 32 // HMAC-SHA256 output
// 4 bytes: a frame's header (a listing or change-log page) can be far above 64 KiB
const HEADER_LENGTH_BYTES = 4
/** The most a message takes besides its header and payload: the longest MAC (HMAC's) and the header's length. */
export const ENVELOPE_OVERHEAD = MAC_BYTES + HEADER_LENGTH_BYTES
export const FRAME_LENGTH_BYTES = 4
// 1,200 bytes: fits any LAN MTU after IP and UDP headers, so a datagram is never fragmented
export const DEFAULT_MAX_DATAGRAM_BYTES = 1200
// what the u32 length prefix of a frame can describe
const MAX_MESSAGE_BYTES = 0xffffffff
// 16 levels: the deepest body (a change-log page: header, body, changes, change, entry,
// replicas, replica) nests 7; a signed header nested deeper is refused before msgpackr
// recurses into it
const MAX_HEADER_DEPTH = 16
// Bytes after the header: a body chunk always may carry them; these only when marked `inline`.
const PAYLOAD_TYPES: ReadonlySet<MessageType> = new Set(['chunk'])
const INLINE_TYPES: ReadonlySet<MessageType> = new Set(['blob.put', 'blob.get.ok'])

// The messages checked by hand rather than by their zod schema: see fast-checks.ts.
const FAST_CHECKS: { [T in MessageType]?: FastCheck<T> } = {
  announce: checkAnnounce,
  'dir.stat': checkDirStat,
  'dir.stat.ok': checkDirStatOk,
  'blob.get': checkBlobGet,
  'blob.get.ok': checkBlobGetOk,
  'blob.put': checkBlobPut,
  'blob.put.ok': checkBlobPutOk
}

/** A body checked against its type's schema: the fast check where there is one, zod otherwise. */
function checkBody (t: MessageType, body: unknown): { ok: true, value: unknown } | { ok: false, error: string } {
  const fast = FAST_CHECKS[t] as FastCheck<MessageType> | undefined
  if (fast !== undefined) return fast(body)
  const parsed = messageSchemas[t].safeParse(body)
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, error: describeIssue(parsed.error) }
}

/** What every datagram and frame says besides its body. */
export interface Envelope<T extends MessageType = MessageType> {
  t: T
  /** Id of the sender. */
  from: string
  /** Sender's clock, ms since the epoch. */
  ts: number
  /** Per-sender (datagrams) or per-session-direction (frames) sequence number. */
  seq: number
  body: MessageBody<T>
  /** Raw bytes after the header; only `chunk` carries any. */
  payload: Buffer
  /**
   * The payload as the slices it arrived in, when it spans several reads:
   * `payload` then joins them on first use, which a reader of `parts` never pays.
   */
  parts?: readonly Buffer[]
}

/** The payload of a message as slices, whether it arrived in one or in several. */
export function partsOf (msg: Pick<Envelope, 'payload' | 'parts'>): readonly Buffer[] {
  return msg.parts ?? [msg.payload]
}

export type AnyEnvelope = { [T in MessageType]: Envelope<T> }[MessageType]

/** Bytes after a header: one buffer, or several sent back to back (a chunk gathered from a stream, never copied together). */
export type Payload = Uint8Array | readonly Uint8Array[]

/** The length of a payload. */
export function payloadBytes (payload: Payload | undefined): number {
  if (payload === undefined) return 0
  if (payload instanceof Uint8Array) return payload.length
  let n = 0
  for (const part of payload) n += part.length
  return n
}

export interface OutgoingMessage<T extends MessageType = MessageType> {
  t: T
  from: string
  seq: number
  ts?: number
  body: MessageBody<T>
  payload?: Payload
}

// Records off: a receiver may have missed the datagram or frame that defined a record.
// Structured clone off: its back-references turn a small header into a huge graph.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false, structuredClone: false })

/**
 * The bytes `value` takes in a message's header, encoded as a frame encodes it:
 * what a page of entries or changes is measured by before it is sent.
 */
export function encodedBytes (value: unknown): number {
  return packr.pack(value).length
}

/**
 * HMAC-SHA256 over the context, the signed header and the sha256 of the
 * payload: a payload is hashed once per buffer, however many messages it is
 * signed in (see digests.ts).
 */
export function mac (key: Uint8Array, context: Uint8Array, signed: Uint8Array, payload: Uint8Array | undefined): Buffer {
  const h = createHmac('sha256', keyObject(key)).update(context).update(signed)
  if (payload !== undefined && payload.length > 0) h.update(sha256Of(payload))
  return h.digest()
}

// A raw key is imported into OpenSSL on every createHmac; a KeyObject once per key.
const keyObjects = new WeakMap<Uint8Array, KeyObject>()

function keyObject (key: Uint8Array): KeyObject {
  let k = keyObjects.get(key)
  if (k === undefined) keyObjects.set(key, k = createSecretKey(key))
  return k
}

/**
 * How a message is signed. Datagrams and a session's handshake use HMAC-SHA256
 * under a context (`hmacAuth`); a session's frames after it use GMAC under a
 * key of their own (`sessionAuth`), which signs a 1 MiB payload for a tenth of
 * what hashing it costs.
 */
export interface MessageAuth {
  /** Bytes of the MAC at the start of each message. */
  readonly macBytes: number
  /** The MAC of the signed part (header length and header) and the payload; `seq` is the message's number in its session. */
  sign: (signed: Uint8Array, payload: Payload | undefined, seq: number) => Buffer
}

/** HMAC-SHA256 over `context`, the signed part and the payload's sha256 (see mac()). */
export function hmacAuth (key: Uint8Array, context: Uint8Array): MessageAuth {
  // A payload in parts is joined for its digest: only session frames, signed by GMAC, come in parts in practice.
  return { macBytes: MAC_BYTES, sign: (signed, payload) => mac(key, context, signed, payload instanceof Uint8Array || payload === undefined ? payload : Buffer.concat(payload)) }
}

// 16 bytes: AES-GCM's tag
const GMAC_BYTES = 16
const GMAC_KEY_CONTEXT = Buffer.from('mirrorcast-gmac-key-v1')

/**
 * GMAC (AES-256-GCM with the message as additional data and nothing
 * encrypted) under a key derived from the cluster key and `context`, which
 * names one direction of one session (both sides' random nonces): the key
 * never signs for another session. The IV is the message's sequence number,
 * which a session never repeats in a direction: GCM's one requirement. A
 * receiver passes the number it expects next, so a frame moved elsewhere in
 * the stream fails its MAC.
 */
export function sessionAuth (key: Uint8Array, context: Uint8Array): MessageAuth {
  const aesKey = createSecretKey(mac(key, GMAC_KEY_CONTEXT, context, undefined))
  const iv = Buffer.alloc(12)
  return {
    macBytes: GMAC_BYTES,
    sign: (signed, payload, seq) => {
      iv.writeBigUInt64BE(BigInt(seq), 4)
      const gcm = createCipheriv('aes-256-gcm', aesKey, iv)
      gcm.setAAD(signed)
      if (payload instanceof Uint8Array) {
        if (payload.length > 0) gcm.setAAD(payload)
      } else if (payload !== undefined) {
        for (const part of payload) if (part.length > 0) gcm.setAAD(part)
      }
      gcm.final()
      return gcm.getAuthTag()
    }
  }
}

// One HMAC auth per key and context buffer: datagrams are encoded by the thousand.
const hmacAuths = new WeakMap<Uint8Array, WeakMap<Uint8Array, MessageAuth>>()

function hmacAuthOf (key: Uint8Array, context: Uint8Array): MessageAuth {
  let byContext = hmacAuths.get(key)
  if (byContext === undefined) hmacAuths.set(key, byContext = new WeakMap())
  let auth = byContext.get(context)
  if (auth === undefined) byContext.set(context, auth = hmacAuth(key, context))
  return auth
}

/**
 * Encodes one message signed with HMAC-SHA256 under `key` and `context` (see encodeSigned).
 */
export function encodeMessage (key: Uint8Array, context: Uint8Array, msg: OutgoingMessage, withLength: boolean): [Buffer, Payload | undefined] {
  return encodeSigned(hmacAuthOf(key, context), msg, withLength)
}

/**
 * Encodes one signed message as `[length u32]? mac headerLength(u32) header payload`.
 * Returns the head and the payload apart so a stream can write both without a copy.
 */
export function encodeSigned (auth: MessageAuth, msg: OutgoingMessage, withLength: boolean): [Buffer, Payload | undefined] {
  checkOutgoing(msg)
  const header = packr.pack({ v: PROTOCOL_VERSION, t: msg.t, f: msg.from, ts: msg.ts ?? Date.now(), s: msg.seq, b: msg.body })
  const payloadLength = payloadBytes(msg.payload)
  const overhead = auth.macBytes + HEADER_LENGTH_BYTES
  if (overhead + header.length + payloadLength > MAX_MESSAGE_BYTES) {
    throw new WireError(WireErrorCode.OVERSIZE, `message of ${overhead + header.length + payloadLength} bytes exceeds ${MAX_MESSAGE_BYTES}`)
  }
  const prefix = withLength ? FRAME_LENGTH_BYTES : 0
  const head = Buffer.allocUnsafe(prefix + overhead + header.length)
  if (withLength) head.writeUInt32BE(overhead + header.length + payloadLength, 0)
  head.writeUInt32BE(header.length, prefix + auth.macBytes)
  header.copy(head, prefix + overhead)
  auth.sign(head.subarray(prefix + auth.macBytes), msg.payload, msg.seq).copy(head, prefix)
  return [head, msg.payload]
}

/**
 * Refuses, before anything is written, a message its receiver would refuse: the same
 * schema and payload rules as `parseHeader`. A bad value (in practice a client's
 * parameter relayed by a manager) then fails that one send locally with a code that
 * says so, instead of reaching a peer that would drop it, or the whole session.
 */
function checkOutgoing (msg: OutgoingMessage): void {
  if (!isMessageType(msg.t)) throw new WireError(WireErrorCode.INVALID_OUTGOING, `unknown message type ${show(msg.t, 40)} not sent`)
  const body = checkBody(msg.t, msg.body)
  if (!body.ok) throw new WireError(WireErrorCode.INVALID_OUTGOING, `${msg.t} not sent: ${body.error}`.slice(0, 300))
  if (payloadBytes(msg.payload) > 0 && !mayCarryPayload(msg.t, msg.body)) {
    throw new WireError(WireErrorCode.INVALID_OUTGOING, `${msg.t} may not carry a payload`)
  }
}

function mayCarryPayload (t: MessageType, body: unknown): boolean {
  return PAYLOAD_TYPES.has(t) || (INLINE_TYPES.has(t) && (body as { inline?: unknown }).inline === true)
}

function describeIssue (error: z.ZodError): string {
  const issue = error.issues[0]
  return issue === undefined ? 'invalid' : `${issue.path.join('.') || 'body'}: ${issue.message}`
}

/**
 * A frame whose MAC, header and sequence fields are sound but whose body fails its
 * schema: the sender is authentic, only its content is refused. A session answers it
 * with an error and goes on; `t`, `from` and `seq` let it keep its sequence count.
 */
export class InvalidBodyError extends WireError {
  readonly t: MessageType
  readonly from: string
  readonly seq: number

  constructor (t: MessageType, from: string, seq: number, message: string) {
    super(WireErrorCode.INVALID_FIELD, message)
    this.t = t
    this.from = from
    this.seq = seq
  }
}

export function encodeDatagram (key: Uint8Array, msg: OutgoingMessage, maxBytes = DEFAULT_MAX_DATAGRAM_BYTES): Buffer {
  const [head, payload] = encodeMessage(key, DATAGRAM_CONTEXT, msg, false)
  const out = payload === undefined ? head : Buffer.concat([head, ...(payload instanceof Uint8Array ? [payload] : payload)])
  if (out.length > maxBytes) {
    throw new WireError(WireErrorCode.OVERSIZE, `datagram of ${out.length} bytes exceeds ${maxBytes}`)
  }
  return out
}

export const DATAGRAM_CONTEXT = Buffer.from('mirrorcast-datagram-v1')

/**
 * Decodes one message (without its length prefix) signed with HMAC-SHA256
 * under `key` and `context` (see decodeSigned).
 */
export function decodeMessage (key: Uint8Array, context: Uint8Array, buf: Buffer, maxBytes: number): AnyEnvelope {
  return decodeSigned(hmacAuthOf(key, context), buf, maxBytes, 0)
}

/**
 * Decodes one message (without its length prefix). The MAC is checked before
 * anything is parsed: nothing from an unauthenticated sender reaches msgpack.
 * `seq` is the number the receiver expects (a session's; 0 where the MAC does not use it).
 */
export function decodeSigned (auth: MessageAuth, frame: Buffer | readonly Buffer[], maxBytes: number, seq: number): AnyEnvelope {
  if (!Buffer.isBuffer(frame)) return frame.length === 1 ? decodeSigned(auth, frame[0] as Buffer, maxBytes, seq) : decodeParts(auth, frame, maxBytes, seq)
  const buf: Buffer = frame
  if (buf.length > maxBytes) {
    throw new WireError(WireErrorCode.OVERSIZE, `message of ${buf.length} bytes exceeds ${maxBytes}`)
  }
  const overhead = auth.macBytes + HEADER_LENGTH_BYTES
  if (buf.length < overhead) {
    throw new WireError(WireErrorCode.MISSING_MAC, `message of ${buf.length} bytes is too short to carry a MAC`)
  }
  const headerLength = buf.readUInt32BE(auth.macBytes)
  const headerEnd = overhead + headerLength
  if (headerEnd > buf.length) {
    throw new WireError(WireErrorCode.TRUNCATED, `header of ${headerLength} bytes does not fit in a message of ${buf.length}`)
  }
  const payload = buf.subarray(headerEnd)
  const expected = auth.sign(buf.subarray(auth.macBytes, headerEnd), payload, seq)
  if (!timingSafeEqual(expected, buf.subarray(0, auth.macBytes))) {
    throw new WireError(WireErrorCode.BAD_MAC, 'message MAC does not verify under the cluster key')
  }
  const msg = parseHeader(buf.subarray(overhead, headerEnd), payload.length)
  msg.payload = payload
  return msg
}

/** A frame in slices: its MAC and header gathered (a few hundred bytes), its payload left as the slices it is. */
function decodeParts (auth: MessageAuth, frame: readonly Buffer[], maxBytes: number, seq: number): AnyEnvelope {
  const total = payloadBytes(frame)
  const overhead = auth.macBytes + HEADER_LENGTH_BYTES
  if (total > maxBytes || total < overhead) return decodeSigned(auth, Buffer.concat(frame), maxBytes, seq)
  const headerEnd = overhead + gather(frame, overhead).readUInt32BE(auth.macBytes)
  if (headerEnd > total) return decodeSigned(auth, Buffer.concat(frame), maxBytes, seq)
  const head = gather(frame, headerEnd)
  const parts = after(frame, headerEnd)
  const expected = auth.sign(head.subarray(auth.macBytes), parts, seq)
  if (!timingSafeEqual(expected, head.subarray(0, auth.macBytes))) {
    throw new WireError(WireErrorCode.BAD_MAC, 'message MAC does not verify under the cluster key')
  }
  const msg = parseHeader(head.subarray(overhead), total - headerEnd)
  let joined: Buffer | undefined
  Object.defineProperty(msg, 'payload', { get: () => (joined ??= Buffer.concat(parts)), enumerable: true })
  msg.parts = parts
  return msg
}

/** The first `n` bytes of slices, in one buffer. */
function gather (parts: readonly Buffer[], n: number): Buffer {
  const first = parts[0] as Buffer
  if (first.length >= n) return first.subarray(0, n)
  const out = Buffer.allocUnsafe(n)
  let at = 0
  for (const part of parts) {
    if (at >= n) break
    at += part.copy(out, at, 0, Math.min(part.length, n - at))
  }
  return out
}

/** The slices after the first `n` bytes. */
function after (parts: readonly Buffer[], n: number): Buffer[] {
  const out: Buffer[] = []
  let skip = n
  for (const part of parts) {
    if (skip >= part.length) {
      skip -= part.length
      continue
    }
    out.push(skip === 0 ? part : part.subarray(skip))
    skip = 0
  }
  return out
}

const EMPTY = Buffer.alloc(0)

export function decodeDatagram (key: Uint8Array, buf: Buffer, maxBytes = DEFAULT_MAX_DATAGRAM_BYTES): AnyEnvelope {
  return decodeMessage(key, DATAGRAM_CONTEXT, buf, maxBytes)
}

/**
 * Walks a header's msgpack without building anything and returns why it is refused, if it
 * is. Only what `encodeMessage` writes gets through: nil, booleans, numbers, strings,
 * bins, arrays and maps (and `undefined`, msgpackr's fixext 0). Every declared length
 * must fit in the bytes that remain and nesting is bounded, so msgpackr never
 * pre-allocates from a length bomb, recurses without bound, or meets an extension
 * (records, structured-clone references, errors, regexps, bundled strings) whose
 * decoding or later string conversion costs more than the header's size.
 * A signed header comes from a key holder, but a bug or a compromised member must not
 * be able to hang or exhaust a receiver.
 */
function scanHeader (buf: Buffer): string | undefined {
  const end = buf.length
  const open: number[] = [] // values still to read in each enclosing container
  let left = 1 // values still to read at this level: the header is one value
  let pos = 0
  for (;;) {
    if (left === 0) {
      const outer = open.pop()
      if (outer === undefined) break
      left = outer
      continue
    }
    left--
    if (pos >= end) return 'ends inside a value'
    const token = buf[pos++] as number
    let skip = 0 // bytes of this scalar after its token and length field
    let count = -1 // values inside this container; -1 for a scalar
    let lengthBytes = 0
    if (token <= 0x7f || token >= 0xe0 || (token >= 0xc0 && token <= 0xc3 && token !== 0xc1)) {
      // fixint, negative fixint, nil, false, true
    } else if (token <= 0x8f) {
      count = 2 * (token - 0x80)
    } else if (token <= 0x9f) {
      count = token - 0x90
    } else if (token <= 0xbf) {
      skip = token - 0xa0
    } else {
      switch (token) {
        case 0xc4: case 0xd9: lengthBytes = 1; break // bin 8, str 8
        case 0xc5: case 0xda: lengthBytes = 2; break // bin 16, str 16
        case 0xc6: case 0xdb: lengthBytes = 4; break // bin 32, str 32
        case 0xca: skip = 4; break // float 32
        case 0xcb: skip = 8; break // float 64
        case 0xcc: case 0xd0: skip = 1; break
        case 0xcd: case 0xd1: skip = 2; break
        case 0xce: case 0xd2: skip = 4; break
        case 0xcf: case 0xd3: skip = 8; break
        case 0xd4: // fixext 1: only type 0, msgpackr's `undefined`
          if (pos + 2 > end || buf[pos] !== 0) return `extension type ${buf[pos] ?? '?'} at byte ${pos - 1}`
          skip = 2
          break
        case 0xdc: case 0xde: lengthBytes = 2; break // array 16, map 16
        case 0xdd: case 0xdf: lengthBytes = 4; break // array 32, map 32
        default: return `msgpack token 0x${token.toString(16)} at byte ${pos - 1} is not used by the protocol`
      }
    }
    if (lengthBytes > 0) {
      if (pos + lengthBytes > end) return 'ends inside a length'
      const length = buf.readUIntBE(pos, lengthBytes)
      pos += lengthBytes
      if (token === 0xdc || token === 0xdd) count = length
      else if (token === 0xde || token === 0xdf) count = 2 * length
      else skip = length
    }
    if (count >= 0) {
      // every value takes at least one byte
      if (count > end - pos) return `container at byte ${pos} declares ${count} values in ${end - pos} bytes`
      if (count > 0) {
        open.push(left)
        if (open.length > MAX_HEADER_DEPTH) return `nested deeper than ${MAX_HEADER_DEPTH}`
        left = count
      }
    } else {
      if (skip > end - pos) return `value at byte ${pos} declares ${skip} bytes, ${end - pos} remain`
      pos += skip
    }
  }
  if (pos !== end) return `${end - pos} bytes after the header`
  return undefined
}

/** A header field for an error message, without calling anything the peer put there. */
function show (value: unknown, max: number): string {
  switch (typeof value) {
    case 'string': return JSON.stringify(value.slice(0, max))
    case 'number': case 'boolean': case 'bigint': case 'undefined': return String(value)
    default: return value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value === 'object' ? 'a map' : typeof value
  }
}

/** The envelope of a verified header, its payload still to be set by the caller. */
function parseHeader (header: Buffer, payloadLength: number): AnyEnvelope {
  const refusal = scanHeader(header)
  if (refusal !== undefined) {
    throw new WireError(WireErrorCode.MALFORMED, `message header is not acceptable msgpack: ${refusal}`)
  }
  let raw: unknown
  try {
    raw = packr.unpack(header)
  } catch (err) {
    throw new WireError(WireErrorCode.MALFORMED, 'message header is not valid msgpack', { cause: err })
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new WireError(WireErrorCode.MALFORMED, 'message header is not a map')
  }
  const h = raw as Record<string, unknown>
  if (h.v !== PROTOCOL_VERSION) {
    throw new WireError(WireErrorCode.UNKNOWN_VERSION, `protocol version ${show(h.v, 20)} is not ${PROTOCOL_VERSION}`)
  }
  if (!isMessageType(h.t)) {
    throw new WireError(WireErrorCode.UNKNOWN_TYPE, `unknown message type ${show(h.t, 40)}`)
  }
  const t = h.t
  const { f: from, ts, s: seq } = h
  if (!isId(from) || !isUint(ts) || !isUint(seq)) {
    throw new WireError(WireErrorCode.INVALID_FIELD, `${t}: sender id, timestamp or sequence number missing or invalid`)
  }
  const body = checkBody(t, h.b)
  if (!body.ok) {
    throw new InvalidBodyError(t, from, seq, `${t}: ${body.error}`.slice(0, 300))
  }
  if (payloadLength > 0 && !mayCarryPayload(t, body.value)) {
    throw new WireError(WireErrorCode.MALFORMED, `${t} carries ${payloadLength} unexpected payload bytes`)
  }
  return { t, from, ts, seq, body: body.value, payload: EMPTY } as AnyEnvelope
}

import { createHmac, timingSafeEqual } from 'node:crypto'
import { Packr } from 'msgpackr'
import { WireError, WireErrorCode } from './errors.js'
import { idSchema, isMessageType, messageSchemas, uintSchema, type MessageBody, type MessageType } from './messages.js'

export const PROTOCOL_VERSION = 1
export const MAC_BYTES = 32 // HMAC-SHA256 output
const HEADER_LENGTH_BYTES = 2
const ENVELOPE_OVERHEAD = MAC_BYTES + HEADER_LENGTH_BYTES
export const FRAME_LENGTH_BYTES = 4
// 1,200 bytes: fits any LAN MTU after IP and UDP headers, so a datagram is never fragmented
export const DEFAULT_MAX_DATAGRAM_BYTES = 1200
// 8 MiB: a directory listing page fits; body chunks are far smaller
export const DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
const MAX_HEADER_BYTES = 0xffff

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
}

export type AnyEnvelope = { [T in MessageType]: Envelope<T> }[MessageType]

export interface OutgoingMessage<T extends MessageType = MessageType> {
  t: T
  from: string
  seq: number
  ts?: number
  body: MessageBody<T>
  payload?: Uint8Array
}

// Records off: a receiver may have missed the datagram or frame that defined a record.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })

function mac (key: Uint8Array, context: Uint8Array, signed: Uint8Array, payload: Uint8Array | undefined): Buffer {
  const h = createHmac('sha256', key).update(context).update(signed)
  if (payload !== undefined && payload.length > 0) h.update(payload)
  return h.digest()
}

/**
 * Encodes one signed message as `[length u32]? mac(32) headerLength(u16) header payload`.
 * Returns the head and the payload apart so a stream can write both without a copy.
 * The MAC covers `context` (the session's nonces for frames), header and payload.
 */
export function encodeMessage (key: Uint8Array, context: Uint8Array, msg: OutgoingMessage, withLength: boolean): [Buffer, Uint8Array | undefined] {
  const header = packr.pack({ v: PROTOCOL_VERSION, t: msg.t, f: msg.from, ts: msg.ts ?? Date.now(), s: msg.seq, b: msg.body })
  if (header.length > MAX_HEADER_BYTES) {
    throw new WireError(WireErrorCode.OVERSIZE, `message header of ${header.length} bytes exceeds ${MAX_HEADER_BYTES}`)
  }
  const prefix = withLength ? FRAME_LENGTH_BYTES : 0
  const head = Buffer.allocUnsafe(prefix + ENVELOPE_OVERHEAD + header.length)
  const payloadLength = msg.payload?.length ?? 0
  if (withLength) head.writeUInt32BE(ENVELOPE_OVERHEAD + header.length + payloadLength, 0)
  head.writeUInt16BE(header.length, prefix + MAC_BYTES)
  header.copy(head, prefix + ENVELOPE_OVERHEAD)
  const signed = head.subarray(prefix + MAC_BYTES)
  mac(key, context, signed, msg.payload).copy(head, prefix)
  return [head, msg.payload]
}

export function encodeDatagram (key: Uint8Array, msg: OutgoingMessage, maxBytes = DEFAULT_MAX_DATAGRAM_BYTES): Buffer {
  const [head, payload] = encodeMessage(key, DATAGRAM_CONTEXT, msg, false)
  const out = payload === undefined ? head : Buffer.concat([head, payload])
  if (out.length > maxBytes) {
    throw new WireError(WireErrorCode.OVERSIZE, `datagram of ${out.length} bytes exceeds ${maxBytes}`)
  }
  return out
}

export const DATAGRAM_CONTEXT = Buffer.from('mirrorcast-datagram-v1')

/**
 * Decodes one message (without its length prefix). The MAC is checked before
 * anything is parsed: nothing from an unauthenticated sender reaches msgpack.
 */
export function decodeMessage (key: Uint8Array, context: Uint8Array, buf: Buffer, maxBytes: number): AnyEnvelope {
  if (buf.length > maxBytes) {
    throw new WireError(WireErrorCode.OVERSIZE, `message of ${buf.length} bytes exceeds ${maxBytes}`)
  }
  if (buf.length < ENVELOPE_OVERHEAD) {
    throw new WireError(WireErrorCode.MISSING_MAC, `message of ${buf.length} bytes is too short to carry a MAC`)
  }
  const headerLength = buf.readUInt16BE(MAC_BYTES)
  const headerEnd = ENVELOPE_OVERHEAD + headerLength
  if (headerEnd > buf.length) {
    throw new WireError(WireErrorCode.TRUNCATED, `header of ${headerLength} bytes does not fit in a message of ${buf.length}`)
  }
  const payload = buf.subarray(headerEnd)
  const expected = mac(key, context, buf.subarray(MAC_BYTES, headerEnd), payload)
  if (!timingSafeEqual(expected, buf.subarray(0, MAC_BYTES))) {
    throw new WireError(WireErrorCode.BAD_MAC, 'message MAC does not verify under the cluster key')
  }
  return parseHeader(buf.subarray(ENVELOPE_OVERHEAD, headerEnd), payload)
}

export function decodeDatagram (key: Uint8Array, buf: Buffer, maxBytes = DEFAULT_MAX_DATAGRAM_BYTES): AnyEnvelope {
  return decodeMessage(key, DATAGRAM_CONTEXT, buf, maxBytes)
}

function parseHeader (header: Buffer, payload: Buffer): AnyEnvelope {
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
    throw new WireError(WireErrorCode.UNKNOWN_VERSION, `protocol version ${String(h.v).slice(0, 20)} is not ${PROTOCOL_VERSION}`)
  }
  if (!isMessageType(h.t)) {
    throw new WireError(WireErrorCode.UNKNOWN_TYPE, `unknown message type ${JSON.stringify(String(h.t).slice(0, 40))}`)
  }
  const t = h.t
  const from = idSchema.safeParse(h.f)
  const ts = uintSchema.safeParse(h.ts)
  const seq = uintSchema.safeParse(h.s)
  if (!from.success || !ts.success || !seq.success) {
    throw new WireError(WireErrorCode.INVALID_FIELD, `${t}: sender id, timestamp or sequence number missing or invalid`)
  }
  const body = messageSchemas[t].safeParse(h.b)
  if (!body.success) {
    const issue = body.error.issues[0]
    const where = issue === undefined ? '' : `${issue.path.join('.') || 'body'}: ${issue.message}`
    throw new WireError(WireErrorCode.INVALID_FIELD, `${t}: ${where}`.slice(0, 300))
  }
  if (payload.length > 0 && t !== 'chunk') {
    throw new WireError(WireErrorCode.MALFORMED, `${t} carries ${payload.length} unexpected payload bytes`)
  }
  return { t, from: from.data, ts: ts.data, seq: seq.data, body: body.data, payload } as AnyEnvelope
}

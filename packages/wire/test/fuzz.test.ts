import test from 'ava'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Packr } from 'msgpackr'
import {
  DATAGRAM_CONTEXT, DEFAULT_MAX_DATAGRAM_BYTES, FRAME_LENGTH_BYTES, MAC_BYTES, MESSAGE_TYPES, PROTOCOL_VERSION, WireErrorCode,
  FrameDecoder, WireError, decodeDatagram, decodeMessage, encodeDatagram, encodeMessage, generateClusterKey, isMessageType, messageSchemas
} from '../src/index.js'
import { FRAME_ONLY, HEADER_LENGTH_BYTES, prng, sampleBodies, signRaw } from './helpers.js'

const CASES = 100_000
const SEED = 0x5eed_2026
// above a datagram: frames carry headers up to 64 KiB
const FRAME_LIMIT = 128 * 1024
const key = generateClusterKey()
const frameContext = Buffer.from('fuzz-session-context-0123456789ab')
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })
const codes = new Set<string>(Object.values(WireErrorCode))

const valid: Buffer[] = MESSAGE_TYPES.filter((t) => !FRAME_ONLY.has(t)).map((t, i) => encodeDatagram(key, {
  t, from: 'node-1', seq: i, ts: 1_700_000_000_000 + i, body: sampleBodies[t], ...(t === 'chunk' ? { payload: Buffer.alloc(100, i) } : {})
}))
const validHeaders = MESSAGE_TYPES.map((t, i) => ({ v: PROTOCOL_VERSION, t, f: 'node-1', ts: 1_700_000_000_000 + i, s: i, b: sampleBodies[t] as Record<string, unknown> }))

type Input = { buf: Buffer, frame: boolean, kind: string }

/** Everything one case needs, drawn from one seeded generator: a pass is reproducible from SEED. */
class Generator {
  readonly random: () => number
  constructor (seed: number) { this.random = prng(seed) }

  int (n: number): number { return Math.floor(this.random() * n) }
  pick<X> (xs: readonly X[]): X { return xs[this.int(xs.length)] as X }
  bytes (n: number): Buffer {
    const out = Buffer.allocUnsafe(n)
    for (let i = 0; i < n; i++) out[i] = this.int(256)
    return out
  }

  u (bytes: number, value: number): Buffer {
    const out = Buffer.alloc(bytes)
    out.writeUIntBE(value, 0, bytes)
    return out
  }

  /** A declared length: mostly huge, sometimes plausible. */
  length (bytes: 1 | 2 | 4): number {
    const max = bytes === 4 ? 0xffffffff : bytes === 2 ? 0xffff : 0xff
    switch (this.int(4)) {
      case 0: return max
      case 1: return max >>> 1
      case 2: return this.int(64)
      default: return this.int(max + 1)
    }
  }

  /** A length bomb: a container, string, bin or ext header declaring far more than follows. */
  bomb (): Buffer {
    const token = this.pick([0xdc, 0xdd, 0xde, 0xdf, 0xda, 0xdb, 0xd9, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0x9f, 0x8f, 0xbf])
    let head: Buffer
    if (token === 0xdc || token === 0xde || token === 0xda || token === 0xc5 || token === 0xc8) head = this.u(2, this.length(2))
    else if (token === 0xdd || token === 0xdf || token === 0xdb || token === 0xc6 || token === 0xc9) head = this.u(4, this.length(4))
    else if (token === 0xd9 || token === 0xc4 || token === 0xc7) head = this.u(1, this.length(1))
    else head = Buffer.alloc(0)
    return Buffer.concat([Buffer.from([token]), head, this.bytes(this.int(12))])
  }

  /** Containers nested `depth` deep around a scalar. */
  nest (depth: number): Buffer {
    const open = this.pick([[0x91], [0x81, 0xa1, 0x61], [0xdc, 0, 1], [0xdd, 0, 0, 0, 1], [0xdf, 0, 0, 0, 1, 0xa0], [0x92, 0x01]])
    const parts: number[] = []
    for (let i = 0; i < depth; i++) parts.push(...open)
    parts.push(0x01)
    return Buffer.from(parts)
  }

  /** An extension value, including msgpackr's own (records, structured clone, Error, RegExp, bundled strings). */
  ext (): Buffer {
    const type = this.pick([0x00, 0x42, 0x62, 0x65, 0x69, 0x70, 0x72, 0x73, 0x74, 0x78, 0xff, this.int(256)])
    const token = this.pick([0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xc7, 0xc8, 0xc9])
    const size = { 0xd4: 1, 0xd5: 2, 0xd6: 4, 0xd7: 8, 0xd8: 16 }[token] ?? this.int(32)
    const length = token === 0xc7 ? this.u(1, size) : token === 0xc8 ? this.u(2, size) : token === 0xc9 ? this.u(4, size) : Buffer.alloc(0)
    return Buffer.concat([Buffer.from([token]), length, Buffer.from([type]), this.bytes(size), this.msgpackish(this.int(4))])
  }

  /** A structured-clone reference graph doubling at every level: huge if it is ever walked. */
  dagBomb (levels: number): Buffer {
    let out = Buffer.from('d669000000009101', 'hex')
    for (let k = 1; k <= levels; k++) out = Buffer.concat([Buffer.from('d669', 'hex'), this.u(4, k), Buffer.from([0x92]), out, Buffer.from('d670', 'hex'), this.u(4, k - 1)])
    return out
  }

  /** Tokens that look like msgpack: valid heads with random lengths and contents. */
  msgpackish (n: number): Buffer {
    const parts: Buffer[] = []
    for (let i = 0; i < n; i++) {
      switch (this.int(10)) {
        case 0: parts.push(Buffer.from([0x80 + this.int(16)])); break
        case 1: parts.push(Buffer.from([0x90 + this.int(16)])); break
        case 2: parts.push(Buffer.from([0xa0 + this.int(32)]), this.bytes(this.int(40))); break
        case 3: parts.push(this.bomb()); break
        case 4: parts.push(Buffer.from([this.pick([0xc0, 0xc1, 0xc2, 0xc3])])); break
        case 5: parts.push(Buffer.from([this.pick([0xca, 0xcb, 0xcc, 0xcd, 0xce, 0xcf, 0xd0, 0xd1, 0xd2, 0xd3])]), this.bytes(this.int(9))); break
        case 6: parts.push(this.ext()); break
        case 7: parts.push(Buffer.from([0xa1, this.pick([0x76, 0x74, 0x66, 0x62, 0x73])])); break // v t f b s
        case 8: parts.push(Buffer.from([this.int(256)])); break
        default: parts.push(Buffer.from([this.int(128)]))
      }
    }
    return Buffer.concat(parts)
  }

  /** A value of any type, to put where a field of another type belongs. */
  value (depth = 0): unknown {
    switch (this.int(depth > 2 ? 12 : 15)) {
      case 0: return this.int(2 ** 32)
      case 1: return -this.int(1000) - 1
      case 2: return this.random() * 1e6
      case 3: return this.pick([NaN, Infinity, -Infinity, -0, Number.MAX_SAFE_INTEGER + 2, 2 ** 64])
      case 4: return this.bytes(this.int(20)).toString('latin1')
      case 5: return 'x'.repeat(this.pick([0, 1, 64, 65, 900, 901, 4096, 4097]))
      case 6: return this.bytes(this.int(40))
      case 7: return null
      case 8: return undefined
      case 9: return this.random() < 0.5
      case 10: return this.pick(['__proto__', 'constructor', 'toString', 'chunk', 'ok', '/a', '0'.repeat(32)])
      case 11: return { toString: 1, valueOf: 2 }
      case 12: return Array.from({ length: this.int(5) }, () => this.value(depth + 1))
      case 13: return Object.fromEntries(Array.from({ length: this.int(5) }, () => [this.pick(['a', 'fileId', 'path', '__proto__', 'constructor', 'toString', '']), this.value(depth + 1)]))
      default: return { ...(this.pick(validHeaders).b), [this.pick(['fileId', 'path', 'size', 'id', 'nonce', 'entry', 'change', 'entries', 'code'])]: this.value(depth + 1) }
    }
  }

  /** A valid header with one field (top level or in the body) swapped for a value of any type. */
  wrongField (): Buffer {
    const header: Record<string, unknown> = { ...this.pick(validHeaders) }
    if (this.random() < 0.5) {
      header[this.pick(['v', 't', 'f', 'ts', 's', 'b', 'x'])] = this.value()
    } else {
      const body = { ...(header.b as Record<string, unknown>) }
      const fields = Object.keys(body)
      body[fields.length > 0 && this.random() < 0.8 ? this.pick(fields) : 'extra'] = this.value()
      header.b = body
    }
    return packr.pack(header)
  }

  mutate (buf: Buffer, times: number): Buffer {
    let out = Buffer.from(buf)
    for (let i = 0; i < times; i++) {
      const at = this.int(out.length + 1)
      switch (this.int(5)) {
        case 0: if (out.length > 0) { const j = Math.min(at, out.length - 1); out[j] = (out[j] as number) ^ (1 << this.int(8)) } break
        case 1: out = out.subarray(0, at); break
        case 2: out = Buffer.concat([out, this.bytes(this.int(64))]); break
        case 3: out = Buffer.concat([out.subarray(0, at), this.bytes(1 + this.int(8)), out.subarray(at)]); break
        default: out = Buffer.concat([out.subarray(0, at), out.subarray(at + 1 + this.int(8))])
      }
    }
    return out
  }

  /** A hostile header, signed with the right key so it reaches msgpack. */
  signedHostile (): Input {
    const prefix = this.pick([Buffer.alloc(0), Buffer.from('81a176', 'hex'), Buffer.from('86a17601a174a26f6ba166a16ea27473', 'hex'), Buffer.from('82a17601a162', 'hex')])
    let header: Buffer
    let kind: string
    switch (this.int(8)) {
      case 0: kind = 'bomb'; header = Buffer.concat([prefix, this.bomb()]); break
      case 1: kind = 'nest'; header = Buffer.concat([prefix, this.nest(this.random() < 0.9 ? this.int(300) : this.int(20_000))]); break
      case 2: kind = 'msgpackish'; header = Buffer.concat([prefix, this.msgpackish(1 + this.int(40))]); break
      case 3: kind = 'ext'; header = Buffer.concat([prefix, this.ext()]); break
      case 4: kind = 'dag'; header = Buffer.concat([prefix, this.dagBomb(20 + this.int(40)), this.random() < 0.5 ? Buffer.from([0xc0]) : Buffer.alloc(0)]); break
      case 5: case 6: kind = 'wrong-field'; header = this.wrongField(); break
      default: kind = 'mutated-header'; header = this.mutate(packr.pack(this.pick(validHeaders)), 1 + this.int(4))
    }
    header = header.subarray(0, 0xffff)
    const payload = this.random() < 0.1 ? this.bytes(this.int(100)) : undefined
    // datagrams hold small headers; frames take the rest
    const frame = header.length > DEFAULT_MAX_DATAGRAM_BYTES - 200 || this.random() < 0.2
    return { buf: signRaw(key, frame ? frameContext : DATAGRAM_CONTEXT, header, payload), frame, kind: 'signed-' + kind }
  }

  next (): Input {
    const r = this.random()
    if (r < 0.12) return { buf: this.bytes(this.int(1501)), frame: false, kind: 'random' }
    if (r < 0.15) {
      // random, but with a header length that fits, so the MAC is computed and compared
      const buf = this.bytes(MAC_BYTES + HEADER_LENGTH_BYTES + this.int(1100))
      buf.writeUInt32BE(this.int(buf.length - MAC_BYTES - HEADER_LENGTH_BYTES + 1), MAC_BYTES)
      return { buf, frame: false, kind: 'random-fitting' }
    }
    if (r < 0.45) return { buf: this.mutate(this.pick(valid), 1 + this.int(4)), frame: false, kind: 'mutated' }
    return this.signedHostile()
  }
}

type Failure = { kind: string, hex: string, what: string }

/** Decodes every case; returns what came out that was neither a valid envelope nor a typed error. */
function pass (seed: number, n: number): { failures: Failure[], slowestMs: number, outcomes: Map<string, number> } {
  const gen = new Generator(seed)
  const failures: Failure[] = []
  const outcomes = new Map<string, number>()
  let slowestMs = 0
  for (let i = 0; i < n; i++) {
    const input = gen.next()
    const started = performance.now()
    let outcome: string
    try {
      const env = input.frame
        ? decodeMessage(key, frameContext, input.buf, FRAME_LIMIT)
        : decodeDatagram(key, input.buf)
      const ok = isMessageType(env.t) && messageSchemas[env.t].safeParse(env.body).success &&
        typeof env.from === 'string' && Number.isSafeInteger(env.ts) && Number.isSafeInteger(env.seq) && Buffer.isBuffer(env.payload)
      outcome = 'decoded'
      if (!ok) failures.push({ kind: input.kind, hex: input.buf.toString('hex'), what: `invalid envelope ${env.t}` })
    } catch (err) {
      outcome = err instanceof WireError && codes.has(err.code) ? err.code : 'untyped'
      if (outcome === 'untyped') failures.push({ kind: input.kind, hex: input.buf.toString('hex'), what: String((err as Error)?.stack ?? err) })
    }
    const ms = performance.now() - started
    if (ms > slowestMs) slowestMs = ms
    const k = `${input.kind} ${outcome}`
    outcomes.set(k, (outcomes.get(k) ?? 0) + 1)
  }
  return { failures, slowestMs, outcomes }
}

/** `gc` without starting node with --expose-gc: makes heap measurements steady rather than lucky. */
function getGc (): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc')
    const gc: unknown = runInNewContext('gc')
    return typeof gc === 'function' ? gc as () => void : undefined
  } catch {
    return undefined
  }
}

test('100,000 random, mutated and signed hostile buffers give only valid envelopes or typed errors, without hang or memory growth', (t) => {
  const started = Date.now()
  const first = pass(SEED, CASES)
  t.log(`seed ${SEED}: ${CASES} cases in ${Date.now() - started} ms, slowest ${first.slowestMs.toFixed(1)} ms`)
  t.log([...first.outcomes].sort().map(([k, v]) => `${k}: ${v}`).join('\n'))
  for (const f of first.failures.slice(0, 5)) t.log(`${f.kind}: ${f.what}\n  ${f.hex.slice(0, 2000)}`)
  t.is(first.failures.length, 0, 'every decode ends in a valid envelope or a WireError')
  // the signed hostile headers reached msgpack and beyond, not just the MAC check
  for (const reached of ['signed-bomb ERR_WIRE_MALFORMED', 'signed-wrong-field ERR_WIRE_INVALID_FIELD', 'signed-dag ERR_WIRE_MALFORMED', 'signed-nest ERR_WIRE_MALFORMED', 'mutated ERR_WIRE_BAD_MAC']) {
    t.true((first.outcomes.get(reached) ?? 0) > 100, reached)
  }
  // no single decode is slow: a hang or an exponential walk would show here long before ava's timeout
  t.true(first.slowestMs < 1000, `slowest decode took ${first.slowestMs} ms`)

  // memory: the first pass warmed up; two identical passes after it must not grow the heap
  const gc = getGc()
  gc?.()
  const before = process.memoryUsage().heapUsed
  pass(SEED, CASES)
  gc?.()
  const middle = process.memoryUsage().heapUsed
  pass(SEED, CASES)
  gc?.()
  const after = process.memoryUsage().heapUsed
  const mib = (n: number): string => (n / 1024 / 1024).toFixed(1)
  t.log(`heap ${mib(before)} → ${mib(middle)} → ${mib(after)} MiB (gc ${gc === undefined ? 'unavailable' : 'forced'})`)
  t.true(after - middle < 50 * 1024 * 1024, `heap grew by ${mib(after - middle)} MiB over one pass`)
})

test('FrameDecoder fed random streams in random slices throws only ERR_WIRE_OVERSIZE and keeps valid frames intact and in order', (t) => {
  const gen = new Generator(SEED + 1)
  const frames = valid.map((d) => Buffer.concat([gen.u(FRAME_LENGTH_BYTES, d.length), d]))
  for (let round = 0; round < 2000; round++) {
    const decoder = new FrameDecoder(2048)
    // a run of valid frames, then garbage that may carry any length prefix
    const good = Array.from({ length: gen.int(5) }, () => gen.pick(frames))
    const stream = Buffer.concat([...good, gen.bytes(gen.int(3000))])
    const out: Buffer[] = []
    let refused = false
    try {
      for (let at = 0; at < stream.length;) {
        const n = 1 + gen.int(300)
        out.push(...decoder.push(stream.subarray(at, at + n)))
        at += n
      }
    } catch (err) {
      refused = true
      if (!(err instanceof WireError) || err.code !== WireErrorCode.OVERSIZE) {
        t.fail(`round ${round}: ${String(err)}`)
        return
      }
    }
    // frames come out in order and intact; a refusal ends the stream (frames split by the
    // refused push are not returned: the session is dropped anyway)
    if (!refused && out.length < good.length) t.fail(`round ${round}: ${good.length} frames in, ${out.length} out`)
    for (let i = 0; i < Math.min(good.length, out.length); i++) {
      t.deepEqual(out[i], (good[i] as Buffer).subarray(FRAME_LENGTH_BYTES))
      t.notThrows(() => decodeDatagram(key, out[i] as Buffer))
    }
  }
  // a stream of valid frames round-trips through encodeMessage's framed form too
  const [head, payload] = encodeMessage(key, frameContext, { t: 'chunk', from: 'a', seq: 1, body: {}, payload: Buffer.alloc(10) }, true)
  const decoded = new FrameDecoder(2048).push(Buffer.concat([head, payload as Buffer]))
  t.is(decodeMessage(key, frameContext, decoded[0] as Buffer, 2048).payload.length, 10)
})

import { CENTER_NAME_PATTERN, CLUSTER_NAME_PATTERN, MAX_SLOT } from './limits.js'
import { isMeta, MAX_ID_LENGTH, MAX_PATH_LENGTH, type MessageBody, type MessageType } from './messages.js'

/**
 * Hand-written checks for the messages that arrive at the rate of heartbeats
 * (and, below, of small GETs and PUTs):
 * every manager reads every member's announcement, a thousand a second in a
 * large cluster, and a zod parse walks several closures per field (tens of µs
 * in a process that wakes cold for each datagram). Each check accepts exactly
 * what its schema in messages.ts accepts and returns the same value (unknown
 * fields dropped); a test holds the two to the same verdicts.
 */
export type FastCheck<T extends MessageType> = (value: unknown) => { ok: true, value: MessageBody<T> } | { ok: false, error: string }

const ID_PATTERN = /^[A-Za-z0-9._:/-]+$/
const ROLES: ReadonlySet<unknown> = new Set(['storage', 'directory', 'manager'])

/** A whole number ≥ 0, as `uintSchema`. */
export const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
/** An id, as `idSchema` (senders, members, boots). */
export const isId = (v: unknown): v is string => typeof v === 'string' && v.length >= 1 && v.length <= MAX_ID_LENGTH && ID_PATTERN.test(v)
const isInt = (v: unknown, min: number, max: number): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max

type Announce = MessageBody<'announce'>
type Scrub = NonNullable<Announce['scrub']>

function checkScrub (v: unknown): Scrub | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'scrub: expected an object'
  const s = v as Record<string, unknown>
  for (const k of ['passes', 'files', 'bytes', 'corrupt'] as const) if (!isUint(s[k])) return `scrub.${k}: expected a whole number ≥ 0`
  return { passes: s.passes as number, files: s.files as number, bytes: s.bytes as number, corrupt: s.corrupt as number }
}

/** The announcement's schema, field by field (messages.ts: `announce`). */
export const checkAnnounce: FastCheck<'announce'> = (value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, error: 'body: expected an object' }
  const b = value as Record<string, unknown>
  const fail = (field: string, what: string): { ok: false, error: string } => ({ ok: false, error: `${field}: ${what}` })
  if (typeof b.cluster !== 'string' || !CLUSTER_NAME_PATTERN.test(b.cluster)) return fail('cluster', 'a cluster name is lowercase letters, digits and dashes')
  if (!isId(b.id)) return fail('id', 'invalid id')
  if (!ROLES.has(b.role)) return fail('role', 'invalid role')
  if (typeof b.center !== 'string' || !CENTER_NAME_PATTERN.test(b.center)) return fail('center', 'a center name is lowercase letters, digits and dashes')
  if (!isInt(b.slot, 1, MAX_SLOT)) return fail('slot', `expected 1 to ${MAX_SLOT}`)
  if (typeof b.address !== 'string' || b.address.length < 1 || b.address.length > 64) return fail('address', 'expected 1 to 64 characters')
  if (!isInt(b.port, 0, 65535)) return fail('port', 'expected 0 to 65535')
  if (!isId(b.bootId)) return fail('bootId', 'invalid id')
  for (const k of ['heartbeatMs', 'free', 'files'] as const) if (!isUint(b[k])) return fail(k, 'expected a whole number ≥ 0')
  if (b.quarantined !== undefined && !isUint(b.quarantined)) return fail('quarantined', 'expected a whole number ≥ 0')
  if (b.httpPort !== undefined && !isInt(b.httpPort, 1, 65535)) return fail('httpPort', 'expected 1 to 65535')
  const scrub = b.scrub === undefined ? undefined : checkScrub(b.scrub)
  if (typeof scrub === 'string') return { ok: false, error: scrub }
  const out: Announce = { cluster: b.cluster, id: b.id, role: b.role as Announce['role'], center: b.center, slot: b.slot, address: b.address, port: b.port, bootId: b.bootId, heartbeatMs: b.heartbeatMs as number, free: b.free as number, files: b.files as number }
  if (b.quarantined !== undefined) out.quarantined = b.quarantined
  if (b.httpPort !== undefined) out.httpPort = b.httpPort
  if (scrub !== undefined) out.scrub = scrub
  return { ok: true, value: out }
}

/*
 * The messages of every small GET and PUT (a directory lookup, a node's read
 * and write, and their answers), checked by a field table that mirrors their
 * schemas: on a 4 KiB GET the zod parses were a tenth of a directory server's CPU.
 */
type Check = (v: unknown) => boolean
type Field = readonly [Check, 'required' | 'optional']
type Shape = Readonly<Record<string, Field>>

const FILE_ID = /^[0-9a-f]{32}$/
const SHA256 = /^[0-9a-f]{64}$/
const isBool: Check = (v) => typeof v === 'boolean'
const isFileId: Check = (v) => typeof v === 'string' && FILE_ID.test(v)
const isSha256: Check = (v) => typeof v === 'string' && SHA256.test(v)
const isPath: Check = (v) => typeof v === 'string' && v.length >= 1 && v.length <= MAX_PATH_LENGTH
const isCenter: Check = (v) => typeof v === 'string' && CENTER_NAME_PATTERN.test(v)
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/** The fields of `shape` taken from `v` (others dropped, as zod does), or the first that is wrong. */
function pick (v: unknown, shape: Shape, where: string): Record<string, unknown> | string {
  if (!isObject(v)) return `${where}: expected an object`
  const out: Record<string, unknown> = {}
  for (const name in shape) {
    const [check, presence] = shape[name] as Field
    const value = v[name]
    if (value === undefined && presence === 'optional') continue
    if (!check(value)) return `${where}.${name}: invalid`
    out[name] = value
  }
  return out
}

const replicaShape: Shape = { node: [isId, 'required'], center: [isCenter, 'required'], slot: [(v) => isInt(v, 1, MAX_SLOT), 'required'] }
const isReplicas: Check = (v) => Array.isArray(v) && v.length <= 8 && v.every((r) => typeof pick(r, replicaShape, 'replica') !== 'string')
const fileEntryShape: Shape = {
  type: [(v) => v === 'file', 'required'],
  path: [isPath, 'required'],
  fileId: [isFileId, 'required'],
  size: [isUint, 'required'],
  sha256: [isSha256, 'required'],
  version: [isUint, 'required'],
  mtime: [isUint, 'required'],
  replicas: [isReplicas, 'required'],
  meta: [isMeta, 'optional']
}
const dirEntryShape: Shape = { type: [(v) => v === 'dir', 'required'], path: [isPath, 'required'], version: [isUint, 'required'], mtime: [isUint, 'required'] }

function pickEntry (v: unknown): Record<string, unknown> | string {
  const type = isObject(v) ? v.type : undefined
  if (type === 'file') {
    const entry = pick(v, fileEntryShape, 'entry')
    // Replicas are copied field by field too, unknown fields dropped.
    if (typeof entry !== 'string') entry.replicas = (entry.replicas as unknown[]).map((r) => pick(r, replicaShape, 'replica'))
    return entry
  }
  return type === 'dir' ? pick(v, dirEntryShape, 'entry') : 'entry.type: expected file or dir'
}

/** A check of one message type by its field table. */
function byShape<T extends MessageType> (t: T, shape: Shape): FastCheck<T> {
  return (value) => {
    const out = pick(value, shape, 'body')
    return typeof out === 'string' ? { ok: false, error: `${t} ${out}` } : { ok: true, value: out as MessageBody<T> }
  }
}

export const checkDirStat = byShape('dir.stat', { path: [isPath, 'required'], optional: [isBool, 'optional'] })
export const checkDirStatOk: FastCheck<'dir.stat.ok'> = (value) => {
  if (!isObject(value)) return { ok: false, error: 'dir.stat.ok body: expected an object' }
  if (value.entry === undefined) return { ok: true, value: {} }
  const entry = pickEntry(value.entry)
  return typeof entry === 'string' ? { ok: false, error: `dir.stat.ok ${entry}` } : { ok: true, value: { entry } as MessageBody<'dir.stat.ok'> }
}
export const checkBlobGet = byShape('blob.get', { fileId: [isFileId, 'required'], offset: [isUint, 'required'], length: [isUint, 'optional'] })
export const checkBlobGetOk = byShape('blob.get.ok', {
  fileId: [isFileId, 'required'],
  size: [isUint, 'required'],
  sha256: [isSha256, 'required'],
  offset: [isUint, 'required'],
  length: [isUint, 'required'],
  inline: [isBool, 'optional']
})
export const checkBlobPut = byShape('blob.put', { fileId: [isFileId, 'required'], size: [isUint, 'required'], inline: [isBool, 'optional'], senderHashes: [isBool, 'optional'] })
export const checkBlobPutOk = byShape('blob.put.ok', { fileId: [isFileId, 'required'], size: [isUint, 'required'], sha256: [isSha256, 'required'] })

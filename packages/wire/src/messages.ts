import { z } from 'zod'
import { CENTER_NAME_PATTERN, CLUSTER_NAME_PATTERN, MAX_SLOT } from './limits.js'
import { DIGEST_SHARDS, SET_DIGEST_BYTES } from './set-digest.js'

// Limits on what a peer may claim; each bounds memory a decoder spends.
export const MAX_ID_LENGTH = 64 // characters
export const MAX_PATH_LENGTH = 4096 // characters, as PATH_MAX
export const MAX_LIST_ENTRIES = 10_000 // entries per list or change-log page, and fewer when their bytes reach MAX_PAGE_BYTES

export const idSchema = z.string().min(1).max(MAX_ID_LENGTH).regex(/^[A-Za-z0-9._:/-]+$/)
export const fileIdSchema = z.string().regex(/^[0-9a-f]{32}$/, 'a file id is 32 lowercase hex digits')
export const sha256Schema = z.string().regex(/^[0-9a-f]{64}$/, 'a sha256 is 64 lowercase hex digits')
export const uintSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
export const centerSchema = z.string().regex(CENTER_NAME_PATTERN, 'a center name is lowercase letters, digits and dashes')
export const slotSchema = z.number().int().min(1).max(MAX_SLOT)
export const pathSchema = z.string().min(1).max(MAX_PATH_LENGTH)
export const roleSchema = z.enum(['storage', 'directory', 'manager'])
export const addressSchema = z.string().min(1).max(64)
export const portSchema = z.number().int().min(0).max(65535)
// 16 bytes: a session nonce; a fixed length, so the MAC context's layout is unambiguous
export const NONCE_BYTES = 16
const nonceSchema = z.instanceof(Uint8Array).refine((b) => b.length === NONCE_BYTES, `a nonce is ${NONCE_BYTES} bytes`)
export const clusterSchema = z.string().regex(CLUSTER_NAME_PATTERN, 'a cluster name is lowercase letters, digits and dashes')
// 900 characters: a search key (file id or path) that still fits a 1,200-byte datagram
export const MAX_SEARCH_KEY_LENGTH = 900

/** What a heartbeat says of a storage node's scrub: passes done, what the current pass verified, corrupt bodies found in all. */
export const scrubSummarySchema = z.object({ passes: uintSchema, files: uintSchema, bytes: uintSchema, corrupt: uintSchema })
export type ScrubSummary = z.infer<typeof scrubSummarySchema>
export const scrubStatsSchema = scrubSummarySchema.extend({
  /** Bytes verified since the node started, over every pass. */
  totalBytes: uintSchema,
  /** The configured rate (0: scrub off) and the pause between pass starts. */
  bytesPerSecond: uintSchema,
  intervalMs: uintSchema,
  running: z.boolean(),
  /** When the last whole pass ended (ms since the epoch) and how long it took; 0 before the first. */
  lastPassAt: uintSchema,
  lastPassMs: uintSchema
})
export type ScrubStats = z.infer<typeof scrubStatsSchema>
/** A quarantined body: its size and sha256 when its footer was still readable. */
export const quarantinedSchema = z.object({ fileId: z.string().regex(/^[0-9a-f]{32}$/), size: uintSchema.optional(), sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(), reason: z.string().max(512) })
export type Quarantined = z.infer<typeof quarantinedSchema>

export const replicaSchema = z.object({ node: idSchema, center: centerSchema, slot: slotSchema })
export type Replica = z.infer<typeof replicaSchema>

// Object metadata kept with a file entry (S3's Content-Type, ETag, x-amz-meta-*): S3 allows 2 KB of user
// metadata; 8 KiB in all leaves room for the standard headers beside it without letting an entry grow unbounded
export const MAX_META_BYTES = 8192
export const MAX_META_FIELDS = 64
const META_NAME = /^[a-z0-9!#$%&'*+.^_`|~-]{1,128}$/
// a header value as node:http hands it over (bytes as latin1): no control character but tab
const META_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

/** True for a metadata map an entry may carry: header names (lowercase) to header values, bounded in count and bytes. */
export function isMeta (v: unknown): v is Record<string, string> {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.getPrototypeOf(v) !== Object.prototype) return false
  let fields = 0
  let bytes = 0
  for (const [name, value] of Object.entries(v)) {
    if (++fields > MAX_META_FIELDS || !META_NAME.test(name) || typeof value !== 'string' || !META_VALUE.test(value)) return false
    bytes += name.length + value.length
  }
  return bytes <= MAX_META_BYTES
}
export const metaSchema = z.custom<Record<string, string>>(isMeta, `metadata is at most ${MAX_META_FIELDS} lowercase header names with header values, ${MAX_META_BYTES} bytes in all`)

export const fileEntrySchema = z.object({
  type: z.literal('file'),
  path: pathSchema,
  fileId: fileIdSchema,
  size: uintSchema,
  sha256: sha256Schema,
  version: uintSchema,
  mtime: uintSchema,
  replicas: z.array(replicaSchema).max(8),
  meta: metaSchema.optional()
})
export type FileEntry = z.infer<typeof fileEntrySchema>

export const dirEntrySchema = z.object({
  type: z.literal('dir'),
  path: pathSchema,
  version: uintSchema,
  mtime: uintSchema
})
export type DirEntry = z.infer<typeof dirEntrySchema>

export const entrySchema = z.discriminatedUnion('type', [fileEntrySchema, dirEntrySchema])
export type Entry = z.infer<typeof entrySchema>

/** A place a replica lives, `<center>/<slot>` (e.g. `east/1`): what the directory indexes file entries by for anti-entropy. */
export const placeKeySchema = z.string().max(48).regex(/^[a-z][a-z0-9-]{0,31}\/[1-9][0-9]{0,4}$/, 'a place is <center>/<slot>')
export const shardSchema = z.number().int().min(0).max(DIGEST_SHARDS - 1)
/** A SetDigest's bytes: 256 shards of 16 bytes. */
export const setDigestSchema = z.instanceof(Uint8Array).refine((b) => b.length === SET_DIGEST_BYTES, `a set digest is ${SET_DIGEST_BYTES} bytes`)
const countsSchema = z.object({ files: uintSchema, bytes: uintSchema })
/**
 * A pair's anti-entropy, as the manager running it reports it (kept with its
 * lease on the directory, so every manager shows the same): the last round
 * done, the one under way, and what it found.
 */
export const reconcileStatusSchema = z.object({
  /** The storage pair's index (its slot, with twins in two centers). */
  pair: slotSchema,
  /** ms since the epoch; 0: none yet. */
  lastStartedAt: uintSchema,
  lastCompletedAt: uintSchema,
  lastMs: uintSchema,
  running: z.boolean(),
  /** Shards that differed in the round under way (or the last), and how many of them were gone through. */
  shardsToCompare: uintSchema.max(DIGEST_SHARDS),
  shardsDone: uintSchema.max(DIGEST_SHARDS),
  /** Files an entry names that were found on one node of the pair only (before they were copied), and on neither. */
  single: countsSchema,
  lost: countsSchema,
  /** Since when (ms since the epoch) the pair has had files with one copy; 0: it has none. */
  underReplicatedSince: uintSchema,
  copied: countsSchema,
  removed: countsSchema,
  /** Bodies no entry names, too young to remove yet (an upload may be about to name them). */
  orphansWaiting: uintSchema,
  /** Encoded bytes of the digests and listings the last round read (its cost on the network, copies aside). */
  exchangedBytes: uintSchema,
  manager: idSchema
})
export type ReconcileStatus = z.infer<typeof reconcileStatusSchema>
export const leaseNameSchema = z.string().min(1).max(64).regex(/^[a-z0-9][a-z0-9/_.-]*$/)
const leaseSchema = z.object({ name: leaseNameSchema, holder: idSchema, expiresInMs: uintSchema, status: reconcileStatusSchema.optional() })
export type Lease = z.infer<typeof leaseSchema>
/** A body a node holds, for anti-entropy: its footer's size and sha256, and when it was last written. */
export const heldBodySchema = z.object({ fileId: fileIdSchema, size: uintSchema, mtime: uintSchema })
export type HeldBody = z.infer<typeof heldBodySchema>
export const namedBodySchema = z.object({ fileId: fileIdSchema, size: uintSchema, sha256: sha256Schema })
export type NamedBody = z.infer<typeof namedBodySchema>

export const intentSchema = z.string().regex(/^[0-9a-f]{32}$/, 'an intent id is 32 lowercase hex digits')
/**
 * A subtree in pre-order (every directory before what it holds), with the paths it had at its
 * source; on the wire, one slice of it at a time: at most MAX_PAGE_BYTES encoded.
 */
export const treeSchema = z.array(entrySchema).min(1).max(MAX_LIST_ENTRIES)

/**
 * A change is the effect of an operation, not the request: replaying the same
 * changes in sequence order on the twin directory gives the same namespace.
 *
 * A rename between two partitions is three steps: `move-out` takes the
 * subtree out of the source partition and keeps it there as a pending intent
 * (each copy takes it from its own namespace, which is the same), `move-in`
 * puts it into the destination partition (once per intent), and `move-done`
 * drops the intent. An intent left pending by a crash is finished by whoever
 * finds it, so the move is never half done. Every change travels whole in one
 * frame (an apply batch, a page of the log), so a subtree too large for one
 * travels in slices: each `move-part` stages one, out of sight, and the
 * `move-in` brings the `parts` staged before its own slice into the namespace
 * with it, at once (it links the subtree's top).
 */
export const changeSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('put'), seq: uintSchema, mtime: uintSchema, entry: fileEntrySchema }),
  z.object({ op: z.literal('mkdir'), seq: uintSchema, mtime: uintSchema, path: pathSchema }),
  z.object({ op: z.literal('rename'), seq: uintSchema, mtime: uintSchema, path: pathSchema, to: pathSchema }),
  z.object({ op: z.literal('remove'), seq: uintSchema, mtime: uintSchema, path: pathSchema, recursive: z.boolean() }),
  // `tree`: only in logs written before subtrees travelled in slices
  z.object({ op: z.literal('move-out'), seq: uintSchema, mtime: uintSchema, path: pathSchema, to: pathSchema, intent: intentSchema, tree: treeSchema.optional() }),
  z.object({ op: z.literal('move-part'), seq: uintSchema, mtime: uintSchema, path: pathSchema, intent: intentSchema, part: uintSchema.max(MAX_LIST_ENTRIES), tree: treeSchema }),
  z.object({ op: z.literal('move-in'), seq: uintSchema, mtime: uintSchema, path: pathSchema, to: pathSchema, intent: intentSchema, tree: treeSchema, parts: uintSchema.max(MAX_LIST_ENTRIES).optional() }),
  z.object({ op: z.literal('move-done'), seq: uintSchema, mtime: uintSchema, intent: intentSchema })
])
export type Change = z.infer<typeof changeSchema>

/**
 * Whether two changes are the same change: the same fields with the same
 * values, whatever their order (a store or a codec need not keep it). What a
 * directory server replays and what the manager compares between twins.
 */
export function sameChange (a: Change, b: Change): boolean {
  return canonicalJson(a) === canonicalJson(b)
}

function canonicalJson (value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) => v === null || typeof v !== 'object' || Array.isArray(v)
    ? v
    : Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)))
}

const memberInfo = {
  id: idSchema,
  role: roleSchema,
  center: centerSchema,
  slot: slotSchema,
  address: addressSchema,
  port: portSchema,
  bootId: idSchema
}

/**
 * Every message of the node protocol and of the multicast protocol: the type
 * name is the `t` field of the header, the schema checks the remaining fields.
 */
// What a heartbeat says of its sender's load, and where a storage node serves downloads by signed locator.
const announcedLoad = { heartbeatMs: uintSchema, free: uintSchema, files: uintSchema, quarantined: uintSchema.optional(), scrub: scrubSummarySchema.optional(), httpPort: portSchema.min(1).optional() }

export const messageSchemas = {
  // session set-up: the client's nonce, then the server's nonce and identity
  open: z.object({ nonce: nonceSchema }),
  // idleMs: how long the server waits for the next frame, so a client keeps a slow exchange's session alive below it
  hello: z.object({ nonce: nonceSchema, ...memberInfo, idleMs: uintSchema.optional() }),

  // generic replies and stream framing
  ok: z.object({}),
  error: z.object({ code: z.string().max(64), message: z.string().max(1024) }),
  chunk: z.object({}),
  /** A streamed body's end; `sha256` is the body's when the request said the sender hashes it. */
  end: z.object({ sha256: sha256Schema.optional() }),
  abort: z.object({ reason: z.string().max(1024) }),
  // a liveness probe, answered by the session layer itself (no disk, no handler)
  ping: z.object({}),
  pong: z.object({}),
  /** "Still here": sent on a busy session that has nothing else to send; absorbed by the receiving channel, it only proves the peer alive. */
  keepalive: z.object({}),

  // storage node
  /**
   * With `inline`, the whole body is this frame's payload (small bodies); otherwise chunks and an end follow.
   * With `senderHashes`, the end carries the body's sha256 and the node does not hash it again (the frames' MACs
   * and the blocks' CRCs vouch for the bytes between).
   */
  'blob.put': z.object({ fileId: fileIdSchema, size: uintSchema, inline: z.boolean().optional(), senderHashes: z.boolean().optional() }),
  'blob.put.ok': z.object({ fileId: fileIdSchema, size: uintSchema, sha256: sha256Schema }),
  'blob.get': z.object({ fileId: fileIdSchema, offset: uintSchema, length: uintSchema.optional() }),
  /** With `inline`, the bytes read are this frame's payload; otherwise chunks and an end follow. */
  'blob.get.ok': z.object({ fileId: fileIdSchema, size: uintSchema, sha256: sha256Schema, offset: uintSchema, length: uintSchema, inline: z.boolean().optional() }),
  'blob.stat': z.object({ fileId: fileIdSchema }),
  'blob.stat.ok': z.object({ fileId: fileIdSchema, size: uintSchema, sha256: sha256Schema }),
  'blob.delete': z.object({ fileId: fileIdSchema }),
  'blob.delete.ok': z.object({ existed: z.boolean() }),
  'node.stats': z.object({}),
  'node.stats.ok': z.object({ ...memberInfo, files: uintSchema, bytes: uintSchema, free: uintSchema, quarantined: uintSchema, scrub: scrubStatsSchema }),
  /** Bodies the node set aside as corrupt (found by its scrub or by a read), waiting to be copied back from a twin. */
  'blob.quarantined': z.object({}),
  'blob.quarantined.ok': z.object({ files: z.array(quarantinedSchema).max(MAX_LIST_ENTRIES), more: z.boolean() }),

  /** The set of bodies held, as per-shard digests (read from the disk, not from memory: a body gone by hand shows). */
  'blob.digest': z.object({}),
  'blob.digest.ok': z.object({ files: uintSchema, digest: setDigestSchema }),
  /** The bodies of one shard, in file id order, from after `after`, as many as fit one page. */
  'blob.list': z.object({ shard: shardSchema, after: fileIdSchema.optional() }),
  'blob.list.ok': z.object({ files: z.array(heldBodySchema).max(MAX_LIST_ENTRIES), more: z.boolean() }),

  // directory server
  'dir.put': z.object({ entry: fileEntrySchema.omit({ version: true, mtime: true }) }),
  'dir.mkdir': z.object({ path: pathSchema, parents: z.boolean() }),
  'dir.rename': z.object({ path: pathSchema, to: pathSchema }),
  'dir.remove': z.object({ path: pathSchema, recursive: z.boolean() }),
  /**
   * The outcome of a namespace change; `removed` lists file entries it dropped, whose bodies can go.
   * With `more`, they did not fit one page: `removed` holds the first, `dir.removed` reads the rest.
   */
  'dir.change.ok': z.object({ change: changeSchema, removed: z.array(fileEntrySchema).max(MAX_LIST_ENTRIES), more: z.boolean().optional() }),
  /** The removed files of change `seq` from index `from` on, on the server that made the change. */
  'dir.removed': z.object({ seq: uintSchema, from: uintSchema.max(MAX_LIST_ENTRIES) }),
  'dir.removed.ok': z.object({ removed: z.array(fileEntrySchema).max(MAX_LIST_ENTRIES), more: z.boolean() }),
  /** With `optional`, a missing path is answered with no entry instead of ERR_DIR_NOT_FOUND. */
  'dir.stat': z.object({ path: pathSchema, optional: z.boolean().optional() }),
  'dir.stat.ok': z.object({ entry: entrySchema.optional() }),
  'dir.list': z.object({ path: pathSchema, after: z.string().max(MAX_PATH_LENGTH).optional(), limit: uintSchema.max(MAX_LIST_ENTRIES).optional() }),
  'dir.list.ok': z.object({ entries: z.array(entrySchema).max(MAX_LIST_ENTRIES), more: z.boolean() }),
  /** Changes from the twin's log, in sequence order, applied in one transaction. */
  'dir.apply': z.object({ changes: z.array(changeSchema).min(1).max(MAX_LIST_ENTRIES) }),
  'dir.apply.ok': z.object({ seq: uintSchema }),
  'dir.changes': z.object({ after: uintSchema, limit: uintSchema.max(MAX_LIST_ENTRIES).optional() }),
  'dir.changes.ok': z.object({ changes: z.array(changeSchema).max(MAX_LIST_ENTRIES), last: uintSchema }),
  /** Empties the namespace and its log: the start of a rebuild from the twin's whole log. */
  'dir.reset': z.object({}),
  'dir.info': z.object({}),
  /** `partition`: which part of the namespace this server holds; `intents`: cross-partition moves it has pending. */
  'dir.info.ok': z.object({ ...memberInfo, partition: slotSchema, seq: uintSchema, entries: uintSchema, intents: uintSchema }),
  /** Step 1 of a rename to another partition, on the source's leader. */
  'dir.move-out': z.object({ path: pathSchema, to: pathSchema, intent: intentSchema }),
  /** Step 2, on the destination's leader, for a subtree that does not fit one slice: slice `part` (from 0), staged until the move-in. */
  'dir.move-part': z.object({ path: pathSchema, intent: intentSchema, part: uintSchema.max(MAX_LIST_ENTRIES), tree: treeSchema }),
  /** Step 2, on the destination's leader: `tree` is the subtree's last slice (its only one unless `parts` were staged before it). */
  'dir.move-in': z.object({ path: pathSchema, to: pathSchema, intent: intentSchema, tree: treeSchema, parts: uintSchema.max(MAX_LIST_ENTRIES).optional() }),
  /** Step 3, on the source's leader; on a destination, it drops what was staged for the intent. */
  'dir.move-done': z.object({ intent: intentSchema }),
  /** Pending move-outs, oldest first, as many as fit one page; `entries`: how many the subtree holds. */
  'dir.intents': z.object({}),
  'dir.intents.ok': z.object({ intents: z.array(z.object({ intent: intentSchema, path: pathSchema, to: pathSchema, mtime: uintSchema, entries: uintSchema })).max(MAX_LIST_ENTRIES), more: z.boolean() }),
  /** A pending move's subtree, from entry `from` on, as much as fits one page: the slices a move-in takes. */
  'dir.intent-tree': z.object({ intent: intentSchema, from: uintSchema.max(MAX_LIST_ENTRIES) }),
  'dir.intent-tree.ok': z.object({ tree: treeSchema, more: z.boolean() }),

  /** The bodies the entries of this partition place at `place`, as per-shard digests; `seq`: as of that change. */
  'dir.digest': z.object({ place: placeKeySchema }),
  'dir.digest.ok': z.object({ seq: uintSchema, files: uintSchema, bytes: uintSchema, digest: setDigestSchema }),
  /** The bodies of one shard that entries of this partition place at `place`, in file id order, from after `after`. */
  'dir.files': z.object({ place: placeKeySchema, shard: shardSchema, after: fileIdSchema.optional() }),
  'dir.files.ok': z.object({ files: z.array(namedBodySchema).max(MAX_LIST_ENTRIES), more: z.boolean() }),
  /**
   * A digest of everything the server holds (entries, pending moves, the anti-entropy index), read from the
   * store itself as of change `seq`: twins at the same `seq` must have the same.
   */
  'dir.state': z.object({}),
  'dir.state.ok': z.object({ seq: uintSchema, entries: uintSchema, digest: sha256Schema }),
  /**
   * Takes or renews a lease for `ttlMs` (granted if free, expired or already `holder`'s), or with `release` gives it
   * up; `status` is kept with it for others to read. In memory: a restart of the server frees every lease.
   */
  'dir.lease': z.object({ name: leaseNameSchema, holder: idSchema, ttlMs: uintSchema.min(1).max(600_000), status: reconcileStatusSchema.optional(), release: z.boolean().optional() }),
  'dir.lease.ok': z.object({ granted: z.boolean(), lease: leaseSchema.optional() }),
  /** Leases whose name starts with `prefix`, with their status (expired ones too, their status last reported). */
  'dir.leases': z.object({ prefix: z.string().max(64) }),
  'dir.leases.ok': z.object({ leases: z.array(leaseSchema).max(MAX_LIST_ENTRIES) }),

  // multicast protocol (datagrams)
  /** Heartbeat: who I am, where I listen, how full I am. */
  /** `httpPort`: a storage node's port for downloads by signed locator (see locator.ts). */
  announce: z.object({ cluster: clusterSchema, ...memberInfo, ...announcedLoad }),
  /** A clean shutdown: forget me now rather than waiting for the detector. */
  goodbye: z.object({ cluster: clusterSchema, id: idSchema, role: roleSchema, bootId: idSchema }),
  /** "Who holds <key>?", scoped to one center or all; holders answer by unicast to replyTo after a random delay in [0, windowMs]. */
  search: z.object({
    cluster: clusterSchema,
    queryId: z.string().regex(/^[0-9a-f]{16,32}$/),
    kind: z.enum(['blob', 'entry', 'partition']),
    key: z.string().min(1).max(MAX_SEARCH_KEY_LENGTH),
    center: centerSchema.optional(),
    replyAddress: addressSchema,
    replyPort: portSchema.min(1),
    windowMs: uintSchema.max(10_000)
  }),
  /**
   * A manager's word to every member on the search group: announce every `heartbeatMs`. It grows with the
   * number of members heard (`members`) so that the announcements of the whole cluster stay within a rate.
   */
  cadence: z.object({ cluster: clusterSchema, heartbeatMs: uintSchema.min(10).max(60_000), members: uintSchema }),
  'search.reply': z.object({
    cluster: clusterSchema,
    queryId: z.string().regex(/^[0-9a-f]{16,32}$/),
    ...memberInfo,
    size: uintSchema.optional(),
    sha256: sha256Schema.optional(),
    version: uintSchema.optional()
  })
} as const

export type MessageType = keyof typeof messageSchemas
export type MessageBody<T extends MessageType> = z.infer<typeof messageSchemas[T]>

export const MESSAGE_TYPES = Object.keys(messageSchemas) as MessageType[]

export function isMessageType (t: unknown): t is MessageType {
  return typeof t === 'string' && Object.prototype.hasOwnProperty.call(messageSchemas, t)
}

/**
 * The reply each request of the node protocol gets when it succeeds (any
 * request may instead get `error`): `request('blob.stat', …)` is typed and
 * checked against it, so no caller names a reply type by hand.
 */
export const REPLY_TYPES = {
  ping: 'pong',
  'blob.put': 'blob.put.ok',
  'blob.get': 'blob.get.ok',
  'blob.stat': 'blob.stat.ok',
  'blob.delete': 'blob.delete.ok',
  'node.stats': 'node.stats.ok',
  'blob.quarantined': 'blob.quarantined.ok',
  'blob.digest': 'blob.digest.ok',
  'blob.list': 'blob.list.ok',
  'dir.put': 'dir.change.ok',
  'dir.mkdir': 'dir.change.ok',
  'dir.rename': 'dir.change.ok',
  'dir.remove': 'dir.change.ok',
  'dir.stat': 'dir.stat.ok',
  'dir.list': 'dir.list.ok',
  'dir.apply': 'dir.apply.ok',
  'dir.changes': 'dir.changes.ok',
  'dir.reset': 'ok',
  'dir.info': 'dir.info.ok',
  'dir.removed': 'dir.removed.ok',
  'dir.move-out': 'dir.change.ok',
  'dir.move-part': 'dir.change.ok',
  'dir.move-in': 'dir.change.ok',
  'dir.move-done': 'dir.change.ok',
  'dir.intents': 'dir.intents.ok',
  'dir.intent-tree': 'dir.intent-tree.ok',
  'dir.digest': 'dir.digest.ok',
  'dir.files': 'dir.files.ok',
  'dir.state': 'dir.state.ok',
  'dir.lease': 'dir.lease.ok',
  'dir.leases': 'dir.leases.ok'
} as const satisfies Partial<Record<MessageType, MessageType>>

export type RequestType = keyof typeof REPLY_TYPES
export type ReplyType<T extends RequestType> = typeof REPLY_TYPES[T]

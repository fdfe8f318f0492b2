import { createHash, createHmac } from 'node:crypto'
import { MAC_BYTES, type FileEntry, type MessageBody, type MessageType } from '../src/index.js'

/** The header length field of the layout, after the MAC. */
export const HEADER_LENGTH_BYTES = 4

/**
 * Signs hand-built header bytes with the codec's layout — `mac(32) headerLength(u32) header payload`,
 * the MAC being HMAC-SHA256(key, context | headerLength | header | sha256(payload)), the digest only
 * when there is a payload — so a test reaches the checks that run after the MAC.
 */
export function signRaw (key: Uint8Array, context: Uint8Array, header: Uint8Array, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const length = Buffer.alloc(HEADER_LENGTH_BYTES)
  length.writeUInt32BE(header.length)
  const h = createHmac('sha256', key).update(context).update(length).update(header)
  if (payload.length > 0) h.update(createHash('sha256').update(payload).digest())
  const mac = h.digest()
  if (mac.length !== MAC_BYTES) throw new Error('MAC_BYTES changed')
  return Buffer.concat([mac, length, header, payload])
}

const FILE_ID = '0123456789abcdef0123456789abcdef'
const SHA = 'ab'.repeat(32)
const member = { id: 'node-1', role: 'storage', center: 'east', slot: 1, address: '10.0.0.1', port: 7000, bootId: 'b00t' } as const
const fileEntry: FileEntry = { type: 'file', path: '/a/b.txt', fileId: FILE_ID, size: 10, sha256: SHA, version: 3, mtime: 1_700_000_000_000, replicas: [{ node: 'node-1', center: 'east', slot: 1 }] }

const none = { files: 0, bytes: 0 }
const reconcileStatus = { pair: 1, lastStartedAt: 1, lastCompletedAt: 2, lastMs: 1, running: false, shardsToCompare: 3, shardsDone: 3, single: { files: 1, bytes: 5 }, lost: none, underReplicatedSince: 0, copied: { files: 1, bytes: 5 }, removed: none, orphansWaiting: 0, exchangedBytes: 9000, manager: 'mgr-1' }

/** One valid body per message type; the mapped type makes a new message type a compile error here. */
export const sampleBodies: { [T in MessageType]: MessageBody<T> } = {
  open: { nonce: Buffer.alloc(16, 1) },
  hello: { nonce: Buffer.alloc(16, 2), ...member },
  ok: {},
  error: { code: 'ERR_X', message: 'nope' },
  chunk: {},
  end: {},
  abort: { reason: 'changed my mind' },
  ping: {},
  pong: {},
  keepalive: {},
  'blob.put': { fileId: FILE_ID, size: 5 },
  'blob.put.ok': { fileId: FILE_ID, size: 5, sha256: SHA },
  'blob.get': { fileId: FILE_ID, offset: 0, length: 5 },
  'blob.get.ok': { fileId: FILE_ID, size: 5, sha256: SHA, offset: 0, length: 5 },
  'blob.stat': { fileId: FILE_ID },
  'blob.stat.ok': { fileId: FILE_ID, size: 5, sha256: SHA },
  'blob.delete': { fileId: FILE_ID },
  'blob.delete.ok': { existed: true },
  'node.stats': {},
  'node.stats.ok': { ...member, files: 1, bytes: 2, free: 3, quarantined: 1, scrub: { passes: 2, files: 3, bytes: 4, corrupt: 1, totalBytes: 9, bytesPerSecond: 8, intervalMs: 1000, running: true, lastPassAt: 7, lastPassMs: 6 } },
  'blob.quarantined': {},
  'blob.quarantined.ok': { files: [{ fileId: FILE_ID, size: 5, sha256: SHA, reason: 'block 0 fails its checksum' }, { fileId: FILE_ID, reason: 'bad footer magic' }], more: false },
  'blob.digest': {},
  'blob.digest.ok': { files: 2, digest: Buffer.alloc(4096, 3) },
  'blob.list': { shard: 1, after: FILE_ID },
  'blob.list.ok': { files: [{ fileId: FILE_ID, size: 5, mtime: 7 }], more: false },
  'dir.put': { entry: { type: 'file', path: '/a/b.txt', fileId: FILE_ID, size: 10, sha256: SHA, replicas: [] } },
  'dir.mkdir': { path: '/a', parents: true },
  'dir.rename': { path: '/a', to: '/b' },
  'dir.remove': { path: '/a', recursive: false },
  'dir.change.ok': { change: { op: 'put', seq: 4, mtime: 5, entry: fileEntry }, removed: [fileEntry], more: true },
  'dir.removed': { seq: 4, from: 1 },
  'dir.removed.ok': { removed: [fileEntry], more: false },
  'dir.stat': { path: '/a' },
  'dir.stat.ok': { entry: { type: 'dir', path: '/a', version: 1, mtime: 2 } },
  'dir.list': { path: '/', after: 'a', limit: 10 },
  'dir.list.ok': { entries: [fileEntry, { type: 'dir', path: '/c', version: 1, mtime: 2 }], more: false },
  'dir.apply': { changes: [{ op: 'rename', seq: 1, mtime: 2, path: '/a', to: '/b' }] },
  'dir.apply.ok': { seq: 1 },
  'dir.changes': { after: 0, limit: 100 },
  'dir.changes.ok': { changes: [{ op: 'mkdir', seq: 1, mtime: 2, path: '/a' }, { op: 'remove', seq: 2, mtime: 3, path: '/a', recursive: true }], last: 2 },
  'dir.reset': {},
  'dir.info': {},
  'dir.info.ok': { ...member, role: 'directory', partition: 1, seq: 1, entries: 2, intents: 0 },
  'dir.move-out': { path: '/a/b', to: '/c/d', intent: FILE_ID },
  'dir.move-part': { path: '/a/b', intent: FILE_ID, part: 0, tree: [{ type: 'dir', path: '/a/b', version: 1, mtime: 2 }] },
  'dir.move-in': { path: '/a/b', to: '/c/d', intent: FILE_ID, tree: [{ ...fileEntry, path: '/a/b/f' }], parts: 1 },
  'dir.move-done': { intent: FILE_ID },
  'dir.intents': {},
  'dir.intents.ok': { intents: [{ intent: FILE_ID, path: '/a/b', to: '/c/d', mtime: 3, entries: 2 }], more: false },
  'dir.intent-tree': { intent: FILE_ID, from: 0 },
  'dir.intent-tree.ok': { tree: [{ type: 'dir', path: '/a/b', version: 1, mtime: 2 }], more: true },
  'dir.digest': { place: 'east/1' },
  'dir.digest.ok': { seq: 3, files: 2, bytes: 10, digest: Buffer.alloc(4096, 4) },
  'dir.files': { place: 'west/2', shard: 255 },
  'dir.files.ok': { files: [{ fileId: FILE_ID, size: 5, sha256: SHA }], more: true },
  'dir.state': {},
  'dir.state.ok': { seq: 3, entries: 4, digest: SHA },
  'dir.lease': { name: 'reconcile/1', holder: 'mgr-1', ttlMs: 30_000, status: reconcileStatus },
  'dir.lease.ok': { granted: true, lease: { name: 'reconcile/1', holder: 'mgr-1', expiresInMs: 30_000, status: reconcileStatus } },
  'dir.leases': { prefix: 'reconcile/' },
  'dir.leases.ok': { leases: [{ name: 'reconcile/1', holder: 'mgr-1', expiresInMs: 0 }] },
  announce: { cluster: 'c1', ...member, heartbeatMs: 500, free: 1, files: 2 },
  goodbye: { cluster: 'c1', id: 'node-1', role: 'storage', bootId: 'b00t' },
  search: { cluster: 'c1', queryId: '0123456789abcdef', kind: 'blob', key: FILE_ID, center: 'east', replyAddress: '10.0.0.2', replyPort: 5000, windowMs: 100 },
  cadence: { cluster: 'c1', heartbeatMs: 250, members: 180 },
  'search.reply': { cluster: 'c1', queryId: '0123456789abcdef', ...member, size: 5, sha256: SHA, version: 1 }
}

/** Message types whose sample is above a datagram's size: they travel only in session frames. */
export const FRAME_ONLY = new Set<MessageType>(['blob.digest.ok', 'dir.digest.ok'])

/** A seeded PRNG (mulberry32): fuzz cases are reproducible from the printed seed. */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

import test from 'ava'
import { checkAnnounce, checkBlobGet, checkBlobGetOk, checkBlobPut, checkBlobPutOk, checkDirStat, checkDirStatOk, messageSchemas } from '../src/index.js'

const valid = { cluster: 'mirrorcast', id: 'node-0123456789abcdef', role: 'storage', center: 'east', slot: 3, address: '10.1.0.3', port: 8701, bootId: 'b-42', httpPort: 8702, heartbeatMs: 100, free: 123_456_789_012, files: 12, quarantined: 1, scrub: { passes: 2, files: 10, bytes: 4096, corrupt: 0 } }

// What a sender may put in a field: every JSON-ish kind, edges of the numeric bounds, and strings the patterns refuse.
const CANDIDATES: unknown[] = [
  undefined, null, true, 0, -0, 1, -1, 1.5, 65535, 65536, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER + 2, NaN, Infinity, -Infinity,
  '', 'a', 'East', 'east', '1east', 'e'.repeat(32), 'e'.repeat(33), 'x'.repeat(64), 'x'.repeat(65), 'has space', 'ok-id_1.2:3/4', 'é',
  'storage', 'manager', 'witness', [], [1], {}, { passes: 1, files: 1, bytes: 1, corrupt: 1 }, { passes: -1, files: 1, bytes: 1, corrupt: 1 },
  { passes: 1, files: 1, bytes: 1 }, { passes: 1, files: 1, bytes: 1, corrupt: 1, extra: 'x' }
]

function zod (body: unknown): { ok: boolean, value?: unknown } {
  const r = messageSchemas.announce.safeParse(body)
  return r.success ? { ok: true, value: r.data } : { ok: false }
}

function fast (body: unknown): { ok: boolean, value?: unknown } {
  const r = checkAnnounce(body)
  return r.ok ? { ok: true, value: r.value } : { ok: false }
}

test('the hand-written announcement check gives the zod schema\'s verdict and value for every field and value tried', (t) => {
  let cases = 0
  for (const field of [...Object.keys(valid), 'unknown']) {
    for (const candidate of CANDIDATES) {
      const body: Record<string, unknown> = { ...valid, [field]: candidate }
      if (candidate === undefined) delete body[field]
      t.deepEqual(fast(body), zod(body), `${field} = ${JSON.stringify(candidate)}`)
      cases++
    }
  }
  for (const whole of [null, 'announce', 7, [], [valid]]) t.deepEqual(fast(whole), zod(whole))
  t.true(cases > 500)
  t.true(fast(valid).ok, 'the valid body is accepted')
})

const fileId = 'a'.repeat(32)
const sha256 = 'b'.repeat(64)
const replica = { node: 'node-east-1', center: 'east', slot: 1 }
const fileEntry = { type: 'file', path: '/a/b.txt', fileId, size: 4096, sha256, version: 3, mtime: 1_700_000_000_000, replicas: [replica, { ...replica, center: 'west' }] }
const dirEntry = { type: 'dir', path: '/a', version: 1, mtime: 1_700_000_000_000 }
const MORE: unknown[] = [fileId, fileId.toUpperCase(), fileId + 'a', sha256, 'x'.repeat(4096), 'x'.repeat(4097), '/', 'file', 'dir',
  fileEntry, dirEntry, { ...fileEntry, type: 'dir' }, { ...dirEntry, type: 'file' }, { ...fileEntry, extra: 1 }, { ...fileEntry, replicas: [] },
  { ...fileEntry, replicas: Array(9).fill(replica) }, { ...fileEntry, replicas: [{ ...replica, slot: 0 }] }, { ...fileEntry, replicas: [{ ...replica, extra: 'x' }] },
  { ...fileEntry, replicas: [{ ...replica, center: 'East' }] }, { ...fileEntry, size: -1 }, { ...dirEntry, path: '' }, [replica],
  { ...fileEntry, meta: { 'content-type': 'text/plain', 'x-amz-meta-a': 'b\u00e9' } }, { ...fileEntry, meta: { 'Content-Type': 'x' } }, { ...fileEntry, meta: { a: 'x\n' } },
  { ...fileEntry, meta: { a: 1 } }, { ...fileEntry, meta: [] }, { ...fileEntry, meta: { a: 'x'.repeat(8192) } }, { ...fileEntry, meta: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`m${i}`, ''])) }]

const HOT: Array<[keyof typeof messageSchemas, (v: unknown) => { ok: boolean, value?: unknown }, Record<string, unknown>]> = [
  ['dir.stat', checkDirStat, { path: '/a/b.txt', optional: true }],
  ['dir.stat.ok', checkDirStatOk, { entry: fileEntry }],
  ['blob.get', checkBlobGet, { fileId, offset: 0, length: 4096 }],
  ['blob.get.ok', checkBlobGetOk, { fileId, size: 4096, sha256, offset: 0, length: 4096, inline: true }],
  ['blob.put', checkBlobPut, { fileId, size: 4096, inline: true, senderHashes: false }],
  ['blob.put.ok', checkBlobPutOk, { fileId, size: 4096, sha256 }]
]

test('the hand-written checks of lookups, node reads and writes and their answers give their zod schemas\' verdicts and values', (t) => {
  for (const [type, check, valid] of HOT) {
    const viaZod = (body: unknown): { ok: boolean, value?: unknown } => {
      const r = messageSchemas[type].safeParse(body)
      return r.success ? { ok: true, value: r.data } : { ok: false }
    }
    const viaFast = (body: unknown): { ok: boolean, value?: unknown } => {
      const r = check(body)
      return r.ok ? { ok: true, value: r.value } : { ok: false }
    }
    for (const field of [...Object.keys(valid), 'unknown']) {
      for (const candidate of [...CANDIDATES, ...MORE]) {
        const body: Record<string, unknown> = { ...valid, [field]: candidate }
        if (candidate === undefined) delete body[field]
        t.deepEqual(viaFast(body), viaZod(body), `${type}: ${field} = ${JSON.stringify(candidate)}`)
      }
    }
    for (const whole of [null, type, 7, [], [valid], {}]) t.deepEqual(viaFast(whole), viaZod(whole), `${type}: ${JSON.stringify(whole)}`)
    t.true(viaFast(valid).ok, `${type}: the valid body is accepted`)
  }
  t.true(checkDirStatOk({ entry: dirEntry }).ok)
})

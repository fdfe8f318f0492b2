import test from 'ava'
import { randomBytes } from 'node:crypto'
import { LOCATOR_TTL_MS, ManagerErrorCode, NodeErrorCode, openReceipt, putScope, signLocator, signReceipt, verifyLocator } from '../src/index.js'

const key = randomBytes(32)
const fileId = 'a'.repeat(32)
const NOW = 1_800_000_000_000

test('a locator signed for a file verifies for that file until it expires, and not a millisecond later', (t) => {
  const locator = signLocator(key, fileId, NOW)
  t.is(locator.expiresAt, NOW + LOCATOR_TTL_MS)
  t.notThrows(() => { verifyLocator(key, locator, NOW) })
  t.notThrows(() => { verifyLocator(key, locator, locator.expiresAt) })
  const late = t.throws(() => { verifyLocator(key, locator, locator.expiresAt + 1) })
  t.is((late as { code?: string }).code, NodeErrorCode.LOCATOR_EXPIRED)
  t.regex(late?.message ?? '', /expired 1 ms ago/)
})

test('a locator for another file, with a moved expiry, a changed signature or another cluster\'s key is refused as invalid', (t) => {
  const locator = signLocator(key, fileId, NOW)
  const refused = (l: { fileId: string, expiresAt: unknown, signature: unknown }, k: Uint8Array = key): string | undefined =>
    (t.throws(() => { verifyLocator(k, l, NOW) }) as { code?: string } | undefined)?.code
  t.is(refused({ ...locator, fileId: 'b'.repeat(32) }), NodeErrorCode.LOCATOR_INVALID)
  t.is(refused({ ...locator, expiresAt: locator.expiresAt + 3_600_000 }), NodeErrorCode.LOCATOR_INVALID)
  const flipped = (locator.signature[0] === '0' ? '1' : '0') + locator.signature.slice(1)
  t.is(refused({ ...locator, signature: flipped }), NodeErrorCode.LOCATOR_INVALID)
  t.is(refused(locator, randomBytes(32)), NodeErrorCode.LOCATOR_INVALID)
})

test('a malformed locator (no expiry, a fraction, a short or non-hex signature) is refused before any HMAC', (t) => {
  const { signature } = signLocator(key, fileId, NOW)
  for (const bad of [
    { fileId, expiresAt: Number.NaN, signature },
    { fileId, expiresAt: NOW + 0.5, signature },
    { fileId, expiresAt: -1, signature },
    { fileId, expiresAt: NOW, signature: signature.slice(2) },
    { fileId, expiresAt: NOW, signature: 'z'.repeat(64) },
    { fileId, expiresAt: NOW, signature: null }
  ]) {
    const err = t.throws(() => { verifyLocator(key, bad, NOW) })
    t.is((err as { code?: string }).code, NodeErrorCode.LOCATOR_INVALID)
    t.regex(err?.message ?? '', /malformed/)
  }
})

test('a download locator opens no upload, and an upload locator opens only the upload of its size to its twin', (t) => {
  const scope = putScope(5_000_000, '127.2.0.1', 8701)
  const upload = signLocator(key, fileId, NOW, LOCATOR_TTL_MS, scope)
  t.notThrows(() => { verifyLocator(key, upload, NOW) })
  const refused = (l: Parameters<typeof verifyLocator>[1]): string | undefined => (t.throws(() => { verifyLocator(key, l, NOW) }) as { code?: string } | undefined)?.code
  t.is(refused({ ...upload, scope: 'get' }), NodeErrorCode.LOCATOR_INVALID)
  t.is(refused({ ...signLocator(key, fileId, NOW), scope }), NodeErrorCode.LOCATOR_INVALID)
  t.is(refused({ ...upload, scope: putScope(5_000_001, '127.2.0.1', 8701) }), NodeErrorCode.LOCATOR_INVALID)
  t.is(refused({ ...upload, scope: putScope(5_000_000, '127.3.0.1', 8701) }), NodeErrorCode.LOCATOR_INVALID)
})

test('a receipt opens with this cluster\'s key until it expires; one changed, of another key, expired or malformed is refused', (t) => {
  const receipt = { fileId, size: 12, sha256: 'c'.repeat(64), nodes: ['node-a', 'node-b'], expiresAt: NOW + 1000 }
  const token = signReceipt(key, receipt)
  t.deepEqual(openReceipt(key, token, NOW), receipt)
  const code = (k: Uint8Array, tok: string, now = NOW): string | undefined => (t.throws(() => openReceipt(k, tok, now)) as { code?: string } | undefined)?.code
  t.is(code(key, token, NOW + 1001), ManagerErrorCode.RECEIPT_EXPIRED)
  t.is(code(randomBytes(32), token), ManagerErrorCode.RECEIPT_INVALID)
  const [text = '', mac = ''] = token.split('.')
  const bigger = Buffer.from(JSON.stringify({ ...receipt, size: 13 })).toString('base64url')
  t.is(code(key, `${bigger}.${mac}`), ManagerErrorCode.RECEIPT_INVALID, 'another size under the same MAC')
  for (const bad of ['', text, `${text}.${mac}.x`, `${text}.${mac.slice(1)}`, `a b.${mac}`]) t.is(code(key, bad), ManagerErrorCode.RECEIPT_INVALID, bad.slice(0, 20))
  const oneNode = signReceipt(key, { ...receipt, nodes: ['node-a'] })
  t.is(code(key, oneNode), ManagerErrorCode.RECEIPT_INVALID, 'signed, but not for two nodes')
})

import test from 'ava'
import { randomBytes } from 'node:crypto'
import { LOCATOR_TTL_MS, NodeErrorCode, signLocator, verifyLocator } from '../src/index.js'

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

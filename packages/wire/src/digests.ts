import { createHash } from 'node:crypto'

// Digests by buffer identity: a payload's sha256 is computed once, however
// many HMACs sign it, and forgotten with the buffer. A buffer must not change after its digest was taken; none
// of the payloads here does (they are handed on, never written into).
const known = new WeakMap<Uint8Array, Buffer>()

/** The sha256 of `buf`, computed at most once per buffer object. */
export function sha256Of (buf: Uint8Array): Buffer {
  let digest = known.get(buf)
  if (digest === undefined) {
    digest = createHash('sha256').update(buf).digest()
    known.set(buf, digest)
  }
  return digest
}

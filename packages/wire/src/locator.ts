import { createHmac, timingSafeEqual } from 'node:crypto'
import { CodedError } from './errors.js'
import { NodeErrorCode } from './error-codes.js'

/*
 * A signed locator: the object manager's per-request certificate that lets a
 * client fetch a body straight from the storage node that holds it (the
 * patent family's redirect; SeaweedFS and HDFS do the same). It names the file
 * id and when it expires, and is signed with a key derived from the cluster
 * key, so a node serves exactly the body the manager looked up for a client
 * it had authorized, and nothing else, without asking anyone.
 */
// 5 min: long enough for a client to follow the redirect, short enough that a leaked URL soon stops working
export const LOCATOR_TTL_MS = 5 * 60 * 1000
const LOCATOR_KEY_CONTEXT = 'mirrorcast-locator-key-v1'

export interface Locator {
  fileId: string
  /** ms since the epoch, by the manager's clock. */
  expiresAt: number
  /** HMAC-SHA256, hex. */
  signature: string
}

// The cluster key signs datagrams and handshakes: a locator gets a key of its own.
const locatorKeys = new WeakMap<Uint8Array, Buffer>()

function locatorKey (clusterKey: Uint8Array): Buffer {
  let k = locatorKeys.get(clusterKey)
  if (k === undefined) locatorKeys.set(clusterKey, k = createHmac('sha256', clusterKey).update(LOCATOR_KEY_CONTEXT).digest())
  return k
}

function signatureOf (clusterKey: Uint8Array, fileId: string, expiresAt: number): Buffer {
  return createHmac('sha256', locatorKey(clusterKey)).update(`${fileId}\n${expiresAt}`).digest()
}

export function signLocator (clusterKey: Uint8Array, fileId: string, now = Date.now(), ttlMs = LOCATOR_TTL_MS): Locator {
  const expiresAt = now + ttlMs
  return { fileId, expiresAt, signature: signatureOf(clusterKey, fileId, expiresAt).toString('hex') }
}

/** Throws ERR_NODE_LOCATOR_INVALID for a locator not signed by this cluster's key for this file, ERR_NODE_LOCATOR_EXPIRED for one past its time. */
export function verifyLocator (clusterKey: Uint8Array, locator: { fileId: string, expiresAt: unknown, signature: unknown }, now = Date.now()): void {
  const { fileId, expiresAt, signature } = locator
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0 || typeof signature !== 'string' || !/^[0-9a-f]{64}$/.test(signature)) {
    throw new CodedError(NodeErrorCode.LOCATOR_INVALID, 'the download locator is malformed')
  }
  if (!timingSafeEqual(signatureOf(clusterKey, fileId, expiresAt), Buffer.from(signature, 'hex'))) {
    throw new CodedError(NodeErrorCode.LOCATOR_INVALID, 'the download locator is not signed for this file by this cluster')
  }
  if (now > expiresAt) throw new CodedError(NodeErrorCode.LOCATOR_EXPIRED, `the download locator expired ${now - expiresAt} ms ago: ask the manager again`)
}

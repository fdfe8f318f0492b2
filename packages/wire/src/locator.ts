import { createHmac, timingSafeEqual } from 'node:crypto'
import { CodedError } from './errors.js'
import { ManagerErrorCode, NodeErrorCode } from './error-codes.js'

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

/** What a locator lets its holder do: fetch the body, or write it (to this size, with this twin). */
export type LocatorScope = 'get' | `put ${number} ${string} ${number}`

export interface Locator {
  fileId: string
  scope: LocatorScope
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

function signatureOf (clusterKey: Uint8Array, scope: string, fileId: string, expiresAt: number): Buffer {
  return createHmac('sha256', locatorKey(clusterKey)).update(`${scope}\n${fileId}\n${expiresAt}`).digest()
}

/** The scope of an upload of `size` bytes whose second copy goes to the twin at host:port. */
export function putScope (size: number, twinHost: string, twinPort: number): LocatorScope {
  return `put ${size} ${twinHost} ${twinPort}`
}

export function signLocator (clusterKey: Uint8Array, fileId: string, now = Date.now(), ttlMs = LOCATOR_TTL_MS, scope: LocatorScope = 'get'): Locator {
  const expiresAt = now + ttlMs
  return { fileId, scope, expiresAt, signature: signatureOf(clusterKey, scope, fileId, expiresAt).toString('hex') }
}

/**
 * Throws ERR_NODE_LOCATOR_INVALID for a locator not signed by this cluster's
 * key for this file and scope (a download's locator is not an upload's),
 * ERR_NODE_LOCATOR_EXPIRED for one past its time.
 */
export function verifyLocator (clusterKey: Uint8Array, locator: { fileId: string, scope?: LocatorScope, expiresAt: unknown, signature: unknown }, now = Date.now()): void {
  const { fileId, expiresAt, signature, scope = 'get' } = locator
  if (typeof expiresAt !== 'number' || !Number.isSafeInteger(expiresAt) || expiresAt < 0 || typeof signature !== 'string' || !/^[0-9a-f]{64}$/.test(signature)) {
    throw new CodedError(NodeErrorCode.LOCATOR_INVALID, 'the locator is malformed')
  }
  if (!timingSafeEqual(signatureOf(clusterKey, scope, fileId, expiresAt), Buffer.from(signature, 'hex'))) {
    throw new CodedError(NodeErrorCode.LOCATOR_INVALID, `the locator is not signed for this ${scope === 'get' ? 'download' : 'upload'} of this file by this cluster`)
  }
  if (now > expiresAt) throw new CodedError(NodeErrorCode.LOCATOR_EXPIRED, `the locator expired ${now - expiresAt} ms ago: ask the manager again`)
}

/**
 * What a storage node vouches for once a body sent to it by locator is
 * durable on it and on its twin: the client hands it to the manager, which
 * then names the file (HDFS's complete(), SeaweedFS's assign-then-write).
 */
export interface UploadReceipt {
  fileId: string
  size: number
  sha256: string
  /** The ids of the nodes holding the copies, the receiving node first. */
  nodes: string[]
  /** ms since the epoch, by the receiving node's clock. */
  expiresAt: number
}

const RECEIPT_KEY_CONTEXT = 'mirrorcast-receipt-key-v1'
const receiptKeys = new WeakMap<Uint8Array, Buffer>()

function receiptMac (clusterKey: Uint8Array, text: string): Buffer {
  let k = receiptKeys.get(clusterKey)
  if (k === undefined) receiptKeys.set(clusterKey, k = createHmac('sha256', clusterKey).update(RECEIPT_KEY_CONTEXT).digest())
  return createHmac('sha256', k).update(text).digest()
}

/** `<base64url JSON>.<hex HMAC>`: fits a header. */
export function signReceipt (clusterKey: Uint8Array, receipt: UploadReceipt): string {
  const text = Buffer.from(JSON.stringify(receipt)).toString('base64url')
  return `${text}.${receiptMac(clusterKey, text).toString('hex')}`
}

/** The receipt a token carries; ERR_RECEIPT_INVALID unless signed by this cluster and well formed, ERR_RECEIPT_EXPIRED past its time. */
export function openReceipt (clusterKey: Uint8Array, token: string, now = Date.now()): UploadReceipt {
  const [text = '', mac = '', extra] = token.split('.')
  const invalid = (why: string): CodedError => new CodedError(ManagerErrorCode.RECEIPT_INVALID, `the upload receipt ${why}`)
  if (extra !== undefined || !/^[0-9a-f]{64}$/.test(mac) || !/^[A-Za-z0-9_-]{1,4096}$/.test(text)) throw invalid('is malformed')
  if (!timingSafeEqual(receiptMac(clusterKey, text), Buffer.from(mac, 'hex'))) throw invalid('is not signed by a node of this cluster')
  let r: Partial<UploadReceipt>
  try {
    r = JSON.parse(Buffer.from(text, 'base64url').toString()) as Partial<UploadReceipt>
  } catch {
    throw invalid('is not JSON')
  }
  if (typeof r.fileId !== 'string' || !/^[0-9a-f]{32}$/.test(r.fileId) || !Number.isSafeInteger(r.size) || (r.size as number) < 0 ||
    typeof r.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(r.sha256) || !Array.isArray(r.nodes) || r.nodes.length !== 2 ||
    !r.nodes.every((n) => typeof n === 'string') || !Number.isSafeInteger(r.expiresAt)) throw invalid('lacks a field')
  if (now > (r.expiresAt as number)) throw new CodedError(ManagerErrorCode.RECEIPT_EXPIRED, `the upload receipt expired ${now - (r.expiresAt as number)} ms ago: upload the file again`)
  return r as UploadReceipt
}

import { randomBytes } from 'node:crypto'
import { LOCATOR_TTL_MS, openReceipt, putScope, signLocator, type FileEntry, type Replica, type UploadReceipt } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import type { Member, Membership } from '../cluster/membership.js'
import { replicaOf, type ObjectManager } from './object-manager.js'

// 1 MiB: below it the redirect's extra round trips cost more than the hop through the manager saves
export const DIRECT_MIN_BYTES = 1024 * 1024

/** Where to send a body straight to its home node, or why the manager takes it itself. */
export type UploadLocator = { url: string, fileId: string, expiresAt: number } | { url: null, reason: string }

/**
 * Bodies that flow between a client and a storage node instead of through
 * the manager (the patent family's redirect with a signed locator; SeaweedFS's
 * assign-then-write, HDFS's pipeline): a download URL for a file's home node,
 * an upload URL whose node sends the twin its copy itself and answers a signed
 * receipt once both are durable, and the check of that receipt when the
 * client names the file. The manager offers either only while the pair is
 * whole; otherwise it serves the body itself, failover and journal included.
 */
export class DirectTransfers {
  /** Receipts that named a file, with the path they named, until they expire: a receipt names one path. */
  private readonly named = new Map<string, { path: string, expiresAt: number }>()

  constructor (
    private readonly membership: Pick<Membership, 'byId' | 'pairs'>,
    private readonly objects: Pick<ObjectManager, 'place'>,
    private readonly clusterKey: Uint8Array
  ) {}

  /** A URL with a signed locator for a large file's home node, or undefined when the file is small or its home not in use. */
  downloadUrl (entry: Pick<FileEntry, 'fileId' | 'size' | 'replicas'>): string | undefined {
    const home = entry.replicas[0]
    if (entry.size < DIRECT_MIN_BYTES || home === undefined) return undefined
    const member = this.membership.byId(home.node)
    const port = member?.info.httpPort
    if (member === undefined || !member.usable || port === undefined) return undefined
    const { expiresAt, signature } = signLocator(this.clusterKey, entry.fileId)
    return `${origin(member, port)}/blobs/${entry.fileId}?e=${expiresAt}&s=${signature}`
  }

  /** An upload locator for a new body of `size` bytes, on the pair placement picks for a fresh file id. */
  uploadLocator (size: number): UploadLocator {
    if (size < DIRECT_MIN_BYTES) return { url: null, reason: `files under ${DIRECT_MIN_BYTES} bytes go through the manager` }
    const fileId = randomBytes(16).toString('hex')
    const [home, twin] = this.objects.place(fileId, size) as [Member, Member]
    if (!home.usable || !twin.usable) return { url: null, reason: `a node of twin pair ${home.slot} is failed over` }
    const port = home.info.httpPort
    if (port === undefined) return { url: null, reason: `${home.name} takes no uploads by locator` }
    const { expiresAt, signature } = signLocator(this.clusterKey, fileId, Date.now(), LOCATOR_TTL_MS, putScope(size, twin.address, twin.info.port))
    const q = new URLSearchParams({ n: String(size), th: twin.address, tp: String(twin.info.port), e: String(expiresAt), s: signature })
    return { url: `${origin(home, port)}/blobs/${fileId}?${q.toString()}`, fileId, expiresAt }
  }

  /**
   * The receipt a client brings to name `path`, and the replicas it vouches
   * for: signed by a node of this cluster, in time, for both nodes of one twin
   * pair, and not already used for another path.
   */
  accept (token: string, path: string): { receipt: UploadReceipt, replicas: Replica[] } {
    const receipt = openReceipt(this.clusterKey, token)
    const pair = this.membership.pairs('storage').find((p) => p.members.some((m) => m.id === receipt.nodes[0]))
    if (pair === undefined || !pair.members.every((m) => receipt.nodes.includes(m.id))) {
      throw new ManagerError(ManagerErrorCode.RECEIPT_INVALID, `the upload receipt's nodes (${receipt.nodes.join(', ')}) are not a twin pair of this cluster`)
    }
    this.forgetExpired()
    const before = this.named.get(receipt.fileId)
    if (before !== undefined && before.path !== path) throw new ManagerError(ManagerErrorCode.RECEIPT_USED, `the upload receipt of file ${receipt.fileId} already named ${before.path}`)
    return { receipt, replicas: pair.members.map(replicaOf) }
  }

  /** The receipt named `path`: from now on it names no other. */
  used (receipt: UploadReceipt, path: string): void {
    this.named.set(receipt.fileId, { path, expiresAt: receipt.expiresAt })
  }

  private forgetExpired (now = Date.now()): void {
    for (const [fileId, { expiresAt }] of this.named) if (expiresAt < now) this.named.delete(fileId)
  }
}

function origin (member: Member, port: number): string {
  return `http://${member.address.includes(':') ? `[${member.address}]` : member.address}:${port}`
}

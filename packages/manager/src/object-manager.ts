import { randomBytes } from 'node:crypto'
import type { Logger } from '@mirrorcast/logger'
import { isTransportFailure, type Upload } from '@mirrorcast/rpc'
import type { FileEntry, Replica } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from './errors.js'
import type { Member, Membership } from './membership.js'
import { pickSlot } from './placement.js'

export interface StoredBody {
  fileId: string
  size: number
  sha256: string
  replicas: Replica[]
}

export interface ReadTarget {
  size: number
  sha256: string
  /** Bytes [offset, offset + length) of the body. */
  offset: number
  length: number
}

/**
 * The object manager: places bodies on a twin pair, streams them to both
 * nodes at once, and reads them back from the primary (or its twin).
 */
export class ObjectManager {
  private readonly membership: Membership
  private readonly centers: [string, string]
  private readonly logger: Logger

  constructor (membership: Membership, centers: [string, string], logger: Logger) {
    this.membership = membership
    this.centers = centers
    this.logger = logger
  }

  /** Chooses the twin pair for a new body: primary center first. */
  place (fileId: string): Member[] {
    const slot = pickSlot(fileId, this.membership.pairedSlots('storage'))
    if (slot === undefined) throw new ManagerError(ManagerErrorCode.NO_REPLICA, 'no storage twin pair has been discovered')
    return this.centers.map((center) => this.membership.find('storage', center, slot) as Member)
  }

  /**
   * Streams `source` to both nodes of a new pair. Resolves once both fsynced
   * the body and their checksums agree; on any failure neither keeps it.
   */
  async write (source: AsyncIterable<Buffer>, size: number, signal?: AbortSignal): Promise<StoredBody> {
    const fileId = randomBytes(16).toString('hex')
    const members = this.place(fileId)
    const uploads: Array<Upload<'blob.put.ok'>> = []
    try {
      for (const m of members) {
        uploads.push(await this.call(m, async () => await m.client.upload('blob.put', { fileId, size }, 'blob.put.ok', { signal })))
      }
      let received = 0
      for await (const chunk of source) {
        received += chunk.length
        if (received > size) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, `body is longer than its declared ${size} bytes`)
        await Promise.all(uploads.map(async (u, i) => await this.call(members[i] as Member, async () => await u.write(chunk))))
      }
      if (received !== size) throw new ManagerError(ManagerErrorCode.UPLOAD_INCOMPLETE, `body ended after ${received} of ${size} bytes`)
      const replies = await Promise.all(uploads.map(async (u, i) => await this.call(members[i] as Member, async () => await u.finish())))
      const sums = new Set(replies.map((r) => `${r.body.size}:${r.body.sha256}`))
      if (sums.size !== 1) {
        await this.remove({ fileId, replicas: members.map(replicaOf) })
        throw new ManagerError(ManagerErrorCode.REPLICA_MISMATCH, `replicas of ${fileId} disagree: ${[...sums].join(' vs ')}`)
      }
      const first = (replies[0] as typeof replies[number]).body
      return { fileId, size: first.size, sha256: first.sha256, replicas: members.map(replicaOf) }
    } catch (err) {
      for (const u of uploads) u.abort((err as Error).message)
      throw err
    }
  }

  /**
   * Reads a range of a body, from the first replica that serves it. A replica
   * failing before or during the stream is left for the next one, which
   * continues at the byte reached: the caller sees one unbroken stream.
   */
  async * read (entry: Pick<FileEntry, 'fileId' | 'size' | 'sha256' | 'replicas'>, offset: number, length: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
    let position = offset
    const end = offset + length
    let lastError: Error | undefined
    for (const replica of entry.replicas) {
      if (position >= end) return
      const member = this.memberFor(replica)
      if (member === undefined) continue
      try {
        const { body } = await this.call(member, async () => await member.client.download('blob.get', { fileId: entry.fileId, offset: position, length: end - position }, 'blob.get.ok', { signal }))
        for await (const chunk of body) {
          position += chunk.length
          yield chunk
        }
        if (position >= end) return
      } catch (err) {
        if (signal?.aborted === true) throw err
        lastError = err as Error
        this.logger.warn('replica read failed, trying its twin', { fileId: entry.fileId, member: member.name, at: position, code: (err as { code?: string }).code, error: (err as Error).message })
      }
    }
    if (position >= end) return
    throw new ManagerError(ManagerErrorCode.NO_REPLICA, `no replica of ${entry.fileId} could serve bytes ${position}-${end - 1}${lastError === undefined ? '' : ': ' + lastError.message}`, { cause: lastError })
  }

  /** Deletes a body from every replica; a replica that cannot be reached is logged, not fatal. */
  async remove (body: Pick<StoredBody, 'fileId' | 'replicas'>): Promise<void> {
    await Promise.all(body.replicas.map(async (replica) => {
      const member = this.memberFor(replica)
      if (member === undefined) return
      try {
        await this.call(member, async () => await member.client.request('blob.delete', { fileId: body.fileId }, 'blob.delete.ok'))
      } catch (err) {
        this.logger.warn('could not delete a body', { fileId: body.fileId, member: member.name, error: (err as Error).message })
      }
    }))
  }

  private memberFor (replica: Replica): Member | undefined {
    return this.membership.byId(replica.node) ?? this.membership.find('storage', replica.center, replica.slot)
  }

  /** Runs a call to a member, noting a transport failure against it. */
  private async call<X> (member: Member, fn: () => Promise<X>): Promise<X> {
    try {
      return await fn()
    } catch (err) {
      if (isTransportFailure(err)) this.membership.noteFailure(member, err as Error)
      throw err
    }
  }
}

export function replicaOf (member: Member): Replica {
  return { node: member.id, center: member.center, slot: member.slot }
}

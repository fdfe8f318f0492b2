import { createHash } from 'node:crypto'
import { BLOCK_BYTES, NodeErrorCode } from '@mirrorcast/node'
import { fileIdSchema, INLINE_BODY_BYTES, type MessageBody, type MessageType } from '@mirrorcast/wire'
import { FakeMember, remoteError, type Answer, type DownloadSource, type FakeMemberOptions, type UploadSink } from './fake-member.js'

// 1 TiB: the free space a fake storage node announces unless told otherwise
export const DEFAULT_FAKE_FREE_BYTES = 1024 ** 4

export interface FakeStorageNodeOptions extends FakeMemberOptions {
  /** Free bytes it announces (placement reads them); 1 TiB by default. */
  free?: number
}

/**
 * A storage node in memory, speaking the node protocol's storage requests
 * with the real node's answers and codes: `blob.put` (inline or streamed),
 * `blob.get` (inline up to 64 KiB, else block-aligned chunks), `blob.stat`,
 * `blob.delete`, `node.stats`, `blob.quarantined`. Bodies are kept whole;
 * what the node stores durably survives `kill()` and `restart()`.
 */
export class FakeStorageNode extends FakeMember {
  /** fileId → body, as stored. */
  readonly blobs = new Map<string, Buffer>()
  free: number

  constructor (options: FakeStorageNodeOptions) {
    super(options, 'storage')
    this.free = options.free ?? DEFAULT_FAKE_FREE_BYTES
  }

  protected load (): { free: number, files: number } {
    return { free: this.free, files: this.blobs.size }
  }

  protected answer (t: MessageType, body: unknown, payload: Buffer | undefined): Answer {
    switch (t) {
      case 'blob.put': {
        const b = body as MessageBody<'blob.put'>
        if (b.inline !== true) throw remoteError(NodeErrorCode.UNSUPPORTED, 'a streamed blob.put is an upload', this.name)
        return this.store(b.fileId, b.size, payload ?? Buffer.alloc(0))
      }
      case 'blob.stat': {
        const { fileId } = body as MessageBody<'blob.stat'>
        const blob = this.stored(fileId)
        return { t: 'blob.stat.ok', body: { fileId, size: blob.length, sha256: sha256(blob) } }
      }
      case 'blob.delete': {
        const { fileId } = body as MessageBody<'blob.delete'>
        return { t: 'blob.delete.ok', body: { existed: this.blobs.delete(fileId) } }
      }
      case 'node.stats': {
        const bytes = [...this.blobs.values()].reduce((sum, b) => sum + b.length, 0)
        const scrub = { passes: 0, files: 0, bytes: 0, corrupt: 0, totalBytes: 0, bytesPerSecond: 0, intervalMs: 0, running: false, lastPassAt: 0, lastPassMs: 0 }
        return { t: 'node.stats.ok', body: { id: this.id, role: 'storage', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, files: this.blobs.size, bytes, free: this.free, quarantined: 0, scrub } }
      }
      case 'blob.quarantined':
        return { t: 'blob.quarantined.ok', body: { files: [], more: false } }
      default:
        throw remoteError(NodeErrorCode.UNSUPPORTED, `a storage node does not serve ${t}`, this.name)
    }
  }

  protected startUpload (t: MessageType, body: unknown): UploadSink {
    if (t !== 'blob.put') throw remoteError(NodeErrorCode.UNSUPPORTED, `a storage node takes no upload of ${t}`, this.name)
    const { fileId, size } = body as MessageBody<'blob.put'>
    checkId(fileId)
    const parts: Buffer[] = []
    let received = 0
    return {
      write: (chunk) => {
        received += chunk.length
        if (received > size) throw remoteError(NodeErrorCode.SIZE_MISMATCH, `upload is longer than its declared ${size} bytes`, this.name)
        parts.push(chunk)
      },
      finish: () => this.store(fileId, size, Buffer.concat(parts, received)),
      drop: () => { parts.length = 0 }
    }
  }

  protected startDownload (t: MessageType, body: unknown): DownloadSource {
    if (t !== 'blob.get') throw remoteError(NodeErrorCode.UNSUPPORTED, `a storage node streams no ${t}`, this.name)
    const { fileId, offset, length } = body as MessageBody<'blob.get'>
    const blob = this.stored(fileId)
    const len = length ?? blob.length - offset
    if (offset + len > blob.length) throw remoteError(NodeErrorCode.BAD_RANGE, `range ${offset}+${len} is outside file ${fileId} of ${blob.length} bytes`, this.name)
    const head = { fileId, size: blob.length, sha256: sha256(blob), offset, length: len }
    const range = blob.subarray(offset, offset + len)
    // Inline: the bytes ride in the head's frame, and the body the caller reads is them.
    // a read this small is answered inline, in its head's frame, as the real node does
    if (len <= INLINE_BODY_BYTES) return { head: { t: 'blob.get.ok', body: { ...head, inline: true }, payload: range }, chunks: range.length > 0 ? [range] : [] }
    // One chunk a storage block, cut at the block edges, as the real node sends them.
    const chunks: Buffer[] = []
    for (let at = offset; at < offset + len;) {
      const next = Math.min(offset + len, (Math.floor(at / BLOCK_BYTES) + 1) * BLOCK_BYTES)
      chunks.push(blob.subarray(at, next))
      at = next
    }
    return { head: { t: 'blob.get.ok', body: head }, chunks }
  }

  private store (fileId: string, size: number, body: Buffer): Answer {
    checkId(fileId)
    if (body.length !== size) throw remoteError(NodeErrorCode.SIZE_MISMATCH, `upload ended after ${body.length} of ${size} bytes`, this.name)
    const existing = this.blobs.get(fileId)
    if (existing !== undefined && !existing.equals(body)) throw remoteError(NodeErrorCode.EXISTS, `file ${fileId} is already stored with other content`, this.name)
    this.blobs.set(fileId, Buffer.from(body))
    return { t: 'blob.put.ok', body: { fileId, size, sha256: sha256(body) } }
  }

  private stored (fileId: string): Buffer {
    checkId(fileId)
    const blob = this.blobs.get(fileId)
    if (blob === undefined) throw remoteError(NodeErrorCode.NOT_FOUND, `file ${fileId} is not stored here`, this.name)
    return blob
  }
}

function checkId (fileId: string): void {
  if (!fileIdSchema.safeParse(fileId).success) throw remoteError(NodeErrorCode.BAD_ID, 'a file id is 32 lowercase hex digits')
}

function sha256 (b: Buffer): string {
  return createHash('sha256').update(b).digest('hex')
}

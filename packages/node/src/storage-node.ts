import type { RequestContext } from '@mirrorcast/rpc'
import { MemberProcess, type Holding, type MemberProcessOptions, type SearchKind } from '@mirrorcast/discovery'
import type { AnyEnvelope, MessageType } from '@mirrorcast/wire'
import { BlobStore } from './blob-store.js'
import { NodeError, NodeErrorCode } from './errors.js'

// 256 KiB: body bytes per frame on the wire
const WIRE_CHUNK_BYTES = 256 * 1024

export type StorageNodeOptions = MemberProcessOptions

/** A storage node: a blob store served over the node protocol, announced on the multicast group. */
export class StorageNode extends MemberProcess<StorageNodeOptions> {
  readonly store: BlobStore
  private free = 0

  constructor (options: StorageNodeOptions) {
    super(options, 'storage')
    this.store = new BlobStore(options.dataDir, this.logger)
  }

  protected async open (): Promise<void> {
    await this.store.open()
    this.free = await this.store.free()
  }

  protected async shutdown (): Promise<void> {}

  protected load (): { free: number, files: number } {
    // Free space is refreshed in the background: a heartbeat never waits on the disk.
    void this.store.free().then((f) => { this.free = f }, () => {})
    return { free: this.free, files: this.store.files }
  }

  protected async holds (kind: SearchKind, key: string): Promise<Holding | undefined> {
    return kind === 'blob' ? await this.store.stat(key).catch(() => undefined) : undefined
  }

  protected override streamingRequests (): MessageType[] {
    return ['blob.put']
  }

  protected async handle (req: AnyEnvelope, ctx: RequestContext): Promise<void> {
    switch (req.t) {
      case 'blob.put': {
        const info = await this.store.put(req.body.fileId, req.body.size, ctx.body())
        await ctx.reply('blob.put.ok', { fileId: req.body.fileId, ...info })
        return
      }
      case 'blob.get': {
        const read = await this.store.get(req.body.fileId, req.body.offset, req.body.length)
        await ctx.reply('blob.get.ok', { fileId: req.body.fileId, size: read.size, sha256: read.sha256, offset: read.offset, length: read.length })
        for await (const block of read.body) {
          for (let at = 0; at < block.length; at += WIRE_CHUNK_BYTES) await ctx.sendChunk(block.subarray(at, at + WIRE_CHUNK_BYTES))
        }
        await ctx.end()
        return
      }
      case 'blob.stat':
        await ctx.reply('blob.stat.ok', { fileId: req.body.fileId, ...await this.store.stat(req.body.fileId) })
        return
      case 'blob.delete':
        await ctx.reply('blob.delete.ok', { existed: await this.store.delete(req.body.fileId) })
        return
      case 'node.stats':
        await ctx.reply('node.stats.ok', { id: this.id, role: 'storage', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, files: this.store.files, bytes: this.store.bytes, free: await this.store.free() })
        return
      default:
        throw new NodeError(NodeErrorCode.UNSUPPORTED, `a storage node does not serve ${req.t}`)
    }
  }
}

import type { RequestContext } from '@mirrorcast/rpc'
import type { Holding, SearchKind } from '@mirrorcast/discovery'
import { MemberProcess, type MemberProcessOptions } from '@mirrorcast/member'
import { CodedError, INLINE_BODY_BYTES, pageFrom, StartErrorCode, type AnyEnvelope, type MessageType } from '@mirrorcast/wire'
import { BlobStore, type BlobRead } from './blob-store.js'
import { NodeError, NodeErrorCode } from './errors.js'
import { Scrubber, type ScrubOptions } from './scrubber.js'
import { BlobHttpServer } from './blob-http.js'
import { BlobUploads } from './blob-upload.js'
import { TwinLinks } from './twin-links.js'

/** An inline body, as the stream the blob store reads. */
async function * once (payload: Buffer): AsyncGenerator<Buffer> {
  yield payload
}

export interface StorageNodeOptions extends MemberProcessOptions {
  /** The background scrub's rate and pace (on by default). */
  scrub?: ScrubOptions
  /** Port of downloads and uploads by signed locator, on the node's address (0, the default: any free one, announced). */
  httpPort?: number
}

/** A storage node: a blob store served over the node protocol, announced on the multicast group. */
export class StorageNode extends MemberProcess<StorageNodeOptions> {
  store: BlobStore
  private scrubber: Scrubber
  private http: BlobHttpServer | undefined
  private twins: TwinLinks | undefined
  private free = 0

  constructor (options: StorageNodeOptions) {
    super(options, 'storage')
    this.store = new BlobStore(options.dataDir, this.logger)
    this.scrubber = new Scrubber(this.store, options.scrub ?? {}, this.logger)
  }

  protected async open (): Promise<void> {
    // The logger got the node id at start: the store and the scrub log with it.
    this.store = new BlobStore(this.options.dataDir, this.logger)
    this.scrubber = new Scrubber(this.store, this.options.scrub ?? {}, this.logger)
    await this.store.open()
    this.free = await this.store.free()
    this.twins = new TwinLinks(this.options.key, this.id)
    const uploads = new BlobUploads(this.store, this.options.key, { id: this.id, center: this.center, slot: this.slot }, this.twins)
    this.http = new BlobHttpServer(this.store, this.options.key, uploads, this.logger)
    await this.http.start(this.address, this.options.httpPort ?? 0).catch((err: unknown) => {
      const inUse = (err as { code?: string }).code === 'EADDRINUSE'
      throw new CodedError(inUse ? StartErrorCode.PORT_IN_USE : NodeErrorCode.BAD_OPTIONS, `blob HTTP cannot listen on ${this.address}:${this.options.httpPort ?? 0}: ${(err as Error).message}`, { cause: err })
    })
    this.scrubber.start()
  }

  /** The port of downloads and uploads by signed locator. */
  get httpPort (): number {
    return this.http?.port ?? 0
  }

  protected async shutdown (): Promise<void> {
    await this.http?.close()
    await this.twins?.close()
    await this.scrubber.close()
    await this.store.close()
  }

  protected load (): { free: number, files: number, quarantined: number, scrub: ReturnType<Scrubber['summary']>, httpPort?: number } {
    // Free space is refreshed in the background: a heartbeat never waits on the disk.
    void this.store.free().then((f) => { this.free = f }, () => {})
    const httpPort = this.httpPort
    return { free: this.free, files: this.store.files, quarantined: this.store.quarantined.size, scrub: this.scrubber.summary(), ...(httpPort === 0 ? {} : { httpPort }) }
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
        const source = req.body.inline === true ? once(req.payload) : ctx.body()
        const info = await this.store.put(req.body.fileId, req.body.size, source, req.body.senderHashes === true ? () => ctx.ended?.sha256 : undefined)
        await ctx.reply('blob.put.ok', { fileId: req.body.fileId, ...info })
        return
      }
      case 'blob.get': {
        const read = await this.store.get(req.body.fileId, req.body.offset, req.body.length)
        try {
          await this.sendBody(ctx, req.body.fileId, read)
        } finally {
          // the reply may fail (the session closed) before the body is read at all
          await read.close()
        }
        return
      }
      case 'blob.stat':
        await ctx.reply('blob.stat.ok', { fileId: req.body.fileId, ...await this.store.stat(req.body.fileId) })
        return
      case 'blob.delete':
        await ctx.reply('blob.delete.ok', { existed: await this.store.delete(req.body.fileId) })
        return
      case 'node.stats':
        await ctx.reply('node.stats.ok', { id: this.id, role: 'storage', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, files: this.store.files, bytes: this.store.bytes, free: await this.store.free(), quarantined: this.store.quarantined.size, scrub: this.scrubber.snapshot() })
        return
      case 'blob.quarantined': {
        // a page by bytes too: 10,000 reasons of 512 characters would not fit a frame
        const { items, more } = pageFrom([...this.store.quarantined.values()])
        await ctx.reply('blob.quarantined.ok', { files: items, more })
        return
      }
      case 'blob.digest': {
        const { files, digest } = await this.store.digest()
        await ctx.reply('blob.digest.ok', { files, digest: digest.bytes() })
        return
      }
      case 'blob.list':
        await ctx.reply('blob.list.ok', await this.store.list(req.body.shard, req.body.after))
        return
      default:
        throw new NodeError(NodeErrorCode.UNSUPPORTED, `a storage node does not serve ${req.t}`)
    }
  }

  private async sendBody (ctx: RequestContext, fileId: string, read: BlobRead): Promise<void> {
    const head = { fileId, size: read.size, sha256: read.sha256, offset: read.offset, length: read.length }
    if (read.length <= INLINE_BODY_BYTES) {
      // Every block is verified before it is yielded, so the whole range is read (and checked) before the reply.
      const blocks: Buffer[] = []
      for await (const block of read.body) blocks.push(block)
      // One block as verified (its digest signs the frame); several only for a range across a block edge.
      await ctx.reply('blob.get.ok', { ...head, inline: true }, blocks.length === 1 ? blocks[0] : Buffer.concat(blocks))
      return
    }
    await ctx.reply('blob.get.ok', head)
    // One verified block (at most 1 MiB) a frame.
    for await (const block of read.body) await ctx.sendChunk(block)
    await ctx.end()
  }
}

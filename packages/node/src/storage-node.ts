import { silentLogger, type Logger } from '@mirrorcast/logger'
import { loadOrCreateMemberId, newBootId, resolveMemberOptions, RpcServer, type MemberOptions, type RequestContext } from '@mirrorcast/rpc'
import { MemberPresence, type PresenceOptions } from '@mirrorcast/discovery'
import type { AnyEnvelope } from '@mirrorcast/wire'
import { BlobStore } from './blob-store.js'
import { NodeError, NodeErrorCode } from './errors.js'

// 256 KiB: body bytes per frame on the wire
const WIRE_CHUNK_BYTES = 256 * 1024

export interface StorageNodeOptions extends MemberOptions {
  maxFrameBytes?: number
  /** Multicast announce, search and DNS-SD; omitted: the node is reachable only by its address. */
  presence?: Omit<PresenceOptions, 'key' | 'logger'>
  logger?: Logger
}

/** A storage node: a blob store served over the node protocol, announced on the multicast group. */
export class StorageNode {
  readonly store: BlobStore
  private readonly options: StorageNodeOptions & { address: string, port: number }
  private server: RpcServer | undefined
  private presence: MemberPresence | undefined
  private logger: Logger
  id = ''
  bootId = ''

  constructor (options: StorageNodeOptions) {
    this.options = resolveMemberOptions(options)
    this.logger = options.logger ?? silentLogger()
    this.store = new BlobStore(options.dataDir, this.logger)
  }

  get port (): number { return this.server?.port ?? this.options.port }
  get address (): string { return this.options.address }
  get center (): string { return this.options.center }
  get slot (): number { return this.options.slot }

  async start (): Promise<void> {
    if (this.server !== undefined) return
    this.id = await loadOrCreateMemberId(this.options.dataDir, 'node')
    this.bootId = newBootId()
    this.logger = (this.options.logger ?? silentLogger()).child({ component: 'node', nodeId: this.id })
    await this.store.open()
    const server = new RpcServer({
      key: this.options.key,
      identity: { id: this.id, role: 'storage', center: this.center, slot: this.slot, address: this.address, port: this.options.port, bootId: this.bootId },
      host: this.address,
      port: this.options.port,
      streamingRequests: ['blob.put'],
      handler: async (req, ctx) => await this.handle(req, ctx),
      logger: this.logger,
      ...(this.options.maxFrameBytes === undefined ? {} : { maxFrameBytes: this.options.maxFrameBytes })
    })
    await server.start()
    this.server = server
    if (this.options.presence !== undefined) {
      let free = await this.store.free()
      this.presence = new MemberPresence({ ...this.options.presence, key: this.options.key, logger: this.logger }, () => {
        // Free space is refreshed in the background: a heartbeat never waits on the disk.
        void this.store.free().then((f) => { free = f }, () => {})
        return { id: this.id, role: 'storage', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, free, files: this.store.files }
      }, async (kind, key) => kind === 'blob' ? await this.store.stat(key).catch(() => undefined) : undefined)
      await this.presence.start()
    }
    this.logger.info('storage node started', { address: `${this.address}:${this.port}`, files: this.store.files, bytes: this.store.bytes, bootId: this.bootId })
  }

  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    await this.presence?.close()
    this.presence = undefined
    await server.close()
  }

  private async handle (req: AnyEnvelope, ctx: RequestContext): Promise<void> {
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

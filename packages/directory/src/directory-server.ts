import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { loadOrCreateMemberId, newBootId, resolveMemberOptions, RpcServer, type MemberOptions, type RequestContext } from '@mirrorcast/rpc'
import { MemberPresence, type PresenceOptions } from '@mirrorcast/discovery'
import type { AnyEnvelope } from '@mirrorcast/wire'
import { DirectoryError, DirectoryErrorCode } from './errors.js'
import { Namespace } from './namespace.js'

export interface DirectoryServerOptions extends MemberOptions {
  maxFrameBytes?: number
  /** Multicast announce, search and DNS-SD; omitted: reachable only by its address. */
  presence?: Omit<PresenceOptions, 'key' | 'logger'>
  logger?: Logger
}

/** A directory server: the namespace in LMDB, served over the node protocol. */
export class DirectoryServer {
  private readonly options: DirectoryServerOptions & { address: string, port: number }
  private server: RpcServer | undefined
  private presence: MemberPresence | undefined
  private ns: Namespace | undefined
  private logger: Logger
  id = ''
  bootId = ''

  constructor (options: DirectoryServerOptions) {
    this.options = resolveMemberOptions(options)
    this.logger = options.logger ?? silentLogger()
  }

  get port (): number { return this.server?.port ?? this.options.port }
  get address (): string { return this.options.address }
  get center (): string { return this.options.center }
  get slot (): number { return this.options.slot }

  get namespace (): Namespace {
    if (this.ns === undefined) throw new Error('directory server not started')
    return this.ns
  }

  async start (): Promise<void> {
    if (this.server !== undefined) return
    this.id = await loadOrCreateMemberId(this.options.dataDir, 'dir')
    this.bootId = newBootId()
    this.logger = (this.options.logger ?? silentLogger()).child({ component: 'directory', nodeId: this.id })
    await mkdir(this.options.dataDir, { recursive: true })
    this.ns = Namespace.open(join(this.options.dataDir, 'namespace.lmdb'))
    const server = new RpcServer({
      key: this.options.key,
      identity: { id: this.id, role: 'directory', center: this.center, slot: this.slot, address: this.address, port: this.options.port, bootId: this.bootId },
      host: this.address,
      port: this.options.port,
      handler: async (req, ctx) => await this.handle(req, ctx),
      logger: this.logger,
      ...(this.options.maxFrameBytes === undefined ? {} : { maxFrameBytes: this.options.maxFrameBytes })
    })
    await server.start()
    this.server = server
    if (this.options.presence !== undefined) {
      const ns = this.ns
      this.presence = new MemberPresence({ ...this.options.presence, key: this.options.key, logger: this.logger },
        () => ({ id: this.id, role: 'directory', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, free: 0, files: ns.entryCount }),
        async (kind, key) => {
          if (kind !== 'entry') return undefined
          try {
            return { version: ns.stat(key).version }
          } catch {
            return undefined
          }
        })
      await this.presence.start()
    }
    this.logger.info('directory server started', { address: `${this.address}:${this.port}`, seq: this.ns.seq, bootId: this.bootId })
  }

  async close (): Promise<void> {
    const server = this.server
    if (server === undefined) return
    this.server = undefined
    await this.presence?.close()
    this.presence = undefined
    await server.close()
    await this.ns?.close()
    this.ns = undefined
  }

  private async handle (req: AnyEnvelope, ctx: RequestContext): Promise<void> {
    const ns = this.namespace
    switch (req.t) {
      case 'dir.put': return await ctx.reply('dir.change.ok', await ns.put(req.body.entry))
      case 'dir.mkdir': return await ctx.reply('dir.change.ok', await ns.mkdir(req.body.path, req.body.parents))
      case 'dir.rename': return await ctx.reply('dir.change.ok', await ns.rename(req.body.path, req.body.to))
      case 'dir.remove': return await ctx.reply('dir.change.ok', await ns.remove(req.body.path, req.body.recursive))
      case 'dir.stat': {
        const entry = req.body.optional === true ? ns.lookup(req.body.path) : ns.stat(req.body.path)
        return await ctx.reply('dir.stat.ok', entry === undefined ? {} : { entry })
      }
      case 'dir.list': return await ctx.reply('dir.list.ok', ns.list(req.body.path, req.body.after, req.body.limit))
      case 'dir.apply': return await ctx.reply('dir.apply.ok', { seq: await ns.apply(req.body.changes) })
      case 'dir.changes': return await ctx.reply('dir.changes.ok', ns.changes(req.body.after, req.body.limit))
      case 'dir.reset':
        this.logger.warn('namespace reset for a rebuild from the twin', { seq: ns.seq })
        await ns.reset()
        return await ctx.reply('ok', {})
      case 'dir.info': return await ctx.reply('dir.info.ok', { id: this.id, role: 'directory', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, seq: ns.seq, entries: ns.entryCount })
      default: throw new DirectoryError(DirectoryErrorCode.UNSUPPORTED, `a directory server does not serve ${req.t}`)
    }
  }
}

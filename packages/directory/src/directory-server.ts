import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import type { RequestContext } from '@mirrorcast/rpc'
import { MemberProcess, type Holding, type MemberProcessOptions, type SearchKind } from '@mirrorcast/discovery'
import type { AnyEnvelope } from '@mirrorcast/wire'
import { DirectoryError, DirectoryErrorCode } from './errors.js'
import { Namespace } from './namespace.js'

export type DirectoryServerOptions = MemberProcessOptions

/** A directory server: the namespace in LMDB, served over the node protocol. */
export class DirectoryServer extends MemberProcess<DirectoryServerOptions> {
  private ns: Namespace | undefined

  constructor (options: DirectoryServerOptions) {
    super(options, 'directory')
  }

  get namespace (): Namespace {
    if (this.ns === undefined) throw new Error('directory server not started')
    return this.ns
  }

  protected async open (): Promise<void> {
    await mkdir(this.options.dataDir, { recursive: true })
    this.ns = Namespace.open(join(this.options.dataDir, 'namespace.lmdb'))
  }

  protected async shutdown (): Promise<void> {
    await this.ns?.close()
    this.ns = undefined
  }

  protected load (): { free: number, files: number } {
    return { free: 0, files: this.ns?.entryCount ?? 0 }
  }

  protected async holds (kind: SearchKind, key: string): Promise<Holding | undefined> {
    if (kind !== 'entry' || this.ns === undefined) return undefined
    const entry = this.ns.lookup(key)
    return entry === undefined ? undefined : { version: entry.version }
  }

  protected async handle (req: AnyEnvelope, ctx: RequestContext): Promise<void> {
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

import { join } from 'node:path'
import { mkdir } from 'node:fs/promises'
import type { RequestContext } from '@mirrorcast/rpc'
import type { Holding, SearchKind } from '@mirrorcast/discovery'
import { MemberProcess, type MemberProcessOptions } from '@mirrorcast/member'
import { MAX_DIRECTORY_PARTITIONS, type AnyEnvelope } from '@mirrorcast/wire'
import { DirectoryError, DirectoryErrorCode } from './errors.js'
import { LeaseTable } from './leases.js'
import { Namespace } from './namespace.js'

// 1 s: how stale the entry count in a heartbeat may be
const ENTRY_COUNT_TTL_MS = 1000

export interface DirectoryServerOptions extends MemberProcessOptions {
  /**
   * Which part of the namespace this server holds (1 to the cluster's number
   * of partitions); its slot unless its twin sits in the same center.
   */
  partition?: number
}

/** A directory server: one partition of the namespace in LMDB, served over the node protocol. */
export class DirectoryServer extends MemberProcess<DirectoryServerOptions> {
  private ns: Namespace | undefined
  private counted = { files: 0, at: 0 }
  /** Anti-entropy leases: in memory, so a restart frees them. */
  private readonly leases = new LeaseTable()
  readonly partition: number

  constructor (options: DirectoryServerOptions) {
    super(options, 'directory')
    this.partition = options.partition ?? options.slot
    if (!Number.isInteger(this.partition) || this.partition < 1 || this.partition > MAX_DIRECTORY_PARTITIONS) throw new TypeError(`partition ${this.partition} must be 1 to ${MAX_DIRECTORY_PARTITIONS}`)
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
    // The count is read from the store once a second, not at every heartbeat.
    const now = Date.now()
    if (this.ns !== undefined && now - this.counted.at >= ENTRY_COUNT_TTL_MS) this.counted = { files: this.ns.entryCount, at: now }
    return { free: 0, files: this.counted.files }
  }

  /** Answers searches for an entry it holds, or for its partition (with its sequence number). */
  protected async holds (kind: SearchKind, key: string): Promise<Holding | undefined> {
    if (this.ns === undefined) return undefined
    if (kind === 'partition') return key === String(this.partition) ? { version: this.ns.seq } : undefined
    if (kind !== 'entry') return undefined
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
      case 'dir.move-out': return await ctx.reply('dir.change.ok', await ns.moveOut(req.body.path, req.body.to, req.body.intent))
      case 'dir.move-part': return await ctx.reply('dir.change.ok', await ns.movePart(req.body.path, req.body.intent, req.body.part, req.body.tree))
      case 'dir.move-in': return await ctx.reply('dir.change.ok', await ns.moveIn(req.body.path, req.body.to, req.body.intent, req.body.tree, req.body.parts))
      case 'dir.move-done': return await ctx.reply('dir.change.ok', await ns.moveDone(req.body.intent))
      case 'dir.intents': return await ctx.reply('dir.intents.ok', ns.intents())
      case 'dir.intent-tree': return await ctx.reply('dir.intent-tree.ok', ns.intentTree(req.body.intent, req.body.from))
      case 'dir.removed': return await ctx.reply('dir.removed.ok', ns.removedFrom(req.body.seq, req.body.from))
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
      case 'dir.digest': return await ctx.reply('dir.digest.ok', ns.placeDigest(req.body.place))
      case 'dir.files': return await ctx.reply('dir.files.ok', ns.placeFiles(req.body.place, req.body.shard, req.body.after))
      case 'dir.state': return await ctx.reply('dir.state.ok', await ns.stateDigest())
      case 'dir.lease': return await ctx.reply('dir.lease.ok', this.leases.request(req.body))
      case 'dir.leases': return await ctx.reply('dir.leases.ok', { leases: this.leases.list(req.body.prefix) })
      case 'dir.info': return await ctx.reply('dir.info.ok', { id: this.id, role: 'directory', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, partition: this.partition, seq: ns.seq, entries: ns.entryCount, intents: ns.pendingMoves })
      default: throw new DirectoryError(DirectoryErrorCode.UNSUPPORTED, `a directory server does not serve ${req.t}`)
    }
  }
}

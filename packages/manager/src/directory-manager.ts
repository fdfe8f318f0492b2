import type { Logger } from '@mirrorcast/logger'
import { isTransportFailure } from '@mirrorcast/rpc'
import type { Change, Entry, FileEntry, MessageBody } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from './errors.js'
import type { Member, Membership } from './membership.js'

type ChangeResult = MessageBody<'dir.change.ok'>

// 1,000: changes fetched per page when a twin catches up from the log
const CATCH_UP_PAGE = 1000

/**
 * The directory manager: namespace operations go to the primary directory
 * server, which orders them (its sequence number); each resulting change is
 * then applied, in order, to the twin, and only then acknowledged.
 */
export class DirectoryManager {
  private readonly membership: Membership
  private readonly centers: [string, string]
  private readonly logger: Logger
  private readonly pending = new Map<number, { change: Change, resolve: () => void, reject: (e: Error) => void }>()
  private twinSeq: number | undefined
  private draining: Promise<void> | undefined

  constructor (membership: Membership, centers: [string, string], logger: Logger) {
    this.membership = membership
    this.centers = centers
    this.logger = logger
  }

  /** Brings the twin up to the primary's sequence number whenever a directory server (re)appears. */
  start (): void {
    this.membership.on('available', (member) => {
      if (member.role !== 'directory') return
      this.twinSeq = undefined
      void this.kick()
    })
  }

  async stat (path: string, signal?: AbortSignal): Promise<Entry> {
    const entry = await this.lookup(path, false, signal)
    if (entry === undefined) throw new ManagerError(ManagerErrorCode.NOT_FOUND, `${path} does not exist`)
    return entry
  }

  /** The entry at `path`, or undefined when there is none. */
  async lookup (path: string, optional = true, signal?: AbortSignal): Promise<Entry | undefined> {
    const primary = this.primary()
    return (await this.call(primary, async () => await primary.client.request('dir.stat', { path, optional }, 'dir.stat.ok', { signal }))).body.entry
  }

  async list (path: string, after: string | undefined, limit: number | undefined, signal?: AbortSignal): Promise<MessageBody<'dir.list.ok'>> {
    const primary = this.primary()
    const body: MessageBody<'dir.list'> = { path, ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) }
    return (await this.call(primary, async () => await primary.client.request('dir.list', body, 'dir.list.ok', { signal }))).body
  }

  async put (entry: Omit<FileEntry, 'version' | 'mtime'>): Promise<ChangeResult> {
    return await this.mutate(async (p) => await p.client.request('dir.put', { entry }, 'dir.change.ok'))
  }

  async mkdir (path: string, parents: boolean): Promise<ChangeResult> {
    return await this.mutate(async (p) => await p.client.request('dir.mkdir', { path, parents }, 'dir.change.ok'))
  }

  async rename (path: string, to: string): Promise<ChangeResult> {
    return await this.mutate(async (p) => await p.client.request('dir.rename', { path, to }, 'dir.change.ok'))
  }

  async remove (path: string, recursive: boolean): Promise<ChangeResult> {
    return await this.mutate(async (p) => await p.client.request('dir.remove', { path, recursive }, 'dir.change.ok'))
  }

  private async mutate (op: (primary: Member) => Promise<{ body: ChangeResult }>): Promise<ChangeResult> {
    const primary = this.primary()
    const { body } = await this.call(primary, async () => await op(primary))
    await this.replicate(body.change)
    return body
  }

  /** Resolves once the twin holds `change`. */
  private async replicate (change: Change): Promise<void> {
    const applied = new Promise<void>((resolve, reject) => this.pending.set(change.seq, { change, resolve, reject }))
    void this.kick()
    await applied
  }

  private async kick (): Promise<void> {
    if (this.draining !== undefined) return
    this.draining = this.drain().catch((err: Error) => {
      this.logger.warn('directory twin catch-up failed', { error: err.message, pending: this.pending.size })
      for (const [seq, p] of this.pending) {
        this.pending.delete(seq)
        p.reject(new ManagerError(ManagerErrorCode.UNAVAILABLE, `directory twin could not take change ${seq}: ${err.message}`, { cause: err }))
      }
    }).finally(() => {
      this.draining = undefined
      if (this.pending.size > 0) void this.kick()
    })
  }

  /**
   * Applies changes to the twin strictly in sequence order: those this manager
   * holds, and any it lacks (made before a restart) fetched from the primary's log.
   */
  private async drain (): Promise<void> {
    const primary = this.primary()
    const twin = this.twin()
    if (this.twinSeq === undefined) {
      this.twinSeq = (await this.call(twin, async () => await twin.client.request('dir.info', {}, 'dir.info.ok'))).body.seq
    }
    for (;;) {
      // Every consecutive change this manager holds goes in one request: one round trip, one commit.
      let batch: Change[] = []
      for (let seq = this.twinSeq + 1; this.pending.has(seq) && batch.length < CATCH_UP_PAGE; seq++) batch.push((this.pending.get(seq) as { change: Change }).change)
      if (batch.length === 0) {
        const primarySeq = this.pending.size > 0 ? Infinity : (await this.call(primary, async () => await primary.client.request('dir.info', {}, 'dir.info.ok'))).body.seq
        if (this.pending.size === 0 && primarySeq <= this.twinSeq) return
        batch = (await this.call(primary, async () => await primary.client.request('dir.changes', { after: this.twinSeq as number, limit: CATCH_UP_PAGE }, 'dir.changes.ok'))).body.changes
        if (batch.length === 0) return
      }
      const { body } = await this.call(twin, async () => await twin.client.request('dir.apply', { changes: batch }, 'dir.apply.ok'))
      this.twinSeq = body.seq
      for (const [seq, p] of this.pending) {
        if (seq <= body.seq) {
          this.pending.delete(seq)
          p.resolve()
        }
      }
    }
  }

  private primary (): Member {
    return this.server(this.centers[0])
  }

  private twin (): Member {
    return this.server(this.centers[1])
  }

  // Partition 1 only: several directory servers per center come with the failover issue.
  private server (center: string): Member {
    const member = this.membership.find('directory', center, 1)
    if (member === undefined) throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `no directory server of center ${center} has been discovered`)
    return member
  }

  private async call<X> (member: Member, fn: () => Promise<X>): Promise<X> {
    try {
      return await fn()
    } catch (err) {
      if (isTransportFailure(err)) {
        this.membership.noteFailure(member, err as Error)
        if (member === this.twin()) this.twinSeq = undefined
      }
      throw err
    }
  }
}

import type { Logger } from '@mirrorcast/logger'
import { isTransportFailure } from '@mirrorcast/rpc'
import type { Change, Entry, FileEntry, MessageBody } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from './errors.js'
import type { Member, Membership } from './membership.js'

type ChangeResult = MessageBody<'dir.change.ok'>

// 1,000: changes per request when a directory server catches up from the log
const CATCH_UP_PAGE = 1000

/**
 * The directory manager. The primary directory server leads while it is
 * usable, its twin otherwise: the leader orders every change (its sequence
 * number) and each change is applied, in order, to the other server before it
 * is acknowledged. A server that comes back catches up from the leader's log
 * before it is used again.
 */
export class DirectoryManager {
  private readonly membership: Membership
  private readonly centers: [string, string]
  private readonly logger: Logger
  private readonly pending = new Map<number, { change: Change, resolve: () => void, reject: (e: Error) => void }>()
  private followerSeq: { id: string, seq: number } | undefined
  private currentLeader: Member | undefined
  /** The leader the pending changes were made on. */
  private pendingLeader: Member | undefined
  private draining: Promise<void> | undefined

  constructor (membership: Membership, centers: [string, string], logger: Logger) {
    this.membership = membership
    this.centers = centers
    this.logger = logger
  }

  start (): void {
    this.membership.on('available', (member) => {
      if (member.role !== 'directory') return
      this.followerSeq = undefined
      void this.kick()
    })
    this.membership.on('failback', (member) => { if (member.role === 'directory') void this.catchUp(member) })
    this.membership.on('failover', (member) => { if (member.role === 'directory') this.failPending(new Error(`${member.name} failed over`)) })
  }

  async stat (path: string, signal?: AbortSignal): Promise<Entry> {
    const entry = await this.lookup(path, false, signal)
    if (entry === undefined) throw new ManagerError(ManagerErrorCode.NOT_FOUND, `${path} does not exist`)
    return entry
  }

  /** The entry at `path`, or undefined when there is none. */
  async lookup (path: string, optional = true, signal?: AbortSignal): Promise<Entry | undefined> {
    return await this.onLeader(async (leader) => (await leader.client.request('dir.stat', { path, optional }, 'dir.stat.ok', { signal })).body.entry)
  }

  async list (path: string, after: string | undefined, limit: number | undefined, signal?: AbortSignal): Promise<MessageBody<'dir.list.ok'>> {
    const body: MessageBody<'dir.list'> = { path, ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) }
    return await this.onLeader(async (leader) => (await leader.client.request('dir.list', body, 'dir.list.ok', { signal })).body)
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

  /**
   * Runs a change on the leader and replicates it. If the leader dies before
   * its follower took the change, the change was never acknowledged: it is
   * made again on the new leader, so nothing acknowledged lives on one dead copy.
   */
  private async mutate (op: (leader: Member) => Promise<{ body: ChangeResult }>): Promise<ChangeResult> {
    for (let attempt = 0; ; attempt++) {
      const leader = this.leader()
      const body = await this.onLeader(async (l) => (await op(l)).body)
      try {
        if (this.follower()?.usable === true) await this.replicate(body.change)
        return body
      } catch (err) {
        if (leader.usable || attempt > 0) throw err
        this.logger.warn('leader lost before its follower took a change: making it again', { seq: body.change.seq, leader: leader.name })
      }
    }
  }

  /**
   * Runs a request on the leader. A leader that fails with a transport error
   * is failed over and the request goes to the other server once: reads and
   * writes keep working while one of the pair lives.
   */
  private async onLeader<X> (fn: (leader: Member) => Promise<X>): Promise<X> {
    const leader = this.leader()
    try {
      return await fn(leader)
    } catch (err) {
      if (!isTransportFailure(err)) throw err
      this.membership.noteFailure(leader, err as Error)
      this.failPending(err as Error)
      return await fn(this.leader())
    }
  }

  /** Resolves once the follower holds `change`. */
  private async replicate (change: Change): Promise<void> {
    this.pendingLeader = this.leader()
    const applied = new Promise<void>((resolve, reject) => this.pending.set(change.seq, { change, resolve, reject }))
    void this.kick()
    await applied
  }

  private async kick (): Promise<void> {
    if (this.draining !== undefined) return
    this.draining = this.drain().catch((err: Error) => {
      this.logger.warn('directory replication failed', { error: err.message, pending: this.pending.size })
      this.failPending(err)
    }).finally(() => {
      this.draining = undefined
      if (this.pending.size > 0) void this.kick()
    })
  }

  /**
   * Settles changes still waiting for the follower. The follower lost: they
   * are acknowledged on the leader alone and wait for its return. The leader
   * lost (or both usable, yet replication failed): they were never acknowledged
   * and fail, so that their callers make them again on the new leader.
   */
  private failPending (err: Error): void {
    const leaders = this.centers.map((c) => this.server(c)).filter((m): m is Member => m !== undefined)
    const followerGone = leaders.filter((m) => m.usable).length === 1 && this.pendingLeader?.usable === true
    for (const [seq, p] of this.pending) {
      this.pending.delete(seq)
      if (followerGone) p.resolve()
      else p.reject(new ManagerError(ManagerErrorCode.UNAVAILABLE, `directory twin could not take change ${seq}: ${err.message}`, { cause: err }))
    }
  }

  /**
   * Applies changes to the follower strictly in sequence order: those this
   * manager holds, and any it lacks (made before a restart, or by another
   * manager) read from the leader's log.
   */
  private async drain (): Promise<void> {
    const leader = this.leader()
    const follower = this.follower()
    if (follower === undefined || !follower.usable) {
      this.failPending(new Error('no usable follower'))
      return
    }
    if (this.followerSeq?.id !== follower.id) {
      this.followerSeq = { id: follower.id, seq: await this.seqOf(follower) }
    }
    for (;;) {
      const at = this.followerSeq.seq
      let batch: Change[] = []
      for (let seq = at + 1; this.pending.has(seq) && batch.length < CATCH_UP_PAGE; seq++) batch.push((this.pending.get(seq) as { change: Change }).change)
      if (batch.length === 0) {
        if (this.pending.size === 0 && await this.seqOf(leader) <= at) return
        batch = (await this.call(leader, async () => await leader.client.request('dir.changes', { after: at, limit: CATCH_UP_PAGE }, 'dir.changes.ok'))).body.changes
        if (batch.length === 0) return
      }
      const { body } = await this.call(follower, async () => await follower.client.request('dir.apply', { changes: batch }, 'dir.apply.ok'))
      this.followerSeq = { id: follower.id, seq: body.seq }
      for (const [seq, p] of this.pending) {
        if (seq <= body.seq) {
          this.pending.delete(seq)
          p.resolve()
        }
      }
    }
  }

  /**
   * Brings a returning directory server up to the leader from its change log,
   * then puts it back into use. One whose log diverged from the leader's (it
   * took a change that was never acknowledged before it failed) is left failed
   * over, for an operator: replaying on top of it would be wrong.
   */
  private async catchUp (member: Member): Promise<void> {
    try {
      const leader = this.leaderExcept(member)
      if (leader === undefined) {
        // Nobody else to learn from: it is the only copy of the namespace.
        this.membership.completeFailback(member)
        return
      }
      let seq = await this.seqOf(member)
      if (seq > 0 && !await this.sameChange(leader, member, seq)) {
        // It took a change that was never acknowledged before it failed: rebuild it
        // from the leader's whole log (the log is never truncated).
        this.logger.warn('directory log diverged: rebuilding it from the leader', { member: member.name, seq, leader: leader.name })
        await member.client.request('dir.reset', {}, 'ok')
        seq = 0
      }
      for (;;) {
        const { changes } = (await leader.client.request('dir.changes', { after: seq, limit: CATCH_UP_PAGE }, 'dir.changes.ok')).body
        if (changes.length === 0) break
        seq = (await member.client.request('dir.apply', { changes }, 'dir.apply.ok')).body.seq
      }
      this.followerSeq = undefined
      this.membership.completeFailback(member)
      void this.kick()
    } catch (err) {
      this.logger.warn('directory catch-up failed', { member: member.name, error: (err as Error).message })
      if (isTransportFailure(err)) this.membership.noteFailure(member, err as Error)
    }
  }

  private async sameChange (a: Member, b: Member, seq: number): Promise<boolean> {
    const get = async (m: Member): Promise<Change | undefined> => (await m.client.request('dir.changes', { after: seq - 1, limit: 1 }, 'dir.changes.ok')).body.changes[0]
    const [x, y] = await Promise.all([get(a), get(b)])
    return x !== undefined && JSON.stringify(x) === JSON.stringify(y)
  }

  private async seqOf (member: Member): Promise<number> {
    return (await this.call(member, async () => await member.client.request('dir.info', {}, 'dir.info.ok'))).body.seq
  }

  private server (center: string): Member | undefined {
    return this.membership.find('directory', center, 1)
  }

  /**
   * The leader stays the leader while it is usable: a server that comes back
   * follows (and catches up) rather than taking over with an older log. A new
   * leader is the primary center's server if usable, else its twin.
   */
  private leader (): Member {
    if (this.currentLeader?.usable === true && this.server(this.currentLeader.center) === this.currentLeader) return this.currentLeader
    const [p, t] = this.centers.map((c) => this.server(c))
    const next = p?.usable === true ? p : t?.usable === true ? t : undefined
    if (next === undefined) throw new ManagerError(ManagerErrorCode.UNAVAILABLE, 'no directory server is usable')
    if (this.currentLeader !== undefined && next !== this.currentLeader) this.logger.warn('directory leader changed', { from: this.currentLeader.name, to: next.name })
    this.currentLeader = next
    this.followerSeq = undefined
    return next
  }

  private leaderExcept (member: Member): Member | undefined {
    return this.centers.map((c) => this.server(c)).find((m) => m !== undefined && m !== member && m.usable)
  }

  private follower (): Member | undefined {
    const leader = this.leader()
    return this.centers.map((c) => this.server(c)).find((m) => m !== undefined && m !== leader)
  }

  private async call<X> (member: Member, fn: () => Promise<X>): Promise<X> {
    try {
      return await fn()
    } catch (err) {
      if (isTransportFailure(err)) {
        this.membership.noteFailure(member, err as Error)
        this.followerSeq = undefined
      }
      throw err
    }
  }
}

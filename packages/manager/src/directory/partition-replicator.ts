import type { Logger } from '@mirrorcast/logger'
import { isTransportFailure } from '@mirrorcast/rpc'
import { DirectoryErrorCode, PageBudget, sameChange, type Change, type MessageBody } from '@mirrorcast/wire'
import type { TwinMap } from '@mirrorcast/topology'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import type { Locator } from '../cluster/locator.js'
import type { Member, Membership } from '../cluster/membership.js'

export type ChangeResult = MessageBody<'dir.change.ok'>

// 1,000: changes per request when a directory server catches up from the log (fewer when they fill a page's bytes)
const CATCH_UP_PAGE = 1000
// 1.5 s: after a manager starts, how long a leader election waits to hear both places of a
// partition, so that it never elects one copy before it could compare it with the other
const ELECTION_SETTLE_MS = 1500
// 3: transport failures in a row of a follower that still answers probes before it is out
const MAX_FOLLOWER_FAILURES = 3
// 1 s: pause before a catch-up that failed while its server stayed in use is tried again
const CATCH_UP_RETRY_MS = 1000

/**
 * One partition of the namespace, held by a twin pair of directory servers.
 * The primary server leads while it is usable; otherwise the copy found by the
 * location methods (the twin mapping, a multicast search of the backup center
 * then of the primary center, point-to-point queries) leads, and stays leader
 * while it is usable. The leader orders every change (its sequence number) and
 * each change is applied, in order, to the other server before it is
 * acknowledged. A server that comes back catches up from the leader's log
 * before it is used again.
 */
export class PartitionReplicator {
  readonly partition: number
  private readonly membership: Membership
  private readonly twins: TwinMap
  private readonly locator: Locator
  private readonly logger: Logger
  private readonly pending = new Map<number, { change: Change, resolve: () => void, reject: (e: Error) => void }>()
  private followerSeq: { id: string, seq: number } | undefined
  private currentLeader: Member | undefined
  /** The leader the pending changes were made on. */
  private pendingLeader: Member | undefined
  private draining: Promise<void> | undefined
  private locating: Promise<Member | undefined> | undefined
  private readonly createdAt = Date.now()
  /** The member whose request last failed in transport inside a drain, and how often the follower failed in a row. */
  private lastFailed: Member | undefined
  private followerFailures = 0
  /** Members whose next catch-up empties them first: their state differed from the leader's at the same change. */
  private readonly rebuildNext = new Set<string>()
  /** The last follower rebuilt because its state differed, and at which change: one that still differs there is not rebuilt again. */
  private lastRebuild: { id: string, seq: number } | undefined
  private checking: Promise<void> | undefined

  constructor (partition: number, membership: Membership, twins: TwinMap, locator: Locator, logger: Logger) {
    this.partition = partition
    this.membership = membership
    this.twins = twins
    this.locator = locator
    this.logger = logger
  }

  /** Whether a directory server is one this partition uses. */
  holds (member: Member): boolean {
    return member === this.currentLeader || this.places().includes(member)
  }

  onAvailable (): void {
    this.followerSeq = undefined
    void this.kick()
  }

  onFailover (member: Member): void {
    this.failPending(new Error(`${member.name} failed over`))
  }

  /** Runs a read on the leader; a leader lost to a transport error is failed over and the read goes to the new one. */
  async read<X> (fn: (leader: Member) => Promise<X>): Promise<X> {
    return (await this.onLeader(fn)).value
  }

  /**
   * Runs a change on the leader and replicates it. If the leader dies before
   * its follower took the change, the change was never acknowledged: unless
   * the new leader holds it after all, it is made again there, so nothing
   * acknowledged lives on one dead copy.
   */
  async change (op: (leader: Member) => Promise<{ body: ChangeResult }>): Promise<ChangeResult> {
    for (let attempt = 0; ; attempt++) {
      const { value: body, leader } = await this.onLeader(async (l) => (await op(l)).body)
      try {
        if (this.follower(leader)?.usable === true) await this.replicate(body.change, leader)
        return body
      } catch (err) {
        if (leader.usable || attempt > 0) throw err
        if (await this.holdsChange(await this.leader(), body.change)) return body
        this.logger.warn('leader lost before its follower took a change: making it again', { partition: this.partition, seq: body.change.seq, leader: leader.name })
      }
    }
  }

  /**
   * Brings a returning directory server up to the leader from its change log,
   * then puts it back into use. One whose log diverged from the leader's (it
   * took a change that was never acknowledged before it failed) is emptied and
   * rebuilt from the leader's whole log, which is never truncated. The check
   * of its last change cannot see a change it commits after it (a stale
   * request it serves as it resumes): the server refuses the leader's change
   * at that number (ERR_DIR_DIVERGED), and it is emptied and rebuilt then.
   */
  async catchUp (member: Member): Promise<void> {
    try {
      const leader = [this.currentLeader, ...this.places()].find((m) => m !== undefined && m !== member && m.usable)
      if (leader === undefined) {
        // Nobody else to learn from: it is the only copy of the partition.
        this.membership.completeFailback(member)
        return
      }
      let seq = await this.seqOf(member)
      const last = seq > 0 ? await this.changeAt(member, seq) : undefined
      if (this.rebuildNext.delete(member.id)) {
        this.logger.warn('directory state differed from the leader\'s: rebuilding it from the leader', { partition: this.partition, member: member.name, seq, leader: leader.name })
        await member.client.request('dir.reset', {})
        seq = 0
      } else if (seq > 0 && (last === undefined || !await this.holdsChange(leader, last))) {
        this.logger.warn('directory log diverged: rebuilding it from the leader', { partition: this.partition, member: member.name, seq, leader: leader.name })
        await member.client.request('dir.reset', {})
        seq = 0
      }
      const started = Date.now()
      const from = seq
      for (let compared = false; ;) {
        const { changes } = (await leader.client.request('dir.changes', { after: seq, limit: CATCH_UP_PAGE })).body
        if (changes.length === 0) {
          // Caught up: the same log must give the same store. Compared once, while nothing
          // is applied to it (it is not in use yet); a store that differs is rebuilt now.
          if (compared) break
          compared = true
          if (await this.compareStates(leader, member) !== 'differ') break
          await member.client.request('dir.reset', {})
          seq = 0
          continue
        }
        try {
          seq = (await member.client.request('dir.apply', { changes })).body.seq
        } catch (err) {
          if ((err as { code?: string }).code !== DirectoryErrorCode.DIVERGED) throw err
          this.logger.warn('directory log diverged during catch-up: rebuilding it from the leader', { partition: this.partition, member: member.name, seq, leader: leader.name, error: (err as Error).message })
          await member.client.request('dir.reset', {})
          seq = 0
        }
      }
      this.logger.info('directory caught up', { partition: this.partition, member: member.name, changes: seq - from, ms: Date.now() - started })
      this.followerSeq = undefined
      this.membership.completeFailback(member)
      void this.kick()
    } catch (err) {
      this.logger.warn('directory catch-up failed', { partition: this.partition, member: member.name, error: (err as Error).message })
      // Out: its next failback catches it up. Still in (the probe answered, or the error was its own): again after a pause.
      const out = isTransportFailure(err) && await this.membership.reportFailure(member, err as Error)
      if (!out) setTimeout(() => { if (member.resyncing) void this.catchUp(member) }, CATCH_UP_RETRY_MS).unref()
    }
  }

  /**
   * Compares the leader's and the follower's whole stores (dir.state); one
   * that differs at the same change is rebuilt from the leader's log, by the
   * catch-up path: out, then back with its store emptied first. One check at
   * a time; skipped while there is no usable pair.
   */
  async checkState (): Promise<void> {
    this.checking ??= (async () => {
      const leader = this.currentLeader
      const follower = leader === undefined ? undefined : this.follower(leader)
      if (leader?.usable !== true || follower?.usable !== true) return
      if (await this.compareStates(leader, follower) !== 'differ') return
      this.rebuildNext.add(follower.id)
      this.followerSeq = undefined
      this.membership.enterFailover(follower, 'its store differs from the leader\'s at the same change: rebuilt from the leader\'s log')
      if (!this.membership.requestFailback(follower, false)) this.rebuildNext.delete(follower.id)
    })().finally(() => { this.checking = undefined })
    await this.checking
  }

  /**
   * Whether two copies at the same change hold the same store. Never while a
   * change is on its way: the leader's sequence number, then the follower's
   * state, then the leader's, compared only if all three are at the same
   * change (otherwise 'moving': replication is under way). A server that
   * cannot tell (an older one), or an error, is 'unknown'. A follower already
   * rebuilt at this change that still differs is left as it is ('unknown'):
   * rebuilding it again would give the same.
   */
  private async compareStates (leader: Member, follower: Member): Promise<'same' | 'differ' | 'moving' | 'unknown'> {
    try {
      const before = (await leader.client.request('dir.info', {})).body
      if (before.partition !== this.partition) return 'unknown'
      const theirs = (await follower.client.request('dir.state', {})).body
      const ours = (await leader.client.request('dir.state', {})).body
      if (theirs.seq !== before.seq || ours.seq !== before.seq) return 'moving'
      if (theirs.digest === ours.digest) return 'same'
      if (this.lastRebuild?.id === follower.id && this.lastRebuild.seq === ours.seq) {
        this.logger.warn('directory state still differs from the leader\'s after a rebuild: left as it is', { partition: this.partition, follower: follower.name, seq: ours.seq })
        return 'unknown'
      }
      this.lastRebuild = { id: follower.id, seq: ours.seq }
      this.logger.warn('directory state differs from the leader\'s at the same change', {
        partition: this.partition,
        leader: leader.name,
        follower: follower.name,
        seq: ours.seq,
        entries: { leader: ours.entries, follower: theirs.entries },
        digest: { leader: ours.digest, follower: theirs.digest }
      })
      return 'differ'
    } catch (err) {
      const code = (err as { code?: string }).code
      this.logger.log(code === DirectoryErrorCode.UNSUPPORTED ? 'debug' : 'warn', 'directory state not compared', { partition: this.partition, leader: leader.name, follower: follower.name, error: (err as Error).message })
      return 'unknown'
    }
  }

  /** [primary, twin]: the members at this partition's two places. */
  private places (): Member[] {
    return this.twins.pairPlaces(this.partition).map((p) => this.membership.atPlace('directory', p)).filter((m): m is Member => m !== undefined)
  }

  private async onLeader<X> (fn: (leader: Member) => Promise<X>): Promise<{ value: X, leader: Member }> {
    const leader = await this.leader()
    try {
      return { value: await fn(leader), leader }
    } catch (err) {
      // A leader that still answers probes stays leader: this request alone failed.
      if (!isTransportFailure(err) || !await this.membership.reportFailure(leader, err as Error)) throw err
      this.failPending(err as Error)
      const next = await this.leader()
      return { value: await fn(next), leader: next }
    }
  }

  /**
   * The leader stays the leader while it is usable: a server that comes back
   * follows (and catches up) rather than taking over with an older log. A new
   * leader is the copy with the longer log when both places are usable (the
   * primary on a tie), the primary if only it is, else the copy the location
   * methods find.
   */
  private async leader (): Promise<Member> {
    if (this.currentLeader?.usable === true) return this.currentLeader
    await this.settle()
    // Another caller may have elected one while this one waited.
    const elected = this.currentLeader as Member | undefined
    if (elected?.usable === true) return elected
    const [primary, twin] = this.twins.pairPlaces(this.partition).map((p) => this.membership.atPlace('directory', p))
    let next: Member | undefined
    if (primary?.usable === true && twin?.usable === true) next = await this.longerLog(primary, twin)
    else next = primary?.usable === true ? primary : await this.locate()
    if (next === undefined || !next.usable) throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `no directory server of partition ${this.partition} is usable`)
    if (this.currentLeader !== next) this.logger.log(this.currentLeader === undefined ? 'info' : 'warn', 'directory leader elected', { partition: this.partition, from: this.currentLeader?.name, to: next.name })
    this.currentLeader = next
    this.followerSeq = undefined
    // The follower may lack changes (it was out, or is the shorter log after a restart): catch it up now.
    void this.kick()
    return next
  }

  /** Just after a manager starts, waits (briefly) until both places of the partition have been heard. */
  private async settle (): Promise<void> {
    const heard = (): boolean => this.places().length === 2
    while (!heard() && Date.now() - this.createdAt < ELECTION_SETTLE_MS) await new Promise((resolve) => setTimeout(resolve, 50))
  }

  /** The copy holding every acknowledged change: the longer log, the primary's on a tie. */
  private async longerLog (primary: Member, twin: Member): Promise<Member> {
    const [p, t] = await Promise.all([primary, twin].map(async (m) => await this.seqOf(m).catch(() => -1)))
    return (t as number) > (p as number) ? twin : primary
  }

  /** The failover condition for the primary server: find the partition's other copy (one search at a time). */
  private async locate (): Promise<Member | undefined> {
    this.locating ??= (async () => {
      const [home] = this.twins.pairPlaces(this.partition)
      const query = {
        role: 'directory' as const,
        home,
        kind: 'partition' as const,
        key: String(this.partition),
        holds: async (m: Member) => (await m.client.request('dir.info', {})).body.partition === this.partition
      }
      for await (const { member, method, center } of this.locator.candidates(query)) {
        if (method === 'home') continue
        this.logger.info('directory located after failover', { partition: this.partition, method, center, member: member.name })
        return member
      }
      return undefined
    })().finally(() => { this.locating = undefined })
    return await this.locating
  }

  /** The server the leader replicates to: the partition's other place, usable first. */
  private follower (leader: Member): Member | undefined {
    const others = this.places().filter((m) => m !== leader)
    return others.find((m) => m.usable) ?? others[0]
  }

  /** Resolves once the follower holds `change`. */
  private async replicate (change: Change, leader: Member): Promise<void> {
    this.pendingLeader = leader
    const applied = new Promise<void>((resolve, reject) => this.pending.set(change.seq, { change, resolve, reject }))
    void this.kick()
    await applied
  }

  private async kick (): Promise<void> {
    if (this.draining !== undefined) return
    this.draining = this.drain().then(() => { this.followerFailures = 0 }, (err: Error) => this.onDrainFailed(err)).finally(() => {
      this.draining = undefined
      if (this.pending.size > 0) void this.kick()
    })
  }

  /**
   * A follower that answers probes, yet whose apply failed in transport, is
   * tried again (a change is applied at most once, so that is safe). One that
   * fails MAX_FOLLOWER_FAILURES times in a row is out on that evidence: the
   * changes are acknowledged on the leader alone, as with a follower that is
   * down, rather than fail changes the leader has committed.
   */
  private onDrainFailed (err: Error): void {
    this.logger.warn('directory replication failed', { partition: this.partition, error: err.message, pending: this.pending.size })
    const failed = this.lastFailed
    this.lastFailed = undefined
    const leader = this.currentLeader
    const follower = leader === undefined ? undefined : this.follower(leader)
    if (isTransportFailure(err) && failed !== undefined && failed === follower && failed.usable && leader?.usable === true && this.pending.size > 0) {
      // kick() runs again at once: the pending changes are still there
      if (++this.followerFailures < MAX_FOLLOWER_FAILURES) return
      this.membership.enterFailover(failed, `could not take replicated changes ${MAX_FOLLOWER_FAILURES} times in a row: ${err.message}`)
    }
    this.followerFailures = 0
    this.failPending(err)
  }

  /**
   * Settles changes still waiting for the follower. The follower lost: they
   * are acknowledged on the leader alone and wait for its return. The leader
   * lost (or both usable, yet replication failed): they were never acknowledged
   * and fail, so that their callers make them again on the new leader.
   */
  private failPending (err: Error): void {
    const usable = this.places().filter((m) => m.usable)
    const followerGone = usable.length === 1 && this.pendingLeader?.usable === true
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
    const leader = await this.leader()
    const follower = this.follower(leader)
    if (follower === undefined || !follower.usable) {
      this.failPending(new Error('no usable follower'))
      return
    }
    if (this.followerSeq?.id !== follower.id) {
      this.followerSeq = { id: follower.id, seq: await this.seqOf(follower) }
    }
    for (;;) {
      const at = this.followerSeq.seq
      await this.settleApplied(follower, at)
      let batch: Change[] = []
      // as a page of the log: as many as fit one frame, however large each change
      const page = new PageBudget({ maxItems: CATCH_UP_PAGE })
      for (let seq = at + 1; this.pending.has(seq); seq++) {
        const { change } = this.pending.get(seq) as { change: Change }
        if (!page.admit(change)) break
        batch.push(change)
      }
      if (batch.length === 0) {
        if (this.pending.size === 0 && await this.seqOf(leader) <= at) return
        batch = (await this.call(leader, async () => await leader.client.request('dir.changes', { after: at, limit: CATCH_UP_PAGE }))).body.changes
        if (batch.length === 0) return
      }
      let body: { seq: number }
      try {
        body = (await this.call(follower, async () => await follower.client.request('dir.apply', { changes: batch }))).body
      } catch (err) {
        if ((err as { code?: string }).code !== DirectoryErrorCode.DIVERGED) throw err
        // It holds another change where the leader's goes (one it committed after it was
        // last checked): out, as settleApplied puts it, before the pending changes are
        // acknowledged on the leader alone; it is rebuilt from the leader's log on its return.
        this.logger.warn('directory follower diverged from the leader', { partition: this.partition, follower: follower.name, after: at, error: (err as Error).message })
        this.followerSeq = undefined
        this.membership.enterFailover(follower, `its log diverged from the leader's: ${(err as Error).message}`)
        this.failPending(err as Error)
        return
      }
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
   * Changes the follower reached before they were handed here (a drain read
   * them from the leader's log first) are acknowledged once the follower is
   * seen to hold exactly them. A follower holding something else at their
   * sequence number diverged: a server that was paused commits, when it
   * resumes, requests the manager had already given up on and made again on
   * the new leader. It is failed over, to be rebuilt from the leader's log,
   * and the change is acknowledged on the leader alone, as with any follower
   * that is out.
   */
  private async settleApplied (follower: Member, at: number): Promise<void> {
    for (const [seq, p] of this.pending) {
      if (seq > at) continue
      this.pending.delete(seq)
      // The follower is out before the change is acknowledged without it: it can never lead with a log that lacks it.
      const same = follower.failover === undefined && await this.holdsChange(follower, p.change).catch(() => false)
      if (!same && follower.failover === undefined) {
        this.logger.warn('directory follower diverged from the leader', { partition: this.partition, follower: follower.name, seq })
        this.membership.enterFailover(follower, `its log diverged from the leader's at change ${seq}`)
      }
      p.resolve()
    }
  }

  private async changeAt (member: Member, seq: number): Promise<Change | undefined> {
    return (await member.client.request('dir.changes', { after: seq - 1, limit: 1 })).body.changes[0]
  }

  /** Whether `member`'s log holds exactly this change at its sequence number. */
  private async holdsChange (member: Member, change: Change): Promise<boolean> {
    const at = await this.changeAt(member, change.seq)
    return at !== undefined && sameChange(at, change)
  }

  /**
   * A server's sequence number. One that holds another partition than it
   * should is failed over: its log must never be mixed with this one.
   */
  private async seqOf (member: Member): Promise<number> {
    const info = (await this.call(member, async () => await member.client.request('dir.info', {}))).body
    if (info.partition !== this.partition) {
      this.membership.enterFailover(member, `holds directory partition ${info.partition}, expected ${this.partition}`, true)
      throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `${member.name} holds partition ${info.partition}, not ${this.partition}`)
    }
    return info.seq
  }

  private async call<X> (member: Member, fn: () => Promise<X>): Promise<X> {
    try {
      return await fn()
    } catch (err) {
      if (isTransportFailure(err)) {
        this.followerSeq = undefined
        this.lastFailed = member
        await this.membership.reportFailure(member, err as Error)
      }
      throw err
    }
  }
}

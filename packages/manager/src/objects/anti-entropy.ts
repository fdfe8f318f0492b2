import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '@mirrorcast/logger'
import { encodedBytes, SetDigest, type HeldBody, type NamedBody, type ReconcileStatus } from '@mirrorcast/wire'
import type { DirectoryManager } from '../directory/directory-manager.js'
import type { Member, Membership, Pair } from '../cluster/membership.js'
import type { ObjectManager } from './object-manager.js'

export interface AntiEntropyOptions {
  /** How often each pair is reconciled, ms (default 60 s). */
  periodMs?: number
  /** How old a body no entry names must be before it is removed, ms (default 1 h): an upload names its body just after writing it. */
  graceMs?: number
  /** Bytes a second a reconciliation copies at most (default 32 MiB/s); 0: no limit. */
  bytesPerSecond?: number
}

export interface AntiEntropyDeps {
  membership: Membership
  directories: DirectoryManager
  objects: ObjectManager
  selfId: () => string
  logger: Logger
}

export const DEFAULT_RECONCILE_PERIOD_MS = 60_000
export const DEFAULT_ORPHAN_GRACE_MS = 3_600_000
export const DEFAULT_RECONCILE_BYTES_PER_SECOND = 32 * 1024 * 1024
// 5 s: how often leases are renewed and due pairs looked for (sooner with a short period)
const MAX_TICK_MS = 5000
// 15 s at least: how long a pair's lease outlives its manager, before another takes the pair over
const MIN_LEASE_MS = 15_000
// 4: bodies copied at once in a round
const COPY_CONCURRENCY = 4
const LEASE_PREFIX = 'reconcile/'

type Counts = { files: number, bytes: number }
/** A pair's last reconciliation and what has one copy now. */
export type PairRedundancy = ReconcileStatus & { oneCopy: Counts }
const none = (): Counts => ({ files: 0, bytes: 0 })

/** What one shard of a pair holds and should hold. */
interface ShardView {
  onA: Map<string, HeldBody>
  onB: Map<string, HeldBody>
  /** What the directory's entries place at A and at B. */
  forA: Map<string, NamedBody>
  forB: Map<string, NamedBody>
}

/** What a shard's comparison decided. */
interface Plan {
  copies: Array<{ target: Member, source: Member, body: NamedBody }>
  orphans: Array<{ member: Member, body: HeldBody }>
  /** Named, held by neither node as listed: looked at again before it is called lost. */
  missing: NamedBody[]
  waiting: number
}

/**
 * Pair anti-entropy: the two nodes of a twin pair are compared with each
 * other and with what the directory's entries place on them, by per-shard
 * digests of the file ids held (one small exchange for a pair in sync), and
 * the shards that differ are listed and repaired: a body one node lacks is
 * copied from its twin, a body no entry names is removed once older than the
 * grace period. Each pair is reconciled by one manager at a time, whichever
 * holds the pair's lease on the directory (kept there with the round's
 * status, so every manager shows it); the lease only saves work: two rounds
 * at once would do the same repairs twice, nothing worse. A manager that dies
 * lets its leases lapse and another takes the pairs over.
 */
export class AntiEntropy {
  private readonly membership: Membership
  private readonly directories: DirectoryManager
  private readonly objects: ObjectManager
  private readonly logger: Logger
  private readonly selfId: () => string
  readonly periodMs: number
  readonly graceMs: number
  private readonly bytesPerSecond: number
  private readonly tickMs: number
  private readonly leaseMs: number
  /** Every pair's last known status: this manager's own rounds, and what the lease holders reported. */
  private readonly statuses = new Map<number, ReconcileStatus>()
  private readonly running = new Map<number, Promise<ReconcileStatus>>()
  private readonly sideOut = new Set<number>()
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private closed = false

  constructor (deps: AntiEntropyDeps, options: AntiEntropyOptions = {}) {
    this.membership = deps.membership
    this.directories = deps.directories
    this.objects = deps.objects
    this.selfId = deps.selfId
    this.logger = deps.logger
    this.periodMs = checked('reconcile period', options.periodMs ?? DEFAULT_RECONCILE_PERIOD_MS, 100)
    this.graceMs = checked('orphan grace', options.graceMs ?? DEFAULT_ORPHAN_GRACE_MS, 0)
    this.bytesPerSecond = checked('reconcile rate', options.bytesPerSecond ?? DEFAULT_RECONCILE_BYTES_PER_SECOND, 0)
    this.tickMs = Math.min(MAX_TICK_MS, Math.max(50, Math.floor(this.periodMs / 2)))
    this.leaseMs = Math.max(MIN_LEASE_MS, 3 * this.tickMs)
  }

  start (): void {
    this.closed = false
    this.timer ??= setInterval(() => { void this.tick() }, this.tickMs)
    this.timer.unref()
  }

  /** Stops the rounds and gives the leases up, so another manager goes on at once. */
  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    this.timer = undefined
    await Promise.allSettled(this.running.values())
    const mine = [...this.statuses.values()].filter((s) => s.manager === this.selfId())
    await this.directories.onFirstLeader(async (leader) => {
      for (const s of mine) await leader.client.request('dir.lease', { name: LEASE_PREFIX + String(s.pair), holder: this.selfId(), ttlMs: 1, status: s, release: true })
    }).catch(() => {})
  }

  /**
   * Every pair's reconciliation as last known, and what has one copy now: with
   * a node out, everything the entries place on it (its twin holds the only
   * copy); else what the last round found on one node and could not copy.
   */
  async view (): Promise<Map<number, PairRedundancy>> {
    const out = new Map<number, PairRedundancy>()
    for (const pair of this.membership.pairViews('storage')) {
      const status = this.statuses.get(pair.index) ?? emptyStatus(pair.index, '')
      const away = pair.members.filter((m): m is Member => m !== undefined && !m.usable)
      let oneCopy: Counts = { files: Math.max(0, status.single.files - status.copied.files), bytes: Math.max(0, status.single.bytes - status.copied.bytes) }
      if (away.length > 0) oneCopy = await this.placedOn(away).catch(() => oneCopy)
      out.set(pair.index, { ...status, oneCopy })
    }
    return out
  }

  /** What the entries of every partition place on these members. */
  private async placedOn (members: Member[]): Promise<Counts> {
    const sum = none()
    for (const m of members) {
      for (const r of await this.directories.onEveryLeader(async (l) => (await l.client.request('dir.digest', { place: placeOf(m) })).body)) {
        sum.files += r.files
        sum.bytes += r.bytes
      }
    }
    return sum
  }

  /** Reconciles every pair (or one) now, whoever holds its lease, and answers once done. */
  async runNow (pairIndex?: number): Promise<ReconcileStatus[]> {
    const pairs = this.membership.pairs('storage').filter((p) => pairIndex === undefined || p.index === pairIndex)
    return await Promise.all(pairs.map(async (p) => await this.round(p)))
  }

  /**
   * Before a returning node serves again: what the entries place on it and
   * its twin holds is copied onto it. Nothing is removed here (the pair's next
   * round does that). With its twin out there is nothing to compare with.
   */
  async reconcileInto (member: Member): Promise<void> {
    const twin = this.membership.twinOf(member)
    if (twin === undefined || !twin.usable) return
    const started = Date.now()
    const [held, expected] = await Promise.all([this.nodeDigest(member, { bytes: 0 }), this.expectedDigest(member, { bytes: 0 })])
    let copied = 0
    for (const shard of held.differing(expected)) {
      const [onMember, onTwin, named] = await Promise.all([this.listNode(member, shard, { bytes: 0 }), this.listNode(twin, shard, { bytes: 0 }), this.listNamed(member, shard, { bytes: 0 })])
      const copies = [...named.values()].filter((b) => !onMember.has(b.fileId) && onTwin.get(b.fileId)?.size === b.size).map((body) => ({ target: member, source: twin, body }))
      copied += (await this.copyAll(copies, { started, bytes: 0 })).files
    }
    this.logger.info('returning node reconciled with its twin', { member: member.name, twin: twin.name, copied, ms: Date.now() - started })
  }

  private async tick (): Promise<void> {
    if (this.ticking || this.closed) return
    this.ticking = true
    try {
      await this.readLeases()
      for (const pair of this.membership.pairs('storage')) {
        if (this.closed) return
        if (this.running.has(pair.index)) continue
        const last = this.statuses.get(pair.index)
        // A pair whose last round found a node out is looked at again as soon as both are back.
        const back = this.sideOut.has(pair.index) && pair.members.every((m) => m.usable)
        const due = back || last === undefined || Date.now() - last.lastCompletedAt >= this.periodMs
        if (await this.holdLease(pair.index, last) && due) void this.round(pair).catch(() => {})
      }
    } catch (err) {
      this.logger.debug('anti-entropy tick skipped', { error: (err as Error).message })
    } finally {
      this.ticking = false
    }
  }

  /** The statuses the lease holders reported, for pairs this manager is not reconciling. */
  private async readLeases (): Promise<void> {
    const { leases } = (await this.directories.onFirstLeader(async (l) => await l.client.request('dir.leases', { prefix: LEASE_PREFIX }))).body
    for (const lease of leases) {
      if (lease.status === undefined || this.running.has(lease.status.pair)) continue
      const mine = this.statuses.get(lease.status.pair)
      if (mine === undefined || lease.status.lastStartedAt >= mine.lastStartedAt) this.statuses.set(lease.status.pair, lease.status)
    }
  }

  /** Takes or renews the pair's lease, reporting its status; false when another manager holds it. */
  private async holdLease (pairIndex: number, status: ReconcileStatus | undefined): Promise<boolean> {
    const name = LEASE_PREFIX + String(pairIndex)
    const ours = status?.manager === this.selfId() ? status : undefined
    const { body } = await this.directories.onFirstLeader(async (l) => await l.client.request('dir.lease', { name, holder: this.selfId(), ttlMs: this.leaseMs, ...(ours === undefined ? {} : { status: ours }) }))
    if (!body.granted && body.lease?.status !== undefined) this.statuses.set(pairIndex, body.lease.status)
    return body.granted
  }

  /** One round on a pair; a second call while one runs shares it. */
  private async round (pair: Pair): Promise<ReconcileStatus> {
    let run = this.running.get(pair.index)
    if (run === undefined) {
      run = this.reconcile(pair).finally(() => this.running.delete(pair.index))
      this.running.set(pair.index, run)
    }
    return await run
  }

  private async reconcile (pair: Pair): Promise<ReconcileStatus> {
    const [a, b] = pair.members
    const previous = this.statuses.get(pair.index)
    const status: ReconcileStatus = {
      ...emptyStatus(pair.index, this.selfId()),
      lastCompletedAt: previous?.lastCompletedAt ?? 0,
      lastMs: previous?.lastMs ?? 0,
      underReplicatedSince: previous?.underReplicatedSince ?? 0,
      running: true,
      lastStartedAt: Date.now()
    }
    this.statuses.set(pair.index, status)
    const exchanged = { bytes: 0 }
    try {
      if (!a.usable || !b.usable) {
        // One side is out: the journal holds what it misses, and its failback reconciles it.
        status.underReplicatedSince ||= Date.now()
        this.sideOut.add(pair.index)
        return status
      }
      this.sideOut.delete(pair.index)
      const [dA, dB, eA, eB] = await Promise.all([this.nodeDigest(a, exchanged), this.nodeDigest(b, exchanged), this.expectedDigest(a, exchanged), this.expectedDigest(b, exchanged)])
      const shards = [...new Set([...dA.differing(eA), ...dB.differing(eB)])].sort((x, y) => x - y)
      status.shardsToCompare = shards.length
      for (const shard of shards) {
        if (this.closed) break
        await this.reconcileShard(pair, shard, status, exchanged)
        status.shardsDone++
        status.exchangedBytes = exchanged.bytes
      }
      const degraded = status.single.files > status.copied.files || status.lost.files > 0
      status.underReplicatedSince = degraded ? status.underReplicatedSince || Date.now() : 0
      status.lastCompletedAt = Date.now()
      status.lastMs = status.lastCompletedAt - status.lastStartedAt
      const found = { copied: status.copied.files, removed: status.removed.files, lost: status.lost.files, waiting: status.orphansWaiting }
      this.logger.log(shards.length === 0 ? 'debug' : 'info', 'pair reconciled', { pair: pair.index, shards: shards.length, ...found, exchangedBytes: exchanged.bytes, ms: status.lastMs })
      return status
    } catch (err) {
      // A node that fails here is judged by the requests of clients and the detector, not by this round.
      this.logger.warn('pair reconciliation failed, tried again at the next tick', { pair: pair.index, error: (err as Error).message })
      throw err
    } finally {
      status.running = false
      status.exchangedBytes = exchanged.bytes
      void this.holdLease(pair.index, status).catch(() => {})
    }
  }

  private async reconcileShard (pair: Pair, shard: number, status: ReconcileStatus, exchanged: { bytes: number }): Promise<void> {
    const [a, b] = pair.members
    // The nodes before the directory: a body written after its listing is young, and one named meanwhile is no orphan.
    const [onA, onB] = await Promise.all([this.listNode(a, shard, exchanged), this.listNode(b, shard, exchanged)])
    const [forA, forB] = await Promise.all([this.listNamed(a, shard, exchanged), this.listNamed(b, shard, exchanged)])
    const plan = this.plan(pair, { onA, onB, forA, forB })
    status.orphansWaiting += plan.waiting
    for (const c of plan.copies) add(status.single, c.body)
    for (const body of plan.missing) {
      // Listed by neither, but maybe written since their listing: only a fresh look says lost.
      if (await this.heldAnywhere(pair, body)) continue
      add(status.lost, body)
      this.logger.error('a named body is on neither node of its pair', { pair: pair.index, fileId: body.fileId, size: body.size })
    }
    const copied = await this.copyAll(plan.copies, { started: status.lastStartedAt, bytes: status.copied.bytes })
    status.copied.files += copied.files
    status.copied.bytes += copied.bytes
    for (const { member, body } of plan.orphans) {
      await member.client.request('blob.delete', { fileId: body.fileId })
      add(status.removed, body)
      this.logger.info('removed a body no entry names', { member: member.name, fileId: body.fileId, size: body.size, ageMs: Date.now() - body.mtime })
    }
  }

  private plan (pair: Pair, v: ShardView): Plan {
    const [a, b] = pair.members
    const plan: Plan = { copies: [], orphans: [], missing: [], waiting: 0 }
    const named = new Map([...v.forA, ...v.forB])
    for (const body of named.values()) {
      const hasA = v.onA.get(body.fileId)?.size === body.size
      const hasB = v.onB.get(body.fileId)?.size === body.size
      if (!hasA && !hasB) plan.missing.push(body)
      else if (!hasA && v.forA.has(body.fileId)) plan.copies.push({ target: a, source: b, body })
      else if (!hasB && v.forB.has(body.fileId)) plan.copies.push({ target: b, source: a, body })
    }
    const now = Date.now()
    for (const [member, held, wanted] of [[a, v.onA, v.forA], [b, v.onB, v.forB]] as const) {
      for (const body of held.values()) {
        if (wanted.has(body.fileId) || named.has(body.fileId)) continue
        if (now - body.mtime >= this.graceMs) plan.orphans.push({ member, body })
        else plan.waiting++
      }
    }
    return plan
  }

  private async heldAnywhere (pair: Pair, body: NamedBody): Promise<boolean> {
    const held = await Promise.all(pair.members.map(async (m) => await m.client.request('blob.stat', { fileId: body.fileId }).then(() => true, () => false)))
    return held.includes(true)
  }

  /** Copies bodies, a few at once, no faster than the configured rate (counted from the round's start). */
  private async copyAll (copies: Plan['copies'], pace: { started: number, bytes: number }): Promise<Counts> {
    const done = none()
    let next = 0
    let sent = pace.bytes
    const worker = async (): Promise<void> => {
      while (next < copies.length && !this.closed) {
        const { target, source, body } = copies[next++] as Plan['copies'][number]
        if (this.bytesPerSecond > 0) {
          const ahead = (sent / this.bytesPerSecond) * 1000 - (Date.now() - pace.started)
          if (ahead > 0) await sleep(ahead)
        }
        sent += body.size
        if (await this.objects.copyBody(target, source, body)) add(done, body)
      }
    }
    await Promise.all(Array.from({ length: Math.min(COPY_CONCURRENCY, copies.length) }, worker))
    return done
  }

  private async nodeDigest (member: Member, exchanged: { bytes: number }): Promise<SetDigest> {
    const { body } = await member.client.request('blob.digest', {})
    exchanged.bytes += encodedBytes(body)
    return new SetDigest(body.digest)
  }

  /** What every partition's entries place at the member's place, summed. */
  private async expectedDigest (member: Member, exchanged: { bytes: number }): Promise<SetDigest> {
    const replies = await this.directories.onEveryLeader(async (l) => (await l.client.request('dir.digest', { place: placeOf(member) })).body)
    return replies.reduce((sum, r) => {
      exchanged.bytes += encodedBytes(r)
      return sum.plus(new SetDigest(r.digest))
    }, new SetDigest())
  }

  private async listNode (member: Member, shard: number, exchanged: { bytes: number }): Promise<Map<string, HeldBody>> {
    const out = new Map<string, HeldBody>()
    for (let after: string | undefined, more = true; more;) {
      const { body } = await member.client.request('blob.list', { shard, ...(after === undefined ? {} : { after }) })
      exchanged.bytes += encodedBytes(body)
      for (const f of body.files) out.set(f.fileId, f)
      after = body.files.at(-1)?.fileId
      more = body.more && after !== undefined
    }
    return out
  }

  private async listNamed (member: Member, shard: number, exchanged: { bytes: number }): Promise<Map<string, NamedBody>> {
    const pages = await this.directories.onEveryLeader(async (l) => {
      const out: NamedBody[] = []
      for (let after: string | undefined, more = true; more;) {
        const { body } = await l.client.request('dir.files', { place: placeOf(member), shard, ...(after === undefined ? {} : { after }) })
        exchanged.bytes += encodedBytes(body)
        out.push(...body.files)
        after = body.files.at(-1)?.fileId
        more = body.more && after !== undefined
      }
      return out
    })
    return new Map(pages.flat().map((f) => [f.fileId, f]))
  }
}

/** `<center>/<slot>`: where the directory indexes what its entries place on a node. */
export function placeOf (member: Pick<Member, 'center' | 'slot'>): string {
  return `${member.center}/${member.slot}`
}

function emptyStatus (pair: number, manager: string): ReconcileStatus {
  return { pair, lastStartedAt: 0, lastCompletedAt: 0, lastMs: 0, running: false, shardsToCompare: 0, shardsDone: 0, single: none(), lost: none(), underReplicatedSince: 0, copied: none(), removed: none(), orphansWaiting: 0, exchangedBytes: 0, manager: manager === '' ? 'none' : manager }
}

function add (counts: Counts, body: { size: number }): void {
  counts.files++
  counts.bytes += body.size
}

function checked (what: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new TypeError(`${what} must be a whole number of at least ${min}`)
  return value
}

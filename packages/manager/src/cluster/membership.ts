import { EventEmitter } from 'node:events'
import { RpcClient, RpcError, RpcErrorCode } from '@mirrorcast/rpc'
import type { Logger } from '@mirrorcast/logger'
import type { Roster, RosterMember } from '@mirrorcast/discovery'
import type { ScrubSummary } from '@mirrorcast/wire'
import type { Place, TwinMap } from '@mirrorcast/topology'
import type { MemberClient } from './member-client.js'

export type MemberRole = 'storage' | 'directory'

export interface MemberView {
  id: string
  role: MemberRole
  center: string
  slot: number
  address: string
  port: number
  twin: string | null
  /** The failure detector's view: healthy, suspect or dead. */
  state: string
  /** The manager's use of it: healthy, suspect, dead, failed-over or resyncing. */
  status: string
  reason: string
  since: string
  /** Set while the member is failed over: when, why, and whether by hand. */
  failover: { since: string, reason: string, manual: boolean } | null
  bootId: string
  lastHeard: string
  restarts: number
  free: number
  files: number
  /** Storage nodes: corrupt bodies set aside, waiting for a good copy; how the background scrub goes. */
  quarantined: number
  scrub: ScrubSummary | null
}

export interface FailoverInfo {
  since: number
  reason: string
  /** Entered by hand: only a failback by hand ends it. */
  manual: boolean
}

/** A storage node or directory server as the manager sees it, with its session pool. */
export class Member {
  info: RosterMember
  client: MemberClient
  /** The failover condition: while set, the manager sends this member nothing. */
  failover: FailoverInfo | undefined
  /** Back, but catching up on what it missed: not used until done. */
  resyncing = false

  constructor (info: RosterMember, client: MemberClient) {
    this.info = info
    this.client = client
  }

  get id (): string { return this.info.id }
  get role (): MemberRole { return this.info.role as MemberRole }
  get center (): string { return this.info.center }
  get slot (): number { return this.info.slot }
  get address (): string { return this.info.address }
  get state (): string { return this.info.state }

  /** May it serve requests? */
  get usable (): boolean {
    return this.failover === undefined && !this.resyncing && this.info.state !== 'dead'
  }

  /**
   * May it take new writes? A node catching up does: it is alive, and what is
   * written to it need not be replayed, so its resync does not chase writes.
   */
  get writable (): boolean {
    return (this.failover === undefined || this.resyncing) && this.info.state !== 'dead'
  }

  /** What /cluster shows: the failover condition first, then the detector's view. */
  get health (): string {
    return this.resyncing ? 'resyncing' : this.failover !== undefined ? 'failed-over' : this.info.state
  }

  get name (): string {
    return `${this.center}/${this.role === 'directory' ? 'dir' : 'node'}${this.slot}`
  }
}

export interface MembershipOptions {
  key: Uint8Array
  selfId: string
  twins: TwinMap
  roster: Roster
  logger: Logger
  /**
   * How to reach a member at the address it announces; by default a pool of
   * node-protocol sessions (`RpcClient`, which opens nothing until used).
   * Tests pass in-process fakes.
   */
  clientFor?: (info: RosterMember) => MemberClient
}

/** A twin pair: pair `index` of a role, its primary member first. */
export interface Pair {
  index: number
  members: [Member, Member]
}

/** Pair `index` as heard so far: either place may still lack its member. */
export interface PairView {
  index: number
  members: [Member | undefined, Member | undefined]
}

export interface MembershipEvents {
  /** A member appeared, restarted or came back: work it missed may be waiting. */
  available: [member: Member]
  /** A member entered the failover condition. */
  failover: [member: Member]
  /** A member should come back into use: resync it, then call completeFailback(). */
  failback: [member: Member]
}

/**
 * The storage nodes and directory servers heard on the multicast group: each
 * member with its failure-detector state and a pool of node-protocol sessions
 * to the address it announces.
 */
export class Membership extends EventEmitter<MembershipEvents> {
  private readonly members = new Map<string, Member>()
  private readonly options: MembershipOptions
  private timer: NodeJS.Timeout | undefined
  private readonly probes = new Map<Member, Promise<boolean>>()

  constructor (options: MembershipOptions) {
    super()
    this.options = options
    const { roster } = options
    roster.on('join', (info) => this.upsert(info))
    roster.on('moved', (info) => this.upsert(info))
    roster.on('restart', (info) => {
      const member = this.upsert(info)
      // A restart the detector never saw still may have missed writes: resync checks its journal.
      if (member !== undefined) this.requestFailback(member, false)
    })
    roster.on('change', (info) => {
      const member = this.upsert(info)
      if (member === undefined) return
      if (info.state === 'dead') this.enterFailover(member, `failure detector: ${info.reason}`)
      if (info.state === 'healthy') {
        if (member.failover !== undefined) this.requestFailback(member, false)
        else this.emit('available', member)
      }
    })
    for (const info of roster.list()) this.upsert(info)
  }

  /** Probes members failed over by an error while the detector still hears them: see retryFailbacks(). */
  start (): void {
    this.timer ??= setInterval(() => this.retryFailbacks(), FAILBACK_PROBE_MS)
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await Promise.all([...this.members.values()].map(async (m) => await m.client.close()))
  }

  /**
   * A member failed over by a protocol error (a reset, a timeout) while it
   * kept announcing itself sees no detector transition that would bring it
   * back: it is tried again once its failover is FAILBACK_PROBE_MS old. If it
   * still fails, the resync's error fails it over again, and the next probe
   * waits as long.
   */
  private retryFailbacks (): void {
    const now = Date.now()
    for (const m of this.members.values()) {
      if (m.failover === undefined || m.failover.manual || m.resyncing || m.info.state !== 'healthy') continue
      if (now - m.failover.since >= FAILBACK_PROBE_MS) this.requestFailback(m, false)
    }
  }

  all (): Member[] {
    return [...this.members.values()]
  }

  byId (id: string): Member | undefined {
    return this.members.get(id)
  }

  /**
   * The member in a slot: the most recently heard of those not dead (a slot
   * whose node was replaced by one with a new data dir has two ids for a while).
   */
  find (role: MemberRole, center: string, slot: number): Member | undefined {
    let best: Member | undefined
    for (const m of this.members.values()) {
      if (m.role !== role || m.center !== center || m.slot !== slot) continue
      if (best === undefined || rank(m) > rank(best)) best = m
    }
    return best
  }

  atPlace (role: MemberRole, place: Place): Member | undefined {
    return this.find(role, place.center, place.slot)
  }

  /** Every pair of `role` with at least one member heard, in index order. */
  pairViews (role: MemberRole): PairView[] {
    const { twins } = this.options
    const indexes = new Set(this.all().filter((m) => m.role === role).map((m) => twins.pairIndex(m)).filter((i): i is number => i !== undefined))
    return [...indexes].sort((a, b) => a - b).map((index) => {
      const [p, t] = twins.pairPlaces(index).map((place) => this.atPlace(role, place))
      return { index, members: [p, t] }
    })
  }

  /** The pairs of `role` whose two places both have a member. */
  pairs (role: MemberRole): Pair[] {
    return this.pairViews(role).filter((p): p is Pair => p.members[0] !== undefined && p.members[1] !== undefined)
  }

  /** The member at the twin's place, by the one-to-one mapping of slots (claims 5, 15, 25). */
  twinOf (member: Member): Member | undefined {
    return this.atPlace(member.role, this.options.twins.twinPlace(member))
  }

  /**
   * A request to the member failed in its transport (reset, refused, timed
   * out). That is one request's failure, not yet the member's: the member is
   * probed on a fresh session (connect, handshake, ping), and only a probe
   * that fails enters the failover condition. Reports that arrive while a
   * probe runs share it. Resolves true when the member is out.
   */
  async reportFailure (member: Member, err: Error): Promise<boolean> {
    if (member.failover !== undefined && !member.resyncing) return true
    let probing = this.probes.get(member)
    if (probing === undefined) {
      probing = this.confirm(member, err).finally(() => this.probes.delete(member))
      this.probes.set(member, probing)
    }
    return await probing
  }

  private async confirm (member: Member, err: Error): Promise<boolean> {
    const code = (err as { code?: string }).code ?? 'error'
    try {
      await member.client.probe(PROBE_TIMEOUT_MS)
      this.options.logger.info('a request failed but the member answers: not failed over', { member: member.name, memberId: member.id, code, error: err.message })
      return false
    } catch (probeErr) {
      const probeCode = (probeErr as { code?: string }).code
      // Out of descriptors or memory here: the member is not to blame.
      if (probeCode === RpcErrorCode.LOCAL) {
        this.options.logger.warn('cannot probe a member: this process is short of a resource', { member: member.name, error: (probeErr as Error).message })
        return false
      }
      this.enterFailover(member, `node protocol: ${code}: ${err.message}; probe: ${(probeErr as Error).message}`)
      return true
    }
  }

  /** Enters the failover condition: from now on the member gets nothing. */
  enterFailover (member: Member, reason: string, manual = false): void {
    if (member.failover !== undefined) {
      if (manual) member.failover.manual = true
      // It failed again while it resynced (a transport error of the resync itself): out again,
      // and probed again later by retryFailbacks(), which passes over members still resyncing.
      if (member.resyncing) {
        member.resyncing = false
        member.failover.since = Date.now()
      }
      return
    }
    member.failover = { since: Date.now(), reason, manual }
    member.resyncing = false
    // Requests still waiting on it would wait for their timeouts: they fail now and move on.
    member.client.abortInFlight(new RpcError(RpcErrorCode.CLOSED, `${member.name} failed over: ${reason}`))
    this.options.logger.warn('member failed over', { member: member.name, memberId: member.id, role: member.role, reason, manual })
    this.emit('failover', member)
  }

  /**
   * Asks for a member to be used again. One failed over by hand comes back only
   * by hand; one the detector or a protocol error put out comes back when heard.
   */
  requestFailback (member: Member, manual: boolean): boolean {
    if (member.failover?.manual === true && !manual) return false
    if (member.info.state === 'dead') return false
    member.resyncing = true
    this.options.logger.info('member failing back', { member: member.name, memberId: member.id, manual })
    this.emit('failback', member)
    return true
  }

  /** The member caught up: back in use. */
  completeFailback (member: Member): void {
    const was = member.failover
    member.failover = undefined
    member.resyncing = false
    this.options.logger.info('member healthy again', { member: member.name, memberId: member.id, outFor: was === undefined ? 0 : Date.now() - was.since })
    this.emit('available', member)
  }

  private clientFor (info: RosterMember): MemberClient {
    if (this.options.clientFor !== undefined) return this.options.clientFor(info)
    return new RpcClient({ key: this.options.key, selfId: this.options.selfId, host: info.address, port: info.port, maxIdle: 32 })
  }

  view (): MemberView[] {
    return this.all().sort(byPlace).map((m) => ({
      id: m.id,
      role: m.role,
      center: m.center,
      slot: m.slot,
      address: m.address,
      port: m.info.port,
      twin: this.twinOf(m)?.id ?? null,
      state: m.state,
      status: m.health,
      reason: m.info.reason,
      failover: m.failover === undefined ? null : { since: new Date(m.failover.since).toISOString(), reason: m.failover.reason, manual: m.failover.manual },
      since: new Date(m.info.since).toISOString(),
      bootId: m.info.bootId,
      lastHeard: new Date(m.info.lastHeard).toISOString(),
      restarts: m.info.restarts,
      free: m.info.free,
      files: m.info.files,
      quarantined: m.info.quarantined,
      scrub: m.info.scrub ?? null
    }))
  }

  private upsert (info: RosterMember): Member | undefined {
    if (info.role !== 'storage' && info.role !== 'directory') return undefined
    const known = this.members.get(info.id)
    if (known !== undefined && known.client.host === info.address && known.client.port === info.port) return known
    if (known !== undefined) {
      // It moved: sessions to the old address are useless, but what it missed and its failover condition stay.
      void known.client.close()
      known.info = info
      known.client = this.clientFor(info)
      if (info.state === 'healthy' && known.failover === undefined) this.emit('available', known)
      return known
    }
    const member = new Member(info, this.clientFor(info))
    this.members.set(info.id, member)
    if (info.state === 'healthy') this.emit('available', member)
    return member
  }
}

const STATE_RANK: Record<string, number> = { healthy: 2, suspect: 1, dead: 0 }
// 2 s: how long a member failed over by an error, yet still heard, waits before it is tried again
const FAILBACK_PROBE_MS = 2000
// 3 s: a live member, however loaded, connects, shakes hands and answers a ping within it; a paused or gone one does not
const PROBE_TIMEOUT_MS = 3000

function rank (m: Member): number {
  return (m.usable ? 3 : STATE_RANK[m.state] ?? 0) * 1e15 + m.info.lastHeard
}

function byPlace (a: Member, b: Member): number {
  return a.role.localeCompare(b.role) || a.center.localeCompare(b.center) || a.slot - b.slot
}

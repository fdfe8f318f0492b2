import type { Logger } from '@mirrorcast/logger'
import { search, type MulticastChannel, type SearchKind } from '@mirrorcast/discovery'
import type { Place, SubnetMap, TwinMap } from '@mirrorcast/topology'
import type { Member, MemberRole, Membership } from './membership.js'

/** Which of the three ways of finding a copy after failover may be used. */
export interface LocateOptions {
  /** The twin map: the twin's place, at the address that differs only in the subnet part. */
  mapping?: boolean
  /** A multicast search of the backup center, then of the primary center. */
  multicast?: boolean
  /** Point-to-point queries to every member of the backup center, then of the primary center. */
  pointToPoint?: boolean
  /** ms a multicast search waits for a first answer. */
  searchTimeoutMs?: number
}

export type LocateMethod = 'home' | 'twin-subnet-mapping' | 'twin-slot-mapping' | 'multicast-search' | 'point-to-point'

export interface Located {
  member: Member
  method: LocateMethod
  center: string
}

/** What is looked for: a body on a storage node, or a partition of the namespace on a directory server. */
export interface LocateQuery {
  role: MemberRole
  /** The home of what is looked for, and the member id there when known. */
  home: Place & { node?: string }
  /** The multicast search for it. */
  kind: SearchKind
  key: string
  /** The point-to-point question: does this member hold it? */
  holds: (member: Member) => Promise<boolean>
}

// 50 ms: the spread of search replies; the first one is enough
const SEARCH_WINDOW_MS = 50
// 500 ms: how long a search of one center waits for its first reply
const DEFAULT_SEARCH_TIMEOUT_MS = 500

/**
 * Finds where a copy can be used when its home member is failed over, in the
 * order of the claims: the twin mapping; a multicast search of the backup
 * center, then of the primary center; point-to-point queries where multicast
 * cannot reach, backup center first. Candidates come one at a time, so a
 * caller stops looking as soon as one serves.
 */
export class Locator {
  private readonly membership: Membership
  private readonly twins: TwinMap
  private readonly subnets: SubnetMap | undefined
  private readonly channel: () => MulticastChannel | undefined
  private readonly options: Required<LocateOptions>
  private readonly logger: Logger

  constructor (membership: Membership, twins: TwinMap, subnets: SubnetMap | undefined, channel: () => MulticastChannel | undefined, options: LocateOptions, logger: Logger) {
    this.membership = membership
    this.twins = twins
    this.subnets = subnets
    this.channel = channel
    this.options = { mapping: true, multicast: true, pointToPoint: true, searchTimeoutMs: DEFAULT_SEARCH_TIMEOUT_MS, ...options }
    this.logger = logger
  }

  /** Every usable place to try, home first; none is yielded twice. */
  async * candidates (q: LocateQuery): AsyncGenerator<Located> {
    const seen = new Set<string>()
    const fresh = (m: Member | undefined): m is Member => m !== undefined && m.role === q.role && m.usable && !seen.has(m.id) && (seen.add(m.id), true)
    const homeMember = (q.home.node === undefined ? undefined : this.membership.byId(q.home.node)) ?? this.membership.atPlace(q.role, q.home)
    if (fresh(homeMember)) yield { member: homeMember, method: 'home', center: homeMember.center }
    // The home member is not usable, or did not serve: the failover condition for this request.
    const order = this.twins.searchOrder(q.home.center)
    if (this.options.mapping) {
      const twin = this.twinByMapping(q.role, homeMember, q.home)
      if (fresh(twin.member)) yield { member: twin.member, method: twin.method, center: twin.member.center }
    }
    // With multicast off (static peers only) a search would reach nobody: mapping and point-to-point remain.
    if (this.options.multicast && this.channel()?.options.multicast === true) {
      for (const center of order) {
        for (const m of await this.searchCenter(q, center, seen)) if (fresh(m)) yield { member: m, method: 'multicast-search', center }
      }
    }
    if (this.options.pointToPoint) {
      for (const center of order) {
        for (const m of await this.askCenter(q, center, seen)) if (fresh(m)) yield { member: m, method: 'point-to-point', center }
      }
    }
  }

  /**
   * The twin by the mapping of claims 2–3 and 5: the address that differs only
   * in the subnet part when center subnets are configured, else the twin's place.
   */
  private twinByMapping (role: MemberRole, homeMember: Member | undefined, home: Place): { member: Member | undefined, method: LocateMethod } {
    const twinPlace = this.twins.twinPlace(home)
    if (this.subnets !== undefined && this.subnets.size > 0 && this.twins.mode === 'centers' && homeMember !== undefined) {
      const address = this.subnets.twinAddress(homeMember.address, home.center, twinPlace.center)
      const member = address === undefined ? undefined : this.membership.all().find((m) => m.role === role && m.address === address)
      return { member, method: 'twin-subnet-mapping' }
    }
    return { member: this.membership.atPlace(role, twinPlace), method: 'twin-slot-mapping' }
  }

  /** The first usable holder to answer; a failed-over member still answers, and is passed over. */
  private async searchCenter (q: LocateQuery, center: string, seen: Set<string>): Promise<Member[]> {
    const channel = this.channel()
    if (channel === undefined) return []
    const accept = (r: { id: string }): boolean => { const m = this.membership.byId(r.id); return m !== undefined && m.role === q.role && m.usable && !seen.has(m.id) }
    try {
      const { replies } = await search(channel, { kind: q.kind, key: q.key, center, windowMs: SEARCH_WINDOW_MS, timeoutMs: this.options.searchTimeoutMs, first: true, accept })
      return replies.map((r) => this.membership.byId(r.reply.id)).filter((m): m is Member => m !== undefined)
    } catch (err) {
      this.logger.warn('multicast search failed', { kind: q.kind, key: q.key, center, error: (err as Error).message })
      return []
    }
  }

  /** Asks every usable member of the role in a center, at once, whether it holds what is looked for. */
  private async askCenter (q: LocateQuery, center: string, seen: Set<string>): Promise<Member[]> {
    const asked = this.membership.all().filter((m) => m.role === q.role && m.center === center && m.usable && !seen.has(m.id))
    const answers = await Promise.all(asked.map(async (m) => await q.holds(m).then((yes) => yes ? m : undefined, () => undefined)))
    return answers.filter((m): m is Member => m !== undefined)
  }
}

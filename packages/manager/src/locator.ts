import type { Logger } from '@mirrorcast/logger'
import { search, type MulticastChannel } from '@mirrorcast/discovery'
import type { Replica } from '@mirrorcast/wire'
import type { Member, Membership } from './membership.js'
import type { SubnetMap } from './subnet-map.js'

/** Which of the three ways of finding a file after failover may be used. */
export interface LocateOptions {
  /** The twin map: same slot in the other center, at the address that differs only in the subnet part. */
  mapping?: boolean
  /** A multicast search of the backup center, then of the primary center. */
  multicast?: boolean
  /** Point-to-point queries to every node of the backup center, then of the primary center. */
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

// 50 ms: the spread of search replies; the first one is enough
const SEARCH_WINDOW_MS = 50
// 500 ms: how long a search of one center waits for its first reply
const DEFAULT_SEARCH_TIMEOUT_MS = 500

/**
 * Finds where a body can be read when its home node is failed over, in the
 * order of the claims: the twin mapping; a multicast search of the backup
 * center, then of the primary center; point-to-point queries where multicast
 * cannot reach, backup center first. Candidates come one at a time, so a
 * read stops looking as soon as one serves.
 */
export class Locator {
  private readonly membership: Membership
  private readonly centers: [string, string]
  private readonly subnets: SubnetMap | undefined
  private readonly channel: () => MulticastChannel | undefined
  private readonly options: Required<LocateOptions>
  private readonly logger: Logger

  constructor (membership: Membership, centers: [string, string], subnets: SubnetMap | undefined, channel: () => MulticastChannel | undefined, options: LocateOptions, logger: Logger) {
    this.membership = membership
    this.centers = centers
    this.subnets = subnets
    this.channel = channel
    this.options = { mapping: true, multicast: true, pointToPoint: true, searchTimeoutMs: DEFAULT_SEARCH_TIMEOUT_MS, ...options }
    this.logger = logger
  }

  /** Every place to try for `fileId`, home first; none is yielded twice. */
  async * candidates (fileId: string, home: Replica): AsyncGenerator<Located> {
    const seen = new Set<string>()
    const fresh = (m: Member | undefined): m is Member => m !== undefined && m.usable && !seen.has(m.id) && (seen.add(m.id), true)
    const homeMember = this.membership.byId(home.node) ?? this.membership.find('storage', home.center, home.slot)
    if (fresh(homeMember)) yield { member: homeMember, method: 'home', center: homeMember.center }
    // The home node is not usable, or did not serve: the failover condition for this read.
    const [primary, backup] = this.homeOrder(home.center)
    if (this.options.mapping) {
      const twin = this.twinByMapping(homeMember, home, backup)
      if (fresh(twin.member)) yield { member: twin.member, method: twin.method, center: backup }
    }
    // With multicast off (static peers only) a search would reach nobody: mapping and point-to-point remain.
    if (this.options.multicast && this.channel()?.options.multicast === true) {
      for (const center of [backup, primary]) {
        for (const m of await this.searchCenter(fileId, center)) if (fresh(m)) yield { member: m, method: 'multicast-search', center }
      }
    }
    if (this.options.pointToPoint) {
      for (const center of [backup, primary]) {
        for (const m of await this.askCenter(fileId, center, seen)) if (fresh(m)) yield { member: m, method: 'point-to-point', center }
      }
    }
  }

  /** [center the file lives in, the other one]: the backup of a file is its twin's center. */
  private homeOrder (homeCenter: string): [string, string] {
    const [a, b] = this.centers
    return homeCenter === a ? [a, b] : [b, a]
  }

  /**
   * The twin by the mapping of claims 2–3 and 5: the address that differs only
   * in the subnet part when center subnets are configured, else the same slot.
   */
  private twinByMapping (homeMember: Member | undefined, home: Replica, twinCenter: string): { member: Member | undefined, method: LocateMethod } {
    if (this.subnets !== undefined && this.subnets.size > 0 && homeMember !== undefined) {
      const address = this.subnets.twinAddress(homeMember.address, home.center, twinCenter)
      const member = address === undefined ? undefined : this.membership.all().find((m) => m.role === 'storage' && m.address === address)
      return { member, method: 'twin-subnet-mapping' }
    }
    return { member: this.membership.find('storage', twinCenter, home.slot), method: 'twin-slot-mapping' }
  }

  private async searchCenter (fileId: string, center: string): Promise<Member[]> {
    const channel = this.channel()
    if (channel === undefined) return []
    try {
      const { replies } = await search(channel, { kind: 'blob', key: fileId, center, windowMs: SEARCH_WINDOW_MS, timeoutMs: this.options.searchTimeoutMs, first: true })
      return replies.map((r) => this.membership.byId(r.reply.id)).filter((m): m is Member => m !== undefined)
    } catch (err) {
      this.logger.warn('multicast search failed', { fileId, center, error: (err as Error).message })
      return []
    }
  }

  /** Asks every usable node of a center, at once, whether it holds the file. */
  private async askCenter (fileId: string, center: string, seen: Set<string>): Promise<Member[]> {
    const asked = this.membership.all().filter((m) => m.role === 'storage' && m.center === center && m.usable && !seen.has(m.id))
    const answers = await Promise.all(asked.map(async (m) => {
      try {
        await m.client.request('blob.stat', { fileId }, 'blob.stat.ok')
        return m
      } catch {
        return undefined
      }
    }))
    return answers.filter((m): m is Member => m !== undefined)
  }
}

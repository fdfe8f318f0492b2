import { EventEmitter } from 'node:events'
import { RpcClient } from '@mirrorcast/rpc'
import type { Logger } from '@mirrorcast/logger'
import type { Roster, RosterMember } from '@mirrorcast/discovery'

export type MemberRole = 'storage' | 'directory'

export interface MemberView {
  id: string
  role: MemberRole
  center: string
  slot: number
  address: string
  port: number
  twin: string | null
  state: string
  reason: string
  since: string
  bootId: string
  lastHeard: string
  restarts: number
  free: number
  files: number
}

/** A storage node or directory server as the manager sees it, with its session pool. */
export class Member {
  readonly info: RosterMember
  client: RpcClient

  constructor (info: RosterMember, client: RpcClient) {
    this.info = info
    this.client = client
  }

  get id (): string { return this.info.id }
  get role (): MemberRole { return this.info.role as MemberRole }
  get center (): string { return this.info.center }
  get slot (): number { return this.info.slot }
  get address (): string { return this.info.address }
  get state (): string { return this.info.state }

  get name (): string {
    return `${this.center}/${this.role === 'directory' ? 'dir' : 'node'}${this.slot}`
  }
}

export interface MembershipOptions {
  key: Uint8Array
  selfId: string
  centers: [string, string]
  roster: Roster
  logger: Logger
}

export interface MembershipEvents {
  /** A member appeared, restarted or came back: work it missed may be waiting. */
  available: [member: Member]
}

/**
 * The storage nodes and directory servers heard on the multicast group: each
 * member with its failure-detector state and a pool of node-protocol sessions
 * to the address it announces.
 */
export class Membership extends EventEmitter<MembershipEvents> {
  private readonly members = new Map<string, Member>()
  private readonly options: MembershipOptions

  constructor (options: MembershipOptions) {
    super()
    this.options = options
    const { roster } = options
    roster.on('join', (info) => this.upsert(info))
    roster.on('restart', (info) => this.upsert(info))
    roster.on('change', (info) => {
      const member = this.upsert(info)
      if (info.state === 'healthy' && member !== undefined) this.emit('available', member)
    })
    for (const info of roster.list()) this.upsert(info)
  }

  async close (): Promise<void> {
    await Promise.all([...this.members.values()].map(async (m) => await m.client.close()))
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

  /** Slots that have a member of `role` in both centers: the twin pairs. */
  pairedSlots (role: MemberRole): number[] {
    const [a, b] = this.options.centers
    const slots = new Set(this.all().filter((m) => m.role === role && m.center === a).map((m) => m.slot))
    return [...slots].filter((s) => this.find(role, b, s) !== undefined).sort((x, y) => x - y)
  }

  twinOf (member: Member): Member | undefined {
    const [a, b] = this.options.centers
    return this.find(member.role, member.center === a ? b : a, member.slot)
  }

  /** A transport failure against a member: logged now; the failover issue acts on it. */
  noteFailure (member: Member, err: Error): void {
    this.options.logger.warn('node protocol failure', { member: member.name, memberId: member.id, error: err.message })
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
      reason: m.info.reason,
      since: new Date(m.info.since).toISOString(),
      bootId: m.info.bootId,
      lastHeard: new Date(m.info.lastHeard).toISOString(),
      restarts: m.info.restarts,
      free: m.info.free,
      files: m.info.files
    }))
  }

  private upsert (info: RosterMember): Member | undefined {
    if (info.role !== 'storage' && info.role !== 'directory') return undefined
    const known = this.members.get(info.id)
    if (known !== undefined && known.client.host === info.address && known.client.port === info.port) return known
    // New member, or one that moved: sessions to the old address are useless.
    if (known !== undefined) void known.client.close()
    const member = new Member(info, new RpcClient({ key: this.options.key, selfId: this.options.selfId, host: info.address, port: info.port, maxIdle: 32 }))
    this.members.set(info.id, member)
    if (info.state === 'healthy') this.emit('available', member)
    return member
  }
}

const STATE_RANK: Record<string, number> = { healthy: 2, suspect: 1, dead: 0 }

function rank (m: Member): number {
  return (STATE_RANK[m.state] ?? 0) * 1e15 + m.info.lastHeard
}

function byPlace (a: Member, b: Member): number {
  return a.role.localeCompare(b.role) || a.center.localeCompare(b.center) || a.slot - b.slot
}

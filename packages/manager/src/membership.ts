import { RpcClient } from '@mirrorcast/rpc'
import type { Logger } from '@mirrorcast/logger'
import type { PeerConfig } from './config.js'

export type MemberState = 'healthy' | 'unreachable' | 'unknown'

export interface MemberView {
  id: string | null
  role: 'storage' | 'directory'
  center: string
  slot: number
  address: string
  port: number
  twin: string | null
  state: MemberState
  bootId: string | null
  lastSeen: string | null
}

/** A storage node or directory server as the manager sees it, with its session pool. */
export class Member {
  readonly config: PeerConfig
  readonly client: RpcClient
  id: string | undefined
  bootId: string | undefined
  state: MemberState = 'unknown'
  lastSeen: number | undefined

  constructor (config: PeerConfig, client: RpcClient) {
    this.config = config
    this.client = client
  }

  get name (): string {
    return `${this.config.center}/${this.config.role === 'directory' ? 'dir' : 'node'}${this.config.slot}`
  }

  /** Asks the peer who it is: its id, boot id and that it answers at all. */
  async probe (signal?: AbortSignal): Promise<void> {
    const reply = this.config.role === 'storage'
      ? (await this.client.request('node.stats', {}, 'node.stats.ok', { signal })).body
      : (await this.client.request('dir.info', {}, 'dir.info.ok', { signal })).body
    if (reply.center !== this.config.center || reply.slot !== this.config.slot || reply.role !== this.config.role) {
      throw new Error(`${this.config.address}:${this.config.port} is ${reply.role} ${reply.center}/${reply.slot}, configured as ${this.config.role} ${this.config.center}/${this.config.slot}`)
    }
    this.id = reply.id
    this.bootId = reply.bootId
    this.state = 'healthy'
    this.lastSeen = Date.now()
  }
}

export interface MembershipOptions {
  key: Uint8Array
  selfId: string
  peers: PeerConfig[]
  centers: [string, string]
  retryMs: number
  logger: Logger
}

/**
 * The members the manager was configured with. Until multicast discovery
 * replaces it, liveness comes from probing: an unreachable member is probed
 * again every `retryMs`.
 */
export class Membership {
  readonly members: Member[]
  private readonly options: MembershipOptions
  private timer: NodeJS.Timeout | undefined
  private readonly abort = new AbortController()

  constructor (options: MembershipOptions) {
    this.options = options
    this.members = options.peers.map((config) => new Member(config, new RpcClient({ key: options.key, selfId: options.selfId, host: config.address, port: config.port })))
  }

  async start (): Promise<void> {
    await this.probeAll(this.members)
    this.timer = setInterval(() => { void this.probeAll(this.members.filter((m) => m.state !== 'healthy')) }, this.options.retryMs)
    this.timer.unref()
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    this.abort.abort()
    await Promise.all(this.members.map(async (m) => await m.client.close()))
  }

  find (role: 'storage' | 'directory', center: string, slot: number): Member | undefined {
    return this.members.find((m) => m.config.role === role && m.config.center === center && m.config.slot === slot)
  }

  byId (id: string): Member | undefined {
    return this.members.find((m) => m.id === id)
  }

  /** Slots that have a member of `role` in both centers: the twin pairs. */
  pairedSlots (role: 'storage' | 'directory'): number[] {
    const [a, b] = this.options.centers
    const slots = new Set(this.members.filter((m) => m.config.role === role && m.config.center === a).map((m) => m.config.slot))
    return [...slots].filter((s) => this.find(role, b, s) !== undefined).sort((x, y) => x - y)
  }

  twinOf (member: Member): Member | undefined {
    const [a, b] = this.options.centers
    return this.find(member.config.role, member.config.center === a ? b : a, member.config.slot)
  }

  markUnreachable (member: Member, err: Error): void {
    if (member.state === 'unreachable') return
    member.state = 'unreachable'
    this.options.logger.warn('member unreachable', { member: member.name, memberId: member.id, error: err.message })
  }

  view (): MemberView[] {
    return this.members.map((m) => ({
      id: m.id ?? null,
      role: m.config.role,
      center: m.config.center,
      slot: m.config.slot,
      address: m.config.address,
      port: m.config.port,
      twin: this.twinOf(m)?.id ?? null,
      state: m.state,
      bootId: m.bootId ?? null,
      lastSeen: m.lastSeen === undefined ? null : new Date(m.lastSeen).toISOString()
    }))
  }

  private async probeAll (members: Member[]): Promise<void> {
    await Promise.all(members.map(async (m) => {
      const was = m.state
      try {
        await m.probe(this.abort.signal)
        if (was !== 'healthy') this.options.logger.info('member healthy', { member: m.name, memberId: m.id, bootId: m.bootId })
      } catch (err) {
        this.markUnreachable(m, err as Error)
      }
    }))
  }
}

import type { RemoteInfo } from 'node:dgram'
import type { AnyEnvelope } from '@mirrorcast/wire'
import type { Announcer } from './announcer.js'
import type { MulticastChannel, Via } from './multicast-channel.js'
import type { Roster } from './roster.js'

// 1,000 announcements a second for the whole cluster: 100 members at 100 ms, 1,000 at 1 s
// (≈ 300 kB/s of heartbeats on the LAN, a few % of a core for a manager to check)
export const DEFAULT_MAX_ANNOUNCE_RATE = 1000
// 5 s: how often the cadence is repeated; a member keeps one for 30 s (CADENCE_TTL_MS)
export const CADENCE_REPEAT_MS = 5000
// 3 s: the roster fills in before the first cadence, so a new manager never asks a large
// cluster to speed up because it has heard only part of it
const WARM_UP_MS = 3000
// a shorter period is only asked for once it is at least a fifth shorter: no flapping at a boundary
const SHORTEN_BELOW = 0.8

export interface CadenceOptions {
  /** The shortest period asked for: the manager's own heartbeat. */
  baseMs: number
  /** Announcements a second the whole cluster may send at most. */
  maxRate?: number
}

/**
 * The manager's side of heartbeat pacing: the period every member should
 * announce at, from the number of members heard, so that the cluster's
 * announcements stay within `maxRate` a second whatever its size. It is sent
 * to the searches' group (which every member joins) every few seconds and when
 * it changes, and by unicast to members heard only by unicast (static peers).
 */
export class Cadence {
  private readonly channel: MulticastChannel
  private readonly roster: Roster
  private readonly announcer: Announcer
  private readonly baseMs: number
  readonly maxRate: number
  private periodMs: number
  private timer: NodeJS.Timeout | undefined
  // where members heard by unicast only can be reached: the source of their announcements
  private readonly unicastMembers = new Map<string, { address: string, port: number }>()
  private readonly onMessage = (msg: AnyEnvelope, rinfo: RemoteInfo, via: Via): void => {
    if (msg.t !== 'announce') return
    if (via === 'unicast') this.unicastMembers.set(msg.from, { address: rinfo.address, port: rinfo.port })
    else this.unicastMembers.delete(msg.from)
  }

  constructor (channel: MulticastChannel, roster: Roster, announcer: Announcer, options: CadenceOptions) {
    const maxRate = options.maxRate ?? DEFAULT_MAX_ANNOUNCE_RATE
    if (!Number.isInteger(maxRate) || maxRate < 1) throw new TypeError('the announce rate must be a whole number of announcements a second, at least 1')
    this.channel = channel
    this.roster = roster
    this.announcer = announcer
    this.baseMs = options.baseMs
    this.maxRate = maxRate
    this.periodMs = options.baseMs
  }

  /** The period asked of every member now. */
  get heartbeatMs (): number {
    return this.periodMs
  }

  /** Members heard and not dead, this manager included. */
  get members (): number {
    let n = 1
    for (const m of this.roster.list()) if (m.state !== 'dead') n++
    return n
  }

  start (): void {
    if (this.timer !== undefined) return
    this.channel.on('message', this.onMessage)
    this.timer = setTimeout(() => {
      this.tick()
      this.timer = setInterval(() => { this.tick() }, CADENCE_REPEAT_MS)
    }, WARM_UP_MS)
  }

  close (): void {
    // clearInterval clears a timeout too: whichever of the two is armed
    clearInterval(this.timer)
    this.timer = undefined
    this.channel.off('message', this.onMessage)
  }

  /** Re-evaluates the period and sends it, every few seconds once warmed up. */
  private tick (): void {
    const members = this.members
    const wanted = Math.min(60_000, Math.max(this.baseMs, Math.ceil(members * 1000 / this.maxRate / 10) * 10))
    if (wanted > this.periodMs || wanted < this.periodMs * SHORTEN_BELOW) {
      this.channel.options.logger.info('cadence changed', { from: this.periodMs, to: wanted, members, maxRate: this.maxRate })
      this.periodMs = wanted
    }
    this.announcer.follow(this.channel.selfId, this.periodMs)
    this.send(members)
  }

  private send (members: number): void {
    const body = { cluster: this.channel.options.cluster, heartbeatMs: this.periodMs, members }
    const failed = (err: Error): void => { this.channel.options.logger.debug('cadence not sent', { error: err.message }) }
    if (this.channel.options.multicast) this.channel.multicast('cadence', body).catch(failed)
    for (const [id, to] of this.unicastMembers) {
      if (this.roster.get(id)?.state === 'dead') this.unicastMembers.delete(id)
      else this.channel.sendTo('cadence', body, to.port, to.address).catch(failed)
    }
  }
}

import type { MessageBody } from '@mirrorcast/wire'
import type { MulticastChannel } from './multicast-channel.js'
import { DEFAULT_HEARTBEAT_MS } from './options.js'

export type AnnounceInfo = Omit<MessageBody<'announce'>, 'cluster' | 'heartbeatMs'>

// 300 ms: a third of what a manager's failure detector allows a silent member at 100 ms heartbeats
export const LATE_HEARTBEAT_WARN_MS = 300
// 30 s: a manager's cadence counts this long; managers repeat it every few seconds
export const CADENCE_TTL_MS = 30_000

/**
 * The rule a member follows managers' cadences by: the longest period heard from
 * a manager in the last 30 s, never below the configured one.
 */
export class CadenceFollower {
  private readonly cadences = new Map<string, { heartbeatMs: number, at: number }>()

  constructor (readonly configuredMs: number) {}

  /** The period to announce at, once `manager` asked for `heartbeatMs`. */
  follow (manager: string, heartbeatMs: number, now = Date.now()): number {
    this.cadences.set(manager, { heartbeatMs, at: now })
    let period = this.configuredMs
    for (const [id, c] of this.cadences) {
      if (now - c.at > CADENCE_TTL_MS) this.cadences.delete(id)
      else period = Math.max(period, c.heartbeatMs)
    }
    return period
  }
}

/**
 * Sends this member's announcement every heartbeat and a goodbye on close.
 * `info` is asked each time, so free space and file counts stay current.
 * Announcements go to the group and to every static peer.
 *
 * The period is the configured one, or longer when a manager says so (its
 * cadence grows with the size of the cluster). A heartbeat that goes out late
 * is logged: the event loop was held, and a manager may have found this
 * member silent (a long synchronous change, a machine short of CPU).
 */
export class Announcer {
  private readonly channel: MulticastChannel
  private readonly info: () => AnnounceInfo
  private periodMs: number
  private readonly cadence: CadenceFollower
  private timer: NodeJS.Timeout | undefined
  private due = 0
  // Logged when sending starts or stops failing, not every heartbeat.
  private failing = false
  sent = 0

  constructor (channel: MulticastChannel, info: () => AnnounceInfo, heartbeatMs = DEFAULT_HEARTBEAT_MS) {
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 10 || heartbeatMs > 60_000) throw new TypeError('heartbeat must be 10 to 60000 ms')
    this.channel = channel
    this.info = info
    this.periodMs = heartbeatMs
    this.cadence = new CadenceFollower(heartbeatMs)
  }

  /** The period announcements go out at now. */
  get heartbeatMs (): number {
    return this.periodMs
  }

  async start (): Promise<void> {
    if (this.timer !== undefined) return
    this.arm()
    this.announce()
  }

  async close (): Promise<void> {
    if (this.timer === undefined) return
    clearInterval(this.timer)
    this.timer = undefined
    const { id, role, bootId } = this.info()
    await this.channel.announce('goodbye', { cluster: this.channel.options.cluster, id, role, bootId }).catch(() => {})
  }

  /**
   * A manager's cadence: announce at least every `heartbeatMs`. The longest one heard
   * from a manager in the last 30 s counts, never below the configured period; a
   * change of period is announced at once, so a manager's detector learns it before
   * the first longer gap.
   */
  follow (manager: string, heartbeatMs: number, now = Date.now()): void {
    const period = this.cadence.follow(manager, heartbeatMs, now)
    if (period === this.periodMs) return
    this.channel.options.logger.info('heartbeat period changed', { from: this.periodMs, to: period, reason: 'cadence of the managers' })
    this.periodMs = period
    if (this.timer === undefined) return
    clearInterval(this.timer)
    this.arm()
    this.announce()
  }

  private arm (): void {
    this.due = performance.now() + this.periodMs
    this.timer = setInterval(() => { this.tick() }, this.periodMs)
  }

  private tick (): void {
    const now = performance.now()
    const lateMs = now - this.due
    // Node re-arms an interval from when its callback ran: the next one is due a period from now.
    this.due = now + this.periodMs
    if (lateMs >= LATE_HEARTBEAT_WARN_MS) this.channel.options.logger.warn('event loop held: heartbeats were late', { lateMs: Math.round(lateMs) })
    this.announce()
  }

  private announce (): void {
    try {
      this.channel.heartbeat({ ...this.info(), cluster: this.channel.options.cluster, heartbeatMs: this.periodMs }, this.onSent)
    } catch (err) {
      this.onSent(err as Error)
    }
  }

  private readonly onSent = (err: Error | undefined): void => {
    if (err === undefined) {
      this.sent++
      if (this.failing) this.channel.options.logger.info('announcing again')
      this.failing = false
      return
    }
    if (!this.failing) this.channel.options.logger.warn('announce failed', { error: err.message })
    this.failing = true
  }
}

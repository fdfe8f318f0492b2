import type { MessageBody } from '@mirrorcast/wire'
import type { MulticastChannel } from './multicast-channel.js'
import { DEFAULT_HEARTBEAT_MS } from './options.js'

export type AnnounceInfo = Omit<MessageBody<'announce'>, 'cluster' | 'heartbeatMs'>

/**
 * Sends this member's announcement every heartbeat and a goodbye on close.
 * `info` is asked each time, so free space and file counts stay current.
 * Announcements go to the group and to every static peer.
 */
export class Announcer {
  private readonly channel: MulticastChannel
  private readonly info: () => AnnounceInfo
  readonly heartbeatMs: number
  private timer: NodeJS.Timeout | undefined
  // Logged when sending starts or stops failing, not every heartbeat.
  private failing = false
  sent = 0

  constructor (channel: MulticastChannel, info: () => AnnounceInfo, heartbeatMs = DEFAULT_HEARTBEAT_MS) {
    if (!Number.isInteger(heartbeatMs) || heartbeatMs < 10 || heartbeatMs > 60_000) throw new TypeError('heartbeat must be 10 to 60000 ms')
    this.channel = channel
    this.info = info
    this.heartbeatMs = heartbeatMs
  }

  async start (): Promise<void> {
    if (this.timer !== undefined) return
    this.timer = setInterval(() => { void this.announce() }, this.heartbeatMs)
    await this.announce()
  }

  async close (): Promise<void> {
    if (this.timer === undefined) return
    clearInterval(this.timer)
    this.timer = undefined
    const { id, role, bootId } = this.info()
    await this.channel.announce('goodbye', { cluster: this.channel.options.cluster, id, role, bootId }).catch(() => {})
  }

  private async announce (): Promise<void> {
    try {
      await this.channel.announce('announce', { ...this.info(), cluster: this.channel.options.cluster, heartbeatMs: this.heartbeatMs })
      this.sent++
      if (this.failing) this.channel.options.logger.info('announcing again')
      this.failing = false
    } catch (err) {
      if (!this.failing) this.channel.options.logger.warn('announce failed', { error: (err as Error).message })
      this.failing = true
    }
  }
}

import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { Logger } from '@mirrorcast/logger'

// 300 ms: a third of what a manager's failure detector allows a silent member at 100 ms heartbeats
const HELD_WARN_MS = 300
const CHECK_MS = 1000

/**
 * Logs when this process's event loop was held long enough to delay its
 * heartbeats: what to look for when a healthy member was failed over as
 * silent (a long synchronous change, a machine short of CPU).
 */
export class LoopWatch {
  private histogram: IntervalHistogram | undefined
  private timer: NodeJS.Timeout | undefined

  constructor (private readonly logger: Logger) {}

  start (): void {
    if (this.histogram !== undefined) return
    const histogram = monitorEventLoopDelay({ resolution: 20 })
    histogram.enable()
    this.histogram = histogram
    this.timer = setInterval(() => {
      const maxMs = histogram.max / 1e6
      if (maxMs >= HELD_WARN_MS) this.logger.warn('event loop held: heartbeats were late', { maxMs: Math.round(maxMs) })
      histogram.reset()
    }, CHECK_MS).unref()
  }

  close (): void {
    clearInterval(this.timer)
    this.histogram?.disable()
    this.histogram = undefined
  }
}

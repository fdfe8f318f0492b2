// 100 intervals: the detector adapts to the last ~10 s of heartbeats at 100 ms
const DEFAULT_WINDOW = 100
// 150 ms: floor of the standard deviation, so steady loopback heartbeats (σ≈1 ms) do not make one late datagram fatal
export const DEFAULT_MIN_STD_MS = 150
// a quarter of the period: at a long period (a large cluster's cadence) one lost heartbeat is not fatal either
const MIN_STD_PER_PERIOD = 0.25

/**
 * The phi-accrual failure detector (Hayashibara et al.): phi is -log10 of the
 * probability that a heartbeat still arrives after `elapsed` ms, given the
 * mean and deviation of recent inter-arrival times. The caller picks
 * thresholds: phi 8 means a one-in-10⁸ chance that the member is only slow.
 */
export class PhiAccrualDetector {
  private readonly intervals: number[] = []
  private readonly window: number
  private readonly minStdMs: number
  private last: number | undefined
  private sum = 0
  private sumSquares = 0

  constructor (expectedIntervalMs: number, options: { window?: number, minStdMs?: number } = {}) {
    this.window = options.window ?? DEFAULT_WINDOW
    this.minStdMs = options.minStdMs ?? Math.max(DEFAULT_MIN_STD_MS, expectedIntervalMs * MIN_STD_PER_PERIOD)
    // Seed with the announced period so the first heartbeats already give a sane estimate.
    this.push(expectedIntervalMs)
  }

  heartbeat (now: number): void {
    if (this.last !== undefined) this.push(now - this.last)
    this.last = now
  }

  phi (now: number): number {
    if (this.last === undefined) return 0
    const { mean, std } = this.stats()
    const y = (now - this.last - mean) / std
    // Logistic approximation of the normal CDF's tail, as in Akka and Cassandra.
    const e = Math.exp(-y * (1.5976 + 0.070566 * y * y))
    const pLater = y > 0 ? e / (1 + e) : 1 - 1 / (1 + e)
    return -Math.log10(Math.max(pLater, Number.MIN_VALUE))
  }

  /**
   * How long after the last heartbeat phi reaches `threshold`: when to look
   * again, rather than evaluating every member on a fixed short tick.
   */
  silenceToReach (threshold: number): number {
    const { mean, std } = this.stats()
    return mean + std * yForPhi(threshold)
  }

  private stats (): { mean: number, std: number } {
    const n = this.intervals.length
    const mean = this.sum / n
    const variance = Math.max(0, this.sumSquares / n - mean * mean)
    return { mean, std: Math.max(Math.sqrt(variance), this.minStdMs) }
  }

  private push (interval: number): void {
    this.intervals.push(interval)
    this.sum += interval
    this.sumSquares += interval * interval
    if (this.intervals.length > this.window) {
      const old = this.intervals.shift() as number
      this.sum -= old
      this.sumSquares -= old * old
    }
  }
}

const yCache = new Map<number, number>()

/**
 * The normalized silence y at which phi reaches `phi`: the inverse of the
 * logistic tail above, y·(1.5976 + 0.070566·y²) = −ln(q/(1−q)) with q = 10^−phi,
 * solved by Newton's method (the left side is increasing) and kept per threshold.
 */
function yForPhi (phi: number): number {
  let y = yCache.get(phi)
  if (y !== undefined) return y
  const q = 10 ** -phi
  const target = -Math.log(q / (1 - q))
  y = Math.max(0, target / 1.5976)
  for (let i = 0; i < 50; i++) {
    const f = y * (1.5976 + 0.070566 * y * y) - target
    y -= f / (1.5976 + 3 * 0.070566 * y * y)
    if (Math.abs(f) < 1e-9) break
  }
  yCache.set(phi, y)
  return y
}

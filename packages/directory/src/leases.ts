import { performance } from 'node:perf_hooks'
import { MAX_LIST_ENTRIES, type Lease, type ReconcileStatus } from '@mirrorcast/wire'
import { DirectoryError, DirectoryErrorCode } from './errors.js'

// 10,000: leases held at once (names are the caller's); a new name beyond it takes the place of the longest expired one
export const MAX_LEASES = MAX_LIST_ENTRIES

interface Held { holder: string, expiresAt: number, status?: ReconcileStatus }

export interface LeaseRequest {
  name: string
  holder: string
  ttlMs: number
  status?: ReconcileStatus
  release?: boolean
}

/**
 * Leases (who runs a pair's anti-entropy) with the status their holder last
 * reported. In memory only: a restart of the server frees them all, which
 * only lets another manager take a lease early. Expiry runs on a monotonic
 * clock, so a wall-clock step neither frees nor prolongs one.
 */
export class LeaseTable {
  private readonly leases = new Map<string, Held>()
  private readonly now: () => number

  constructor (options: { now?: () => number } = {}) {
    this.now = options.now ?? (() => performance.now())
  }

  /**
   * Grants or renews a lease (free, expired, or already `holder`'s), or with
   * `release` gives it up, keeping its last status. `granted` false: another
   * holder has it, and `lease` says who and for how long.
   */
  request (req: LeaseRequest): { granted: boolean, lease?: Lease } {
    if (!Number.isSafeInteger(req.ttlMs) || req.ttlMs < 1) throw new DirectoryError(DirectoryErrorCode.INVALID, `a lease's ttlMs must be a positive whole number, not ${req.ttlMs}`)
    const now = this.now()
    const held = this.leases.get(req.name)
    const free = held === undefined || held.expiresAt <= now || held.holder === req.holder
    if (!free) return { granted: false, lease: this.view(req.name, held, now) }
    if (req.release === true) {
      if (held === undefined) return { granted: true }
      const released: Held = { holder: held.holder, expiresAt: Math.min(held.expiresAt, now), ...withStatus(req.status ?? held.status) }
      this.leases.set(req.name, released)
      return { granted: true, lease: this.view(req.name, released, now) }
    }
    if (held === undefined) this.makeRoom(now)
    const next: Held = { holder: req.holder, expiresAt: now + req.ttlMs, ...withStatus(req.status ?? held?.status) }
    this.leases.set(req.name, next)
    return { granted: true, lease: this.view(req.name, next, now) }
  }

  /** Leases whose name starts with `prefix`, by name, expired ones too (`expiresInMs` 0). */
  list (prefix: string): Lease[] {
    const now = this.now()
    return [...this.leases].filter(([name]) => name.startsWith(prefix)).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
      .slice(0, MAX_LIST_ENTRIES).map(([name, held]) => this.view(name, held, now))
  }

  private view (name: string, held: Held, now: number): Lease {
    return { name, holder: held.holder, expiresInMs: Math.max(0, Math.ceil(held.expiresAt - now)), ...withStatus(held.status) }
  }

  /** A new name when the table is full: the lease expired longest ago goes; none expired, the request is refused. */
  private makeRoom (now: number): void {
    if (this.leases.size < MAX_LEASES) return
    let oldest: [string, Held] | undefined
    for (const entry of this.leases) if (entry[1].expiresAt <= now && (oldest === undefined || entry[1].expiresAt < oldest[1].expiresAt)) oldest = entry
    if (oldest === undefined) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${MAX_LEASES} leases are held already`)
    this.leases.delete(oldest[0])
  }
}

const withStatus = (status: ReconcileStatus | undefined): { status?: ReconcileStatus } => status === undefined ? {} : { status }

import type { Logger } from '@mirrorcast/logger'
import type { Quarantined } from '@mirrorcast/wire'
import type { Member, Membership } from '../cluster/membership.js'
import type { ObjectManager } from './object-manager.js'

export interface IntegrityOptions {
  /** How often the quarantine counts in the nodes' heartbeats are looked at, ms. */
  pollMs?: number
  /** How long before a body that could not be restored is tried again, ms. */
  retryMs?: number
}

// 500 ms: a corrupt copy is being restored within a second of its node reporting it
const DEFAULT_POLL_MS = 500
// 30 s: a body with no good copy reachable now is not asked for again and again
const DEFAULT_RETRY_MS = 30_000

export interface IntegrityStats {
  /** Corrupt copies replaced by a good one from a twin. */
  restored: number
  /** Attempts that found no good copy, or failed. */
  failed: number
}

/**
 * Repairs what storage nodes found corrupt. A node that finds a body damaged
 * (its scrub, or a read that failed its checksum) quarantines it and says how
 * many it holds so in every heartbeat; this asks that node for the list and
 * copies each body back from its twin (or from wherever the locator finds a
 * good copy), which ends the quarantine.
 */
export class Integrity {
  private readonly membership: Membership
  private readonly objects: ObjectManager
  private readonly logger: Logger
  private readonly pollMs: number
  private readonly retryMs: number
  private readonly busy = new Set<string>()
  /** fileId → when its restore was last tried. */
  private readonly tried = new Map<string, number>()
  private timer: NodeJS.Timeout | undefined
  readonly stats: IntegrityStats = { restored: 0, failed: 0 }

  constructor (membership: Membership, objects: ObjectManager, logger: Logger, options: IntegrityOptions = {}) {
    const pollMs = options.pollMs ?? DEFAULT_POLL_MS
    const retryMs = options.retryMs ?? DEFAULT_RETRY_MS
    if (!Number.isInteger(pollMs) || pollMs < 10) throw new TypeError('integrity pollMs must be at least 10')
    if (!Number.isInteger(retryMs) || retryMs < 0) throw new TypeError('integrity retryMs must be a whole number of ms')
    this.membership = membership
    this.objects = objects
    this.logger = logger
    this.pollMs = pollMs
    this.retryMs = retryMs
  }

  start (): void {
    this.timer ??= setInterval(() => { this.tick() }, this.pollMs)
  }

  close (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private tick (): void {
    for (const m of this.membership.all()) {
      if (m.role === 'storage' && m.usable && m.info.quarantined > 0 && !this.busy.has(m.id)) void this.restoreAll(m)
    }
  }

  private async restoreAll (member: Member): Promise<void> {
    this.busy.add(member.id)
    try {
      const { body } = await member.client.request('blob.quarantined', {})
      const now = Date.now()
      for (const file of body.files) {
        if (this.timer === undefined || !member.usable) return
        if (now - (this.tried.get(file.fileId) ?? -Infinity) < this.retryMs) continue
        this.tried.set(file.fileId, now)
        await this.restore(member, file)
      }
    } catch (err) {
      this.logger.warn('could not list a node\'s quarantined bodies', { member: member.name, error: (err as Error).message })
    } finally {
      this.busy.delete(member.id)
    }
  }

  private async restore (member: Member, file: Quarantined): Promise<void> {
    try {
      const known = file.size !== undefined && file.sha256 !== undefined ? { size: file.size, sha256: file.sha256 } : await this.askTwin(member, file.fileId)
      await this.objects.restoreCopy(member, { fileId: file.fileId, ...known })
      // restoreCopy gives up quietly when no good copy is left: only the node can tell.
      await member.client.request('blob.stat', { fileId: file.fileId })
      this.stats.restored++
      this.tried.delete(file.fileId)
      this.logger.info('restored a corrupt copy', { fileId: file.fileId, member: member.name, reason: file.reason })
    } catch (err) {
      this.stats.failed++
      this.logger.error('could not restore a corrupt copy', { fileId: file.fileId, member: member.name, reason: file.reason, error: (err as Error).message })
    }
  }

  /** Size and sha256 from the twin, for a copy whose own footer is unreadable. */
  private async askTwin (member: Member, fileId: string): Promise<{ size: number, sha256: string }> {
    const twin = this.membership.twinOf(member)
    if (twin === undefined) throw new Error(`${member.name} has no twin to ask about ${fileId}`)
    const { body } = await twin.client.request('blob.stat', { fileId })
    return { size: body.size, sha256: body.sha256 }
  }
}

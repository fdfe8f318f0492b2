import { EventEmitter } from 'node:events'
import type { AnyEnvelope, MessageBody, ScrubSummary } from '@mirrorcast/wire'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { PhiAccrualDetector } from './phi-accrual.js'
import type { MulticastChannel } from './multicast-channel.js'

export type MemberState = 'healthy' | 'suspect' | 'dead'
export type Announcement = MessageBody<'announce'>

export interface RosterMember {
  id: string
  role: Announcement['role']
  center: string
  slot: number
  address: string
  port: number
  bootId: string
  heartbeatMs: number
  free: number
  files: number
  /** Storage nodes: bodies set aside as corrupt, waiting for a copy from a twin; and how their scrub goes. */
  quarantined: number
  scrub: ScrubSummary | undefined
  /** Storage nodes: the port of downloads by signed locator. */
  httpPort: number | undefined
  state: MemberState
  /** When the last announcement arrived (local clock, ms). */
  lastHeard: number
  /** When the state last changed. */
  since: number
  restarts: number
  /** Why the state last changed. */
  reason: string
}

export interface RosterEvents {
  join: [member: RosterMember]
  change: [member: RosterMember, from: MemberState, reason: string]
  restart: [member: RosterMember, previousBootId: string]
  /** Same member, another address or port: sessions to the old one are useless. */
  moved: [member: RosterMember]
}

// phi 3: about one chance in a thousand that a member this late is alive: suspect it
export const DEFAULT_SUSPECT_PHI = 3
// phi 8: one chance in 10⁸: dead (≈0.9 s of silence at a 100 ms heartbeat)
export const DEFAULT_DEAD_PHI = 8
// 50 ms: the least time between two evaluations of phi
export const DEFAULT_TICK_MS = 50
// 1 s: the most; each evaluation is otherwise timed for when the earliest member would cross a threshold
const MAX_TICK_MS = 1000
// 200 ms: a tick this much later than due means this process stood still (event loop blocked,
// CPU starved, SIGSTOP); every member then looks silent, though its datagrams wait unread
export const LOCAL_PAUSE_MS = 200

export interface RosterOptions {
  suspectPhi?: number
  deadPhi?: number
  tickMs?: number
  now?: () => number
  logger?: Logger
}

/**
 * Everyone heard on the multicast group, each with a failure-detector state.
 * Members appear from their announcements; a new boot id of a known id is a
 * restart; a goodbye makes a member dead at once.
 */
export class Roster extends EventEmitter<RosterEvents> {
  private readonly members = new Map<string, { member: RosterMember, detector: PhiAccrualDetector }>()
  private readonly suspectPhi: number
  private readonly deadPhi: number
  private readonly tickMs: number
  private readonly now: () => number
  private readonly logger: Logger
  private timer: NodeJS.Timeout | undefined
  private lastTick: number | undefined
  // when the scheduled evaluation is due (this clock); undefined for one called by hand
  private dueAt: number | undefined
  private channel: MulticastChannel | undefined
  private readonly onMessage = (msg: AnyEnvelope): void => {
    if (msg.t === 'announce') this.observe(msg.body)
    else if (msg.t === 'goodbye') this.goodbye(msg.body)
  }

  constructor (options: RosterOptions = {}) {
    super()
    this.suspectPhi = options.suspectPhi ?? DEFAULT_SUSPECT_PHI
    this.deadPhi = options.deadPhi ?? DEFAULT_DEAD_PHI
    if (!(this.suspectPhi > 0 && this.deadPhi > this.suspectPhi)) throw new TypeError('need 0 < suspectPhi < deadPhi')
    this.tickMs = options.tickMs ?? DEFAULT_TICK_MS
    this.now = options.now ?? Date.now
    this.logger = options.logger ?? silentLogger()
  }

  /**
   * Listens on a channel and evaluates the detector when the first member
   * could cross a threshold (at most every 50 ms, at least every second): a
   * manager wakes a few times a second for its detector, whatever the size of
   * the cluster, and still finds a silence as soon as it is long enough.
   */
  start (channel: MulticastChannel): void {
    if (this.channel !== undefined) return
    this.channel = channel
    channel.on('message', this.onMessage)
    this.schedule(this.tickMs)
  }

  close (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.channel?.off('message', this.onMessage)
    this.channel = undefined
  }

  list (): RosterMember[] {
    return [...this.members.values()].map((e) => e.member)
  }

  get (id: string): RosterMember | undefined {
    return this.members.get(id)?.member
  }

  private schedule (delayMs: number): void {
    clearTimeout(this.timer)
    const delay = Math.min(MAX_TICK_MS, Math.max(this.tickMs, Math.ceil(delayMs)))
    this.dueAt = this.now() + delay
    this.timer = setTimeout(() => {
      this.timer = undefined
      this.tick()
      if (this.channel !== undefined) this.schedule(this.untilNextCrossing())
    }, delay)
  }

  /** ms until the first member that is not dead could reach its next threshold. */
  private untilNextCrossing (): number {
    const now = this.now()
    let soonest = MAX_TICK_MS
    for (const { member, detector } of this.members.values()) {
      if (member.state === 'dead') continue
      const threshold = member.state === 'healthy' ? this.suspectPhi : this.deadPhi
      soonest = Math.min(soonest, member.lastHeard + detector.silenceToReach(threshold) - now)
    }
    return soonest
  }

  /** A new detector may cross before the evaluation scheduled: move it earlier. */
  private watch (detector: PhiAccrualDetector, now: number): void {
    if (this.channel === undefined || this.dueAt === undefined) return
    const at = now + detector.silenceToReach(this.suspectPhi)
    if (at < this.dueAt) this.schedule(at - now)
  }

  observe (a: Announcement): void {
    const now = this.now()
    const known = this.members.get(a.id)
    if (known === undefined) {
      const member: RosterMember = { id: a.id, role: a.role, center: a.center, slot: a.slot, address: a.address, port: a.port, bootId: a.bootId, heartbeatMs: a.heartbeatMs, free: a.free, files: a.files, quarantined: a.quarantined ?? 0, scrub: a.scrub, httpPort: a.httpPort, state: 'healthy', lastHeard: now, since: now, restarts: 0, reason: 'announced' }
      const detector = new PhiAccrualDetector(a.heartbeatMs)
      detector.heartbeat(now)
      this.members.set(a.id, { member, detector })
      this.watch(detector, now)
      this.logger.info('member joined', { member: a.id, role: a.role, center: a.center, slot: a.slot, address: `${a.address}:${a.port}`, bootId: a.bootId })
      this.emit('join', member)
      return
    }
    const { member } = known
    const restarted = member.bootId !== a.bootId
    const repaced = member.heartbeatMs !== a.heartbeatMs
    const previousBootId = member.bootId
    const moved = member.address !== a.address || member.port !== a.port
    Object.assign(member, {
      role: a.role,
      center: a.center,
      slot: a.slot,
      address: a.address,
      port: a.port,
      bootId: a.bootId,
      heartbeatMs: a.heartbeatMs,
      free: a.free,
      files: a.files,
      quarantined: a.quarantined ?? 0,
      scrub: a.scrub,
      httpPort: a.httpPort,
      lastHeard: now
    })
    // A new process, or a new period: the timing history says nothing about what comes.
    if (restarted || repaced) {
      known.detector = new PhiAccrualDetector(a.heartbeatMs)
      this.watch(known.detector, now)
    }
    if (restarted) {
      member.restarts++
      this.logger.warn('member restarted', { member: a.id, previousBootId, bootId: a.bootId })
      this.emit('restart', member, previousBootId)
    }
    if (moved && !restarted) {
      this.logger.info('member moved', { member: a.id, address: `${a.address}:${a.port}` })
      this.emit('moved', member)
    }
    known.detector.heartbeat(now)
    if (member.state !== 'healthy') this.transition(member, 'healthy', restarted ? 'restarted' : 'heard again')
  }

  goodbye (g: MessageBody<'goodbye'>): void {
    const known = this.members.get(g.id)
    if (known === undefined || known.member.bootId !== g.bootId) return
    this.transition(known.member, 'dead', 'said goodbye')
  }

  /** Re-evaluates every member's phi; called every tick, or by hand with a test clock. */
  tick (): void {
    const now = this.now()
    if (this.pausedHere(now)) return
    for (const { member, detector } of this.members.values()) {
      if (member.state === 'dead') continue
      const phi = detector.phi(now)
      if (phi >= this.deadPhi) this.transition(member, 'dead', `silent for ${now - member.lastHeard} ms (phi ${phi.toFixed(1)})`)
      else if (phi >= this.suspectPhi && member.state === 'healthy') this.transition(member, 'suspect', `silent for ${now - member.lastHeard} ms (phi ${phi.toFixed(1)})`)
    }
  }

  /**
   * Whether this process itself just stood still. Then the silence measured is
   * ours: the verdict waits one tick, so that the datagrams queued in the socket
   * meanwhile are read first (timers run before I/O in Node's loop). A member
   * that really went silent is found one tick later.
   */
  private pausedHere (now: number): boolean {
    const last = this.lastTick
    const due = this.dueAt ?? (last === undefined ? undefined : last + this.tickMs)
    this.lastTick = now
    this.dueAt = undefined
    if (due === undefined || now - due <= LOCAL_PAUSE_MS) return false
    // the next evaluation comes 50 ms on at the soonest: the datagrams waiting are read first
    this.logger.warn('this process stood still: failure verdicts wait for the datagrams it has not read', { pausedMs: now - due })
    return true
  }

  phi (id: string): number {
    const known = this.members.get(id)
    return known === undefined ? 0 : known.detector.phi(this.now())
  }

  private transition (member: RosterMember, to: MemberState, reason: string): void {
    const from = member.state
    if (from === to) return
    member.state = to
    member.since = this.now()
    member.reason = reason
    this.logger.log(to === 'healthy' ? 'info' : 'warn', 'member state changed', { member: member.id, role: member.role, center: member.center, slot: member.slot, from, to, reason })
    this.emit('change', member, from, reason)
  }
}

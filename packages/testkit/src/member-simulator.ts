import { randomBytes } from 'node:crypto'
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised'
import { CadenceFollower, MulticastChannel, type MulticastOptions } from '@mirrorcast/discovery'
import { AnnouncementEncoder, encodeDatagram, type AnyEnvelope, type MessageBody } from '@mirrorcast/wire'

type Role = MessageBody<'announce'>['role']

export interface MemberSimulatorOptions extends Pick<MulticastOptions, 'key' | 'cluster' | 'group' | 'searchGroup' | 'port' | 'interface' | 'logger'> {
  /** How many members to play. */
  count: number
  /** Their configured heartbeat; a manager's cadence may make it longer, as for a real member. */
  heartbeatMs?: number
  /** The role they announce; `manager` keeps them out of a real manager's data path (no sessions, no placement). */
  role?: Role
  /** Search keys every simulated member says it holds. */
  holds?: ReadonlySet<string>
  /** Prefix of their ids, `sim-<n>` by default. */
  idPrefix?: string
}

interface SimulatedMember {
  id: string
  bootId: string
  center: string
  slot: number
  /** Numbered as a channel numbers them: announcements and goodbyes apart from replies. */
  seq: { announcements: number, others: number }
  encoder: AnnouncementEncoder
  nextAt: number
  stopped: boolean
}

// 10 ms: the simulator's clock; each member's heartbeats are due on it, their phases spread over the period
const STEP_MS = 10

/**
 * A test tool that plays many members in one process with real signed
 * datagrams: each announces itself at its period (following the managers'
 * cadence), says goodbye or falls silent when told, and answers searches for
 * the keys it is told to hold after a random delay in the asker's window, as
 * MemberPresence does. It reuses the cluster's own encoders and channel; it
 * serves no node protocol, so a manager's discovery can be measured at a
 * thousand members on one machine.
 */
export class MemberSimulator {
  readonly members: SimulatedMember[]
  private readonly options: MemberSimulatorOptions & { heartbeatMs: number, role: Role, holds: ReadonlySet<string> }
  private readonly channel: MulticastChannel
  private readonly cadence: CadenceFollower
  private socket: SocketAsPromised | undefined
  private timer: NodeJS.Timeout | undefined
  private readonly replies = new Set<NodeJS.Timeout>()
  private periodMs: number
  sent = { datagrams: 0, bytes: 0, replies: 0, errors: 0 }

  constructor (options: MemberSimulatorOptions) {
    if (!Number.isInteger(options.count) || options.count < 1 || options.count > 60_000) throw new TypeError('simulate 1 to 60000 members')
    this.options = { heartbeatMs: 100, role: 'manager', holds: new Set(), ...options }
    this.periodMs = this.options.heartbeatMs
    this.cadence = new CadenceFollower(this.options.heartbeatMs)
    const prefix = options.idPrefix ?? 'sim'
    const now = Date.now()
    this.members = Array.from({ length: options.count }, (_, i) => {
      const id = `${prefix}-${i}`
      const center = i % 2 === 0 ? 'east' : 'west'
      const nextAt = now + Math.random() * this.periodMs
      return { id, bootId: randomBytes(6).toString('hex'), center, slot: 1 + Math.floor(i / 2), seq: { announcements: now * 1000, others: now * 1000 }, encoder: new AnnouncementEncoder(options.key, id), nextAt, stopped: false }
    })
    this.channel = new MulticastChannel(`${prefix}-listener`, { ...this.multicastOptions(), join: ['searches'] })
  }

  private multicastOptions (): MulticastOptions {
    const { key, ...rest } = this.options
    const { cluster, group, searchGroup, port, logger } = rest
    const given = Object.entries({ cluster, group, searchGroup, port, interface: rest.interface, logger }).filter(([, v]) => v !== undefined)
    return { key, ...Object.fromEntries(given) }
  }

  /** The period the members announce at now. */
  get heartbeatMs (): number {
    return this.periodMs
  }

  async start (): Promise<void> {
    if (this.socket !== undefined) return
    this.channel.on('message', this.onMessage)
    await this.channel.start()
    const socket = DgramAsPromised.createSocket({ type: 'udp4' })
    await socket.bind(0, this.channel.options.interface)
    socket.setMulticastInterface(this.channel.options.interface)
    socket.setMulticastTTL(this.channel.options.ttl)
    socket.socket.on('error', () => { this.sent.errors++ })
    this.socket = socket
    this.timer = setInterval(() => { this.step() }, STEP_MS)
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    for (const t of this.replies) clearTimeout(t)
    this.replies.clear()
    this.channel.off('message', this.onMessage)
    await this.channel.close()
    await this.socket?.close()
    this.socket = undefined
  }

  /** Member `i` stops: silently, as on kill -9, or with a goodbye as on a clean stop. */
  stop (i: number, how: 'silent' | 'goodbye' = 'silent'): string {
    const m = this.member(i)
    m.stopped = true
    if (how === 'goodbye') this.send(encodeDatagram(this.options.key, { t: 'goodbye', from: m.id, seq: ++m.seq.announcements, body: { cluster: this.channel.options.cluster, id: m.id, role: this.options.role, bootId: m.bootId } }), this.channel.options.group)
    return m.id
  }

  /** Member `i` comes back as a new process (a new boot id). */
  restart (i: number): void {
    const m = this.member(i)
    m.stopped = false
    m.bootId = randomBytes(6).toString('hex')
    m.nextAt = Date.now()
  }

  private member (i: number): SimulatedMember {
    const m = this.members[i]
    if (m === undefined) throw new RangeError(`no simulated member ${i}`)
    return m
  }

  private readonly onMessage = (msg: AnyEnvelope): void => {
    if (msg.t === 'cadence') this.periodMs = this.cadence.follow(msg.from, msg.body.heartbeatMs)
    else if (msg.t === 'search') this.answer(msg.body)
  }

  private step (): void {
    const now = Date.now()
    for (const m of this.members) {
      if (m.stopped || m.nextAt > now) continue
      // the next one is due a period on; a simulator that fell behind does not send a burst to catch up
      m.nextAt = Math.max(m.nextAt + this.periodMs, now)
      this.send(m.encoder.encode(this.announcement(m), ++m.seq.announcements, now), this.channel.options.group)
    }
  }

  private announcement (m: SimulatedMember): MessageBody<'announce'> {
    const { cluster, interface: address } = this.channel.options
    return { cluster, id: m.id, role: this.options.role, center: m.center, slot: m.slot, address, port: 1, bootId: m.bootId, heartbeatMs: this.periodMs, free: 0, files: 0 }
  }

  private answer (q: MessageBody<'search'>): void {
    if (!this.options.holds.has(q.key)) return
    for (const m of this.members) {
      if (m.stopped || (q.center !== undefined && q.center !== m.center)) continue
      const timer = setTimeout(() => {
        this.replies.delete(timer)
        const { id, center, slot, bootId } = m
        const reply: MessageBody<'search.reply'> = { cluster: this.channel.options.cluster, queryId: q.queryId, id, role: this.options.role, center, slot, address: this.channel.options.interface, port: 1, bootId, size: 0 }
        this.send(encodeDatagram(this.options.key, { t: 'search.reply', from: m.id, seq: ++m.seq.others, body: reply }), q.replyAddress, q.replyPort)
        this.sent.replies++
      }, Math.random() * q.windowMs)
      this.replies.add(timer)
    }
  }

  private send (buf: Buffer, address: string, port = this.channel.options.port): void {
    this.sent.datagrams++
    this.sent.bytes += buf.length
    this.socket?.socket.send(buf, port, address)
  }
}

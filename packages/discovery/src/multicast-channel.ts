import { EventEmitter } from 'node:events'
import type { RemoteInfo } from 'node:dgram'
import DgramAsPromised, { type SocketAsPromised } from 'dgram-as-promised'
import { AnnouncementEncoder, DatagramDecoder, encodeDatagram, isWireError, type AnyEnvelope, type MessageBody } from '@mirrorcast/wire'
import { resolveMulticastOptions, type MulticastOptions, type Peer, type ResolvedMulticastOptions } from './options.js'
import { DiscoveryError, DiscoveryErrorCode } from './errors.js'
import { ReplayWindows } from './replay-window.js'

export type DropReason = 'bad-mac' | 'missing-mac' | 'oversize' | 'malformed' | 'unknown-type' | 'unknown-version' | 'foreign-cluster' | 'replayed' | 'stale'

export interface Dropped { reason: DropReason, from: string }

export type DatagramType = 'announce' | 'goodbye' | 'search' | 'search.reply' | 'cadence'

/** Which socket a datagram came in on: a group's, or the unicast one (replies, static peers). */
export type Via = 'group' | 'unicast'

export interface ChannelEvents {
  message: [msg: AnyEnvelope, rinfo: RemoteInfo, via: Via]
  drop: [reason: DropReason, rinfo: RemoteInfo]
}

// 1 MiB: room for a burst of search replies from hundreds of nodes
const RECV_BUFFER_BYTES = 1024 * 1024
// 4,096 senders remembered for replay checks (a window is 32 bytes); the one silent the longest is forgotten first
const MAX_TRACKED_SENDERS = 4096

/** Announcements and goodbyes: sent to the announcements' group and every static peer, numbered apart. */
const isAnnouncement = (t: string): boolean => t === 'announce' || t === 'goodbye'

const DROP_REASON_BY_CODE: Record<string, DropReason> = {
  ERR_WIRE_BAD_MAC: 'bad-mac',
  ERR_WIRE_MISSING_MAC: 'missing-mac',
  ERR_WIRE_OVERSIZE: 'oversize',
  ERR_WIRE_UNKNOWN_TYPE: 'unknown-type',
  ERR_WIRE_UNKNOWN_VERSION: 'unknown-version'
}

/**
 * The multicast protocol's sockets: one per group the channel joins (bound to
 * the group's address, so it hears nothing else), and one unicast socket on the
 * interface that sends everything and receives direct replies and static
 * peers' announcements. Announcements and searches have groups of their own, so
 * that a storage node, which joins only the searches' group, is never woken by
 * the heartbeats of the cluster. With multicast off there is only the unicast socket.
 * Every datagram is signed; one that fails the MAC, names another cluster, is
 * stale or replayed is dropped and counted, never trusted nor thrown.
 */
export class MulticastChannel extends EventEmitter<ChannelEvents> {
  readonly options: ResolvedMulticastOptions
  readonly selfId: string
  private groups: SocketAsPromised[] = []
  private unicast: SocketAsPromised | undefined
  // Starts at the clock in µs: a restarted sender's numbers stay above its old ones.
  // Announcements and goodbyes count apart from the rest (searches, replies, cadences): the gaps
  // a listener sees between a member's announcements are then lost heartbeats, nothing else.
  private seq = { announcements: Date.now() * 1000, others: Date.now() * 1000 }
  private readonly windows: ReplayWindows
  private readonly announcements: AnnouncementEncoder
  private readonly decoder: DatagramDecoder
  // where announcements go: the group (multicast on) and every static peer
  private readonly announceTo: Peer[]
  readonly dropped: Record<DropReason, number> = { 'bad-mac': 0, 'missing-mac': 0, oversize: 0, malformed: 0, 'unknown-type': 0, 'unknown-version': 0, 'foreign-cluster': 0, replayed: 0, stale: 0 }
  /** Source addresses of the last refused datagrams, by reason (for diagnostics). */
  readonly droppedFrom = new Map<DropReason, Set<string>>()
  received = 0

  constructor (selfId: string, options: MulticastOptions) {
    super()
    this.selfId = selfId
    this.options = resolveMulticastOptions(options)
    this.windows = new ReplayWindows({ maxAgeMs: 2 * this.options.maxSkewMs, maxSenders: MAX_TRACKED_SENDERS })
    this.announcements = new AnnouncementEncoder(this.options.key, selfId)
    this.decoder = new DatagramDecoder(this.options.key, MAX_TRACKED_SENDERS)
    const { multicast, group, port, peers } = this.options
    this.announceTo = multicast ? [{ address: group, port }, ...peers] : peers
  }

  /** Where direct replies to this member go. */
  get replyAddress (): { address: string, port: number } {
    if (this.unicast === undefined) throw new DiscoveryError(DiscoveryErrorCode.NOT_STARTED, 'multicast channel not started')
    const a = this.unicast.address()
    return { address: a.address, port: a.port }
  }

  async start (): Promise<void> {
    if (this.unicast !== undefined) return
    const { interface: iface, ttl, multicast, peerPort } = this.options
    const unicast = DgramAsPromised.createSocket({ type: 'udp4' })
    this.unicast = unicast
    this.listen(unicast, 'unicast')
    await unicast.bind(peerPort, iface)
    unicast.setRecvBufferSize(RECV_BUFFER_BYTES)
    if (!multicast) return
    for (const name of this.options.join) await this.joinGroup(name === 'announcements' ? this.options.group : this.options.searchGroup)
    unicast.setMulticastInterface(iface)
    unicast.setMulticastTTL(ttl)
    unicast.setMulticastLoopback(true)
  }

  private async joinGroup (address: string): Promise<void> {
    const group = DgramAsPromised.createSocket({ type: 'udp4', reuseAddr: true })
    this.groups.push(group)
    this.listen(group, 'group')
    await group.bind(this.options.port, address)
    group.addMembership(address, this.options.interface)
    group.setRecvBufferSize(RECV_BUFFER_BYTES)
  }

  private listen (s: SocketAsPromised, via: Via): void {
    s.socket.on('message', (buf, rinfo) => this.onDatagram(buf, rinfo, via))
    // A socket error (e.g. EHOSTUNREACH on send) is the network's, not a crash of ours.
    s.socket.on('error', (err) => this.options.logger.warn('multicast socket error', { error: err.message }))
  }

  async close (): Promise<void> {
    const sockets = [...this.groups, this.unicast]
    this.groups = []
    this.unicast = undefined
    await Promise.all(sockets.map(async (s) => {
      if (s === undefined) return
      s.socket.removeAllListeners('message')
      await s.close()
    }))
  }

  /** Sends a signed datagram to the searches' group; refused when multicast is off. */
  async multicast<T extends 'search' | 'cadence'> (t: T, body: MessageBody<T>): Promise<void> {
    if (!this.options.multicast) throw new DiscoveryError(DiscoveryErrorCode.MULTICAST_OFF, 'multicast is off (--no-multicast): nothing can be sent to the group, so there is no multicast search')
    await this.send(this.encode(t, body), [{ address: this.options.searchGroup, port: this.options.port }])
  }

  /**
   * Sends one datagram to the group (when multicast is on) and to every static
   * peer: the same bytes under one sequence number, so that a listener can
   * count lost heartbeats from the gaps between the numbers it hears.
   */
  async announce<T extends 'announce' | 'goodbye'> (t: T, body: MessageBody<T>): Promise<void> {
    await this.send(this.encode(t, body), this.announceTo)
  }

  /**
   * The heartbeat's path, run ten times a second by every member: `announce`
   * without a promise per destination. `done` gets the first error once every
   * destination was tried.
   */
  heartbeat (body: MessageBody<'announce'>, done: (err: Error | undefined) => void): void {
    const socket = this.unicast?.socket
    if (socket === undefined) {
      done(new DiscoveryError(DiscoveryErrorCode.NOT_STARTED, 'multicast channel not started'))
      return
    }
    const buf = this.announcements.encode(body, ++this.seq.announcements)
    const to = this.announceTo
    let left = to.length
    let first: Error | undefined
    if (left === 0) done(undefined)
    for (const d of to) {
      socket.send(buf, d.port, d.address, (err) => {
        first ??= err ?? undefined
        if (--left === 0) done(first)
      })
    }
  }

  /** Sends a signed datagram to one member (search replies). */
  async sendTo<T extends DatagramType> (t: T, body: MessageBody<T>, port: number, address: string): Promise<void> {
    await this.send(this.encode(t, body), [{ address, port }])
  }

  private encode<T extends DatagramType> (t: T, body: MessageBody<T>): Buffer {
    const seq = isAnnouncement(t) ? ++this.seq.announcements : ++this.seq.others
    return encodeDatagram(this.options.key, { t, from: this.selfId, seq, body })
  }

  /** Tries every destination; the first failure is thrown once all were tried. */
  private async send (buf: Buffer, to: Peer[]): Promise<void> {
    const socket = this.unicast
    if (socket === undefined) throw new DiscoveryError(DiscoveryErrorCode.NOT_STARTED, 'multicast channel not started')
    const results = await Promise.allSettled(to.map(async (d) => await socket.send(buf, d.port, d.address)))
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')
    if (failed !== undefined) throw failed.reason
  }

  private onDatagram (buf: Buffer, rinfo: RemoteInfo, via: Via): void {
    this.received++
    let msg: AnyEnvelope
    try {
      msg = this.decoder.decode(buf)
    } catch (err) {
      const code = isWireError(err) ? err.code : ''
      this.drop(DROP_REASON_BY_CODE[code] ?? 'malformed', rinfo)
      return
    }
    if (msg.from === this.selfId) return
    const cluster = (msg.body as { cluster?: unknown }).cluster
    if (cluster !== this.options.cluster) {
      this.drop('foreign-cluster', rinfo)
      return
    }
    if (Math.abs(Date.now() - msg.ts) > this.options.maxSkewMs) {
      this.drop('stale', rinfo)
      return
    }
    if (!this.windows.accept(isAnnouncement(msg.t) ? msg.from : `${msg.from}\u0000others`, msg.seq)) {
      this.drop('replayed', rinfo)
      return
    }
    this.emit('message', msg, rinfo, via)
  }

  private drop (reason: DropReason, rinfo: RemoteInfo): void {
    this.dropped[reason]++
    let from = this.droppedFrom.get(reason)
    if (from === undefined) this.droppedFrom.set(reason, from = new Set())
    if (from.size < 64) from.add(rinfo.address)
    this.options.logger.debug('datagram dropped', { reason, from: `${rinfo.address}:${rinfo.port}` })
    this.emit('drop', reason, rinfo)
  }
}

import { isIPv4 } from 'node:net'
import { clusterSchema } from '@mirrorcast/wire'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { DiscoveryError, DiscoveryErrorCode } from './errors.js'

// 239.192.0.0/14 is organisation-local scope (RFC 2365): never routed off a site
export const DEFAULT_GROUP = '239.192.77.1'
// 239.192.77.2: searches (and the managers' cadence) go to a group of their own, which storage
// nodes and directory servers join instead of the announcements' group: they never hear heartbeats
export const DEFAULT_SEARCH_GROUP = '239.192.77.2'
// 7700: UDP port of the cluster's multicast groups
export const DEFAULT_MULTICAST_PORT = 7700
// 127.0.0.1: multicast stays on this host unless an operator names a LAN interface
export const DEFAULT_INTERFACE = '127.0.0.1'
// 100 ms: heartbeat period; with the detector below a silent member is dead in about 1 s
export const DEFAULT_HEARTBEAT_MS = 100
// 30 s: a datagram stamped further than this from our clock is refused as stale or forged
export const DEFAULT_MAX_SKEW_MS = 30_000
export const DEFAULT_CLUSTER = 'mirrorcast'

/** A static peer: where a member's unicast discovery socket listens. */
export interface Peer {
  address: string
  port: number
}

/** The two groups: announcements (heartbeats, goodbyes) and searches (searches, cadence). */
export type GroupName = 'announcements' | 'searches'

export interface MulticastOptions {
  key: Uint8Array
  /** Cluster name: datagrams of another cluster are dropped and counted. */
  cluster?: string
  /** The announcements' group. */
  group?: string
  /** The searches' group. */
  searchGroup?: string
  /**
   * The groups this channel joins (it may send to both either way): managers hear the
   * announcements, members the searches. Both by default.
   */
  join?: readonly GroupName[]
  port?: number
  /** Address of the interface to send and join on. */
  interface?: string
  /** 0 keeps datagrams on this host; defaults to 0 on loopback, 1 elsewhere (one LAN segment). */
  ttl?: number
  maxSkewMs?: number
  /** false: nothing joins or sends to the group; announcements go to the static peers only. */
  multicast?: boolean
  /** Members that get every announcement by unicast too (networks that carry no multicast). */
  peers?: Peer[]
  /**
   * UDP port of the unicast socket, where static peers send their announcements.
   * Default: the multicast port when there are static peers or multicast is off
   * (a peer must know where to send), any free port otherwise.
   */
  peerPort?: number
  logger?: Logger
}

export interface ResolvedMulticastOptions {
  key: Uint8Array
  cluster: string
  group: string
  searchGroup: string
  join: ReadonlySet<GroupName>
  port: number
  interface: string
  ttl: number
  maxSkewMs: number
  multicast: boolean
  peers: Peer[]
  peerPort: number
  logger: Logger
}

export function resolveMulticastOptions (o: MulticastOptions): ResolvedMulticastOptions {
  const fail = (message: string): never => { throw new DiscoveryError(DiscoveryErrorCode.BAD_OPTIONS, message) }
  if (o.key.length < 16) fail('cluster key must be at least 16 bytes')
  const cluster = o.cluster ?? DEFAULT_CLUSTER
  if (!clusterSchema.safeParse(cluster).success) fail(`cluster name ${JSON.stringify(cluster)} must be lowercase letters, digits and dashes`)
  const group = o.group ?? DEFAULT_GROUP
  const searchGroup = o.searchGroup ?? DEFAULT_SEARCH_GROUP
  for (const g of [group, searchGroup]) if (!isMulticast(g)) fail(`multicast group ${g} is not an IPv4 multicast address (224.0.0.0/4)`)
  if (group === searchGroup) fail(`the search group must differ from the announcements' group (${group}): members would hear every heartbeat`)
  const join = new Set<GroupName>(o.join ?? ['announcements', 'searches'])
  const iface = o.interface ?? DEFAULT_INTERFACE
  if (!isIPv4(iface)) fail(`interface ${iface} must be the IPv4 address of an interface`)
  const port = o.port ?? DEFAULT_MULTICAST_PORT
  if (!validPort(port)) fail(`multicast port ${port} must be 1 to 65535`)
  const ttl = o.ttl ?? (iface.startsWith('127.') ? 0 : 1)
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) fail(`TTL ${ttl} must be 0 to 255`)
  const maxSkewMs = o.maxSkewMs ?? DEFAULT_MAX_SKEW_MS
  const multicast = o.multicast ?? true
  const peers = o.peers ?? []
  for (const p of peers) if (!isIPv4(p.address) || !validPort(p.port)) fail(`static peer ${p.address}:${p.port} must be an IPv4 address and a port 1 to 65535`)
  const peerPort = o.peerPort ?? (!multicast || peers.length > 0 ? port : 0)
  if (peerPort !== 0 && !validPort(peerPort)) fail(`peer port ${peerPort} must be 1 to 65535`)
  return { key: o.key, cluster, group, searchGroup, join, port, interface: iface, ttl, maxSkewMs, multicast, peers, peerPort, logger: o.logger ?? silentLogger() }
}

function isMulticast (address: string): boolean {
  const first = Number(address.split('.')[0])
  return isIPv4(address) && first >= 224 && first <= 239
}

function validPort (port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535
}

/**
 * `10.1.0.1:7700,10.2.0.1` → static peers; an entry without a port gets
 * `defaultPort` (the multicast port, which is also the default peer port).
 */
export function parsePeers (list: string | string[], defaultPort = DEFAULT_MULTICAST_PORT): Peer[] {
  const entries = (Array.isArray(list) ? list : list.split(',')).map((e) => e.trim()).filter((e) => e !== '')
  return entries.map((entry) => {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})(?::(\d{1,5}))?$/.exec(entry)
    const peer = m === null ? undefined : { address: m[1] as string, port: m[2] === undefined ? defaultPort : Number(m[2]) }
    if (peer === undefined || !isIPv4(peer.address) || !validPort(peer.port)) {
      throw new DiscoveryError(DiscoveryErrorCode.BAD_OPTIONS, `static peer ${JSON.stringify(entry)} must be an IPv4 address with an optional port, e.g. 10.1.0.1:7700`)
    }
    return peer
  })
}

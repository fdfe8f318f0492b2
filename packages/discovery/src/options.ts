import { isIPv4 } from 'node:net'
import { clusterSchema } from '@mirrorcast/wire'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { DiscoveryError, DiscoveryErrorCode } from './errors.js'

// 239.192.0.0/14 is organisation-local scope (RFC 2365): never routed off a site
export const DEFAULT_GROUP = '239.192.77.1'
// 7700: UDP port of the cluster's multicast group
export const DEFAULT_MULTICAST_PORT = 7700
// 127.0.0.1: multicast stays on this host unless an operator names a LAN interface
export const DEFAULT_INTERFACE = '127.0.0.1'
// 100 ms: heartbeat period; with the detector below a silent member is dead in about 1 s
export const DEFAULT_HEARTBEAT_MS = 100
// 30 s: a datagram stamped further than this from our clock is refused as stale or forged
export const DEFAULT_MAX_SKEW_MS = 30_000
export const DEFAULT_CLUSTER = 'mirrorcast'

export interface MulticastOptions {
  key: Uint8Array
  /** Cluster name: datagrams of another cluster are dropped and counted. */
  cluster?: string
  group?: string
  port?: number
  /** Address of the interface to send and join on. */
  interface?: string
  /** 0 keeps datagrams on this host; defaults to 0 on loopback, 1 elsewhere (one LAN segment). */
  ttl?: number
  maxSkewMs?: number
  logger?: Logger
}

export interface ResolvedMulticastOptions {
  key: Uint8Array
  cluster: string
  group: string
  port: number
  interface: string
  ttl: number
  maxSkewMs: number
  logger: Logger
}

export function resolveMulticastOptions (o: MulticastOptions): ResolvedMulticastOptions {
  const fail = (message: string): never => { throw new DiscoveryError(DiscoveryErrorCode.BAD_OPTIONS, message) }
  if (o.key.length < 16) fail('cluster key must be at least 16 bytes')
  const cluster = o.cluster ?? DEFAULT_CLUSTER
  if (!clusterSchema.safeParse(cluster).success) fail(`cluster name ${JSON.stringify(cluster)} must be lowercase letters, digits and dashes`)
  const group = o.group ?? DEFAULT_GROUP
  const first = Number(group.split('.')[0])
  if (!isIPv4(group) || first < 224 || first > 239) fail(`multicast group ${group} is not an IPv4 multicast address (224.0.0.0/4)`)
  const iface = o.interface ?? DEFAULT_INTERFACE
  if (!isIPv4(iface)) fail(`interface ${iface} must be the IPv4 address of an interface`)
  const port = o.port ?? DEFAULT_MULTICAST_PORT
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(`multicast port ${port} must be 1 to 65535`)
  const ttl = o.ttl ?? (iface.startsWith('127.') ? 0 : 1)
  if (!Number.isInteger(ttl) || ttl < 0 || ttl > 255) fail(`TTL ${ttl} must be 0 to 255`)
  const maxSkewMs = o.maxSkewMs ?? DEFAULT_MAX_SKEW_MS
  return { key: o.key, cluster, group, port, interface: iface, ttl, maxSkewMs, logger: o.logger ?? silentLogger() }
}

import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { DEFAULT_URL } from '@mirrorcast/client'
import { loadConfigFile, type HostConfig } from '@mirrorcast/config'
import { parsePeers, resolveMulticastOptions, type Peer, type ResolvedMulticastOptions } from '@mirrorcast/discovery'
import { readClusterKeyFile } from '@mirrorcast/wire'
import { DiagError, DiagErrorCode } from './errors.js'
import { DEFAULT_UNDER_REPLICATED_WARN_MS } from './redundancy.js'

/** A node-protocol address that should answer, and where we learned of it. */
export interface Expected {
  address: string
  port: number
  /** e.g. "east/node1", or "this host's node". */
  name: string
}

/** What the diagnostics need to know of a cluster: its discovery settings (`port` is the multicast port), and more. */
export interface DiagSettings extends Pick<ResolvedMulticastOptions, 'key' | 'cluster' | 'group' | 'searchGroup' | 'port' | 'interface' | 'ttl' | 'multicast' | 'peers'> {
  /** [primary, backup] (one center with local twins); when unknown, the centers heard. */
  centers?: string[]
  /** Twins are neighbouring slots of one center (claims 6, 16, 26). */
  localTwins: boolean
  centerSubnets?: Record<string, string>
  expect: Expected[]
  /** How long to listen to the group. */
  listenMs: number
  /** A file id to search for. */
  fileId?: string
  /** Where the settings came from, for the report. */
  source: string
  /** A manager to ask for the pairs' redundancy; none: not checked. */
  managerUrl?: string
  /** The operator named it (`--manager`): not reaching it is a warning, not a check skipped. */
  managerNamed?: boolean
  token?: string
  /** How long a pair may have files with one copy before it is a warning. */
  underReplicatedWarnMs: number
}

/** Settings the operator adds on the command line. */
export interface DiagExtras {
  listenMs?: number
  fileId?: string
  expect?: Expected[]
  centers?: string[]
  localTwins?: boolean
  centerSubnets?: Record<string, string>
  managerUrl?: string
  token?: string
  underReplicatedWarnMs?: number
}

// 3 s: thirty heartbeats at the default period, enough to see loss, rate and skew
export const DEFAULT_LISTEN_MS = 3000

/** From a host's config file (any role): the same group, interface and key as the process it configures. */
export async function settingsFromConfig (file: string, extras: DiagExtras = {}): Promise<DiagSettings> {
  const config = loadConfigFile(file)
  const keyFile = config['key-file']
  if (keyFile === undefined) throw new DiagError(DiagErrorCode.BAD_SETTINGS, `${file} has no key-file: the cluster key is needed to check what is heard`)
  const own = ownAddress(config)
  return build({
    key: await readClusterKeyFile(keyFile),
    cluster: config.cluster,
    group: config.group,
    searchGroup: config['search-group'],
    port: config['mcast-port'],
    interface: config.interface,
    ttl: config.ttl,
    multicast: config.multicast,
    peers: config.peers === undefined ? [] : parsePeers(config.peers, config['mcast-port']),
    centers: config.role === 'manager' ? config.centers : undefined,
    localTwins: config.role === 'manager' ? config['local-twins'] : undefined,
    centerSubnets: config.role === 'manager' ? config['center-subnets'] : undefined,
    expect: own === undefined ? [] : [own],
    managerUrl: config.role === 'manager' ? `http://${config.host ?? '127.0.0.1'}:${config.port ?? new URL(DEFAULT_URL).port}` : undefined,
    source: `config ${file}`
  }, extras)
}

function ownAddress (config: HostConfig): Expected | undefined {
  if (config.role === 'manager' || config.port === undefined || config.port === 0) return undefined
  return { address: config.address ?? '127.0.0.1', port: config.port, name: `this host's ${config.role === 'node' ? 'storage node' : 'directory server'}` }
}

interface UpCluster {
  manager: { url: string, argv: string[] }
  nodes: Array<{ role: string, center: string, slot: number, address: string, port: number }>
}

/** From the data dir of `mirrorcast up`: its cluster.json, cluster.key and the flags it started the manager with. */
export async function settingsFromUpDir (dir: string, extras: DiagExtras = {}): Promise<DiagSettings> {
  const file = join(dir, 'cluster.json')
  let cluster: UpCluster
  try {
    cluster = JSON.parse(await readFile(file, 'utf8')) as UpCluster
  } catch (err) {
    throw new DiagError(DiagErrorCode.BAD_SETTINGS, `cannot read ${file} (is this the data dir of a running \`mirrorcast up\`?): ${(err as Error).message}`, { cause: err })
  }
  const argv = cluster.manager.argv
  const flag = (name: string): string | undefined => { const at = argv.indexOf(name); return at < 0 ? undefined : argv[at + 1] }
  const number = (name: string): number | undefined => flag(name) === undefined ? undefined : Number(flag(name))
  const centers = flag('--centers')?.split(',')
  const subnets = flag('--center-subnets')
  return build({
    key: await readClusterKeyFile(join(dir, 'cluster.key')),
    cluster: flag('--cluster'),
    group: flag('--group'),
    searchGroup: flag('--search-group'),
    port: number('--mcast-port'),
    interface: flag('--interface'),
    ttl: number('--ttl'),
    multicast: !argv.includes('--no-multicast'),
    peers: [],
    centers,
    localTwins: argv.includes('--local-twins'),
    centerSubnets: subnets === undefined ? undefined : Object.fromEntries(subnets.split(',').map((p) => p.split('=') as [string, string])),
    expect: cluster.nodes.map((n) => ({ address: n.address, port: n.port, name: `${n.center}/${n.role === 'storage' ? 'node' : 'dir'}${n.slot}` })),
    managerUrl: cluster.manager.url,
    source: `data dir ${resolve(dir)}`
  }, extras)
}

interface Gathered {
  key: Uint8Array
  cluster: string | undefined
  group: string | undefined
  searchGroup: string | undefined
  port: number | undefined
  interface: string | undefined
  ttl: number | undefined
  multicast: boolean | undefined
  peers: Peer[]
  centers: string[] | undefined
  localTwins: boolean | undefined
  centerSubnets: Record<string, string> | undefined
  expect: Expected[]
  managerUrl?: string | undefined
  source: string
}

/** Fills in the defaults the processes themselves use, so netdiag listens where they talk. */
function build (p: Gathered, extras: DiagExtras): DiagSettings {
  const resolved = resolveMulticastOptions({
    key: p.key,
    ...(p.cluster === undefined ? {} : { cluster: p.cluster }),
    ...(p.group === undefined ? {} : { group: p.group }),
    ...(p.searchGroup === undefined ? {} : { searchGroup: p.searchGroup }),
    ...(p.port === undefined ? {} : { port: p.port }),
    ...(p.interface === undefined ? {} : { interface: p.interface }),
    ...(p.ttl === undefined ? {} : { ttl: p.ttl })
  })
  const listenMs = extras.listenMs ?? DEFAULT_LISTEN_MS
  if (!Number.isInteger(listenMs) || listenMs < 100 || listenMs > 600_000) throw new DiagError(DiagErrorCode.BAD_SETTINGS, 'listen for 0.1 to 600 seconds')
  if (extras.fileId !== undefined && !/^[0-9a-f]{32}$/.test(extras.fileId)) throw new DiagError(DiagErrorCode.BAD_SETTINGS, `file id ${JSON.stringify(extras.fileId)} must be 32 lowercase hex digits (the id in \`mirrorcast stat\`)`)
  const warnMs = extras.underReplicatedWarnMs ?? DEFAULT_UNDER_REPLICATED_WARN_MS
  if (!Number.isSafeInteger(warnMs) || warnMs < 0) throw new DiagError(DiagErrorCode.BAD_SETTINGS, 'the under-replication warning time must be a whole number of seconds')
  const managerUrl = extras.managerUrl ?? p.managerUrl
  const centers = extras.centers ?? p.centers
  const centerSubnets = extras.centerSubnets ?? p.centerSubnets
  return {
    key: p.key,
    cluster: resolved.cluster,
    group: resolved.group,
    searchGroup: resolved.searchGroup,
    port: resolved.port,
    interface: resolved.interface,
    ttl: resolved.ttl,
    multicast: p.multicast ?? true,
    localTwins: extras.localTwins ?? p.localTwins ?? false,
    peers: p.peers,
    ...(centers === undefined ? {} : { centers }),
    ...(centerSubnets === undefined ? {} : { centerSubnets }),
    expect: [...p.expect, ...extras.expect ?? []],
    listenMs,
    ...(extras.fileId === undefined ? {} : { fileId: extras.fileId }),
    ...(managerUrl === undefined ? {} : { managerUrl, managerNamed: extras.managerUrl !== undefined }),
    ...(extras.token === undefined ? {} : { token: extras.token }),
    underReplicatedWarnMs: warnMs,
    source: p.source
  }
}

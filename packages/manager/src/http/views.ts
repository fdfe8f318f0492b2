import type { BodyCache } from '../objects/body-cache.js'
import type { Entry, FileEntry, ReconcileStatus } from '@mirrorcast/wire'
import type { Member, Membership } from '../cluster/membership.js'
import type { IntegrityStats } from '../objects/integrity.js'

/** A storage pair's last reconciliation, and what has one copy now. */
export type PairReplication = ReconcileStatus & { oneCopy: { files: number, bytes: number } }

/** What of the membership the views read. */
export type MemberDirectory = Pick<Membership, 'byId' | 'find' | 'view' | 'pairViews'>

/** An entry as the API shows it: a file with its replicas' addresses as they are now. */
export function entryView (entry: Entry, members: MemberDirectory): Record<string, unknown> {
  const name = entry.path === '/' ? '/' : entry.path.slice(entry.path.lastIndexOf('/') + 1)
  if (entry.type === 'dir') return { path: entry.path, name, type: 'dir', version: entry.version, mtime: new Date(entry.mtime).toISOString() }
  return { ...fileView(entry, members), name }
}

function fileView (entry: FileEntry, members: MemberDirectory): Record<string, unknown> {
  return {
    path: entry.path,
    type: 'file',
    id: entry.fileId,
    size: entry.size,
    sha256: entry.sha256,
    version: entry.version,
    mtime: new Date(entry.mtime).toISOString(),
    replicas: entry.replicas.map((r) => ({ node: r.node, center: r.center, slot: r.slot, address: (members.byId(r.node) ?? members.find('storage', r.center, r.slot))?.address ?? null }))
  }
}

export interface ClusterInfo {
  manager: { id: string, url: string, bodyCache: ReturnType<BodyCache['stats']> }
  centers: string[]
  twins: string
  directoryPartitions: number
  /** What the manager hears on the announcements' group, and the period its cadence asks of every member. */
  discovery: { members: number, heartbeatMs: number, maxAnnounceRate: number }
}

/** `GET /cluster`: every member, every twin pair with its replication, the integrity counters. */
export function clusterView (info: ClusterInfo, members: MemberDirectory, integrity: IntegrityStats, replication: Map<number, PairReplication>): Record<string, unknown> {
  return { ...info, nodes: members.view(), pairs: pairsView(members, replication), integrity }
}

const iso = (ms: number): string | null => ms > 0 ? new Date(ms).toISOString() : null

/** A storage pair's redundancy: under-replicated since the earliest of its last round's finding and the failover of a node that is out. */
function replicationView (r: PairReplication, sides: Array<Member | undefined>): Record<string, unknown> {
  const outSince = sides.flatMap((m) => m === undefined || m.usable ? [] : [m.failover?.since ?? Date.now()])
  const since = [r.underReplicatedSince, ...outSince].filter((t) => t > 0)
  return {
    oneCopy: r.oneCopy,
    lost: r.lost,
    underReplicatedSince: since.length === 0 ? null : iso(Math.min(...since)),
    lastReconciled: iso(r.lastCompletedAt),
    lastMs: r.lastMs,
    running: r.running,
    progress: { shardsDone: r.shardsDone, shardsToCompare: r.shardsToCompare },
    copied: r.copied,
    removed: r.removed,
    orphansWaiting: r.orphansWaiting,
    exchangedBytes: r.exchangedBytes,
    by: r.manager
  }
}

/** Every twin pair, storage and directory, with the state of each side: what `mirrorcast status` shows. */
function pairsView (members: MemberDirectory, replication: Map<number, PairReplication>): Array<Record<string, unknown>> {
  type Side = ReturnType<MemberDirectory['pairViews']>[number]['members'][number]
  const side = (m: Side): Record<string, unknown> | null => m === undefined
    ? null
    : {
        id: m.id,
        name: m.name,
        address: m.address,
        status: m.health,
        failover: m.failover === undefined ? null : { since: new Date(m.failover.since).toISOString(), reason: m.failover.reason, manual: m.failover.manual }
      }
  return (['storage', 'directory'] as const).flatMap((role) => members.pairViews(role).map(({ index, members: [p, t] }) => {
    const r = role === 'storage' ? replication.get(index) : undefined
    return { role, index, primary: side(p), twin: side(t), ...(r === undefined ? {} : { replication: replicationView(r, [p, t]) }) }
  }))
}

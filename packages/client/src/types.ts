/**
 * The JSON the manager answers, as README's HTTP API section describes it.
 * Types only: the client does not check the answers' shape (a manager of the
 * same version wrote them), it parses them.
 */

export interface Replica {
  node: string
  center: string
  slot: number
  /** null when the manager no longer knows the node's address. */
  address: string | null
}

export interface FileEntry {
  path: string
  name: string
  type: 'file'
  id: string
  size: number
  sha256: string
  version: number
  mtime: string
  replicas: Replica[]
}

export interface DirEntry {
  path: string
  name: string
  type: 'dir'
  version: number
  mtime: string
}

export type Entry = FileEntry | DirEntry

/** `GET /files/<dir>/`: one page of a directory. */
export interface ListPage {
  path: string
  type: 'dir'
  entries: Entry[]
  /** More entries follow the last one of this page (ask again with `after`). */
  more: boolean
}

/** `DELETE /files/<path>`. */
export interface RemoveResult {
  path: string
  /** Files removed. */
  removed: number
}

export interface FailoverState {
  since: string
  reason: string
  manual: boolean
}

export interface ScrubSummary {
  passes: number
  files: number
  bytes: number
  corrupt: number
}

/** One storage node or directory server in `GET /cluster`, and the answer of a failover or failback. */
export interface MemberView {
  id: string
  role: 'storage' | 'directory'
  center: string
  slot: number
  address: string
  port: number
  twin: string | null
  /** The failure detector's view. */
  state: 'healthy' | 'suspect' | 'dead'
  /** The manager's use of the member. */
  status: 'healthy' | 'suspect' | 'dead' | 'failed-over' | 'resyncing'
  reason: string
  failover: FailoverState | null
  since: string
  bootId: string
  lastHeard: string
  restarts: number
  free: number
  files: number
  quarantined: number
  scrub: ScrubSummary | null
}

export interface PairSide {
  id: string
  name: string
  address: string
  status: MemberView['status']
  failover: FailoverState | null
}

export interface Counts { files: number, bytes: number }

/** A storage pair's redundancy, from its last reconciliation and the manager's repair journal. */
export interface PairReplication {
  /** Bodies known to have one copy only: found so by the last reconciliation and not copied yet, or journaled for a node that is out. */
  oneCopy: Counts
  /** Bodies an entry names that neither node holds. */
  lost: Counts
  /** Since when the pair has had a body with one copy (or a node out); null: both copies of everything. */
  underReplicatedSince: string | null
  /** When the last reconciliation ended; null: none yet. */
  lastReconciled: string | null
  lastMs: number
  running: boolean
  progress: { shardsDone: number, shardsToCompare: number }
  copied: Counts
  removed: Counts
  /** Bodies no entry names, kept until they are older than the grace period. */
  orphansWaiting: number
  exchangedBytes: number
  /** The manager that ran it ("none" before any). */
  by: string
}

export interface PairView {
  role: 'storage' | 'directory'
  index: number
  primary: PairSide | null
  twin: PairSide | null
  /** Storage pairs only. */
  replication?: PairReplication
}

/** A pair's reconciliation round, as `POST /cluster/reconcile` answers it. */
export interface ReconcileRound {
  pair: number
  lastStartedAt: number
  lastCompletedAt: number
  lastMs: number
  shardsToCompare: number
  shardsDone: number
  single: Counts
  lost: Counts
  copied: Counts
  removed: Counts
  orphansWaiting: number
  exchangedBytes: number
  manager: string
}

/** `GET /cluster`. */
export interface ClusterView {
  manager: { id: string, url: string }
  /** Primary center first, then the backup center. */
  centers: string[]
  twins: 'centers' | 'local'
  directoryPartitions: number
  /** Members the manager hears (itself included) and the heartbeat period its cadence asks of them. */
  discovery: { members: number, heartbeatMs: number, maxAnnounceRate: number }
  nodes: MemberView[]
  pairs: PairView[]
  integrity: { restored: number, failed: number }
}

export interface SearchHolder {
  id: string
  center: string
  slot: number
  address: string
  port: number
  size: number
  sha256: string
  /** Reply time. */
  ms: number
}

/** `GET /search`: one round per center asked, the backup center's first. */
export interface SearchResult {
  key: string
  fileId: string
  rounds: Array<{ center: string, holders: SearchHolder[] }>
}

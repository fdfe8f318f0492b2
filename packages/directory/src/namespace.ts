import { createHash } from 'node:crypto'
import { open, type Database, type RootDatabase } from 'lmdb'
import {
  baseName, isWithin, MAX_LIST_ENTRIES, normalizePath, PageBudget, parentPath, placeKeySchema, sameChange, SetDigest, shardName, shardOf, sumShards,
  type Change, type Entry, type FileEntry, type NamedBody
} from '@mirrorcast/wire'
import { DirectoryError, DirectoryErrorCode } from './errors.js'
import {
  checkSlice, listedBeforeItsDirectory, MAX_PARKED_REMOVALS, noTop, pendingPage, removedAnswer, removedPage, sliceMissing, treePage,
  type PendingMoveSummary
} from './pages.js'

/*
 * Layout: like inodes, every directory has a numeric id and an entry's key is
 * <parent dir id: 8 bytes><name>. Listing a directory is one range scan, a
 * rename (even of a huge directory) rewrites one key, and keys stay short
 * whatever the path length.
 */
const ROOT_ID = 0
// 1: the layout of the anti-entropy index; a store without it, or with another, has it rebuilt at open
const INDEX_VERSION = 1
// 10 ms: the longest a state digest hashes between two turns of the event loop (checked every
// 64 keys), so that a busy machine, where each key costs more, does not delay heartbeats either
const STATE_SLICE_MS = 10
const STATE_CHECK_KEYS = 64
// 1,000: changes per page when a twin reads the log
const DEFAULT_CHANGES_PAGE = 1000

type StoredDir = { type: 'dir', dirId: number, version: number, mtime: number }
type StoredFile = Omit<FileEntry, 'path'>
type Stored = StoredDir | StoredFile
/**
 * A pending move-out: its top, whose subtree stays in `nodes` below
 * directories nothing links to any more until the move is done; or, in stores
 * written before, the whole subtree in `tree`.
 */
type OutboxRecord = Omit<PendingMoveSummary, 'entries'> & { entries?: number, top?: Stored, tree?: Entry[] }

export type NewFileEntry = Omit<FileEntry, 'version' | 'mtime'>

/** What the entries of a partition place at one place (`<center>/<slot>`), as of change `seq`. */
export interface PlaceDigest {
  seq: number
  /** Distinct file ids, and the sum of their sizes. */
  files: number
  bytes: number
  /** A SetDigest's bytes. */
  digest: Uint8Array<ArrayBuffer>
}

/** A digest of everything stored (entries, pending moves, staged moves, the anti-entropy index) as of change `seq`. */
export interface StateDigest {
  seq: number
  entries: number
  /** sha256, hex. */
  digest: string
}

/*
 * The anti-entropy index, in its own sub-database and kept in the same
 * transaction as the entries it follows. For every place a replica of a file
 * entry names:
 *   f:<place>:<fileId> -> size (8 bytes) | sha256 (32) | entries naming it (4)
 *   d:<place>:<shard>  -> the shard's 16 SetDigest bytes (absent when all zero)
 *   c:<place>          -> files (8) | bytes (8) (absent when no file)
 * A file id two entries name is one member of the place's set: the set is
 * what the place's storage node must hold. Every file an entry names counts,
 * those of a pending move's outbox and staged slices included, so that bodies
 * on their way between partitions are never taken for orphans (a file counted
 * by both partitions for a while is harmless; one counted by none is not).
 */
const fileKey = (place: string, fileId: string): string => `f:${place}:${fileId}`
const shardKey = (place: string, shard: number): string => `d:${place}:${shardName(shard)}`
const countKey = (place: string): string => `c:${place}`
const FILE_ROW_BYTES = 8 + 32 + 4

function placesOf (file: { replicas: FileEntry['replicas'] }): Set<string> {
  return new Set(file.replicas.map((r) => `${r.center}/${r.slot}`))
}

const isStoredFile = (v: unknown): v is StoredFile => typeof v === 'object' && v !== null && (v as { type?: unknown }).type === 'file'

/** The files a pending move-out holds outside `nodes`: its top, or (stores written before) its whole subtree. */
function outboxFiles (record: OutboxRecord): StoredFile[] {
  const files: StoredFile[] = []
  if (record.top !== undefined && isStoredFile(record.top)) files.push(record.top)
  for (const e of record.tree ?? []) if (e.type === 'file') files.push(e)
  return files
}

function checkPlace (place: string): void {
  if (!placeKeySchema.safeParse(place).success) throw new DirectoryError(DirectoryErrorCode.INVALID, `${JSON.stringify(place).slice(0, 64)} is not a place (<center>/<slot>)`)
}

/** One stored key and value as the state digest hashes it: canonical (sorted fields, bytes in hex), whatever the codec. */
function canonical (value: unknown): string {
  return JSON.stringify(value, function (this: unknown, k: string, v: unknown) {
    const raw = (this as Record<string, unknown>)[k]
    if (raw instanceof Uint8Array) return { bytes: Buffer.from(raw).toString('hex') }
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  })
}

export interface ChangeResult {
  change: Change
  removed: FileEntry[]
  /** `removed` is the first page only: the rest is read with `removedFrom(change.seq, removed.length)`. */
  more?: true
}

function key (dirId: number, name = ''): Buffer {
  const nameBytes = Buffer.from(name, 'utf8')
  const k = Buffer.allocUnsafe(8 + nameBytes.length)
  k.writeBigUInt64BE(BigInt(dirId), 0)
  nameBytes.copy(k, 8)
  return k
}

/*
 * Keys of what a move coming in has staged: the slices that arrived, the
 * directories it made (by the sha256 of their source path, as a path may be
 * longer than a key) and its top. Every key of one intent lies in
 * [`${intent}:`, `${intent};`).
 */
const partKey = (intent: string, part: number): string => `${intent}:part:${String(part).padStart(5, '0')}`
const stagedDirKey = (intent: string, path: string): string => `${intent}:dir:${createHash('sha256').update(path).digest('hex')}`
const topKey = (intent: string): string => `${intent}:top`
const intentRange = (intent: string): { start: string, end: string } => ({ start: `${intent}:`, end: `${intent};` })

function seqKey (seq: number): Buffer {
  const k = Buffer.allocUnsafe(8)
  k.writeBigUInt64BE(BigInt(seq), 0)
  return k
}

function toEntry (path: string, v: Stored): Entry {
  if (v.type === 'dir') return { type: 'dir', path, version: v.version, mtime: v.mtime }
  return { ...v, path }
}

const notFound = (path: string): DirectoryError => new DirectoryError(DirectoryErrorCode.NOT_FOUND, `${path} does not exist`)

/** A sub-database's entry count from LMDB's statistics (mdb_stat, typed `{}` by lmdb-js). */
function entriesOf (db: Database<unknown, Buffer | string>): number {
  return (db.getStats() as { entryCount: number }).entryCount
}

/** What one transaction adds to (or takes from) a place's shard sums and counts. */
class PlaceDelta {
  readonly digest = new SetDigest()
  readonly shards = new Set<number>()
  files = 0
  bytes = 0

  add (fileId: string, sign: 1 | -1, size: number): void {
    this.digest.add(fileId, sign)
    this.shards.add(shardOf(fileId))
    this.files += sign
    this.bytes += sign * size
  }
}

/** The file-system namespace of one directory server, in LMDB. */
export class Namespace {
  private readonly root: RootDatabase
  private readonly nodes: Database<Stored, Buffer>
  private readonly log: Database<Change, Buffer>
  private readonly meta: Database<number, string>
  /** Pending move-outs by intent id (insertion order is not kept: listed by mtime). */
  private readonly outbox: Database<OutboxRecord, string>
  /**
   * What moves coming in staged (partKey, stagedDirKey, topKey). Their entries
   * are already in `nodes`, below directories nothing links to yet.
   */
  private readonly staged: Database<number | Stored, string>
  /** The anti-entropy index (see fileKey, shardKey, countKey). */
  private readonly index: Database<Buffer, string>
  /** The shard sums and counts the open transaction changes, by place (see indexed()). */
  private batch: Map<string, PlaceDelta> | undefined
  /**
   * Removed files of this server's own changes that did not fit their answer,
   * by sequence number (oldest first), until read. In memory, not in LMDB: not
   * part of the replicated state, and encoding megabytes of them inside the
   * change's transaction would hold up this server's heartbeats. A restart
   * loses them, as it would lose the answer.
   */
  private readonly released = new Map<number, FileEntry[]>()

  private constructor (root: RootDatabase) {
    this.root = root
    this.nodes = root.openDB<Stored, Buffer>({ name: 'nodes', keyEncoding: 'binary' })
    this.log = root.openDB<Change, Buffer>({ name: 'changes', keyEncoding: 'binary' })
    this.meta = root.openDB<number, string>({ name: 'meta' })
    this.outbox = root.openDB<OutboxRecord, string>({ name: 'outbox' })
    this.staged = root.openDB<number | Stored, string>({ name: 'staged' })
    this.index = root.openDB<Buffer, string>({ name: 'anti-entropy', encoding: 'binary' })
  }

  /**
   * Opens the store so that a commit resolves only once it is on disk. lmdb-js
   * turns overlappingSync on by default (off Windows): a commit resolves as soon
   * as it is visible, and its fsync follows, so a server would answer changes
   * that a power cut can still take away. Off, LMDB fsyncs before the commit
   * resolves, and every change below is answered after its flush. It measured
   * as fast as awaiting `flushed` after each commit, and readers see a change
   * only at the end of its commit, once its pages are on disk.
   */
  static open (path: string): Namespace {
    const ns = new Namespace(open({ path, compression: false, overlappingSync: false }))
    if (ns.meta.get('indexVersion') !== INDEX_VERSION) ns.rebuildIndex()
    return ns
  }

  /**
   * Builds the anti-entropy index from the entries, in one transaction: at
   * open, for a store written before it (or with another layout).
   */
  rebuildIndex (): void {
    this.root.transactionSync(() => this.indexed(() => {
      for (const k of [...this.index.getKeys()]) this.index.removeSync(k)
      for (const { value } of this.nodes.getRange()) if (value.type === 'file') this.indexFile(value, 1)
      for (const { value } of this.outbox.getRange()) for (const file of outboxFiles(value)) this.indexFile(file, 1)
      for (const { value } of this.staged.getRange()) if (isStoredFile(value)) this.indexFile(value, 1)
      this.meta.putSync('indexVersion', INDEX_VERSION)
    }))
  }

  async close (): Promise<void> {
    await this.root.close()
  }

  /** Sequence number of the last change. */
  get seq (): number {
    return this.meta.get('seq') ?? 0
  }

  /**
   * Entries stored: those of moves under way (out of sight, below their top)
   * included. From LMDB's own statistics, not a count of the keys: every
   * heartbeat announces it, whatever the size of the store.
   */
  get entryCount (): number {
    return entriesOf(this.nodes)
  }

  get pendingMoves (): number {
    return entriesOf(this.outbox)
  }

  /** Pending move-outs, oldest first, as many as fit one page. */
  intents (): { intents: PendingMoveSummary[], more: boolean } {
    return pendingPage(this.outbox.getRange().map(({ value }) => ({ ...value, entries: value.entries ?? value.tree?.length ?? 0 })))
  }

  /** A page of a pending move's subtree, from entry `from` on, read from where it still lies. */
  intentTree (intent: string, from: number): { tree: Entry[], more: boolean } {
    const record = this.outbox.get(intent)
    const move = record === undefined ? undefined : { entries: record.entries ?? record.tree?.length ?? 0 }
    return treePage(move, intent, from, () => record?.tree?.slice(from) ?? (record?.top === undefined ? [] : this.subtreeFrom(record.top, record.path, from)))
  }

  /**
   * A subtree out of sight in pre-order (each directory before what it holds,
   * names in key order, as `walk` lists it), from entry `from` on, read only
   * as far as the caller goes; entries before `from` are passed, not built.
   */
  private * subtreeFrom (top: Stored, path: string, from: number): Generator<Entry> {
    if (from === 0) yield toEntry(path, top)
    if (top.type === 'dir') yield * this.below(top.dirId, path, { index: 1 }, from)
  }

  private * below (dirId: number, path: string, at: { index: number }, from: number): Generator<Entry> {
    for (const { key: k, value } of this.nodes.getRange({ start: key(dirId), end: key(dirId + 1) })) {
      const shown = at.index++ >= from
      if (value.type === 'dir') {
        const childPath = `${path}/${k.subarray(8).toString('utf8')}`
        if (shown) yield toEntry(childPath, value)
        yield * this.below(value.dirId, childPath, at, from)
      } else if (shown) {
        yield toEntry(`${path}/${k.subarray(8).toString('utf8')}`, value)
      }
    }
  }

  /** The removed files of change `seq` that did not fit its answer, from index `from` on; dropped once read to the end. */
  removedFrom (seq: number, from: number): { removed: FileEntry[], more: boolean } {
    const page = removedPage(this.released.get(seq), seq, from)
    if (!page.more) this.released.delete(seq)
    return page
  }

  stat (input: string): Entry {
    const entry = this.lookup(input)
    if (entry === undefined) throw notFound(normalizePath(input))
    return entry
  }

  /** The entry at a path, or undefined: for callers to whom absence is no error. */
  lookup (input: string): Entry | undefined {
    const path = normalizePath(input)
    if (path === '/') return { type: 'dir', path: '/', version: 0, mtime: 0 }
    const { value } = this.resolve(path)
    return value === undefined ? undefined : toEntry(path, value)
  }

  /** A page of a directory: `limit` entries at most, fewer when their bytes fill a page. */
  list (input: string, after?: string, limit = MAX_LIST_ENTRIES): { entries: Entry[], more: boolean } {
    const path = normalizePath(input)
    const dirId = this.dirIdOf(path)
    const page = new PageBudget({ maxItems: Math.min(Math.max(1, limit), MAX_LIST_ENTRIES) })
    const entries: Entry[] = []
    const start = key(dirId, after ?? '')
    for (const { key: k, value } of this.nodes.getRange({ start, end: key(dirId + 1) })) {
      const name = k.subarray(8).toString('utf8')
      if (after !== undefined && name === after) continue
      const entry = toEntry(path === '/' ? `/${name}` : `${path}/${name}`, value)
      if (!page.admit(entry)) return { entries, more: true }
      entries.push(entry)
    }
    return { entries, more: false }
  }

  /** Changes after `after`, in order, as many as fit one page (one at least): what a twin replays. */
  changes (after: number, limit = DEFAULT_CHANGES_PAGE): { changes: Change[], last: number } {
    const page = new PageBudget({ maxItems: Math.min(Math.max(1, limit), MAX_LIST_ENTRIES) })
    const changes: Change[] = []
    for (const { value } of this.log.getRange({ start: seqKey(after + 1) })) {
      if (!page.admit(value)) break
      changes.push(value)
    }
    return { changes, last: this.seq }
  }

  /** The set of file ids the entries place at `place`, as per-shard digests, read from one snapshot. */
  placeDigest (place: string): PlaceDigest {
    checkPlace(place)
    const transaction = this.root.useReadTransaction()
    try {
      const digest = new SetDigest()
      for (const { key: k, value } of this.index.getRange({ start: `d:${place}:`, end: `d:${place};`, transaction })) digest.setShard(parseInt(k.slice(-2), 16), value)
      const counts = this.index.get(countKey(place), { transaction })
      return {
        seq: this.meta.get('seq', { transaction }) ?? 0,
        files: counts === undefined ? 0 : Number(counts.readBigUInt64BE(0)),
        bytes: counts === undefined ? 0 : Number(counts.readBigUInt64BE(8)),
        digest: new Uint8Array(digest.bytes())
      }
    } finally {
      transaction.done()
    }
  }

  /** The files of one shard the entries place at `place`, in file id order from after `after`, as many as fit one page. */
  placeFiles (place: string, shard: number, after?: string): { files: NamedBody[], more: boolean } {
    checkPlace(place)
    if (!Number.isInteger(shard) || shard < 0 || shard > 255) throw new DirectoryError(DirectoryErrorCode.INVALID, `shard ${shard} must be 0 to 255`)
    if (after !== undefined && (!/^[0-9a-f]{32}$/.test(after) || shardOf(after) !== shard)) throw new DirectoryError(DirectoryErrorCode.INVALID, `${after.slice(0, 64)} is not a file id of shard ${shardName(shard)}`)
    const transaction = this.root.useReadTransaction()
    try {
      const page = new PageBudget()
      const files: NamedBody[] = []
      const start = after === undefined ? `f:${place}:${shardName(shard)}` : fileKey(place, after)
      for (const { key: k, value } of this.index.getRange({ start, end: `f:${place}:${shardName(shard)}~`, transaction })) {
        const fileId = k.slice(-32)
        if (fileId === after) continue
        const file = { fileId, size: Number(value.readBigUInt64BE(0)), sha256: value.subarray(8, 40).toString('hex') }
        if (!page.admit(file)) return { files, more: true }
        files.push(file)
      }
      return { files, more: false }
    } finally {
      transaction.done()
    }
  }

  /**
   * A sha256 over every stored key and value of the entries, the pending
   * moves, the staged moves and the anti-entropy index, in key order, all
   * read from one snapshot (as of `seq`, whatever commits meanwhile). It
   * yields to the event loop every STATE_SLICE_MS: a large store does not
   * hold up the server's other requests or its heartbeats.
   */
  async stateDigest (options: { signal?: AbortSignal } = {}): Promise<StateDigest> {
    const transaction = this.root.useReadTransaction()
    try {
      const seq = this.meta.get('seq', { transaction }) ?? 0
      const hash = createHash('sha256')
      let entries = 0
      let read = 0
      let sliceStart = performance.now()
      const dbs: Array<[string, Database<unknown, Buffer | string>]> = [
        ['nodes', this.nodes as Database<unknown, Buffer>], ['outbox', this.outbox], ['staged', this.staged], ['anti-entropy', this.index]
      ]
      for (const [name, db] of dbs) {
        for (const { key: k, value } of db.getRange({ transaction })) {
          if (name === 'nodes') entries++
          hash.update(`${name}\0${typeof k === 'string' ? k : k.toString('hex')}\0${canonical(value)}\n`)
          if (++read % STATE_CHECK_KEYS === 0 && performance.now() - sliceStart > STATE_SLICE_MS) {
            await new Promise<void>((resolve) => setImmediate(resolve))
            options.signal?.throwIfAborted()
            sliceStart = performance.now()
          }
        }
      }
      return { seq, entries, digest: hash.digest('hex') }
    } finally {
      transaction.done()
    }
  }

  async put (entry: NewFileEntry): Promise<ChangeResult> {
    const path = normalizePath(entry.path)
    if (path === '/') throw new DirectoryError(DirectoryErrorCode.IS_A_DIRECTORY, '/ is a directory')
    return await this.commit((seq, mtime) => ({ op: 'put', seq, mtime, entry: { ...entry, path, version: seq, mtime } }))
  }

  async mkdir (input: string, parents: boolean): Promise<ChangeResult> {
    const path = normalizePath(input)
    return await this.commit((seq, mtime) => {
      if (!parents) {
        if (path === '/' || this.resolve(path).value !== undefined) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${path} already exists`)
        this.dirIdOf(parentPath(path))
      }
      return { op: 'mkdir', seq, mtime, path }
    })
  }

  async rename (input: string, toInput: string): Promise<ChangeResult> {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    return await this.commit((seq, mtime) => ({ op: 'rename', seq, mtime, path, to }))
  }

  async remove (input: string, recursive: boolean): Promise<ChangeResult> {
    const path = normalizePath(input)
    return await this.commit((seq, mtime) => ({ op: 'remove', seq, mtime, path, recursive }))
  }

  /**
   * Takes the subtree at `path` out, to be moved to `to` in another partition;
   * it waits in the outbox, read in pages by `intentTree()`.
   */
  async moveOut (input: string, toInput: string, intent: string): Promise<ChangeResult> {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    if (path === '/' || to === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be moved or replaced')
    return await this.commit((seq, mtime) => ({ op: 'move-out', seq, mtime, path, to, intent }))
  }

  /** Stages slice `part` of a subtree moving in, out of sight until its move-in; once moved in, nothing changes. */
  async movePart (input: string, intent: string, part: number, tree: Entry[]): Promise<ChangeResult> {
    const path = normalizePath(input)
    checkSlice(path, tree)
    const done = this.movedIn(intent)
    if (done !== undefined) return done
    return await this.commit((seq, mtime) => ({ op: 'move-part', seq, mtime, path, intent, part, tree }))
  }

  /**
   * Puts a subtree taken out of another partition at `to`: the `parts` slices
   * staged for it, then `tree`, its last one. A second call with the same
   * intent changes nothing.
   */
  async moveIn (input: string, toInput: string, intent: string, tree: Entry[], parts = 0): Promise<ChangeResult> {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    checkSlice(path, tree)
    const done = this.movedIn(intent)
    if (done !== undefined) return done
    return await this.commit((seq, mtime) => ({ op: 'move-in', seq, mtime, path, to, intent, tree, ...(parts > 0 ? { parts } : {}) }))
  }

  /** Asked again (the first answer was lost): the change that moved the intent in, and nothing more to remove. */
  private movedIn (intent: string): ChangeResult | undefined {
    const done = this.meta.get(`moved-in:${intent}`)
    return done === undefined ? undefined : { change: this.log.get(seqKey(done)) as Change, removed: [] }
  }

  /** Drops a pending move-out once its subtree arrived (or came back). */
  async moveDone (intent: string): Promise<ChangeResult> {
    return await this.commit((seq, mtime) => ({ op: 'move-done', seq, mtime, intent }))
  }

  /**
   * Replays changes from the twin's log, in one transaction. Those already
   * applied are skipped; a gap is refused (nothing of the batch is applied):
   * the caller must send the missing changes first. A change other than the
   * one held at its sequence number is refused too: this log diverged (it
   * committed a change of its own there), and skipping the twin's would lose
   * it; the caller rebuilds this server from the twin's log. Returns the new
   * sequence.
   */
  async apply (changes: Change[]): Promise<number> {
    return await this.root.childTransaction(() => this.indexed(() => {
      for (const change of changes) {
        const current = this.seq
        if (change.seq <= current) {
          const held = this.log.get(seqKey(change.seq))
          if (held === undefined || !sameChange(held, change)) throw new DirectoryError(DirectoryErrorCode.DIVERGED, `change ${change.seq} is not the one held at that sequence number`)
          continue
        }
        if (change.seq !== current + 1) throw new DirectoryError(DirectoryErrorCode.SEQ_GAP, `change ${change.seq} does not follow ${current}`)
        // a replay reports nothing: only the server that made a change answers with what it removed
        this.effect(change, false)
        this.record(change)
      }
      return this.seq
    })) as number
  }

  /** Empties everything, in one transaction: a diverged server is rebuilt from its twin's log. */
  async reset (): Promise<void> {
    this.released.clear()
    await this.root.childTransaction(() => {
      for (const db of [this.nodes, this.log]) for (const key of db.getKeys()) db.removeSync(key)
      for (const db of [this.outbox, this.staged]) for (const key of db.getKeys()) db.removeSync(key)
      for (const key of this.index.getKeys()) this.index.removeSync(key)
      for (const key of this.meta.getKeys()) this.meta.removeSync(key)
      this.meta.putSync('indexVersion', INDEX_VERSION)
    })
  }

  /**
   * Builds the next change, applies its effect and logs it, all in one
   * transaction. Removed files that do not fit the answer are kept for the
   * caller to read: their bodies can go only once the caller knows them.
   * On disk when this resolves.
   */
  private async commit (build: (seq: number, mtime: number) => Change): Promise<ChangeResult> {
    const { change, removed } = await this.root.childTransaction(() => this.indexed(() => {
      const change = build(this.seq + 1, Date.now())
      const removed = this.effect(change)
      this.record(change)
      return { change, removed }
    })) as { change: Change, removed: FileEntry[] }
    const answer = removedAnswer(removed)
    if (answer.more === true) this.park(change.seq, removed)
    return { change, ...answer }
  }

  /** Keeps a change's removed files to be read in pages; the oldest kept go beyond MAX_PARKED_REMOVALS. */
  private park (seq: number, removed: FileEntry[]): void {
    this.released.set(seq, removed)
    for (const k of [...this.released.keys()].slice(0, Math.max(0, this.released.size - MAX_PARKED_REMOVALS))) this.released.delete(k)
  }

  private record (change: Change): void {
    this.log.putSync(seqKey(change.seq), change)
    this.meta.putSync('seq', change.seq)
  }

  /**
   * The one place a change takes effect, for local operations and replays
   * alike; it validates everything before it writes anything.
   */
  private effect (change: Change, report = true): FileEntry[] {
    switch (change.op) {
      case 'put': return this.effectPut(change.entry)
      case 'mkdir':
        this.ensureDirs(change.path, change.seq, change.mtime)
        return []
      case 'rename': return this.effectRename(change.path, change.to, change.seq, change.mtime)
      case 'remove': return this.effectRemove(change.path, change.recursive, report)
      case 'move-out': return this.effectMoveOut(change)
      case 'move-part':
        this.stageSlice(change.intent, change.path, change.part, change.tree, change.seq)
        return []
      case 'move-in': return this.effectMoveIn(change)
      case 'move-done':
        this.dropOutbox(change.intent)
        this.dropStaged(change.intent)
        return []
    }
  }

  /**
   * Takes the subtree out of sight by unlinking its top, one key whatever its
   * size: the top goes to the outbox, what lies below stays where it is until
   * the move is done, and is read from there in pages. The same on both
   * copies, as they hold the same namespace, so the change carries no subtree
   * (a change from before that carries one holds just what lies here).
   */
  private effectMoveOut (change: Extract<Change, { op: 'move-out' }>): FileEntry[] {
    const { parentId, value } = this.resolve(change.path)
    if (value === undefined) throw notFound(change.path)
    const entries = 1 + (value.type === 'dir' ? this.countBelow(value.dirId, change.path, { n: 1 }) : 0)
    this.removeNode(key(parentId, baseName(change.path)))
    this.outbox.putSync(change.intent, { intent: change.intent, path: change.path, to: change.to, mtime: change.mtime, entries, top: value })
    // Still named here until the move is done: its bodies are in flight, not orphans.
    if (value.type === 'file') this.indexFile(value, 1)
    // The bodies moved with their entries: nothing is to be deleted.
    return []
  }

  /** How many entries lie below a directory; refuses a subtree too large to move in one piece (`seen` counts its top). */
  private countBelow (dirId: number, path: string, seen: { n: number }): number {
    const before = seen.n
    for (const { value } of this.nodes.getRange({ start: key(dirId), end: key(dirId + 1) })) {
      if (++seen.n > MAX_LIST_ENTRIES) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${path} holds more than ${MAX_LIST_ENTRIES} entries: move it to another top-level directory in parts`)
      if (value.type === 'dir') this.countBelow(value.dirId, path, seen)
    }
    return seen.n - before
  }

  /** A move done (or gone back): its intent, and the subtree it left out of sight here. */
  private dropOutbox (intent: string): void {
    const record = this.outbox.get(intent)
    if (record === undefined) return
    if (record.top?.type === 'dir') {
      const doomed: Array<[Buffer, Stored]> = []
      this.collect(record.top.dirId, record.path, doomed, { count: 0 })
      for (const [k, old] of doomed) this.removeNode(k, old)
    }
    for (const file of outboxFiles(record)) this.indexFile(file, -1)
    this.outbox.removeSync(intent)
  }

  /**
   * Brings a moved subtree in at `to`: its last slice is staged like the
   * others, then its top is linked below `to`'s parent, one key whatever the
   * subtree's size, so no change costs more than its slice.
   */
  private effectMoveIn (change: Extract<Change, { op: 'move-in' }>): FileEntry[] {
    const { path: from, to, intent, seq, mtime } = change
    const parts = change.parts ?? 0
    for (let part = 0; part < parts; part++) if (this.staged.get(partKey(intent, part)) === undefined) throw sliceMissing(intent, part)
    const toParent = this.dirIdOf(parentPath(to))
    this.stageSlice(intent, from, parts, change.tree, seq)
    const top = this.staged.get(topKey(intent)) as Stored | undefined
    if (top === undefined) throw noTop(from)
    const target = this.nodes.get(key(toParent, baseName(to)))
    if (target !== undefined && (target.type === 'dir' || top.type === 'dir')) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${to} already exists`)
    this.putNode(key(toParent, baseName(to)), { ...top, version: seq, mtime })
    this.meta.putSync(`moved-in:${intent}`, seq)
    for (const k of [...this.staged.getKeys(intentRange(intent))]) this.removeStaged(k)
    return target === undefined ? [] : [toEntry(to, target) as FileEntry]
  }

  /**
   * Writes a slice of a subtree moving in where it will live: below
   * directories nothing links to yet, so out of sight until its move-in links
   * the top. Each entry takes the sequence number of the change that carries
   * it as its version (they keep growing in the partition that now holds
   * it); a slice sent again lands on the same keys.
   */
  private stageSlice (intent: string, from: string, part: number, tree: Entry[], seq: number): void {
    for (const entry of tree) {
      const stored = this.stagedValue(intent, entry, seq)
      if (entry.path === from) {
        this.putStaged(topKey(intent), stored)
        continue
      }
      const parentId = this.staged.get(stagedDirKey(intent, parentPath(entry.path)))
      if (typeof parentId !== 'number') throw listedBeforeItsDirectory(entry.path)
      this.putNode(key(parentId, baseName(entry.path)), stored)
    }
    this.staged.putSync(partKey(intent, part), part)
  }

  /** An entry as it is stored once moved in; a directory keeps the id it was first given here. */
  private stagedValue (intent: string, entry: Entry, seq: number): Stored {
    if (entry.type === 'file') {
      const { path: _, ...stored } = entry
      return { ...stored, version: seq }
    }
    const k = stagedDirKey(intent, entry.path)
    let dirId = this.staged.get(k)
    if (typeof dirId !== 'number') {
      dirId = this.nextDirId()
      this.staged.putSync(k, dirId)
    }
    return { type: 'dir', dirId, version: seq, mtime: entry.mtime }
  }

  /** What a move coming in staged, entries included: it was refused, or went back. */
  private dropStaged (intent: string): void {
    for (const { key: k, value } of [...this.staged.getRange(intentRange(intent))]) {
      if (k.startsWith(`${intent}:dir:`) && typeof value === 'number') {
        for (const { key: n, value: old } of [...this.nodes.getRange({ start: key(value), end: key(value + 1) })]) this.removeNode(Buffer.from(n), old)
      }
      this.removeStaged(k)
    }
  }

  /** Writes an entry, keeping the anti-entropy index in step. */
  private putNode (k: Buffer, value: Stored): void {
    const old = this.nodes.get(k)
    if (old?.type === 'file') this.indexFile(old, -1)
    this.nodes.putSync(k, value)
    if (value.type === 'file') this.indexFile(value, 1)
  }

  /** Removes an entry (`old`, when the caller has just read it), keeping the anti-entropy index in step. */
  private removeNode (k: Buffer, old = this.nodes.get(k)): void {
    if (old === undefined) return
    if (old.type === 'file') this.indexFile(old, -1)
    this.nodes.removeSync(k)
  }

  /** Stages a value of a move coming in; a staged top that is a file is counted. */
  private putStaged (k: string, value: number | Stored): void {
    const old = this.staged.get(k)
    if (isStoredFile(old)) this.indexFile(old, -1)
    this.staged.putSync(k, value)
    if (isStoredFile(value)) this.indexFile(value, 1)
  }

  private removeStaged (k: string): void {
    const old = this.staged.get(k)
    if (isStoredFile(old)) this.indexFile(old, -1)
    this.staged.removeSync(k)
  }

  /**
   * Counts a file in (`sign` 1) or out (-1) of the index of every place its
   * replicas name: its id joins a place's set with the first entry naming it
   * there, and leaves it with the last.
   */
  private indexFile (file: StoredFile, sign: 1 | -1): void {
    for (const place of placesOf(file)) {
      const fk = fileKey(place, file.fileId)
      const row = this.index.get(fk)
      const refs = row === undefined ? 0 : row.readUInt32BE(40)
      if (sign < 0 && refs === 0) continue
      const next = refs + sign
      const size = row === undefined ? file.size : Number(row.readBigUInt64BE(0))
      if (next > 0) {
        const out = Buffer.alloc(FILE_ROW_BYTES)
        if (row === undefined) {
          out.writeBigUInt64BE(BigInt(file.size), 0)
          Buffer.from(file.sha256, 'hex').copy(out, 8)
        } else {
          row.copy(out, 0, 0, 40)
        }
        out.writeUInt32BE(next, 40)
        this.index.putSync(fk, out)
      } else {
        this.index.removeSync(fk)
      }
      if ((refs === 0) === (next === 0)) continue
      this.batchOf(place).add(file.fileId, sign, size)
    }
  }

  private batchOf (place: string): PlaceDelta {
    if (this.batch === undefined) throw new Error('the anti-entropy index changes only inside indexed()')
    let delta = this.batch.get(place)
    if (delta === undefined) this.batch.set(place, delta = new PlaceDelta())
    return delta
  }

  /**
   * Runs a transaction's body with the index's shard sums and counts gathered
   * in memory and written once at its end: a change of thousands of files
   * reads and writes each shard row and count once, not once a file, and
   * holds the event loop (and this server's heartbeats) that much less.
   */
  private indexed<T> (body: () => T): T {
    this.batch = new Map()
    try {
      const out = body()
      for (const [place, delta] of this.batch) this.writeDelta(place, delta)
      return out
    } finally {
      this.batch = undefined
    }
  }

  private writeDelta (place: string, delta: PlaceDelta): void {
    for (const shard of delta.shards) {
      const sk = shardKey(place, shard)
      const sum = sumShards(this.index.get(sk), delta.digest.shard(shard))
      if (sum.every((b) => b === 0)) this.index.removeSync(sk)
      else this.index.putSync(sk, Buffer.from(sum))
    }
    const counts = this.index.get(countKey(place))
    const files = (counts === undefined ? 0 : Number(counts.readBigUInt64BE(0))) + delta.files
    const bytes = (counts === undefined ? 0 : Number(counts.readBigUInt64BE(8))) + delta.bytes
    if (files <= 0) {
      this.index.removeSync(countKey(place))
    } else {
      const c = Buffer.alloc(16)
      c.writeBigUInt64BE(BigInt(files), 0)
      c.writeBigUInt64BE(BigInt(Math.max(0, bytes)), 8)
      this.index.putSync(countKey(place), c)
    }
  }

  private effectPut (entry: FileEntry): FileEntry[] {
    const name = baseName(entry.path)
    const existing = this.resolve(entry.path).value
    if (existing?.type === 'dir') throw new DirectoryError(DirectoryErrorCode.IS_A_DIRECTORY, `${entry.path} is a directory`)
    // Missing parents are created, as `mkdir -p`: the object-store convenience of PUT.
    const parentId = this.ensureDirs(parentPath(entry.path), entry.version, entry.mtime)
    const { path, ...stored } = entry
    this.putNode(key(parentId, name), stored)
    return existing === undefined ? [] : [toEntry(path, existing) as FileEntry]
  }

  private effectRename (path: string, to: string, seq: number, mtime: number): FileEntry[] {
    if (path === '/' || to === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be renamed or replaced')
    const source = this.resolve(path)
    if (source.value === undefined) throw notFound(path)
    if (path === to) return []
    if (source.value.type === 'dir' && isWithin(to, path)) throw new DirectoryError(DirectoryErrorCode.INVALID, `cannot move ${path} into itself (${to})`)
    const toParent = this.dirIdOf(parentPath(to))
    const target = this.nodes.get(key(toParent, baseName(to)))
    if (target !== undefined && (target.type === 'dir' || source.value.type === 'dir')) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${to} already exists`)
    this.removeNode(key(source.parentId, baseName(path)))
    this.putNode(key(toParent, baseName(to)), { ...source.value, version: seq, mtime })
    return target === undefined ? [] : [toEntry(to, target) as FileEntry]
  }

  /** `report`: whether to build the removed files' entries (a replay needs none: their paths cost most of a large removal). */
  private effectRemove (path: string, recursive: boolean, report: boolean): FileEntry[] {
    if (path === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be removed')
    const { parentId, value } = this.resolve(path)
    if (value === undefined) throw notFound(path)
    const doomed: Array<[Buffer, Stored]> = [[key(parentId, baseName(path)), value]]
    const files: { count: number, entries?: FileEntry[] } = { count: 0, ...(report ? { entries: [] } : {}) }
    if (value.type === 'file') {
      files.entries?.push(toEntry(path, value) as FileEntry)
    } else {
      let hasChildren = false
      for (const _ of this.nodes.getKeys({ start: key(value.dirId), end: key(value.dirId + 1), limit: 1 })) hasChildren = true
      if (hasChildren && !recursive) throw new DirectoryError(DirectoryErrorCode.NOT_EMPTY, `${path} is not empty`)
      this.collect(value.dirId, path, doomed, files)
    }
    for (const [k, old] of doomed) this.removeNode(k, old)
    return files.entries ?? []
  }

  /**
   * Every key below a directory, and its files: counted, and their entries
   * built when `files.entries` is given. Refuses trees of more files than one
   * change may report.
   */
  private collect (dirId: number, path: string, doomed: Array<[Buffer, Stored]>, files: { count: number, entries?: FileEntry[] }): void {
    for (const { key: k, value } of this.nodes.getRange({ start: key(dirId), end: key(dirId + 1) })) {
      doomed.push([Buffer.from(k), value])
      // a path is built only for an entry reported (some 4 KiB each in a deep tree)
      const childPath = files.entries === undefined ? path : `${path}/${k.subarray(8).toString('utf8')}`
      if (value.type === 'dir') {
        this.collect(value.dirId, childPath, doomed, files)
      } else {
        if (++files.count > MAX_LIST_ENTRIES) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${path} holds more than ${MAX_LIST_ENTRIES} files; remove its subdirectories one by one`)
        files.entries?.push(toEntry(childPath, value) as FileEntry)
      }
    }
  }

  /** Creates every missing directory on the way to `path`; returns its id. */
  private ensureDirs (path: string, seq: number, mtime: number): number {
    let dirId = ROOT_ID
    if (path === '/') return dirId
    let at = ''
    for (const name of path.slice(1).split('/')) {
      at += '/' + name
      const k = key(dirId, name)
      const v = this.nodes.get(k)
      if (v === undefined) {
        const newId = this.nextDirId()
        this.putNode(k, { type: 'dir', dirId: newId, version: seq, mtime })
        dirId = newId
      } else if (v.type === 'dir') {
        dirId = v.dirId
      } else {
        throw new DirectoryError(DirectoryErrorCode.NOT_A_DIRECTORY, `${at} is a file, not a directory`)
      }
    }
    return dirId
  }

  private nextDirId (): number {
    const id = (this.meta.get('nextDirId') ?? ROOT_ID) + 1
    this.meta.putSync('nextDirId', id)
    return id
  }

  /** The id of the directory at `path`; refuses a missing path or a file. */
  private dirIdOf (path: string): number {
    if (path === '/') return ROOT_ID
    const { value } = this.resolve(path)
    if (value === undefined) throw notFound(path)
    if (value.type !== 'dir') throw new DirectoryError(DirectoryErrorCode.NOT_A_DIRECTORY, `${path} is a file, not a directory`)
    return value.dirId
  }

  /** Walks to `path`: its parent's id and its stored value, if any. */
  private resolve (path: string): { parentId: number, value: Stored | undefined } {
    const names = path.slice(1).split('/')
    let dirId = ROOT_ID
    let at = ''
    for (let i = 0; i < names.length - 1; i++) {
      at += '/' + (names[i] as string)
      const v = this.nodes.get(key(dirId, names[i] as string))
      if (v === undefined) return { parentId: -1, value: undefined }
      if (v.type !== 'dir') throw new DirectoryError(DirectoryErrorCode.NOT_A_DIRECTORY, `${at} is a file, not a directory`)
      dirId = v.dirId
    }
    return { parentId: dirId, value: this.nodes.get(key(dirId, names[names.length - 1] as string)) }
  }
}

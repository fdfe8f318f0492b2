import { open, type Database, type RootDatabase } from 'lmdb'
import { baseName, isWithin, MAX_LIST_ENTRIES, normalizePath, parentPath, sameChange, type Change, type Entry, type FileEntry } from '@mirrorcast/wire'

/** A cross-partition move whose subtree left this partition and is not yet known to have arrived. */
export interface PendingMove {
  intent: string
  path: string
  to: string
  mtime: number
  tree: Entry[]
}
import { DirectoryError, DirectoryErrorCode } from './errors.js'

/*
 * Layout: like inodes, every directory has a numeric id and an entry's key is
 * <parent dir id: 8 bytes><name>. Listing a directory is one range scan, a
 * rename (even of a huge directory) rewrites one key, and keys stay short
 * whatever the path length.
 */
const ROOT_ID = 0
// 1,000: changes per page when a twin reads the log
const DEFAULT_CHANGES_PAGE = 1000

type StoredDir = { type: 'dir', dirId: number, version: number, mtime: number }
type StoredFile = Omit<FileEntry, 'path'>
type Stored = StoredDir | StoredFile

export type NewFileEntry = Omit<FileEntry, 'version' | 'mtime'>

export interface ChangeResult {
  change: Change
  removed: FileEntry[]
}

function key (dirId: number, name = ''): Buffer {
  const nameBytes = Buffer.from(name, 'utf8')
  const k = Buffer.allocUnsafe(8 + nameBytes.length)
  k.writeBigUInt64BE(BigInt(dirId), 0)
  nameBytes.copy(k, 8)
  return k
}

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

/** The file-system namespace of one directory server, in LMDB. */
export class Namespace {
  private readonly root: RootDatabase
  private readonly nodes: Database<Stored, Buffer>
  private readonly log: Database<Change, Buffer>
  private readonly meta: Database<number, string>
  /** Pending move-outs by intent id (insertion order is not kept: listed by mtime). */
  private readonly outbox: Database<PendingMove, string>

  private constructor (root: RootDatabase) {
    this.root = root
    this.nodes = root.openDB<Stored, Buffer>({ name: 'nodes', keyEncoding: 'binary' })
    this.log = root.openDB<Change, Buffer>({ name: 'changes', keyEncoding: 'binary' })
    this.meta = root.openDB<number, string>({ name: 'meta' })
    this.outbox = root.openDB<PendingMove, string>({ name: 'outbox' })
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
    return new Namespace(open({ path, compression: false, overlappingSync: false }))
  }

  async close (): Promise<void> {
    await this.root.close()
  }

  /** Sequence number of the last change. */
  get seq (): number {
    return this.meta.get('seq') ?? 0
  }

  get entryCount (): number {
    return this.nodes.getCount()
  }

  get pendingMoves (): number {
    return this.outbox.getCount()
  }

  /** Pending move-outs, oldest first, as many as fit one page of entries. */
  intents (): { intents: PendingMove[], more: boolean } {
    const all = [...this.outbox.getRange().map(({ value }) => value)].sort((a, b) => a.mtime - b.mtime)
    const intents: PendingMove[] = []
    let entries = 0
    for (const p of all) {
      if (intents.length > 0 && entries + p.tree.length > MAX_LIST_ENTRIES) return { intents, more: true }
      intents.push(p)
      entries += p.tree.length
    }
    return { intents, more: false }
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

  list (input: string, after?: string, limit = MAX_LIST_ENTRIES): { entries: Entry[], more: boolean } {
    const path = normalizePath(input)
    const dirId = this.dirIdOf(path)
    const max = Math.min(Math.max(1, limit), MAX_LIST_ENTRIES)
    const entries: Entry[] = []
    const start = key(dirId, after ?? '')
    for (const { key: k, value } of this.nodes.getRange({ start, end: key(dirId + 1) })) {
      const name = k.subarray(8).toString('utf8')
      if (after !== undefined && name === after) continue
      if (entries.length === max) return { entries, more: true }
      entries.push(toEntry(path === '/' ? `/${name}` : `${path}/${name}`, value))
    }
    return { entries, more: false }
  }

  /** Changes after `after`, in order: what a twin replays. */
  changes (after: number, limit = DEFAULT_CHANGES_PAGE): { changes: Change[], last: number } {
    const max = Math.min(Math.max(1, limit), MAX_LIST_ENTRIES)
    const changes = [...this.log.getRange({ start: seqKey(after + 1), limit: max }).map(({ value }) => value)]
    return { changes, last: this.seq }
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

  /** Takes the subtree at `path` out, to be moved to `to` in another partition. */
  async moveOut (input: string, toInput: string, intent: string): Promise<ChangeResult> {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    if (path === '/' || to === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be moved or replaced')
    return await this.commit((seq, mtime) => ({ op: 'move-out', seq, mtime, path, to, intent, tree: this.subtree(path) }))
  }

  /** Puts a subtree taken out of another partition at `to`; a second call with the same intent changes nothing. */
  async moveIn (input: string, toInput: string, intent: string, tree: Entry[]): Promise<ChangeResult> {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    if (tree[0]?.path !== path || tree.some((e) => !isWithin(e.path, path))) throw new DirectoryError(DirectoryErrorCode.INVALID, `a moved tree must start at ${path} and stay below it`)
    const done = this.meta.get(`moved-in:${intent}`)
    // Asked again (the first answer was lost): the change that did it, and nothing more to remove.
    if (done !== undefined) return { change: this.log.get(seqKey(done)) as Change, removed: [] }
    return await this.commit((seq, mtime) => ({ op: 'move-in', seq, mtime, path, to, intent, tree }))
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
    return await this.root.childTransaction(() => {
      for (const change of changes) {
        const current = this.seq
        if (change.seq <= current) {
          const held = this.log.get(seqKey(change.seq))
          if (held === undefined || !sameChange(held, change)) throw new DirectoryError(DirectoryErrorCode.DIVERGED, `change ${change.seq} is not the one held at that sequence number`)
          continue
        }
        if (change.seq !== current + 1) throw new DirectoryError(DirectoryErrorCode.SEQ_GAP, `change ${change.seq} does not follow ${current}`)
        this.effect(change)
        this.record(change)
      }
      return this.seq
    }) as number
  }

  /** Empties everything, in one transaction: a diverged server is rebuilt from its twin's log. */
  async reset (): Promise<void> {
    await this.root.childTransaction(() => {
      for (const db of [this.nodes, this.log]) for (const key of db.getKeys()) db.removeSync(key)
      for (const key of this.outbox.getKeys()) this.outbox.removeSync(key)
      for (const key of this.meta.getKeys()) this.meta.removeSync(key)
    })
  }

  /** Builds the next change, applies its effect and logs it, all in one transaction, on disk when this resolves. */
  private async commit (build: (seq: number, mtime: number) => Change): Promise<ChangeResult> {
    return await this.root.childTransaction(() => {
      const change = build(this.seq + 1, Date.now())
      const removed = this.effect(change)
      this.record(change)
      return { change, removed }
    }) as ChangeResult
  }

  private record (change: Change): void {
    this.log.putSync(seqKey(change.seq), change)
    this.meta.putSync('seq', change.seq)
  }

  /**
   * The one place a change takes effect, for local operations and replays
   * alike; it validates everything before it writes anything.
   */
  private effect (change: Change): FileEntry[] {
    switch (change.op) {
      case 'put': return this.effectPut(change.entry)
      case 'mkdir':
        this.ensureDirs(change.path, change.seq, change.mtime)
        return []
      case 'rename': return this.effectRename(change.path, change.to, change.seq, change.mtime)
      case 'remove': return this.effectRemove(change.path, change.recursive)
      case 'move-out': return this.effectMoveOut(change)
      case 'move-in': return this.effectMoveIn(change)
      case 'move-done':
        this.outbox.removeSync(change.intent)
        return []
    }
  }

  private effectMoveOut (change: Extract<Change, { op: 'move-out' }>): FileEntry[] {
    const { parentId, value } = this.resolve(change.path)
    if (value === undefined) throw notFound(change.path)
    const doomed = [key(parentId, baseName(change.path))]
    if (value.type === 'dir') this.collect(value.dirId, change.path, doomed, [])
    for (const k of doomed) this.nodes.removeSync(k)
    this.outbox.putSync(change.intent, { intent: change.intent, path: change.path, to: change.to, mtime: change.mtime, tree: change.tree })
    // The bodies moved with their entries: nothing is to be deleted.
    return []
  }

  /**
   * Writes a moved subtree below `to`. Every entry takes this change's
   * sequence number as its version, so a path's versions keep growing in the
   * partition that now holds it.
   */
  private effectMoveIn (change: Extract<Change, { op: 'move-in' }>): FileEntry[] {
    const { path: from, to, tree, seq, mtime } = change
    const top = tree[0] as Entry
    const toParent = this.dirIdOf(parentPath(to))
    const target = this.nodes.get(key(toParent, baseName(to)))
    if (target !== undefined && (target.type === 'dir' || top.type === 'dir')) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${to} already exists`)
    const dirIds = new Map<string, number>([[parentPath(from), toParent]])
    for (const entry of tree) {
      const parentId = dirIds.get(parentPath(entry.path))
      if (parentId === undefined) throw new DirectoryError(DirectoryErrorCode.INVALID, `moved tree lists ${entry.path} before its directory`)
      const name = entry.path === from ? baseName(to) : baseName(entry.path)
      if (entry.type === 'dir') {
        const dirId = this.nextDirId()
        dirIds.set(entry.path, dirId)
        this.nodes.putSync(key(parentId, name), { type: 'dir', dirId, version: seq, mtime: entry === top ? mtime : entry.mtime })
      } else {
        const { path: _, ...stored } = entry
        this.nodes.putSync(key(parentId, name), { ...stored, version: seq, mtime: entry === top ? mtime : entry.mtime })
      }
    }
    this.meta.putSync(`moved-in:${change.intent}`, seq)
    return target === undefined ? [] : [toEntry(to, target) as FileEntry]
  }

  /** The entries at and below `path`, each directory before what it holds. */
  private subtree (path: string): Entry[] {
    const { value } = this.resolve(path)
    if (value === undefined) throw notFound(path)
    const tree: Entry[] = [toEntry(path, value)]
    if (value.type === 'dir') this.walk(value.dirId, path, tree)
    return tree
  }

  private walk (dirId: number, path: string, out: Entry[]): void {
    for (const { key: k, value } of this.nodes.getRange({ start: key(dirId), end: key(dirId + 1) })) {
      const childPath = `${path}/${k.subarray(8).toString('utf8')}`
      out.push(toEntry(childPath, value))
      if (out.length > MAX_LIST_ENTRIES) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${path} holds more than ${MAX_LIST_ENTRIES} entries: move it to another top-level directory in parts`)
      if (value.type === 'dir') this.walk(value.dirId, childPath, out)
    }
  }

  private effectPut (entry: FileEntry): FileEntry[] {
    const name = baseName(entry.path)
    const existing = this.resolve(entry.path).value
    if (existing?.type === 'dir') throw new DirectoryError(DirectoryErrorCode.IS_A_DIRECTORY, `${entry.path} is a directory`)
    // Missing parents are created, as `mkdir -p`: the object-store convenience of PUT.
    const parentId = this.ensureDirs(parentPath(entry.path), entry.version, entry.mtime)
    const { path, ...stored } = entry
    this.nodes.putSync(key(parentId, name), stored)
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
    this.nodes.removeSync(key(source.parentId, baseName(path)))
    this.nodes.putSync(key(toParent, baseName(to)), { ...source.value, version: seq, mtime })
    return target === undefined ? [] : [toEntry(to, target) as FileEntry]
  }

  private effectRemove (path: string, recursive: boolean): FileEntry[] {
    if (path === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be removed')
    const { parentId, value } = this.resolve(path)
    if (value === undefined) throw notFound(path)
    const doomed: Buffer[] = [key(parentId, baseName(path))]
    const removed: FileEntry[] = []
    if (value.type === 'file') {
      removed.push(toEntry(path, value) as FileEntry)
    } else {
      let hasChildren = false
      for (const _ of this.nodes.getKeys({ start: key(value.dirId), end: key(value.dirId + 1), limit: 1 })) hasChildren = true
      if (hasChildren && !recursive) throw new DirectoryError(DirectoryErrorCode.NOT_EMPTY, `${path} is not empty`)
      this.collect(value.dirId, path, doomed, removed)
    }
    for (const k of doomed) this.nodes.removeSync(k)
    return removed
  }

  /** Every key below a directory, and its file entries; refuses trees whose reply would not fit a frame. */
  private collect (dirId: number, path: string, doomed: Buffer[], removed: FileEntry[]): void {
    for (const { key: k, value } of this.nodes.getRange({ start: key(dirId), end: key(dirId + 1) })) {
      const childPath = `${path}/${k.subarray(8).toString('utf8')}`
      doomed.push(Buffer.from(k))
      if (value.type === 'dir') {
        this.collect(value.dirId, childPath, doomed, removed)
      } else {
        removed.push(toEntry(childPath, value) as FileEntry)
        if (removed.length > MAX_LIST_ENTRIES) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${path} holds more than ${MAX_LIST_ENTRIES} files; remove its subdirectories one by one`)
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
        this.nodes.putSync(k, { type: 'dir', dirId: newId, version: seq, mtime })
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

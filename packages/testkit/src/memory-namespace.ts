import {
  checkSlice, DirectoryError, DirectoryErrorCode, listedBeforeItsDirectory, MAX_PARKED_REMOVALS, noTop, pendingPage, removedAnswer, removedPage, sliceMissing, treePage,
  type PendingMove, type PendingMoveSummary
} from '@mirrorcast/directory'
import { baseName, isWithin, MAX_LIST_ENTRIES, normalizePath, PageBudget, parentPath, sameChange, type Change, type Entry, type FileEntry } from '@mirrorcast/wire'

// 1,000: changes per page when a twin reads the log (as the real namespace)
const DEFAULT_CHANGES_PAGE = 1000

export type NewFileEntry = Omit<FileEntry, 'version' | 'mtime'>
export interface ChangeResult { change: Change, removed: FileEntry[], more?: true }

/** A move coming in, out of sight: the slices that arrived, its top, what lies below it (by source path) and which of those are directories. */
interface Staging { parts: Set<number>, top: Entry | undefined, below: Map<string, Entry>, dirs: Set<string> }

interface State {
  entries: Map<string, Entry>
  log: Map<number, Change>
  outbox: Map<string, PendingMove>
  movedIn: Map<string, number>
  /** What moves coming in staged, by intent (replaced, never changed in place: a transaction copies the map only). */
  staged: Map<string, Staging>
  /** Removed files that did not fit their change's answer, by sequence number, oldest first. */
  released: Map<number, FileEntry[]>
  seq: number
}

const ROOT: Entry = { type: 'dir', path: '/', version: 0, mtime: 0 }
const notFound = (path: string): DirectoryError => new DirectoryError(DirectoryErrorCode.NOT_FOUND, `${path} does not exist`)
const notADirectory = (path: string): DirectoryError => new DirectoryError(DirectoryErrorCode.NOT_A_DIRECTORY, `${path} is a file, not a directory`)

/**
 * The namespace of one directory server, in memory: the same operations,
 * changes, answers and codes as @mirrorcast/directory's Namespace (LMDB),
 * each change applied whole or not at all. The testkit's own tests run one
 * suite against both.
 */
export class MemoryNamespace {
  private state: State = emptyState()
  /** The clock of its changes' mtimes (Date.now by default); a test may set another one at any time. */
  clock: () => number

  constructor (options: { now?: () => number } = {}) {
    this.clock = options.now ?? Date.now
  }

  get seq (): number {
    return this.state.seq
  }

  /** As LMDB counts its keys: what lies below the top of a move under way counts, whether it is coming in (staged) or going out. */
  get entryCount (): number {
    let moving = 0
    for (const s of this.state.staged.values()) moving += s.below.size
    for (const m of this.state.outbox.values()) moving += m.tree.length - 1
    return this.state.entries.size + moving
  }

  get pendingMoves (): number {
    return this.state.outbox.size
  }

  intents (): { intents: PendingMoveSummary[], more: boolean } {
    return pendingPage([...this.state.outbox.values()].map((m) => ({ ...m, entries: m.tree.length })))
  }

  intentTree (intent: string, from: number): { tree: Entry[], more: boolean } {
    const move = this.state.outbox.get(intent)
    return structuredClone(treePage(move === undefined ? undefined : { entries: move.tree.length }, intent, from, () => move?.tree.slice(from) ?? []))
  }

  removedFrom (seq: number, from: number): { removed: FileEntry[], more: boolean } {
    const page = removedPage(this.state.released.get(seq), seq, from)
    if (!page.more) this.state.released.delete(seq)
    return structuredClone(page)
  }

  stat (input: string): Entry {
    const entry = this.lookup(input)
    if (entry === undefined) throw notFound(normalizePath(input))
    return entry
  }

  lookup (input: string): Entry | undefined {
    const path = normalizePath(input)
    if (path === '/') return { ...ROOT }
    const entry = this.resolve(path)
    return entry === undefined ? undefined : structuredClone(entry)
  }

  list (input: string, after?: string, limit = MAX_LIST_ENTRIES): { entries: Entry[], more: boolean } {
    const path = normalizePath(input)
    this.dirAt(path)
    const page = new PageBudget({ maxItems: Math.min(Math.max(1, limit), MAX_LIST_ENTRIES) })
    const from = after === undefined ? undefined : Buffer.from(after, 'utf8')
    const children = this.children(path).filter((e) => from === undefined || Buffer.compare(Buffer.from(baseName(e.path), 'utf8'), from) > 0)
    let end = 0
    while (end < children.length && page.admit(children[end])) end++
    return { entries: structuredClone(children.slice(0, end)), more: end < children.length }
  }

  changes (after: number, limit = DEFAULT_CHANGES_PAGE): { changes: Change[], last: number } {
    const page = new PageBudget({ maxItems: Math.min(Math.max(1, limit), MAX_LIST_ENTRIES) })
    const changes: Change[] = []
    for (let seq = after + 1; seq <= this.state.seq; seq++) {
      const change = this.state.log.get(seq)
      if (change === undefined) continue
      if (!page.admit(change)) break
      changes.push(structuredClone(change))
    }
    return { changes, last: this.state.seq }
  }

  put (entry: NewFileEntry): ChangeResult {
    const path = normalizePath(entry.path)
    if (path === '/') throw new DirectoryError(DirectoryErrorCode.IS_A_DIRECTORY, '/ is a directory')
    return this.commit((seq, mtime) => ({ op: 'put', seq, mtime, entry: { ...structuredClone(entry), path, version: seq, mtime } }))
  }

  mkdir (input: string, parents: boolean): ChangeResult {
    const path = normalizePath(input)
    return this.commit((seq, mtime) => {
      if (!parents) {
        if (path === '/' || this.resolve(path) !== undefined) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${path} already exists`)
        this.dirAt(parentPath(path))
      }
      return { op: 'mkdir', seq, mtime, path }
    })
  }

  rename (input: string, toInput: string): ChangeResult {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    return this.commit((seq, mtime) => ({ op: 'rename', seq, mtime, path, to }))
  }

  remove (input: string, recursive: boolean): ChangeResult {
    const path = normalizePath(input)
    return this.commit((seq, mtime) => ({ op: 'remove', seq, mtime, path, recursive }))
  }

  moveOut (input: string, toInput: string, intent: string): ChangeResult {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    if (path === '/' || to === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be moved or replaced')
    return this.commit((seq, mtime) => ({ op: 'move-out', seq, mtime, path, to, intent }))
  }

  movePart (input: string, intent: string, part: number, tree: Entry[]): ChangeResult {
    const path = normalizePath(input)
    checkSlice(path, tree)
    return this.movedIn(intent) ?? this.commit((seq, mtime) => ({ op: 'move-part', seq, mtime, path, intent, part, tree: structuredClone(tree) }))
  }

  moveIn (input: string, toInput: string, intent: string, tree: Entry[], parts = 0): ChangeResult {
    const path = normalizePath(input)
    const to = normalizePath(toInput)
    checkSlice(path, tree)
    return this.movedIn(intent) ?? this.commit((seq, mtime) => ({ op: 'move-in', seq, mtime, path, to, intent, tree: structuredClone(tree), ...(parts > 0 ? { parts } : {}) }))
  }

  private movedIn (intent: string): ChangeResult | undefined {
    const done = this.state.movedIn.get(intent)
    return done === undefined ? undefined : { change: structuredClone(this.state.log.get(done) as Change), removed: [] }
  }

  moveDone (intent: string): ChangeResult {
    return this.commit((seq, mtime) => ({ op: 'move-done', seq, mtime, intent }))
  }

  /** Replays changes from a twin's log: those held already are skipped, a gap or a change other than the one held at its number (a diverged log) refuses the whole batch. */
  apply (changes: Change[]): number {
    return this.transaction(() => {
      for (const change of changes) {
        const current = this.state.seq
        if (change.seq <= current) {
          const held = this.state.log.get(change.seq)
          if (held === undefined || !sameChange(held, change)) throw new DirectoryError(DirectoryErrorCode.DIVERGED, `change ${change.seq} is not the one held at that sequence number`)
          continue
        }
        if (change.seq !== current + 1) throw new DirectoryError(DirectoryErrorCode.SEQ_GAP, `change ${change.seq} does not follow ${current}`)
        this.effect(change)
        this.record(structuredClone(change))
      }
      return this.state.seq
    })
  }

  reset (): void {
    this.state = emptyState()
  }

  private commit (build: (seq: number, mtime: number) => Change): ChangeResult {
    return this.transaction(() => {
      const change = build(this.state.seq + 1, this.clock())
      const removed = this.effect(change)
      this.record(change)
      const answer = removedAnswer(removed)
      if (answer.more === true) this.park(change.seq, removed)
      return structuredClone({ change, ...answer })
    })
  }

  private park (seq: number, removed: FileEntry[]): void {
    const released = this.state.released
    released.set(seq, structuredClone(removed))
    for (const k of [...released.keys()].slice(0, Math.max(0, released.size - MAX_PARKED_REMOVALS))) released.delete(k)
  }

  /** Runs `fn` on a copy of the state, kept only if it succeeds: a change takes effect whole or not at all. */
  private transaction<X> (fn: () => X): X {
    const before = this.state
    this.state = {
      entries: new Map(before.entries),
      log: new Map(before.log),
      outbox: new Map(before.outbox),
      movedIn: new Map(before.movedIn),
      staged: new Map(before.staged),
      released: new Map(before.released),
      seq: before.seq
    }
    try {
      return fn()
    } catch (err) {
      this.state = before
      throw err
    }
  }

  private record (change: Change): void {
    this.state.log.set(change.seq, change)
    this.state.seq = change.seq
  }

  private effect (change: Change): FileEntry[] {
    switch (change.op) {
      case 'put': return this.effectPut(change.entry)
      case 'mkdir':
        this.ensureDirs(change.path, change.seq, change.mtime)
        return []
      case 'rename': return this.effectRename(change.path, change.to, change.seq, change.mtime)
      case 'remove': return this.effectRemove(change.path, change.recursive)
      case 'move-out': return this.effectMoveOut(change)
      case 'move-part':
        this.stageSlice(change.intent, change.path, change.part, change.tree, change.seq)
        return []
      case 'move-in': return this.effectMoveIn(change)
      case 'move-done':
        this.state.outbox.delete(change.intent)
        this.dropStaged(change.intent)
        return []
    }
  }

  private effectPut (entry: FileEntry): FileEntry[] {
    const existing = this.resolve(entry.path)
    if (existing?.type === 'dir') throw new DirectoryError(DirectoryErrorCode.IS_A_DIRECTORY, `${entry.path} is a directory`)
    this.ensureDirs(parentPath(entry.path), entry.version, entry.mtime)
    this.state.entries.set(entry.path, structuredClone(entry))
    return existing === undefined ? [] : [existing]
  }

  private effectRename (path: string, to: string, seq: number, mtime: number): FileEntry[] {
    if (path === '/' || to === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be renamed or replaced')
    const source = this.resolve(path)
    if (source === undefined) throw notFound(path)
    if (path === to) return []
    if (source.type === 'dir' && isWithin(to, path)) throw new DirectoryError(DirectoryErrorCode.INVALID, `cannot move ${path} into itself (${to})`)
    this.dirAt(parentPath(to))
    const target = this.state.entries.get(to)
    if (target !== undefined && (target.type === 'dir' || source.type === 'dir')) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${to} already exists`)
    // What a directory holds moves with it, unchanged: only the renamed entry takes the change's version.
    for (const [p, e] of [...this.state.entries]) {
      if (p === path || !isWithin(p, path)) continue
      this.state.entries.delete(p)
      this.state.entries.set(to + p.slice(path.length), { ...e, path: to + p.slice(path.length) })
    }
    this.state.entries.delete(path)
    this.state.entries.set(to, { ...source, path: to, version: seq, mtime })
    return target === undefined ? [] : [target as FileEntry]
  }

  private effectRemove (path: string, recursive: boolean): FileEntry[] {
    if (path === '/') throw new DirectoryError(DirectoryErrorCode.INVALID, 'the root cannot be removed')
    const entry = this.resolve(path)
    if (entry === undefined) throw notFound(path)
    const removed: FileEntry[] = []
    if (entry.type === 'file') {
      removed.push(entry)
    } else {
      if (this.children(path).length > 0 && !recursive) throw new DirectoryError(DirectoryErrorCode.NOT_EMPTY, `${path} is not empty`)
      const below = this.walk(path, [], false)
      for (const e of below) if (e.type === 'file') removed.push(e)
      if (removed.length > MAX_LIST_ENTRIES) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${path} holds more than ${MAX_LIST_ENTRIES} files; remove its subdirectories one by one`)
      for (const e of below) this.state.entries.delete(e.path)
    }
    this.state.entries.delete(path)
    return removed
  }

  private effectMoveOut (change: Extract<Change, { op: 'move-out' }>): FileEntry[] {
    const entry = this.resolve(change.path)
    if (entry === undefined) throw notFound(change.path)
    // a change from before that carries its subtree holds just what lies here
    const tree = this.subtree(change.path)
    if (entry.type === 'dir') for (const e of this.walk(change.path, [], false)) this.state.entries.delete(e.path)
    this.state.entries.delete(change.path)
    this.state.outbox.set(change.intent, { intent: change.intent, path: change.path, to: change.to, mtime: change.mtime, tree })
    return []
  }

  private effectMoveIn (change: Extract<Change, { op: 'move-in' }>): FileEntry[] {
    const { path: from, to, intent, seq, mtime } = change
    const parts = change.parts ?? 0
    for (let part = 0; part < parts; part++) if (this.state.staged.get(intent)?.parts.has(part) !== true) throw sliceMissing(intent, part)
    this.dirAt(parentPath(to))
    this.stageSlice(intent, from, parts, change.tree, seq)
    const { top, below } = this.state.staged.get(intent) as Staging
    if (top === undefined) throw noTop(from)
    const target = this.state.entries.get(to)
    if (target !== undefined && (target.type === 'dir' || top.type === 'dir')) throw new DirectoryError(DirectoryErrorCode.EXISTS, `${to} already exists`)
    this.state.entries.set(to, { ...top, path: to, version: seq, mtime })
    for (const [p, e] of below) this.state.entries.set(to + p.slice(from.length), { ...e, path: to + p.slice(from.length) })
    this.state.movedIn.set(intent, seq)
    this.state.staged.delete(intent)
    return target === undefined ? [] : [target as FileEntry]
  }

  /** As the LMDB namespace stages a slice: each entry with the version of the change that carries it, below a directory staged before it. */
  private stageSlice (intent: string, from: string, part: number, tree: Entry[], seq: number): void {
    const before = this.state.staged.get(intent)
    const s: Staging = { parts: new Set(before?.parts), top: before?.top, below: new Map(before?.below), dirs: new Set(before?.dirs) }
    for (const entry of tree) {
      const staged = { ...structuredClone(entry), version: seq }
      if (entry.path !== from && !s.dirs.has(parentPath(entry.path))) throw listedBeforeItsDirectory(entry.path)
      if (entry.path === from) s.top = staged
      else s.below.set(entry.path, staged)
      if (entry.type === 'dir') s.dirs.add(entry.path)
    }
    s.parts.add(part)
    this.state.staged.set(intent, s)
  }

  private dropStaged (intent: string): void {
    this.state.staged.delete(intent)
  }

  /** The entries at and below `path`, each directory before what it holds. */
  private subtree (path: string): Entry[] {
    const entry = this.resolve(path)
    if (entry === undefined) throw notFound(path)
    const tree: Entry[] = [structuredClone(entry)]
    if (entry.type === 'dir') this.walk(path, tree)
    return tree
  }

  /** Everything below a directory, depth first, each directory before what it holds, names in byte order; `limited`: as many as a moved tree may hold. */
  private walk (path: string, out: Entry[], limited = true): Entry[] {
    for (const child of this.children(path)) {
      out.push(structuredClone(child))
      if (limited && out.length > MAX_LIST_ENTRIES) throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `${path} holds more than ${MAX_LIST_ENTRIES} entries: move it to another top-level directory in parts`)
      if (child.type === 'dir') this.walk(child.path, out, limited)
    }
    return out
  }

  /** A directory's entries, by name in byte order (as LMDB orders its keys). */
  private children (path: string): Entry[] {
    return [...this.state.entries.values()]
      .filter((e) => parentPath(e.path) === path)
      .sort((a, b) => Buffer.compare(Buffer.from(baseName(a.path), 'utf8'), Buffer.from(baseName(b.path), 'utf8')))
  }

  private ensureDirs (path: string, seq: number, mtime: number): void {
    if (path === '/') return
    let at = ''
    for (const name of path.slice(1).split('/')) {
      at += '/' + name
      const e = this.state.entries.get(at)
      if (e === undefined) this.state.entries.set(at, { type: 'dir', path: at, version: seq, mtime })
      else if (e.type !== 'dir') throw notADirectory(at)
    }
  }

  /** Refuses a path that is missing or a file, as a directory is needed there. */
  private dirAt (path: string): void {
    if (path === '/') return
    const e = this.resolve(path)
    if (e === undefined) throw notFound(path)
    if (e.type !== 'dir') throw notADirectory(path)
  }

  /** The entry at `path`; a file on the way there is refused. */
  private resolve (path: string): Entry | undefined {
    const names = path.slice(1).split('/')
    let at = ''
    for (let i = 0; i < names.length - 1; i++) {
      at += '/' + (names[i] as string)
      const e = this.state.entries.get(at)
      if (e === undefined) return undefined
      if (e.type !== 'dir') throw notADirectory(at)
    }
    return this.state.entries.get(path)
  }
}

function emptyState (): State {
  return { entries: new Map(), log: new Map(), outbox: new Map(), movedIn: new Map(), staged: new Map(), released: new Map(), seq: 0 }
}

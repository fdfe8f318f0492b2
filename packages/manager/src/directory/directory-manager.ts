import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from '@mirrorcast/logger'
import { isTransportFailure } from '@mirrorcast/rpc'
import { DirectoryErrorCode, isWithin, MAX_DIRECTORY_PARTITIONS, MAX_LIST_ENTRIES, PageBudget, parentPath, type Entry, type FileEntry, type MessageBody } from '@mirrorcast/wire'
import { pickSlot, type TwinMap } from '@mirrorcast/topology'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import type { Locator } from '../cluster/locator.js'
import type { Member, Membership } from '../cluster/membership.js'
import { PartitionReplicator, type ChangeResult } from './partition-replicator.js'

export type { ChangeResult } from './partition-replicator.js'

// 5 s: how often pending cross-partition moves are looked for (left by a crash, here or in another manager)
const RECOVERY_INTERVAL_MS = 5000
// 60 s: how often each partition's twins are compared whole (dir.state)
export const DEFAULT_DIRECTORY_CHECK_MS = 60_000
// 10 s: a pending move younger than this may still be under way in another manager
const RECOVERY_MIN_AGE_MS = 10_000

export interface DirectoryManagerOptions {
  /** How many partitions the namespace is cut into; fixed for the life of a cluster. */
  partitions: number
  /** ms between two comparisons of each partition's twins, whole (DEFAULT_DIRECTORY_CHECK_MS). */
  checkMs?: number
}

interface Fence { path: string, to: string, done: Promise<void> }

/** A move whose subtree left its source partition: what steps 2 and 3 need (the subtree is read from the source's outbox). */
interface Move { intent: string, path: string, to: string }

type ListPage = MessageBody<'dir.list.ok'>

/**
 * The directory manager. The namespace is partitioned by top-level name among
 * the directory servers of a center: server k holds partition k, and its twin
 * holds the duplicate (claim 25). Each partition has its own leader and
 * follower; a rename between two partitions moves the subtree in three
 * logged steps and is fenced so that a client sees it at one place or the
 * other, never both nor neither.
 */
export class DirectoryManager {
  private readonly membership: Membership
  private readonly replicators: PartitionReplicator[]
  private readonly logger: Logger
  private readonly fences = new Set<Fence>()
  private readonly moving = new Set<string>()
  private timer: NodeJS.Timeout | undefined
  private checkTimer: NodeJS.Timeout | undefined
  private readonly checkMs: number
  private recovering: Promise<void> | undefined

  constructor (membership: Membership, twins: TwinMap, locator: Locator, options: DirectoryManagerOptions, logger: Logger) {
    if (!Number.isInteger(options.partitions) || options.partitions < 1 || options.partitions > MAX_DIRECTORY_PARTITIONS) throw new TypeError(`directory partitions must be 1 to ${MAX_DIRECTORY_PARTITIONS}`)
    this.checkMs = options.checkMs ?? DEFAULT_DIRECTORY_CHECK_MS
    if (!Number.isSafeInteger(this.checkMs) || this.checkMs < 1) throw new TypeError(`directory checkMs must be a positive whole number of ms, not ${this.checkMs}`)
    this.membership = membership
    this.logger = logger
    this.replicators = Array.from({ length: options.partitions }, (_, i) => new PartitionReplicator(i + 1, membership, twins, locator, logger))
  }

  start (): void {
    const mine = (m: Member): PartitionReplicator[] => m.role === 'directory' ? this.replicators.filter((r) => r.holds(m)) : []
    this.membership.on('available', (m) => { for (const r of mine(m)) r.onAvailable() })
    this.membership.on('failover', (m) => { for (const r of mine(m)) r.onFailover(m) })
    this.membership.on('failback', (m) => {
      const owners = mine(m)
      if (m.role === 'directory' && owners.length === 0) this.logger.warn('directory server holds no partition of this cluster', { member: m.name })
      for (const r of owners) void r.catchUp(m)
    })
    this.timer = setInterval(() => { void this.recover() }, RECOVERY_INTERVAL_MS)
    this.timer.unref()
    this.checkTimer = setInterval(() => { for (const r of this.replicators) void r.checkState() }, this.checkMs)
    this.checkTimer.unref()
  }

  close (): void {
    clearInterval(this.timer)
    clearInterval(this.checkTimer)
    this.timer = undefined
    this.checkTimer = undefined
  }

  /** Runs a read on the leader of every partition: what anti-entropy asks of the whole namespace. */
  async onEveryLeader<X> (fn: (leader: Member) => Promise<X>): Promise<X[]> {
    return await Promise.all(this.replicators.map(async (r) => await r.read(fn)))
  }

  /** Runs a read on the leader of partition 1: where the cluster's leases are kept. */
  async onFirstLeader<X> (fn: (leader: Member) => Promise<X>): Promise<X> {
    return await (this.replicators[0] as PartitionReplicator).read(fn)
  }

  /** The partition of a path: by its top-level name, so a subtree never spans two. */
  partitionOf (path: string): number {
    const top = path === '/' ? '' : path.split('/')[1] as string
    return pickSlot(top, this.replicators.map((r) => r.partition)) as number
  }

  async stat (path: string, signal?: AbortSignal): Promise<Entry> {
    const entry = await this.lookup(path, false, signal)
    if (entry === undefined) throw new ManagerError(ManagerErrorCode.NOT_FOUND, `${path} does not exist`)
    return entry
  }

  /** The entry at `path`, or undefined when there is none. */
  async lookup (path: string, optional = true, signal?: AbortSignal): Promise<Entry | undefined> {
    await this.fenced(path)
    return await this.route(path).read(async (leader) => (await leader.client.request('dir.stat', { path, optional }, { signal })).body.entry)
  }

  /**
   * One page of a directory, `limit` entries at most and fewer when their
   * bytes fill a page (MAX_PAGE_BYTES): the caller goes on after the last.
   */
  async list (path: string, after: string | undefined, limit: number | undefined, signal?: AbortSignal): Promise<ListPage> {
    await this.fenced(path)
    const body: MessageBody<'dir.list'> = { path, ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) }
    const page = async (r: PartitionReplicator): Promise<ListPage> => await r.read(async (leader) => (await leader.client.request('dir.list', body, { signal })).body)
    if (path !== '/' || this.replicators.length === 1) return await page(this.route(path))
    return mergePages(await Promise.all(this.replicators.map(page)), limit ?? MAX_LIST_ENTRIES)
  }

  async put (entry: Omit<FileEntry, 'version' | 'mtime'>): Promise<ChangeResult> {
    await this.fenced(entry.path)
    return await this.change(this.route(entry.path), async (p) => await p.client.request('dir.put', { entry }))
  }

  async mkdir (path: string, parents: boolean): Promise<ChangeResult> {
    await this.fenced(path)
    return await this.change(this.route(path), async (p) => await p.client.request('dir.mkdir', { path, parents }))
  }

  async remove (path: string, recursive: boolean): Promise<ChangeResult> {
    await this.fenced(path)
    return await this.change(this.route(path), async (p) => await p.client.request('dir.remove', { path, recursive }))
  }

  async rename (path: string, to: string): Promise<{ removed: FileEntry[] }> {
    await this.fenced(path)
    await this.fenced(to)
    const source = this.route(path)
    const target = this.route(to)
    if (source === target) return await this.change(source, async (p) => await p.client.request('dir.rename', { path, to }))
    return await this.fence(path, to, async () => await this.move(source, target, path, to))
  }

  /** A change made on a partition's leader and replicated, with every file it removed. */
  private async change (r: PartitionReplicator, op: (leader: Member) => Promise<{ body: ChangeResult }>): Promise<ChangeResult> {
    return await r.change(async (leader) => await this.withAllRemoved(leader, await op(leader)))
  }

  /**
   * A change's answer with every file it removed: those that did not fit the
   * answer (`more`) are read a page at a time from the server that made the
   * change, which keeps them until read. If they cannot be read, their bodies
   * stay on the nodes (as when an answer is lost): the change stands.
   */
  private async withAllRemoved (leader: Member, reply: { body: ChangeResult }): Promise<{ body: ChangeResult }> {
    const { change, removed, more } = reply.body
    if (more !== true) return reply
    const all = [...removed]
    try {
      for (let left = true; left;) {
        const page = (await leader.client.request('dir.removed', { seq: change.seq, from: all.length })).body
        all.push(...page.removed)
        left = page.more
      }
    } catch (err) {
      this.logger.warn('could not read every file a change removed: their bodies stay on the nodes', { seq: change.seq, leader: leader.name, read: all.length, error: (err as Error).message })
    }
    return { body: { change, removed: all } }
  }

  private route (path: string): PartitionReplicator {
    return this.replicators[this.partitionOf(path) - 1] as PartitionReplicator
  }

  /** Waits for the cross-partition moves under way here that touch `path`, its subtree or its listing. */
  private async fenced (path: string): Promise<void> {
    for (const f of this.fences) {
      const touches = isWithin(path, f.path) || isWithin(path, f.to) || path === parentPath(f.path) || path === parentPath(f.to)
      if (touches) await f.done
    }
  }

  private async fence<X> (path: string, to: string, fn: () => Promise<X>): Promise<X> {
    let release = (): void => {}
    const fence: Fence = { path, to, done: new Promise<void>((resolve) => { release = resolve }) }
    this.fences.add(fence)
    try {
      return await fn()
    } finally {
      this.fences.delete(fence)
      release()
    }
  }

  /**
   * A rename between partitions. What the destination would refuse is refused
   * before anything moves; then the subtree moves out of the source (kept
   * there as a pending intent), into the destination, and the intent is dropped.
   */
  private async move (source: PartitionReplicator, target: PartitionReplicator, path: string, to: string): Promise<{ removed: FileEntry[] }> {
    const [from, parent, existing] = await Promise.all([source.read(stat(path)), target.read(stat(parentPath(to))), target.read(stat(to))])
    if (from === undefined) throw new ManagerError(DirectoryErrorCode.NOT_FOUND, `${path} does not exist`)
    if (parent === undefined) throw new ManagerError(DirectoryErrorCode.NOT_FOUND, `${parentPath(to)} does not exist`)
    if (parent.type !== 'dir') throw new ManagerError(DirectoryErrorCode.NOT_A_DIRECTORY, `${parentPath(to)} is a file, not a directory`)
    if (existing !== undefined && (existing.type === 'dir' || from.type === 'dir')) throw new ManagerError(DirectoryErrorCode.EXISTS, `${to} already exists`)
    const intent = randomBytes(16).toString('hex')
    this.moving.add(intent)
    try {
      const out = await this.change(source, async (p) => await p.client.request('dir.move-out', { path, to, intent }))
      if (out.change.op !== 'move-out') throw new Error(`directory answered a move-out with a ${out.change.op}`)
      return await this.finishMove(source, target, { intent, path, to })
    } finally {
      this.moving.delete(intent)
    }
  }

  /**
   * Steps 2 and 3 of a move, also for one a crash left pending. A destination
   * that refuses the subtree gets nothing: it goes back where it came from,
   * and what the destination staged of it is dropped. A destination that
   * cannot be reached leaves the intent pending, to be finished by the
   * recovery once it is back.
   */
  private async finishMove (source: PartitionReplicator, target: PartitionReplicator, m: Move): Promise<{ removed: FileEntry[] }> {
    let removed: FileEntry[] = []
    try {
      removed = (await this.moveIn(source, target, m, m.intent)).removed
    } catch (err) {
      if (isTransportFailure(err) || (err as { code?: string }).code === ManagerErrorCode.UNAVAILABLE) {
        throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `${m.path} is on its way to ${m.to}: the move finishes when partition ${target.partition} is back (${(err as Error).message})`, { cause: err })
      }
      this.logger.warn('cross-partition move refused by its destination: moving it back', { intent: m.intent, path: m.path, to: m.to, error: (err as Error).message })
      const back = createHash('sha256').update(m.intent).update('back').digest('hex').slice(0, 32)
      await this.moveIn(source, source, { ...m, to: m.path }, back)
      await this.change(source, async (p) => await p.client.request('dir.move-done', { intent: m.intent }))
      await this.change(target, async (p) => await p.client.request('dir.move-done', { intent: m.intent })).catch((dropErr: Error) => {
        this.logger.warn('what the destination staged of a refused move is left there', { intent: m.intent, partition: target.partition, error: dropErr.message })
      })
      throw err
    }
    await this.change(source, async (p) => await p.client.request('dir.move-done', { intent: m.intent }))
    return { removed }
  }

  /**
   * Step 2: the subtree, read from the source a page at a time, goes to
   * `target` as one slice per page: each but the last is staged there out of
   * sight (`move-part`), the last goes with the move-in, which brings them all
   * into the namespace at once. So no message, and no change in either log,
   * is larger than a page, however large the subtree.
   */
  private async moveIn (source: PartitionReplicator, target: PartitionReplicator, m: Move, intent: string): Promise<ChangeResult> {
    for (let part = 0, from = 0; ; part++) {
      const { tree, more } = await source.read(async (l) => (await l.client.request('dir.intent-tree', { intent: m.intent, from })).body)
      if (!more) return await this.change(target, async (p) => await p.client.request('dir.move-in', { path: m.path, to: m.to, intent, tree, ...(part > 0 ? { parts: part } : {}) }))
      await this.change(target, async (p) => await p.client.request('dir.move-part', { path: m.path, intent, part, tree }))
      from += tree.length
    }
  }

  /** Finishes the moves a crash left pending in any partition (one pass at a time). */
  async recover (): Promise<void> {
    this.recovering ??= (async () => {
      for (const source of this.replicators) {
        try {
          const { intents } = await source.read(async (l) => (await l.client.request('dir.intents', {})).body)
          for (const m of intents) {
            if (this.moving.has(m.intent) || Date.now() - m.mtime < RECOVERY_MIN_AGE_MS) continue
            this.logger.warn('finishing a cross-partition move left pending', { intent: m.intent, path: m.path, to: m.to })
            await this.fence(m.path, m.to, async () => await this.finishMove(source, this.route(m.to), m))
          }
        } catch (err) {
          this.logger.debug('pending moves not recovered yet', { partition: source.partition, error: (err as Error).message })
        }
      }
    })().finally(() => { this.recovering = undefined })
    await this.recovering
  }
}

/**
 * The root holds every partition's top-level names: each partition's page,
 * merged in name order (byte order, as a server orders them). A partition
 * whose page stopped short may hold names between its last one and the
 * others' last: the merged page ends at the lowest such last name, so that
 * the next page, after it, misses none; and it holds no more than one page.
 */
export function mergePages (pages: ListPage[], max: number): ListPage {
  const order = (a: Entry, b: Entry): number => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path))
  const merged = pages.flatMap((p) => p.entries).sort(order)
  const stop = pages.filter((p) => p.more).map((p) => p.entries[p.entries.length - 1]).filter((e): e is Entry => e !== undefined).sort(order)[0]
  const page = new PageBudget({ maxItems: max })
  const entries: Entry[] = []
  for (const e of merged) {
    if ((stop !== undefined && order(e, stop) > 0) || !page.admit(e)) return { entries, more: true }
    entries.push(e)
  }
  return { entries, more: pages.some((p) => p.more) }
}

function stat (path: string): (leader: Member) => Promise<Entry | undefined> {
  return async (leader) => (await leader.client.request('dir.stat', { path, optional: true })).body.entry
}

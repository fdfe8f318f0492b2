import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from '@mirrorcast/logger'
import { isTransportFailure } from '@mirrorcast/rpc'
import { DirectoryErrorCode, isWithin, MAX_DIRECTORY_PARTITIONS, MAX_LIST_ENTRIES, parentPath, type Entry, type FileEntry, type MessageBody } from '@mirrorcast/wire'
import { pickSlot, type TwinMap } from '@mirrorcast/topology'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import type { Locator } from '../cluster/locator.js'
import type { Member, Membership } from '../cluster/membership.js'
import { PartitionReplicator, type ChangeResult } from './partition-replicator.js'

export type { ChangeResult } from './partition-replicator.js'

// 5 s: how often pending cross-partition moves are looked for (left by a crash, here or in another manager)
const RECOVERY_INTERVAL_MS = 5000
// 10 s: a pending move younger than this may still be under way in another manager
const RECOVERY_MIN_AGE_MS = 10_000

export interface DirectoryManagerOptions {
  /** How many partitions the namespace is cut into; fixed for the life of a cluster. */
  partitions: number
}

interface Fence { path: string, to: string, done: Promise<void> }

/** A move whose subtree left its source partition: what steps 2 and 3 need. */
interface Move { intent: string, path: string, to: string, tree: Entry[] }

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
  private recovering: Promise<void> | undefined

  constructor (membership: Membership, twins: TwinMap, locator: Locator, options: DirectoryManagerOptions, logger: Logger) {
    if (!Number.isInteger(options.partitions) || options.partitions < 1 || options.partitions > MAX_DIRECTORY_PARTITIONS) throw new TypeError(`directory partitions must be 1 to ${MAX_DIRECTORY_PARTITIONS}`)
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
  }

  close (): void {
    clearInterval(this.timer)
    this.timer = undefined
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

  async list (path: string, after: string | undefined, limit: number | undefined, signal?: AbortSignal): Promise<MessageBody<'dir.list.ok'>> {
    await this.fenced(path)
    const body: MessageBody<'dir.list'> = { path, ...(after === undefined ? {} : { after }), ...(limit === undefined ? {} : { limit }) }
    const page = async (r: PartitionReplicator): Promise<MessageBody<'dir.list.ok'>> => await r.read(async (leader) => (await leader.client.request('dir.list', body, { signal })).body)
    if (path !== '/' || this.replicators.length === 1) return await page(this.route(path))
    // The root holds every partition's top-level names: each partition's first page, merged.
    const pages = await Promise.all(this.replicators.map(page))
    const max = limit ?? MAX_LIST_ENTRIES
    const merged = pages.flatMap((p) => p.entries).sort((a, b) => a.path < b.path ? -1 : a.path > b.path ? 1 : 0)
    return { entries: merged.slice(0, max), more: merged.length > max || pages.some((p) => p.more) }
  }

  async put (entry: Omit<FileEntry, 'version' | 'mtime'>): Promise<ChangeResult> {
    await this.fenced(entry.path)
    return await this.route(entry.path).change(async (p) => await p.client.request('dir.put', { entry }))
  }

  async mkdir (path: string, parents: boolean): Promise<ChangeResult> {
    await this.fenced(path)
    return await this.route(path).change(async (p) => await p.client.request('dir.mkdir', { path, parents }))
  }

  async remove (path: string, recursive: boolean): Promise<ChangeResult> {
    await this.fenced(path)
    return await this.route(path).change(async (p) => await p.client.request('dir.remove', { path, recursive }))
  }

  async rename (path: string, to: string): Promise<{ removed: FileEntry[] }> {
    await this.fenced(path)
    await this.fenced(to)
    const source = this.route(path)
    const target = this.route(to)
    if (source === target) return await source.change(async (p) => await p.client.request('dir.rename', { path, to }))
    return await this.fence(path, to, async () => await this.move(source, target, path, to))
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
      const out = await source.change(async (p) => await p.client.request('dir.move-out', { path, to, intent }))
      if (out.change.op !== 'move-out') throw new Error(`directory answered a move-out with a ${out.change.op}`)
      return await this.finishMove(source, target, { intent, path, to, tree: out.change.tree })
    } finally {
      this.moving.delete(intent)
    }
  }

  /**
   * Steps 2 and 3 of a move, also for one a crash left pending. A destination
   * that refuses the subtree gets nothing: it goes back where it came from.
   * A destination that cannot be reached leaves the intent pending, to be
   * finished by the recovery once it is back.
   */
  private async finishMove (source: PartitionReplicator, target: PartitionReplicator, m: Move): Promise<{ removed: FileEntry[] }> {
    let removed: FileEntry[] = []
    try {
      removed = (await target.change(async (p) => await p.client.request('dir.move-in', { path: m.path, to: m.to, intent: m.intent, tree: m.tree }))).removed
    } catch (err) {
      if (isTransportFailure(err) || (err as { code?: string }).code === ManagerErrorCode.UNAVAILABLE) {
        throw new ManagerError(ManagerErrorCode.UNAVAILABLE, `${m.path} is on its way to ${m.to}: the move finishes when partition ${target.partition} is back (${(err as Error).message})`, { cause: err })
      }
      this.logger.warn('cross-partition move refused by its destination: moving it back', { intent: m.intent, path: m.path, to: m.to, error: (err as Error).message })
      const back = createHash('sha256').update(m.intent).update('back').digest('hex').slice(0, 32)
      await source.change(async (p) => await p.client.request('dir.move-in', { path: m.path, to: m.path, intent: back, tree: m.tree }))
      await source.change(async (p) => await p.client.request('dir.move-done', { intent: m.intent }))
      throw err
    }
    await source.change(async (p) => await p.client.request('dir.move-done', { intent: m.intent }))
    return { removed }
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

function stat (path: string): (leader: Member) => Promise<Entry | undefined> {
  return async (leader) => (await leader.client.request('dir.stat', { path, optional: true })).body.entry
}

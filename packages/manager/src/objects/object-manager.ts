import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from '@mirrorcast/logger'
import { blocks, CHUNK_BYTES, isTransportFailure } from '@mirrorcast/rpc'
import { FREE_SPACE_MARGIN_BYTES, INLINE_BODY_BYTES, NodeErrorCode, type FileEntry, type Replica } from '@mirrorcast/wire'
import { pickSlot } from '@mirrorcast/topology'
import { ManagerError, ManagerErrorCode } from '../errors.js'
import type { Locator } from '../cluster/locator.js'
import type { MemberUpload } from '../cluster/member-client.js'
import type { Member, Membership } from '../cluster/membership.js'
import type { RepairJournal, RepairOp } from './repair-journal.js'
import { BodyCache, DEFAULT_BODY_CACHE_BYTES } from './body-cache.js'

export interface StoredBody {
  fileId: string
  size: number
  sha256: string
  replicas: Replica[]
}

interface Copy {
  member: Member
  upload: MemberUpload<'blob.put.ok'>
}

// 1 s: pause before a resync that failed is tried again
const RESYNC_RETRY_MS = 1000
// 8: journal entries repaired at once during a resync (copies stream from the twin)
const RESYNC_CONCURRENCY = 8
// 16: bodies deleted at once when a change removed many (each delete goes to both nodes of its pair)
const REMOVE_CONCURRENCY = 16

/**
 * The object manager: places bodies on a twin pair, streams them to both
 * nodes at once, reads them from the home node or, in failover, from wherever
 * the locator finds them; journals what a failed-over node misses and replays
 * it when the node comes back.
 */
export class ObjectManager {
  private readonly membership: Membership
  private readonly journal: RepairJournal
  private readonly locator: Locator
  private readonly logger: Logger
  private readonly resyncing = new Set<string>()
  private closed = false
  /** Runs once a returning node's journal is replayed, before it serves again: its reconciliation with its twin. */
  beforeFailback: ((member: Member) => Promise<void>) | undefined
  readonly cache: BodyCache

  constructor (membership: Membership, journal: RepairJournal, locator: Locator, logger: Logger, cacheBytes = DEFAULT_BODY_CACHE_BYTES) {
    this.cache = new BodyCache(cacheBytes)
    this.membership = membership
    this.journal = journal
    this.locator = locator
    this.logger = logger
    membership.on('failback', (member) => { if (member.role === 'storage') void this.resync(member) })
    // A member heard for the first time may have missed writes journaled before this manager restarted.
    membership.on('available', (member) => { if (member.role === 'storage') void this.resyncIfJournaled(member) })
  }

  private async resyncIfJournaled (member: Member): Promise<void> {
    try {
      if ((await this.journal.pending(member.id)).length > 0 && member.usable) this.membership.requestFailback(member, false)
    } catch (err) {
      this.logger.error('repair journal unreadable', { member: member.name, error: (err as Error).message })
    }
  }

  close (): void {
    this.closed = true
  }

  /**
   * The twin pair for a new body of `size` bytes, primary center first. In
   * order of preference: both nodes writable and with room for it (by the
   * free space they announce), one writable with room (its twin's copy is
   * journaled), then the same without the room check, for the nodes
   * themselves to refuse what they cannot hold.
   */
  place (fileId: string, size: number): Member[] {
    const pairs = this.membership.pairs('storage')
    const room = (m: Member): boolean => !m.writable || m.info.free >= size + FREE_SPACE_MARGIN_BYTES
    const whole = pairs.filter((p) => p.members.every((m) => m.writable))
    const degraded = pairs.filter((p) => p.members.some((m) => m.writable))
    const tiers = [whole.filter((p) => p.members.every(room)), degraded.filter((p) => p.members.every(room)), whole, degraded]
    const index = pickSlot(fileId, (tiers.find((t) => t.length > 0) ?? []).map((p) => p.index))
    const pair = pairs.find((p) => p.index === index)
    if (pair === undefined) throw new ManagerError(ManagerErrorCode.NO_REPLICA, pairs.length === 0 ? 'no storage twin pair has been discovered' : 'every storage node is failed over')
    return pair.members
  }

  /**
   * Stores a new body on the writable nodes of a pair. Resolves once every
   * copy is fsynced and the checksums agree; a node that fails midway is
   * failed over and its copy journaled, as long as one copy survives.
   */
  async write (source: AsyncIterable<Buffer>, size: number, signal?: AbortSignal): Promise<StoredBody> {
    const body = exactly(source, size)
    if (size <= INLINE_BODY_BYTES) return await this.writeSmall(await collect(body, size), signal)
    return await this.writeStream(body, size, signal)
  }

  /**
   * A small body, held whole: one frame to each node of the pair, at once. A
   * node without room for it is marked full and the body goes to another
   * pair, once: its bytes are still here to send again.
   */
  private async writeSmall (body: Buffer, signal: AbortSignal | undefined, again = true): Promise<StoredBody> {
    const fileId = randomBytes(16).toString('hex')
    const members = this.place(fileId, body.length)
    const missed = members.filter((m) => !m.writable)
    const targets = members.filter((m) => m.writable)
    const sums = new Map<Member, string>()
    let refusal: unknown
    const results = await Promise.allSettled(targets.map(async (m) => {
      sums.set(m, (await m.client.request('blob.put', { fileId, size: body.length, inline: true }, { signal, payload: body })).body.sha256)
    }))
    results.forEach((r, i) => {
      const member = targets[i] as Member
      if (r.status === 'fulfilled') return
      this.noteFull(member, r.reason)
      if (isTransportFailure(r.reason)) this.lose(member, r.reason, missed)
      else refusal ??= r.reason
    })
    if (refusal !== undefined) {
      await this.remove({ fileId, replicas: [...sums.keys()].map(replicaOf) })
      if (again && (refusal as { code?: string }).code === NodeErrorCode.NO_SPACE) return await this.writeSmall(body, signal, false)
      throw refusal
    }
    const stored = await this.seal(fileId, body.length, members, missed, sums)
    this.cache.add(fileId, body)
    return stored
  }

  /** A body of any size (`source` holds exactly `size` bytes), streamed to both nodes of a pair at once, at the pace of the slower one. */
  private async writeStream (source: AsyncIterable<Buffer>, size: number, signal: AbortSignal | undefined): Promise<StoredBody> {
    const fileId = randomBytes(16).toString('hex')
    const members = this.place(fileId, size)
    const missed = members.filter((m) => !m.writable)
    let live: Copy[] = []
    try {
      for (const member of members.filter((m) => m.writable)) {
        try {
          live.push({ member, upload: await member.client.upload('blob.put', { fileId, size, senderHashes: true }, { signal }) })
        } catch (err) {
          this.lose(member, err, missed)
        }
      }
      live = this.survivors(live, missed)
      // Hashed here, once, not by both nodes: the frames' MACs vouch for the bytes on the way, the nodes' block CRCs on disk.
      const hash = createHash('sha256')
      for await (const block of blocks(source, CHUNK_BYTES)) {
        for (const part of block) hash.update(part)
        live = await this.onEach(live, missed, async (c) => { await c.upload.write(block) })
      }
      const end = { sha256: hash.digest('hex') }
      const sums = new Map<Member, string>()
      live = await this.onEach(live, missed, async (c) => { const r = await c.upload.finish(end); sums.set(c.member, r.body.sha256) })
      return await this.seal(fileId, size, members, missed, sums)
    } catch (err) {
      for (const c of live) c.upload.abort((err as Error).message)
      throw err
    }
  }

  /** The copies agree (or the body goes), and what the failed-over nodes missed is journaled. */
  private async seal (fileId: string, size: number, members: Member[], missed: Member[], sums: Map<Member, string>): Promise<StoredBody> {
    const stored = [...sums.keys()]
    if (stored.length === 0) throw noNodeTook(missed)
    const distinct = new Set(sums.values())
    const sha256 = distinct.values().next().value as string
    if (distinct.size !== 1) {
      await this.remove({ fileId, replicas: members.map(replicaOf) })
      throw new ManagerError(ManagerErrorCode.REPLICA_MISMATCH, `replicas of ${fileId} disagree: ${[...distinct].join(' vs ')}`)
    }
    const source0 = replicaOf(stored[0] as Member)
    for (const m of missed) await this.journalFor(m, { op: 'put', fileId, size, sha256, source: source0 })
    return { fileId, size, sha256, replicas: members.map(replicaOf) }
  }

  /** A node that refused a body for lack of room is passed over by placement until it announces room again. */
  private noteFull (member: Member, err: unknown): void {
    if ((err as { code?: string }).code === NodeErrorCode.NO_SPACE) member.info.free = 0
  }

  /** Runs `fn` on every live copy; copies whose node failed are dropped (and failed over). */
  private async onEach (live: Copy[], missed: Member[], fn: (c: Copy) => Promise<void>): Promise<Copy[]> {
    const results = await Promise.allSettled(live.map(fn))
    const kept: Copy[] = []
    results.forEach((r, i) => {
      const c = live[i] as Copy
      if (r.status === 'fulfilled') kept.push(c)
      else if (isTransportFailure(r.reason)) this.lose(c.member, r.reason, missed, c)
      else {
        this.noteFull(c.member, r.reason)
        throw r.reason
      }
    })
    return this.survivors(kept, missed)
  }

  private lose (member: Member, err: unknown, missed: Member[], copy?: Copy): void {
    if (!isTransportFailure(err)) throw err
    copy?.upload.abort((err as Error).message)
    // This write's copy is lost either way (it is journaled); whether the member is too, a probe says.
    void this.membership.reportFailure(member, err as Error)
    missed.push(member)
  }

  private survivors (live: Copy[], missed: Member[]): Copy[] {
    if (live.length === 0) throw noNodeTook(missed)
    return live
  }

  /**
   * Reads a range of a body from the cache, or else from the first place that
   * serves it: the home node, or in failover the places the locator finds. A place failing before
   * or during the stream is left for the next one, which continues at the
   * byte reached: the caller sees one unbroken stream.
   */
  async * read (entry: Pick<FileEntry, 'fileId' | 'size' | 'sha256' | 'replicas'>, offset: number, length: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
    const home = entry.replicas[0]
    if (home === undefined) throw new ManagerError(ManagerErrorCode.NO_REPLICA, `${entry.fileId} has no replica`)
    // In failover a read takes the failover path, so that what it finds does not depend on what happens to be cached.
    const cacheable = entry.size <= INLINE_BODY_BYTES && this.membership.byId(home.node)?.usable === true
    const cached = cacheable ? this.cache.get(entry.fileId) : undefined
    if (cached !== undefined) {
      yield cached.subarray(offset, offset + length)
      return
    }
    const whole: Buffer[] | undefined = cacheable && offset === 0 && length === entry.size ? [] : undefined
    for await (const chunk of this.readFromNodes(entry, home, offset, length, signal)) {
      whole?.push(chunk)
      yield chunk
    }
    if (whole !== undefined) this.keep(entry, Buffer.concat(whole))
  }

  /** A whole small body read from a node is kept if it is the body the entry names (a node checks its records by CRC, the cache keeps it for many reads). */
  private keep (entry: Pick<FileEntry, 'fileId' | 'sha256'>, body: Buffer): void {
    if (createHash('sha256').update(body).digest('hex') === entry.sha256) this.cache.add(entry.fileId, body)
  }

  private async * readFromNodes (entry: Pick<FileEntry, 'fileId' | 'size' | 'sha256' | 'replicas'>, home: Replica, offset: number, length: number, signal?: AbortSignal): AsyncGenerator<Buffer> {
    let position = offset
    const end = offset + length
    let lastError: Error | undefined
    const query = { role: 'storage' as const, home: { center: home.center, slot: home.slot, node: home.node }, kind: 'blob' as const, key: entry.fileId, holds: async (m: Member) => await m.client.request('blob.stat', { fileId: entry.fileId }).then(() => true) }
    for await (const { member, method, center } of this.locator.candidates(query)) {
      try {
        const { body } = await member.client.download('blob.get', { fileId: entry.fileId, offset: position, length: end - position }, { signal })
        if (method !== 'home') this.logger.info('file located after failover', { fileId: entry.fileId, method, center, member: member.name, at: position })
        for await (const chunk of body) {
          position += chunk.length
          yield chunk
        }
        if (position >= end) return
      } catch (err) {
        if (signal?.aborted === true) throw err
        lastError = err as Error
        if (isTransportFailure(err)) void this.membership.reportFailure(member, err as Error)
        this.logger.warn('read failed, trying the next place', { fileId: entry.fileId, member: member.name, at: position, code: (err as { code?: string }).code, error: (err as Error).message })
      }
    }
    if (position >= end) return
    throw new ManagerError(ManagerErrorCode.NO_REPLICA, `no replica of ${entry.fileId} could serve bytes ${position}-${end - 1}${lastError === undefined ? '' : ': ' + lastError.message}`, { cause: lastError })
  }

  /**
   * Deletes many bodies (those a recursive remove dropped), a few at a time:
   * thousands at once would open thousands of sessions to each node, more than
   * it takes before its handshake caps refuse them.
   */
  async removeAll (bodies: ReadonlyArray<Pick<StoredBody, 'fileId' | 'replicas'>>): Promise<void> {
    let next = 0
    const worker = async (): Promise<void> => {
      while (next < bodies.length) await this.remove(bodies[next++] as Pick<StoredBody, 'fileId' | 'replicas'>)
    }
    await Promise.all(Array.from({ length: Math.min(REMOVE_CONCURRENCY, bodies.length) }, worker))
  }

  /**
   * Deletes a body everywhere; a node that cannot be reached gets the delete
   * journaled. So does a node catching up, after the delete: a copy its resync
   * was making of this body meanwhile is removed by the journal's next round.
   */
  async remove (body: Pick<StoredBody, 'fileId' | 'replicas'>): Promise<void> {
    this.cache.delete(body.fileId)
    await Promise.all(body.replicas.map(async (replica) => {
      const member = this.membership.byId(replica.node)
      if (member === undefined) return
      if (member.writable) {
        try {
          await member.client.request('blob.delete', { fileId: body.fileId })
          if (member.resyncing) await this.journalFor(member, { op: 'delete', fileId: body.fileId })
          return
        } catch (err) {
          if (!isTransportFailure(err)) {
            this.logger.warn('could not delete a body', { fileId: body.fileId, member: member.name, error: (err as Error).message })
            return
          }
          void this.membership.reportFailure(member, err as Error)
        }
      }
      await this.journalFor(member, { op: 'delete', fileId: body.fileId })
    }))
  }

  private async journalFor (member: Member, op: RepairOp): Promise<void> {
    await this.journal.append(member.id, op)
    // The node may have finished a resync while this was decided: make sure it is caught up.
    if (member.usable) this.membership.requestFailback(member, false)
  }

  /** Replays what a returning node missed, from the journal, then puts it back into use. */
  async resync (member: Member): Promise<void> {
    if (this.resyncing.has(member.id)) return
    this.resyncing.add(member.id)
    const started = Date.now()
    let repaired = 0
    let reconciled = false
    try {
      // A node back from a protocol error must first show that it answers at all.
      await member.client.request('node.stats', {})
      for (;;) {
        if (this.closed || !member.resyncing) return
        const ops = [...await this.journal.pending(member.id)]
        if (ops.length === 0 && !reconciled) {
          // The journal may be another manager's, or lost: what the directory names and the twin holds is the truth.
          // Once is enough: the node takes every write from here on, and what was journaled meanwhile is replayed next.
          // (Reconciling again whenever the journal grew meanwhile was a livelock under steady deletes, each journaled for it.)
          await this.beforeFailback?.(member)
          reconciled = true
          continue
        }
        // Caught up. An append still on its way finds the node usable and starts another resync (journalFor).
        if (ops.length === 0) {
          this.logger.info('resync done', { member: member.name, repaired, ms: Date.now() - started })
          this.membership.completeFailback(member)
          return
        }
        this.logger.log(repaired === 0 ? 'info' : 'debug', 'resync round', { member: member.name, ops: ops.length, repaired })
        await this.repairAll(member, ops)
        repaired += ops.length
        await this.journal.done(member.id, ops.length)
      }
    } catch (err) {
      this.logger.warn('resync failed, will retry', { member: member.name, repaired, error: (err as Error).message })
      // Out: its next failback resyncs it. Still in (the probe answered): the resync goes on after a pause.
      const out = isTransportFailure(err) && await this.membership.reportFailure(member, err as Error)
      if (!out) setTimeout(() => { if (member.resyncing) void this.resync(member) }, RESYNC_RETRY_MS).unref()
    } finally {
      this.resyncing.delete(member.id)
    }
  }

  /**
   * Replays journal entries on a returning node, several at once. A body
   * written and deleted while the node was out is not copied at all: its
   * delete is all that is left to do.
   */
  private async repairAll (member: Member, ops: RepairOp[]): Promise<void> {
    const deleted = new Set(ops.filter((op) => op.op === 'delete').map((op) => op.fileId))
    const todo = ops.filter((op) => op.op === 'delete' || !deleted.has(op.fileId))
    let next = 0
    let failed: unknown
    // Every worker stops at the first failure, and the resync waits for all of them before it retries.
    await Promise.all(Array.from({ length: Math.min(RESYNC_CONCURRENCY, todo.length) }, async () => {
      while (next < todo.length && failed === undefined) await this.repair(member, todo[next++] as RepairOp).then(() => {}, (err: unknown) => { failed ??= err })
    }))
    if (failed !== undefined) throw failed
  }

  /**
   * Copies a body back onto a node that set its copy aside as corrupt, from
   * the twin or wherever the locator finds a good copy; gives up quietly when
   * none is left (the body was deleted meanwhile, or every copy is bad).
   */
  async restoreCopy (member: Member, file: { fileId: string, size: number, sha256: string }): Promise<void> {
    const twin = this.membership.twinOf(member) ?? member
    await this.repair(member, { op: 'put', ...file, source: replicaOf(twin) })
  }

  /** Copies a body onto `target` from `source` (or wherever the locator finds it); false when no copy was left to take. */
  async copyBody (target: Member, source: Member, file: { fileId: string, size: number, sha256: string }): Promise<boolean> {
    return await this.repair(target, { op: 'put', ...file, source: replicaOf(source) })
  }

  /** Resolves false when a body to copy has no copy left (it was deleted meanwhile). */
  private async repair (member: Member, op: RepairOp): Promise<boolean> {
    if (op.op === 'delete') {
      await member.client.request('blob.delete', { fileId: op.fileId })
      return true
    }
    const exists = await member.client.request('blob.stat', { fileId: op.fileId }).then(() => true, () => false)
    if (exists) return true
    const upload = await member.client.upload('blob.put', { fileId: op.fileId, size: op.size })
    try {
      for await (const chunk of this.read({ fileId: op.fileId, size: op.size, sha256: op.sha256, replicas: [op.source] }, 0, op.size)) await upload.write(chunk)
      const reply = await upload.finish()
      if (reply.body.sha256 !== op.sha256) throw new ManagerError(ManagerErrorCode.REPLICA_MISMATCH, `repaired copy of ${op.fileId} has sha256 ${reply.body.sha256}, expected ${op.sha256}`)
      return true
    } catch (err) {
      upload.abort((err as Error).message)
      // A body deleted meanwhile has nothing left to repair from; its delete is journaled after this put.
      if ((err as { code?: string }).code === ManagerErrorCode.NO_REPLICA) return false
      throw err
    }
  }
}

export function replicaOf (member: Member): Replica {
  return { node: member.id, center: member.center, slot: member.slot }
}

function noNodeTook (missed: Member[]): ManagerError {
  return new ManagerError(ManagerErrorCode.NO_REPLICA, `no node of the pair could take the body (${missed.map((m) => m.name).join(', ')} failed)`)
}

/** A request body held to its declared size: a byte more, or one missing at its end, is refused. */
async function * exactly (source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let received = 0
  for await (const chunk of source) {
    received += chunk.length
    if (received > size) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, `body is longer than its declared ${size} bytes`)
    yield chunk
  }
  if (received !== size) throw new ManagerError(ManagerErrorCode.UPLOAD_INCOMPLETE, `body ended after ${received} of ${size} bytes`)
}

/** A small body read whole. */
async function collect (source: AsyncIterable<Buffer>, size: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of source) chunks.push(chunk)
  return Buffer.concat(chunks, size)
}

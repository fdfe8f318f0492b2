import { setImmediate as yieldToLoop } from 'node:timers/promises'
import { DIGEST_SHARDS, SetDigest, shardOf } from '@mirrorcast/wire'

/** Where a body of the volumes is, and what it is. */
export interface VolumeEntry {
  volume: number
  /** Where the record starts. */
  offset: number
  size: number
  mtime: number
  sha256: string
}

const SHA256_BYTES = 32
const INITIAL_SLOTS = 1024

/**
 * The volumes' index, file id → entry, with the entries in typed columns: a
 * Map of one object and two strings per body held a million small bodies in
 * 900 MB; here a body costs its id in a Map and 56 bytes of columns. One Map
 * per shard of the id space, so a shard is listed without walking them all.
 * The set digest that pair anti-entropy asks for is kept as ids come and go:
 * computed afresh it held the event loop for two seconds at a million bodies,
 * every round. It is built at the first ask, a shard per turn of the event
 * loop, not at start, where it would double the time a start takes.
 */
export class VolumeIndex {
  private readonly shards = Array.from({ length: DIGEST_SHARDS }, () => new Map<string, number>())
  private count = 0
  /** The digest of the ids held, once built; while it is built, of the shards below `built`. */
  private held: SetDigest | undefined
  private building: Promise<SetDigest> | undefined
  private built = 0
  private readonly freeSlots: number[] = []
  private used = 0
  private volume = new Uint32Array(INITIAL_SLOTS)
  private offset = new Float64Array(INITIAL_SLOTS)
  private length = new Uint32Array(INITIAL_SLOTS)
  private mtime = new Float64Array(INITIAL_SLOTS)
  private sha256 = Buffer.alloc(INITIAL_SLOTS * SHA256_BYTES)

  get size (): number {
    return this.count
  }

  get (fileId: string): VolumeEntry | undefined {
    const slot = this.mapOf(fileId)?.get(fileId)
    if (slot === undefined) return undefined
    return {
      volume: this.volume[slot] as number,
      offset: this.offset[slot] as number,
      size: this.length[slot] as number,
      mtime: this.mtime[slot] as number,
      sha256: this.sha256.toString('hex', slot * SHA256_BYTES, (slot + 1) * SHA256_BYTES)
    }
  }

  /** Whether the id's entry is still the record at `at` (not deleted, replaced or moved since). */
  holds (fileId: string, at: { volume: number, offset: number }): boolean {
    const slot = this.mapOf(fileId)?.get(fileId)
    return slot !== undefined && this.volume[slot] === at.volume && this.offset[slot] === at.offset
  }

  set (fileId: string, entry: VolumeEntry): void {
    const shard = this.mapOf(fileId)
    if (shard === undefined) throw new TypeError(`not a file id: ${fileId}`)
    let slot = shard.get(fileId)
    if (slot === undefined) {
      slot = this.freeSlots.pop() ?? this.nextSlot()
      shard.set(fileId, slot)
      this.count++
      this.count1(fileId, 1)
    }
    this.volume[slot] = entry.volume
    this.offset[slot] = entry.offset
    this.length[slot] = entry.size
    this.mtime[slot] = entry.mtime
    this.sha256.write(entry.sha256, slot * SHA256_BYTES, SHA256_BYTES, 'hex')
  }

  delete (fileId: string): boolean {
    const shard = this.mapOf(fileId)
    const slot = shard?.get(fileId)
    if (shard === undefined || slot === undefined) return false
    shard.delete(fileId)
    this.freeSlots.push(slot)
    this.count--
    this.count1(fileId, -1)
    return true
  }

  /** The set digest of the ids held (a copy). */
  async digest (): Promise<SetDigest> {
    this.building ??= this.build()
    return (await this.building).plus(new SetDigest())
  }

  private async build (): Promise<SetDigest> {
    const digest = new SetDigest()
    this.held = digest
    for (let shard = 0; shard < DIGEST_SHARDS && this.held === digest; shard++) {
      for (const id of (this.shards[shard] as Map<string, number>).keys()) digest.add(id)
      // From here on, a put or delete in this shard is counted as it happens.
      this.built = shard + 1
      await yieldToLoop()
    }
    return digest
  }

  /** An id in or out: counted in the digest if its shard is in it already. */
  private count1 (fileId: string, sign: 1 | -1): void {
    if (this.held !== undefined && shardOf(fileId) < this.built) this.held.add(fileId, sign)
  }

  /** The map of an id's shard (none for what is not a file id: those are checked before they get here). */
  private mapOf (fileId: string): Map<string, number> | undefined {
    return this.shards[shardOf(fileId)]
  }

  * keys (): IterableIterator<string> {
    for (const shard of this.shards) yield * shard.keys()
  }

  /** The ids of one shard (0 to 255: their first two hex digits), in no order. */
  shardKeys (shard: number): IterableIterator<string> {
    return (this.shards[shard] ?? new Map<string, number>()).keys()
  }

  clear (): void {
    for (const shard of this.shards) shard.clear()
    this.count = 0
    this.held = undefined
    this.building = undefined
    this.built = 0
    this.freeSlots.length = 0
    this.used = 0
  }

  private nextSlot (): number {
    if (this.used === this.volume.length) this.grow(this.volume.length * 2)
    return this.used++
  }

  private grow (slots: number): void {
    this.volume = widened(this.volume, slots)
    this.offset = widened(this.offset, slots)
    this.length = widened(this.length, slots)
    this.mtime = widened(this.mtime, slots)
    const sha256 = Buffer.alloc(slots * SHA256_BYTES)
    this.sha256.copy(sha256)
    this.sha256 = sha256
  }
}

function widened<T extends Uint32Array | Float64Array> (column: T, slots: number): T {
  const wider = new (column.constructor as new (n: number) => T)(slots)
  wider.set(column)
  return wider
}

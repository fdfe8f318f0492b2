import { createHash } from 'node:crypto'

/*
 * What the twins of a pair and the directory compare in anti-entropy: the set
 * of file ids one place holds, as 256 shards (by the id's first two hex
 * digits, as a node lays out its bodies), each summarised by a 128-bit sum of
 * the members' hashes. A sum, not a XOR: an id counted twice (a file on its
 * way between two directory partitions) does not cancel out, it shows as a
 * difference, and a closer look finds nothing to do. Sums combine across
 * directory partitions by adding them, and a member comes out by subtracting.
 */
export const DIGEST_SHARDS = 256
// 16 bytes a shard: 4 lanes of 32 bits, each summed on its own modulo 2^32
export const SHARD_DIGEST_BYTES = 16
const LANES = SHARD_DIGEST_BYTES / 4
export const SET_DIGEST_BYTES = DIGEST_SHARDS * SHARD_DIGEST_BYTES

/** The shard of a file id: its first byte. */
export function shardOf (fileId: string): number {
  return parseInt(fileId.slice(0, 2), 16)
}

/** The two hex digits naming a shard, as in a node's blobs/<shard>/ directories. */
export function shardName (shard: number): string {
  return shard.toString(16).padStart(2, '0')
}

function memberHash (fileId: string): Uint32Array {
  const h = createHash('sha256').update(fileId).digest()
  return new Uint32Array(h.buffer, h.byteOffset, LANES)
}

/** Sums of the hashed file ids of a set, by shard. */
export class SetDigest {
  private readonly lanes: Uint32Array

  constructor (bytes?: Uint8Array) {
    if (bytes !== undefined && bytes.length !== SET_DIGEST_BYTES) throw new RangeError(`a set digest is ${SET_DIGEST_BYTES} bytes, not ${bytes.length}`)
    this.lanes = new Uint32Array(DIGEST_SHARDS * LANES)
    if (bytes !== undefined) new Uint8Array(this.lanes.buffer).set(bytes)
  }

  /** Adds a file id (`sign` -1 takes one out). */
  add (fileId: string, sign: 1 | -1 = 1): void {
    const base = shardOf(fileId) * LANES
    const h = memberHash(fileId)
    for (let i = 0; i < LANES; i++) this.lanes[base + i] = (this.lanes[base + i] as number) + sign * (h[i] as number)
  }

  remove (fileId: string): void {
    this.add(fileId, -1)
  }

  /** Adds every shard of another digest: the union of two disjoint sets (directory partitions). */
  plus (other: SetDigest): SetDigest {
    const sum = new SetDigest()
    for (let i = 0; i < this.lanes.length; i++) sum.lanes[i] = (this.lanes[i] as number) + (other.lanes[i] as number)
    return sum
  }

  /** One shard's 16 bytes. */
  shard (shard: number): Uint8Array {
    return new Uint8Array(this.lanes.buffer, shard * SHARD_DIGEST_BYTES, SHARD_DIGEST_BYTES).slice()
  }

  /** Sets one shard from its 16 bytes (read from a store). */
  setShard (shard: number, bytes: Uint8Array): void {
    new Uint8Array(this.lanes.buffer, shard * SHARD_DIGEST_BYTES, SHARD_DIGEST_BYTES).set(bytes)
  }

  /** The shards where the two sets differ. */
  differing (other: SetDigest): number[] {
    const out: number[] = []
    for (let s = 0; s < DIGEST_SHARDS; s++) {
      for (let i = 0; i < LANES; i++) {
        if (this.lanes[s * LANES + i] !== other.lanes[s * LANES + i]) {
          out.push(s)
          break
        }
      }
    }
    return out
  }

  bytes (): Uint8Array<ArrayBuffer> {
    return new Uint8Array(this.lanes.buffer.slice(0) as ArrayBuffer)
  }
}

/** The sum of two shards' 16 bytes (a stored shard, or none, plus a change's shard of a SetDigest): what a store keeps per shard. */
export function sumShards (stored: Uint8Array | undefined, delta: Uint8Array): Uint8Array {
  const a = new Uint32Array(LANES)
  if (stored !== undefined) new Uint8Array(a.buffer).set(stored)
  const b = new Uint32Array(new Uint8Array(delta).buffer)
  for (let i = 0; i < LANES; i++) a[i] = (a[i] as number) + (b[i] as number)
  return new Uint8Array(a.buffer)
}

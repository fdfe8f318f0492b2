import { createHash } from 'node:crypto'

/**
 * Rendezvous (highest random weight) hashing: each file goes to the slot whose
 * hash with the file id is highest. Files spread evenly, and adding a slot
 * moves only the files that now hash highest to it.
 */
export function pickSlot (fileId: string, slots: readonly number[]): number | undefined {
  // One slot (one pair, one partition) is the answer without a hash: a lookup used to spend a sha256 on it.
  if (slots.length === 1) return slots[0]
  let best: number | undefined
  let bestWeight = -1n
  for (const slot of slots) {
    const weight = createHash('sha256').update(fileId).update(':').update(String(slot)).digest().readBigUInt64BE(0)
    if (weight > bestWeight) {
      best = slot
      bestWeight = weight
    }
  }
  return best
}

import { createHash } from 'node:crypto'

/**
 * Rendezvous (highest random weight) hashing: each file goes to the slot whose
 * hash with the file id is highest. Files spread evenly, and adding a slot
 * moves only the files that now hash highest to it.
 */
export function pickSlot (fileId: string, slots: readonly number[]): number | undefined {
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

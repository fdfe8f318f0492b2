// 256: how far behind the newest number a late datagram may arrive and still count
const WINDOW = 256

/**
 * Anti-replay as in IPsec: a number is accepted once, if it is newer than the
 * newest seen or inside the window behind it. Datagrams from one sender reach
 * two sockets (group and unicast) and may be reordered, so "strictly
 * increasing" would drop real ones.
 */
export class ReplayWindow {
  private newest = -1
  private readonly seen = new Set<number>()

  accept (seq: number): boolean {
    if (seq <= this.newest - WINDOW || this.seen.has(seq)) return false
    this.seen.add(seq)
    if (seq > this.newest) {
      this.newest = seq
      for (const s of this.seen) if (s <= this.newest - WINDOW) this.seen.delete(s)
    }
    return true
  }
}

// 256: how far behind the newest number a late datagram may arrive and still count
const WINDOW = 256

/**
 * Anti-replay as in IPsec: a number is accepted once, if it is newer than the
 * newest seen or inside the window behind it. Datagrams from one sender reach
 * two sockets (group and unicast) and may be reordered, so "strictly
 * increasing" would drop real ones. The window is a ring of bits indexed by
 * the number modulo its size: a datagram costs a few word operations, not a
 * walk over what was seen.
 */
export class ReplayWindow {
  private newest = -1
  private readonly bits = new Uint32Array(WINDOW / 32)

  accept (seq: number): boolean {
    if (seq > this.newest) {
      if (this.newest < 0 || seq - this.newest >= WINDOW) this.bits.fill(0)
      else for (let s = this.newest + 1; s < seq; s++) this.clear(s)
      this.newest = seq
      this.set(seq)
      return true
    }
    if (this.newest - seq >= WINDOW || this.has(seq)) return false
    this.set(seq)
    return true
  }

  private has (seq: number): boolean {
    const i = seq % WINDOW
    return ((this.bits[i >>> 5] as number) & (1 << (i & 31))) !== 0
  }

  private set (seq: number): void {
    const i = seq % WINDOW
    this.bits[i >>> 5] = (this.bits[i >>> 5] as number) | (1 << (i & 31))
  }

  private clear (seq: number): void {
    const i = seq % WINDOW
    this.bits[i >>> 5] = (this.bits[i >>> 5] as number) & ~(1 << (i & 31))
  }
}

export interface ReplayWindowsOptions {
  /**
   * ms after a sender's last accepted datagram that its window is kept. Twice the
   * clock skew a datagram may have is enough: any replay of what it had sent is
   * stale by then and refused on its timestamp, window or not.
   */
  maxAgeMs: number
  /** senders remembered at most; past it, the one heard from longest ago is forgotten */
  maxSenders: number
}

/**
 * A replay window per sender, forgotten by age: a window is dropped once its sender
 * has been silent past `maxAgeMs`, or, when too many senders were heard, the one
 * silent the longest. A long-lived member heartbeats and so stays the newest,
 * whatever number of short-lived senders come and go; evicting by insertion
 * order would forget it first, and open it to replays within the skew.
 */
export class ReplayWindows {
  private readonly options: ReplayWindowsOptions
  // insertion order is the order senders were last heard: each accept moves its sender last
  private readonly windows = new Map<string, { window: ReplayWindow, heardAt: number }>()

  constructor (options: ReplayWindowsOptions) {
    this.options = options
  }

  get size (): number {
    return this.windows.size
  }

  has (sender: string): boolean {
    return this.windows.has(sender)
  }

  /** Whether `seq` from `sender` is new; `now` is the receiver's clock. */
  accept (sender: string, seq: number, now = Date.now()): boolean {
    this.expire(now)
    const entry = this.windows.get(sender) ?? { window: new ReplayWindow(), heardAt: now }
    if (!entry.window.accept(seq)) return false
    entry.heardAt = now
    this.windows.delete(sender)
    this.windows.set(sender, entry)
    if (this.windows.size > this.options.maxSenders) this.windows.delete(this.windows.keys().next().value as string)
    return true
  }

  /** Drops, oldest first, the windows of senders silent past the age limit. */
  private expire (now: number): void {
    for (const [sender, { heardAt }] of this.windows) {
      if (now - heardAt <= this.options.maxAgeMs) return
      this.windows.delete(sender)
    }
  }
}

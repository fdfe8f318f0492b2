import { fsyncDir } from '@mirrorcast/wire'

/**
 * fsyncs directories with group commit: callers that arrive while a sync of
 * the same directory runs share the next one, so concurrent small writes do
 * not each pay a directory fsync.
 */
export class DirSyncer {
  private readonly state = new Map<string, { running: Promise<void>, next: Promise<void> | undefined }>()

  async sync (dir: string): Promise<void> {
    const s = this.state.get(dir)
    if (s === undefined) {
      const running = fsyncDir(dir).finally(() => this.settle(dir))
      this.state.set(dir, { running, next: undefined })
      return await running
    }
    s.next ??= s.running.catch(() => {}).then(async () => await fsyncDir(dir))
    return await s.next
  }

  private settle (dir: string): void {
    const s = this.state.get(dir)
    if (s === undefined) return
    if (s.next === undefined) {
      this.state.delete(dir)
      return
    }
    const next = s.next
    this.state.set(dir, { running: next.finally(() => this.settle(dir)), next: undefined })
  }
}

import { readFileSync } from 'node:fs'
import { open } from 'node:fs/promises'

/**
 * CPU time (clock ticks, user + system) a process has used so far, read from
 * /proc; undefined where there is no /proc (then only other signs of progress count).
 */
export function cpuTicks (pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // the command name (field 2) may hold spaces: count fields from after its closing parenthesis
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return Number(fields[11]) + Number(fields[12])
  } catch {
    return undefined
  }
}

export interface StallWatchOptions {
  /** How long without any sign of progress counts as stuck. */
  stallMs: number
  /** The most a start may take, progress or not. */
  limitMs: number
  /** Processes whose CPU time counts as progress. */
  pids: () => Array<number | undefined>
  onStall: (why: string) => void
}

/**
 * Tells a start that is stuck from one that is slow: on a busy machine a
 * process may need many seconds to load and open its stores, and killing it
 * for that only makes the start fail. Progress is a call to `progress()` (a
 * message, a log line) or CPU time used by one of the processes watched.
 */
export class StallWatch {
  private last = Date.now()
  private readonly started = Date.now()
  private ticks: Array<number | undefined>
  private readonly timer: NodeJS.Timeout

  constructor (private readonly opts: StallWatchOptions) {
    this.ticks = opts.pids().map(cpuTicks)
    this.timer = setInterval(() => { this.check() }, Math.min(1000, opts.stallMs))
    this.timer.unref()
  }

  progress (): void {
    this.last = Date.now()
  }

  close (): void {
    clearInterval(this.timer)
  }

  private check (): void {
    const now = Date.now()
    const ticks = this.opts.pids().map(cpuTicks)
    if (ticks.some((t, i) => t !== undefined && t !== this.ticks[i])) this.last = now
    this.ticks = ticks
    if (now - this.started > this.opts.limitMs) this.stall(`not ready after ${Math.round((now - this.started) / 1000)} s`)
    else if (now - this.last > this.opts.stallMs) this.stall(`no progress for ${Math.round((now - this.last) / 1000)} s`)
  }

  private stall (why: string): void {
    this.close()
    this.opts.onStall(why)
  }
}

/** The last `count` lines of a log file, for an error that names a process that failed to start. */
export async function tailLines (file: string, count = 8, maxBytes = 16 * 1024): Promise<string[]> {
  let handle
  try {
    handle = await open(file, 'r')
    const { size } = await handle.stat()
    const length = Math.min(size, maxBytes)
    const buf = Buffer.alloc(length)
    await handle.read(buf, 0, length, size - length)
    return buf.toString('utf8').split('\n').filter((l) => l.trim() !== '').slice(-count)
  } catch {
    return []
  } finally {
    await handle?.close()
  }
}

import { setTimeout as sleep } from 'node:timers/promises'
import { TestkitError, TestkitErrorCode } from './errors.js'

// 10 s: how long until() waits for its condition unless told otherwise
export const DEFAULT_UNTIL_TIMEOUT_MS = 10_000
// 20 ms: the pause between two checks unless told otherwise
export const DEFAULT_UNTIL_INTERVAL_MS = 20

export interface UntilOptions {
  /** What is waited for, as the timeout's message says it: "timed out after 10000 ms waiting for <what>". */
  what: string
  timeoutMs?: number
  intervalMs?: number
}

/**
 * Polls `check` until it holds, against a deadline: the one way tests wait
 * for something that no event announces (never a fixed sleep). The first
 * check runs at once. A check that throws ends the wait with its error; a
 * caller to whom an error only means "not yet" catches it in the check.
 */
export async function until (check: () => boolean | Promise<boolean>, options: UntilOptions): Promise<void> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_UNTIL_TIMEOUT_MS
  const intervalMs = options.intervalMs ?? DEFAULT_UNTIL_INTERVAL_MS
  if (!(timeoutMs >= 0) || !(intervalMs > 0)) throw new TestkitError(TestkitErrorCode.BAD_OPTIONS, `until() needs timeoutMs >= 0 and intervalMs > 0 (got ${timeoutMs}, ${intervalMs})`)
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() >= deadline) throw new TestkitError(TestkitErrorCode.TIMEOUT, `timed out after ${timeoutMs} ms waiting for ${options.what}`)
    await sleep(Math.min(intervalMs, Math.max(1, deadline - Date.now())))
  }
}

/**
 * The same check, with an error taken for "not yet": for until() against a
 * cluster in the middle of a fault, which may fail to answer for a while.
 */
export function tolerant (check: () => boolean | Promise<boolean>): () => Promise<boolean> {
  return async () => {
    try {
      return await check()
    } catch {
      return false
    }
  }
}

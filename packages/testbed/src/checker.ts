/*
 * The no-loss checker. Every operation of the workload is recorded with its
 * real-time interval [start, end] and its outcome; every PUT writes unique
 * bytes, so a read names the write it returned. A read is valid when some
 * change that could have produced its value (a PUT of those bytes, a delete,
 * a rename carrying them in) began before the read ended, and no change
 * certainly took effect between that change and the read's start. Changes
 * whose outcome the client could not see (an error, a timeout) may have taken
 * effect at any time after they began, so they widen what a read may see but
 * never prove that a value was replaced. This is linearizability of each path
 * checked one read at a time ("lite"): cheap, and strict for acknowledged
 * operations, which is what no-loss is about.
 */

export type OpKind = 'put' | 'get' | 'delete' | 'rename'

/** ok: done; absent: 404 (nothing there); error: the client cannot know whether it took effect. */
export type Outcome = 'ok' | 'absent' | 'error'

export interface Op {
  id: number
  kind: OpKind
  path: string
  /** rename: the destination. */
  to?: string
  /** put: the write id of the bytes sent. */
  write?: string
  start: number
  end: number
  outcome: Outcome
  /** get: the write id it returned, null for 404; undefined when it failed or the bytes were wrong. */
  value?: string | null
  /** get: why the bytes it returned are not a write's (torn, unknown, ETag mismatch). */
  wrong?: string
  /** What the client saw on error: HTTP status or transport error code. */
  error?: string
  /** The fault active while the op ran, `none` outside faults. */
  fault?: string
}

export type AnomalyKind = 'stale' | 'deleted' | 'missing' | 'wrong' | 'lost'

export interface Anomaly {
  kind: AnomalyKind
  path: string
  op: number
  saw: string | null
  expected: Array<string | null>
  detail: string
}

/** ALL: the checker cannot bound a value (a cycle of overlapping renames): anything goes. */
const ALL = Symbol('all')
type Values = Set<string | null> | typeof ALL

interface Change {
  op: Op
  /** What it sets the path to: a write, nothing, or what `from` held when it ran. */
  sets: { write: string } | { absent: true } | { from: string }
  definite: boolean
}

const INITIAL: Op = { id: -1, kind: 'delete', path: '', start: -Infinity, end: -Infinity, outcome: 'ok' }

export class Checker {
  private readonly changes = new Map<string, Change[]>()
  private readonly carried = new Map<number, Values | 'busy'>()

  constructor (history: Op[]) {
    for (const op of history) {
      // A 404 delete or an error-free refusal changed nothing; a rename's 404 may come from the stat after it, so it stays possible.
      if (op.kind === 'get' || (op.kind !== 'rename' && op.outcome === 'absent')) continue
      const definite = op.outcome === 'ok'
      if (op.kind === 'put') this.add(op.path, { op, sets: { write: op.write as string }, definite })
      else if (op.kind === 'delete') this.add(op.path, { op, sets: { absent: true }, definite })
      else {
        this.add(op.path, { op, sets: { absent: true }, definite })
        this.add(op.to as string, { op, sets: { from: op.path }, definite })
      }
    }
    for (const list of this.changes.values()) list.sort((a, b) => a.op.start - b.op.start)
  }

  /**
   * Values a read of `path` over [start, end] may return. Changes that ended
   * before the last definite change that ended before the read (the barrier)
   * began need not be looked at: a value of theirs that the barrier does not
   * also carry was surely replaced by it. That keeps each read's work to the
   * changes around it, however long the run.
   */
  possible (path: string, start: number, end: number): Values {
    const changes = this.changes.get(path) ?? []
    const barrier = this.barrierBefore(changes, start)
    const sources: Array<{ change: Change | undefined, values: Values }> = barrier === undefined ? [{ change: undefined, values: new Set([null]) }] : []
    for (const c of changes) {
      if (c.op.start >= end) break
      if (barrier !== undefined && c !== barrier && c.op.end < barrier.op.start) continue
      sources.push({ change: c, values: this.valuesOf(c) })
    }
    const out = new Set<string | null>()
    for (const { change, values } of sources) {
      if (values === ALL) return ALL
      const from = change?.op ?? INITIAL
      for (const v of values) {
        if (out.has(v)) continue
        if (this.replacedBetween(changes, from, start, v) === undefined) out.add(v)
      }
    }
    return out
  }

  /** Checks one read: undefined when valid. */
  checkRead (op: Op, final = false): Anomaly | undefined {
    if (op.wrong !== undefined) return { kind: 'wrong', path: op.path, op: op.id, saw: null, expected: [], detail: op.wrong }
    if (op.value === undefined) return undefined
    const possible = this.possible(op.path, op.start, op.end)
    if (possible === ALL || possible.has(op.value)) return undefined
    const expected = [...possible]
    if (op.value === null) return { kind: final ? 'lost' : 'missing', path: op.path, op: op.id, saw: null, expected, detail: `404, but ${expected.join(' or ')} was there` }
    return { kind: this.whyNot(op, op.value), path: op.path, op: op.id, saw: op.value, expected, detail: `returned ${op.value}, expected ${expected.map(String).join(' or ')}` }
  }

  /** stale: an older write of this path; deleted: one removed since; wrong: never written here. */
  private whyNot (op: Op, value: string): AnomalyKind {
    const changes = this.changes.get(op.path) ?? []
    const sources = changes.filter((c) => c.op.start < op.end && (this.valuesOf(c) === ALL || (this.valuesOf(c) as Set<string | null>).has(value)))
    const last = sources.at(-1)
    if (last === undefined) return 'wrong'
    const replacedBy = this.replacedBetween(changes, last.op, op.start, value)
    return replacedBy !== undefined && 'absent' in replacedBy.sets ? 'deleted' : 'stale'
  }

  /** The last definite change that ended before `start`, if its values are bounded. */
  private barrierBefore (changes: Change[], start: number): Change | undefined {
    for (let i = firstStartingAtOrAfter(changes, start) - 1; i >= 0; i--) {
      const c = changes[i] as Change
      if (c.definite && c.op.end < start) return this.valuesOf(c) === ALL ? undefined : c
    }
    return undefined
  }

  /** A definite change, not itself a source of `value`, that surely ran after `from` and before `before`. */
  private replacedBetween (changes: Change[], from: Op, before: number, value: string | null): Change | undefined {
    let found: Change | undefined
    for (let i = firstStartingAtOrAfter(changes, from.end); i < changes.length; i++) {
      const f = changes[i] as Change
      if (f.op.start >= before) break
      if (!f.definite || f.op === from || f.op.start <= from.end || f.op.end >= before) continue
      const values = this.valuesOf(f)
      if (values === ALL || values.has(value)) continue
      found = f
    }
    return found
  }

  private valuesOf (c: Change): Values {
    if ('write' in c.sets) return new Set([c.sets.write])
    if ('absent' in c.sets) return new Set([null])
    const known = this.carried.get(c.op.id)
    if (known === 'busy') return ALL
    if (known !== undefined) return known
    this.carried.set(c.op.id, 'busy')
    const values = this.possible(c.sets.from, c.op.start, c.op.end)
    // A rename moves a file: it never carries "nothing" into its destination (that would have been a 404).
    const result: Values = values === ALL ? ALL : new Set([...values].filter((v) => v !== null))
    this.carried.set(c.op.id, result)
    return result
  }

  private add (path: string, change: Change): void {
    const list = this.changes.get(path)
    if (list === undefined) this.changes.set(path, [change])
    else list.push(change)
  }
}

/** Binary search over changes sorted by start: the first one starting at or after `t`. */
function firstStartingAtOrAfter (changes: Change[], t: number): number {
  let lo = 0
  let hi = changes.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if ((changes[mid] as Change).op.start < t) lo = mid + 1
    else hi = mid
  }
  return lo
}

export interface CheckResult {
  anomalies: Anomaly[]
  counts: Record<AnomalyKind, number>
}

/**
 * Checks every read of the run, then the final reads (made after every fault
 * was healed): a final read that misses a value that must be there is a lost write.
 */
export function check (history: Op[], finalReads: Op[]): CheckResult {
  const checker = new Checker(history)
  const anomalies: Anomaly[] = []
  for (const op of history) {
    if (op.kind !== 'get') continue
    const a = checker.checkRead(op)
    if (a !== undefined) anomalies.push(a)
  }
  for (const op of finalReads) {
    const a = op.outcome === 'error'
      ? { kind: 'lost' as const, path: op.path, op: op.id, saw: null, expected: [], detail: `final read failed: ${op.error ?? '?'}` }
      : checker.checkRead(op, true)
    if (a !== undefined) anomalies.push(a)
  }
  const counts: Record<AnomalyKind, number> = { stale: 0, deleted: 0, missing: 0, wrong: 0, lost: 0 }
  for (const a of anomalies) counts[a.kind]++
  return { anomalies, counts }
}

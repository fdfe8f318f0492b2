import { performance } from 'node:perf_hooks'
import { blobState, tolerant, until } from '@mirrorcast/testkit'
import { check, type CheckResult, type Op, type OpKind } from './checker.js'
import { Nemesis, type FaultWindow, type NemesisOptions } from './nemesis.js'
import type { Testbed } from './testbed.js'
import { Workload, type WorkloadOptions } from './workload.js'

export interface NemesisRunOptions {
  durationMs: number
  workload?: WorkloadOptions
  nemesis?: Omit<NemesisOptions, 'renamesInFlight' | 'bitRotPrefers'>
  /** How long a bit-rotted copy may take to be found and repaired after the run (default 60 s). */
  repairTimeoutMs?: number
  /** Progress lines (a fault injected, a phase begun). */
  log?: (line: string) => void
}

export interface BitRotOutcome { flipped: number, repaired: number, gone: number, corrupt: number }

export interface NemesisReport {
  seconds: number
  windows: FaultWindow[]
  ops: Op[]
  /** Reads of every path after the run: with every member up, then with each center failed over by hand (every copy read once). */
  finalReads: Op[]
  check: CheckResult
  bitRot: BitRotOutcome
  /** Client-visible errors: fault kind → op kind → count. */
  errors: Record<string, Record<OpKind, number>>
  summary: { ops: number, faults: number, errors: number, lost: number, stale: number }
}

/**
 * A nemesis run: clients work through the manager while one fault after the
 * other is injected and healed; then every path is read, once normally and
 * once from the backup center alone, and the checker judges the history.
 */
export async function runNemesis (bed: Testbed, options: NemesisRunOptions): Promise<NemesisReport> {
  const log = options.log ?? (() => {})
  const started = performance.now()
  const workload = new Workload(bed.client, options.workload)
  await workload.setup()
  const nemesis = new Nemesis(bed, { ...options.nemesis, renamesInFlight: () => workload.pending('rename'), bitRotPrefers: () => workload.coldIds })
  workload.start()
  try {
    const run = nemesis.run(options.durationMs)
    const progress = setInterval(() => {
      const w = nemesis.windows.at(-1)
      if (w !== undefined) log(`${((performance.now() - started) / 1000).toFixed(0)} s: ${workload.ops.length} ops; ${w.kind} on ${w.target}${w.detail === '' ? '' : ` (${w.detail})`}${w.recovered === Infinity ? '' : ', recovered'}`)
    }, 5000)
    await run.finally(() => clearInterval(progress))
  } finally {
    await workload.stop()
  }
  log('faults over; waiting for every member to be healthy')
  await bed.waitHealthy()
  const finalReads = await workload.readAll()
  for (const center of ['east', 'west']) {
    log(`reading every path again with ${center} failed over by hand`)
    finalReads.push(...await readWithCenterOut(bed, workload, center))
  }
  const bitRot = await bitRotOutcome(bed, nemesis, options.repairTimeoutMs ?? 60_000)
  for (const op of workload.ops) {
    const during = nemesis.faultAt(op.end)
    op.fault = during !== 'none' ? during : nemesis.faultAt(op.start)
  }
  const result = check(workload.ops, finalReads)
  const errors: Record<string, Record<OpKind, number>> = {}
  for (const op of workload.ops) {
    if (op.outcome !== 'error') continue
    const row = errors[op.fault ?? 'none'] ??= { put: 0, get: 0, delete: 0, rename: 0 }
    row[op.kind]++
  }
  const errorCount = workload.ops.filter((o) => o.outcome === 'error').length
  const { counts } = result
  return {
    seconds: (performance.now() - started) / 1000,
    windows: nemesis.windows,
    ops: workload.ops,
    finalReads,
    check: result,
    bitRot,
    errors,
    summary: {
      ops: workload.ops.length,
      faults: nemesis.windows.length,
      errors: errorCount,
      // Lost: acknowledged writes missing at the end, and reads that missed a file that was there.
      lost: counts.lost + counts.missing + bitRot.corrupt,
      stale: counts.stale + counts.deleted + counts.wrong
    }
  }
}

/** Every member of a center failed over by hand: the same reads, served by the other center's copies; then back. */
async function readWithCenterOut (bed: Testbed, workload: Workload, center: string): Promise<Op[]> {
  const out = bed.members.filter((m) => m.center === center)
  for (const m of out) await bed.client.failover(m.id)
  try {
    return await workload.readAll()
  } finally {
    for (const m of out) await bed.client.failback(m.id)
    await bed.waitHealthy()
  }
}

/** Waits until every flipped copy is intact again (repaired) or gone (its file deleted). */
async function bitRotOutcome (bed: Testbed, nemesis: Nemesis, timeoutMs: number): Promise<BitRotOutcome> {
  const states = async (): Promise<string[]> => await Promise.all(nemesis.bitRots.map(async (r) => await blobState(r.dataDir, r.fileId)))
  await until(tolerant(async () => (await states()).every((s) => s === 'intact' || s === 'absent')), { what: 'every bit-rotted copy repaired', timeoutMs, intervalMs: 100 }).catch(() => {})
  const final = await states()
  return {
    flipped: final.length,
    repaired: final.filter((s) => s === 'intact').length,
    gone: final.filter((s) => s === 'absent').length,
    corrupt: final.filter((s) => s === 'corrupt' || s === 'quarantined').length
  }
}

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { MirrorcastClient } from '@mirrorcast/client'

export interface PhaseResult {
  name: string
  ops: number
  bytes: number
  seconds: number
  latenciesMs: number[]
}

/** Runs `n` operations with at most `concurrency` in flight; each op returns the bytes it moved. */
export async function runPhase (name: string, n: number, concurrency: number, op: (i: number) => Promise<number>): Promise<PhaseResult> {
  const latenciesMs: number[] = []
  let next = 0
  let bytes = 0
  const started = process.hrtime.bigint()
  await Promise.all(Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < n; i = next++) {
      const t0 = process.hrtime.bigint()
      bytes += await op(i)
      latenciesMs.push(Number(process.hrtime.bigint() - t0) / 1e6)
    }
  }))
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  return { name, ops: n, bytes, seconds, latenciesMs }
}

export function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

export function printTable (header: string[], rows: Array<Array<string | number>>): void {
  const cells = [header, ...rows.map((r) => r.map((c) => typeof c === 'number' ? formatNumber(c) : c))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i]).length)))
  const line = (r: Array<string | number>): string => '| ' + r.map((c, i) => String(c).padEnd(widths[i] as number)).join(' | ') + ' |'
  process.stdout.write(line(header) + '\n' + '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|\n')
  for (const r of cells.slice(1)) process.stdout.write(line(r) + '\n')
}

function formatNumber (n: number): string {
  if (!Number.isFinite(n)) return '-'
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2)
}

export async function withTempDir<T> (prefix: string, fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  let ok = false
  try {
    const result = await fn(dir)
    ok = true
    return result
  } finally {
    // MIRRORCAST_KEEP_TEST_DIRS=1 keeps a failed run's data dirs and logs for a post-mortem.
    if (!ok && process.env.MIRRORCAST_KEEP_TEST_DIRS === '1') process.stderr.write(`kept ${dir}\n`)
    else await rm(dir, { recursive: true, force: true })
  }
}

/** One request through `client`: the byte count of the answer's body; an error status throws. */
export async function transfer (client: MirrorcastClient, method: string, path: string, body?: Buffer, headers?: Record<string, string>): Promise<number> {
  const res = await client.request({ method, path, ...(body === undefined ? {} : { body }), ...(headers === undefined ? {} : { headers }) })
  let bytes = 0
  for await (const chunk of res.body) bytes += (chunk as Buffer).length
  if (res.status >= 400) throw new Error(`${method} ${path}: ${res.status}`)
  return bytes
}

/** CPU time a process's threads have run, in ns (the scheduler's own count: finer than utime and stime's 10 ms ticks). */
export async function cpuNs (pid: number): Promise<number> {
  let ns = 0
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    ns += Number((await readFile(`/proc/${pid}/task/${task}/schedstat`, 'utf8').catch(() => '0')).split(' ')[0])
  }
  return ns
}

/** A process's peak resident memory (VmHWM), MB. */
export async function peakRssMb (pid: number): Promise<number> {
  const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

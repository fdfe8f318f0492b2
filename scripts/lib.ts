import { Agent, request } from 'node:http'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

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

/** A keep-alive HTTP client for one base URL; answers with the status and the byte count of the body. */
export class BenchClient {
  private readonly url: URL
  private readonly agent: Agent

  constructor (base: string, concurrency: number) {
    this.url = new URL(base)
    this.agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  }

  async send (method: string, path: string, body?: Buffer): Promise<{ status: number, bytes: number }> {
    return await new Promise((resolve, reject) => {
      const req = request({ host: this.url.hostname, port: this.url.port, method, path, agent: this.agent, headers: body === undefined ? {} : { 'content-length': body.length } }, (res) => {
        let bytes = 0
        res.on('data', (c: Buffer) => { bytes += c.length })
        res.on('end', () => {
          if ((res.statusCode ?? 0) >= 400) reject(new Error(`${method} ${path}: ${res.statusCode ?? '?'}`))
          else resolve({ status: res.statusCode ?? 0, bytes })
        })
        res.on('error', reject)
      })
      req.on('error', reject)
      req.end(body)
    })
  }

  close (): void {
    this.agent.destroy()
  }
}

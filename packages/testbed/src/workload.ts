import { createHash, randomBytes } from 'node:crypto'
import { performance } from 'node:perf_hooks'
import type { Op, OpKind } from './checker.js'
import type { BufferedResponse, MirrorcastClient } from '@mirrorcast/client'

export interface WorkloadOptions {
  /** Concurrent clients, each one operation at a time (default 4). */
  clients?: number
  /** Paths the clients share, spread over two directories (default 24). */
  paths?: number
  /** Where the workload lives in the namespace (default /nemesis). */
  root?: string
  /** Relative weights of the operations (default put 35, get 40, delete 10, rename 15). */
  mix?: Partial<Record<OpKind, number>>
  /** Share of PUTs with a body of several 1 MiB blocks (default 0.05). */
  largeShare?: number
  /** Files written once at setup and then only read (default 8): bit rot in them lives until found. */
  coldFiles?: number
}

// 24 paths: few enough that clients collide on them all the time
const DEFAULT_PATHS = 24
const DEFAULT_MIX: Record<OpKind, number> = { put: 35, get: 40, delete: 10, rename: 15 }
const HEADER = 'mirrorcast-nemesis '

/**
 * Clients that PUT, GET, DELETE and rename shared paths through the
 * manager's HTTP API and record every operation for the checker. Every PUT
 * sends unique bytes (a write id in a header line, then random bytes), so a
 * GET tells which write it returned and whether its bytes are whole.
 */
export class Workload {
  readonly ops: Op[] = []
  /** write id → sha256 of its bytes, for every PUT ever sent. */
  readonly writes = new Map<string, string>()
  readonly paths: string[]
  readonly coldPaths: string[]
  /** File ids of the cold files, once written. */
  readonly coldIds = new Set<string>()
  private readonly bySha = new Map<string, string>()
  private readonly client: MirrorcastClient
  private readonly options: Required<Omit<WorkloadOptions, 'mix'>> & { mix: Record<OpKind, number> }
  private readonly inFlight: Record<OpKind, number> = { put: 0, get: 0, delete: 0, rename: 0 }
  private running: Array<Promise<void>> = []
  private stopping = false
  private nextId = 0
  private writeCount = 0

  constructor (client: MirrorcastClient, options: WorkloadOptions = {}) {
    const paths = options.paths ?? DEFAULT_PATHS
    if (!Number.isInteger(paths) || paths < 2) throw new TypeError('a workload needs at least 2 paths')
    this.client = client
    this.options = { clients: 4, paths, root: '/nemesis', largeShare: 0.05, coldFiles: 8, ...options, mix: { ...DEFAULT_MIX, ...options.mix } }
    this.paths = Array.from({ length: paths }, (_, i) => `${this.options.root}/d${i % 2}/f${i}`)
    this.coldPaths = Array.from({ length: this.options.coldFiles }, (_, i) => `${this.options.root}/cold/c${i}`)
  }

  /** Operations of a kind now waiting for their answer. */
  pending (kind: OpKind): number {
    return this.inFlight[kind]
  }

  async setup (): Promise<void> {
    for (const d of ['d0', 'd1']) {
      const r = await this.client.send({ method: 'POST', path: `/files${this.options.root}/${d}/?mkdir&parents` })
      if (r.status !== 201) throw new Error(`mkdir ${this.options.root}/${d}: ${r.status} ${r.body.toString()}`)
    }
    for (const path of this.coldPaths) {
      let answer: BufferedResponse | undefined
      const op = await this.put(path, (a) => { answer = a })
      this.ops.push(op)
      if (op.outcome !== 'ok' || answer === undefined) throw new Error(`PUT ${path}: ${op.error ?? '?'}`)
      this.coldIds.add((JSON.parse(answer.body.toString('utf8')) as { id: string }).id)
    }
  }

  start (): void {
    this.stopping = false
    this.running = Array.from({ length: this.options.clients }, async () => { while (!this.stopping) await this.step() })
  }

  /** Stops the clients; resolves when their last operations have answered. */
  async stop (): Promise<void> {
    this.stopping = true
    await Promise.all(this.running)
  }

  /** A GET of every path, recorded apart from the run: what the checker compares with the history. */
  async readAll (): Promise<Op[]> {
    const out: Op[] = []
    for (const path of [...this.paths, ...this.coldPaths]) out.push(await this.get(path))
    return out
  }

  private async step (): Promise<void> {
    const kind = this.pickKind()
    // One read in four is of a cold file: they are only ever read.
    const path = kind === 'get' && this.coldPaths.length > 0 && Math.random() < 0.25 ? this.coldPaths[Math.floor(Math.random() * this.coldPaths.length)] as string : this.pickPath()
    if (kind === 'put') this.ops.push(await this.put(path))
    else if (kind === 'get') this.ops.push(await this.get(path))
    else if (kind === 'delete') this.ops.push(await this.run({ kind, path }, async () => await this.client.send({ method: 'DELETE', path: `/files${path}` })))
    else {
      let to = this.pickPath()
      while (to === path) to = this.pickPath()
      this.ops.push(await this.run({ kind, path, to }, async () => await this.client.send({ method: 'POST', path: `/files${path}?move-to=${encodeURIComponent(to)}` })))
    }
  }

  private async put (path: string, answered?: (a: BufferedResponse) => void): Promise<Op> {
    const write = `w${this.writeCount++}`
    const body = this.body(write)
    return await this.run({ kind: 'put', path, write }, async () => {
      const a = await this.client.send({ method: 'PUT', path: `/files${path}`, body })
      answered?.(a)
      return a
    }, 201)
  }

  private async get (path: string): Promise<Op> {
    let answer: BufferedResponse | undefined
    const op = await this.run({ kind: 'get', path }, async () => { answer = await this.client.send({ path: `/files${path}` }); return answer })
    if (op.outcome === 'absent') op.value = null
    if (op.outcome !== 'ok' || answer === undefined) return op
    const verdict = this.identify(answer)
    if ('write' in verdict) op.value = verdict.write
    else op.wrong = verdict.wrong
    return op
  }

  /** Which write these bytes are, or why they are none. */
  private identify (answer: BufferedResponse): { write: string } | { wrong: string } {
    const sha = createHash('sha256').update(answer.body).digest('hex')
    const write = this.bySha.get(sha)
    if (write === undefined) {
      const header = answer.body.subarray(0, 64).toString('latin1').split('\n')[0] ?? ''
      return { wrong: `${answer.body.length} bytes with sha256 ${sha} are no write (they start ${JSON.stringify(header)})` }
    }
    if (answer.headers.etag !== `"${sha}"`) return { wrong: `${write}'s bytes came with ETag ${String(answer.headers.etag)}` }
    return { write }
  }

  /** Runs one request and records it; 404 means nothing was there, any other surprise is an error. */
  private async run (op: Omit<Op, 'id' | 'start' | 'end' | 'outcome'>, send: () => Promise<BufferedResponse>, okStatus = 200): Promise<Op> {
    const record: Op = { id: this.nextId++, ...op, start: performance.now(), end: 0, outcome: 'error' }
    this.inFlight[op.kind]++
    try {
      const r = await send()
      if (r.status === okStatus) record.outcome = 'ok'
      else if (r.status === 404) record.outcome = 'absent'
      else record.error = `${r.status} ${errorCode(r)}`
    } catch (err) {
      record.error = (err as { code?: string }).code ?? (err as Error).message
    } finally {
      record.end = performance.now()
      this.inFlight[op.kind]--
    }
    return record
  }

  private body (write: string): Buffer {
    const large = Math.random() < this.options.largeShare
    // Small bodies mostly, some of several 64 KiB reads, a few spanning several 1 MiB blocks.
    const size = large
      ? 1024 * 1024 + Math.floor(Math.random() * 2 * 1024 * 1024)
      : Math.random() < 0.75
        ? 1 + Math.floor(Math.random() * 32 * 1024)
        : 32 * 1024 + Math.floor(Math.random() * 480 * 1024)
    const header = Buffer.from(`${HEADER}${write}\n`)
    const body = Buffer.concat([header, randomBytes(Math.max(0, size - header.length))])
    const sha = createHash('sha256').update(body).digest('hex')
    this.writes.set(write, sha)
    this.bySha.set(sha, write)
    return body
  }

  private pickKind (): OpKind {
    const { mix } = this.options
    let r = Math.random() * (mix.put + mix.get + mix.delete + mix.rename)
    for (const kind of ['put', 'get', 'delete', 'rename'] as const) {
      r -= mix[kind]
      if (r < 0) return kind
    }
    return 'get'
  }

  private pickPath (): string {
    return this.paths[Math.floor(Math.random() * this.paths.length)] as string
  }
}

function errorCode (r: BufferedResponse): string {
  try {
    return (JSON.parse(r.body.toString('utf8')) as { error?: { code?: string } }).error?.code ?? ''
  } catch {
    return ''
  }
}

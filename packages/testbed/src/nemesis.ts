import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { flipByte, storedBlobIds, until } from '@mirrorcast/testkit'
import type { MemberHandle, Testbed } from './testbed.js'

/**
 * kill: kill -9 of a storage node, restarted at heal; pause: SIGSTOP, SIGCONT
 * at heal; link-down: its cable pulled at the switch; loss: a share of its
 * packets dropped both ways; delay: every packet it sends held back; disk-full:
 * its data dir's file system filled to the last byte; bit-rot: one byte of a
 * stored body flipped (healed by the cluster, not by the nemesis);
 * dir-kill: kill -9 of a directory server while renames are in flight.
 */
export type FaultKind = 'kill' | 'pause' | 'link-down' | 'loss' | 'delay' | 'disk-full' | 'bit-rot' | 'dir-kill'
export const FAULT_KINDS: FaultKind[] = ['kill', 'pause', 'link-down', 'loss', 'delay', 'disk-full', 'bit-rot', 'dir-kill']

export interface NemesisOptions {
  kinds?: FaultKind[]
  /** How long each fault lasts before it is healed (default 4 s). */
  faultMs?: number
  /** Quiet time between a recovery and the next fault (default 1 s). */
  gapMs?: number
  /** loss: share of packets dropped each way (default 0.2). */
  lossRate?: number
  /** delay: ms every packet the host sends is held (default 100). */
  delayMs?: number
  /** disk-full: the storage node whose data dir is a small tmpfs (Testbed `smallDisks`). */
  smallDiskNode?: string
  /** How long the cluster may take to have every member healthy again after a heal (default 60 s). */
  recoveryTimeoutMs?: number
  /** dir-kill waits (up to 2 s) until this says renames are in flight. */
  renamesInFlight?: () => number
  /** bit-rot flips a byte of one of these file ids where the node holds one (files no client rewrites). */
  bitRotPrefers?: () => Set<string>
}

export interface FaultWindow {
  kind: FaultKind
  target: string
  detail: string
  /** performance.now() at injection, heal, and when every member was healthy again. */
  start: number
  healed: number
  recovered: number
  /** Set when the cluster did not recover within the timeout. */
  error?: string
}

export interface BitRot { node: string, dataDir: string, fileId: string, offset: number }

const DELAY_LINE = fileURLToPath(new URL('../../fixtures/delay-line.py', import.meta.url))
// nfqueue number of the delay line; each host is its own network namespace, so one number serves all
const DELAY_QUEUE = 7
const FILLER = 'nemesis-filler'

/**
 * Injects one fault at a time into a test bed, each lasting a few seconds,
 * then heals it and waits until the manager has every member healthy again.
 */
export class Nemesis {
  readonly windows: FaultWindow[] = []
  readonly bitRots: BitRot[] = []
  private readonly bed: Testbed
  private readonly options: Required<Omit<NemesisOptions, 'smallDiskNode' | 'renamesInFlight' | 'bitRotPrefers'>> & Pick<NemesisOptions, 'smallDiskNode' | 'renamesInFlight' | 'bitRotPrefers'>

  constructor (bed: Testbed, options: NemesisOptions = {}) {
    this.bed = bed
    const kinds = (options.kinds ?? FAULT_KINDS).filter((k) => k !== 'disk-full' || options.smallDiskNode !== undefined)
    if (kinds.length === 0) throw new TypeError('the nemesis needs at least one fault kind')
    this.options = { faultMs: 4000, gapMs: 1000, lossRate: 0.2, delayMs: 100, recoveryTimeoutMs: 60_000, ...options, kinds }
  }

  /** The fault whose window (injection to recovery) covers time t, or `none`. */
  faultAt (t: number): string {
    return this.windows.findLast((w) => w.start <= t && t <= w.recovered)?.kind ?? 'none'
  }

  /**
   * Injects faults one after the other until `durationMs` has passed, and at
   * least until every kind has come once (a slow machine gets a longer run,
   * not a partial one); every kind comes once per round, in random order.
   */
  async run (durationMs: number): Promise<void> {
    const endAt = performance.now() + durationMs
    let round: FaultKind[] = []
    const allSeen = (): boolean => this.options.kinds.every((k) => this.windows.some((w) => w.kind === k))
    while (performance.now() < endAt || !allSeen()) {
      if (round.length === 0) round = shuffle([...this.options.kinds])
      await this.once(round.shift() as FaultKind)
      await sleep(this.options.gapMs)
    }
  }

  /** One fault: inject, hold, heal, wait for recovery. */
  async once (kind: FaultKind, target?: MemberHandle): Promise<FaultWindow> {
    const victim = target ?? this.pickTarget(kind)
    const window: FaultWindow = { kind, target: victim.name, detail: '', start: performance.now(), healed: Infinity, recovered: Infinity }
    this.windows.push(window)
    let heal: () => Promise<void>
    try {
      heal = await this.inject(kind, victim, window)
    } catch (err) {
      window.healed = window.recovered = performance.now()
      window.error = `could not inject: ${(err as Error).message}`
      throw err
    }
    await sleep(this.options.faultMs)
    await heal()
    window.healed = performance.now()
    try {
      await this.bed.waitHealthy(this.options.recoveryTimeoutMs)
    } catch (err) {
      window.error = (err as Error).message
    }
    window.recovered = performance.now()
    return window
  }

  private pickTarget (kind: FaultKind): MemberHandle {
    const storage = this.bed.members.filter((m) => m.role === 'storage')
    if (kind === 'disk-full') return this.bed.members.find((m) => m.name === this.options.smallDiskNode) as MemberHandle
    if (kind === 'dir-kill') return pick(this.bed.members.filter((m) => m.role === 'directory'))
    if (kind === 'kill' || kind === 'delay' || kind === 'bit-rot') return pick(storage)
    return pick(this.bed.members)
  }

  /** Makes the fault; resolves with what heals it. */
  private async inject (kind: FaultKind, m: MemberHandle, window: FaultWindow): Promise<() => Promise<void>> {
    const { net } = this.bed
    switch (kind) {
      case 'kill':
      case 'dir-kill': {
        if (kind === 'dir-kill') window.detail = `renames in flight: ${await this.renamesStarted()}`
        await m.kill('SIGKILL')
        return async () => { await m.start() }
      }
      case 'pause':
        m.pause()
        return async () => { m.resume() }
      case 'link-down':
        await net.setLink(m.host, false)
        return async () => { await net.setLink(m.host, true) }
      case 'loss': {
        const p = String(this.options.lossRate)
        window.detail = `${Math.round(this.options.lossRate * 100)}% each way`
        const rules = [['OUTPUT', '-o'], ['INPUT', '-i']].map(([chain, dir]) => [chain as string, dir as string, 'eth0', '-m', 'statistic', '--mode', 'random', '--probability', p, '-j', 'DROP'])
        for (const [chain, ...rule] of rules) await net.exec(m.host, 'iptables', ['-w', '-A', chain as string, ...rule])
        return async () => { for (const [chain, ...rule] of rules) await net.exec(m.host, 'iptables', ['-w', '-D', chain as string, ...rule]) }
      }
      case 'delay':
        window.detail = `${this.options.delayMs} ms on every packet sent`
        return await this.delay(m)
      case 'disk-full': {
        const filled = await fill(join(m.dataDir, FILLER))
        window.detail = `${(filled / 1024 / 1024).toFixed(0)} MiB filler`
        return async () => { await rm(join(m.dataDir, FILLER), { force: true }) }
      }
      case 'bit-rot': {
        const rot = await rotOneBlob(m.name, m.dataDir, this.options.bitRotPrefers?.())
        if (rot === undefined) window.detail = 'no blob to flip'
        else {
          this.bitRots.push(rot)
          window.detail = `${rot.fileId} byte ${rot.offset}`
        }
        return async () => {}
      }
    }
  }

  /** Waits (up to 2 s) for a rename to be in flight: the directory server dies in the middle of one. */
  private async renamesStarted (): Promise<number> {
    const count = this.options.renamesInFlight
    if (count === undefined) return 0
    // None in flight after 2 s: the kill goes ahead anyway.
    await until(() => count() > 0, { what: 'a rename in flight', timeoutMs: 2000, intervalMs: 5 }).catch(() => {})
    return count()
  }

  /** Queues every packet the host sends to a delay line (nfqueue), which holds each one `delayMs`. */
  private async delay (m: MemberHandle): Promise<() => Promise<void>> {
    const { net } = this.bed
    const line: ChildProcess = net.spawn(m.host, 'python3', [DELAY_LINE, String(DELAY_QUEUE), String(this.options.delayMs)])
    await new Promise<void>((resolve, reject) => {
      let out = ''
      line.stdout?.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('ready')) resolve() })
      line.stderr?.on('data', (d: Buffer) => { out += d.toString() })
      line.once('exit', (code) => reject(new Error(`delay line exited ${String(code)}: ${out}`)))
    })
    // --queue-bypass: should the delay line die, packets flow instead of being dropped.
    const rule = ['OUTPUT', '-o', 'eth0', '-j', 'NFQUEUE', '--queue-num', String(DELAY_QUEUE), '--queue-bypass']
    await net.exec(m.host, 'iptables', ['-w', '-A', ...rule])
    return async () => {
      await net.exec(m.host, 'iptables', ['-w', '-D', ...rule])
      const exited = once(line, 'exit')
      line.kill('SIGTERM')
      await exited
    }
  }
}

/** Writes zeros until the file system is full; returns the bytes written. */
async function fill (file: string): Promise<number> {
  const fh = await open(file, 'w')
  const chunk = Buffer.alloc(1024 * 1024)
  let written = 0
  try {
    for (;;) {
      const { bytesWritten } = await fh.write(chunk, 0, chunk.length, written)
      written += bytesWritten
      if (bytesWritten < chunk.length) break
    }
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOSPC') throw err
  } finally {
    await fh.close()
  }
  return written
}

/** Flips one byte in the body of a random blob of a storage node's data dir, one of `prefer` where it holds one. */
export async function rotOneBlob (node: string, dataDir: string, prefer = new Set<string>()): Promise<BitRot | undefined> {
  const files = [...await storedBlobIds(dataDir)]
  const preferred = shuffle(files.filter((id) => prefer.has(id)))
  for (const fileId of [...preferred, ...shuffle(files.filter((id) => !prefer.has(id)))]) {
    // A body being written, deleted or set aside meanwhile is passed over.
    const offset = await flipByte(dataDir, fileId).catch(() => undefined)
    if (offset !== undefined) return { node, dataDir, fileId, offset }
  }
  return undefined
}

function pick<T> (items: T[]): T {
  return items[Math.floor(Math.random() * items.length)] as T
}

function shuffle<T> (items: T[]): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j] as T, items[i] as T]
  }
  return items
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

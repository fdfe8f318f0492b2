import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'

/**
 * How many tests may run a multi-process cluster at once on this machine, over
 * all test files (ava runs files in separate processes). A cluster is seven or
 * more processes that heartbeat ten times a second; five of them starting side
 * by side on two cores took over 30 s each and failed tests that had nothing wrong.
 */
const SLOTS = Number(process.env.MIRRORCAST_TEST_CLUSTERS ?? Math.max(2, availableParallelism()))
const DIR = join(tmpdir(), 'mirrorcast-test-slots')
const held = new WeakSet<ExecutionContext>()

/**
 * Holds one of SLOTS machine-wide slots until the test ends (its first
 * teardown registered, so the last to run: after its clusters stopped). A
 * slot is an flock(1) on a file, held by a small child process: if this
 * process dies the kernel frees it, so no slot is ever left taken. A test
 * holds at most one slot however many clusters it starts: no deadlock.
 * `exclusive`: every slot, taken in slot order (so two such tests never hold
 * part each), for a test whose cluster must not share the machine's cores
 * with another: one that asserts nobody is failed over while its directory
 * servers commit changes of thousands of entries.
 */
export async function holdClusterSlot (t: ExecutionContext, options: { exclusive?: boolean } = {}): Promise<void> {
  if (held.has(t)) return
  held.add(t)
  mkdirSync(DIR, { recursive: true })
  const started = Date.now()
  const holders = options.exclusive === true ? await allSlots() : [await anySlot()]
  const waited = Date.now() - started
  if (waited > 1000) t.log(`waited ${(waited / 1000).toFixed(1)} s for ${options.exclusive === true ? 'all' : 'one'} of ${SLOTS} cluster slots`)
  t.teardown(async () => {
    await Promise.all(holders.map(async (holder) => {
      const exited = once(holder, 'exit')
      holder.stdin?.end()
      await exited
    }))
  })
}

async function anySlot (): Promise<ChildProcess> {
  for (;;) {
    for (let i = 0; i < SLOTS; i++) {
      const holder = await tryLock(slotFile(i))
      if (holder !== undefined) return holder
    }
    await pause()
  }
}

async function allSlots (): Promise<ChildProcess[]> {
  const holders: ChildProcess[] = []
  for (let i = 0; i < SLOTS; i++) {
    let holder: ChildProcess | undefined
    while ((holder = await tryLock(slotFile(i))) === undefined) await pause()
    holders.push(holder)
  }
  return holders
}

const slotFile = (i: number): string => join(DIR, `slot-${i}`)
const pause = async (): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, 200 + Math.random() * 200)) }

/** The holder process once it has the lock, or undefined if another holds it. */
async function tryLock (file: string): Promise<ChildProcess | undefined> {
  // `cat` keeps the lock until its stdin closes: at release, or when this process dies
  const holder = spawn('flock', ['-n', '-E', '75', file, 'sh', '-c', 'echo held; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'inherit'] })
  return await new Promise((resolve, reject) => {
    holder.once('error', reject)
    holder.stdout.once('data', () => { resolve(holder) })
    holder.once('exit', (code) => {
      if (code === 75) resolve(undefined)
      else reject(new Error(`flock ${file} exited ${String(code)}`))
    })
  })
}

import test from 'ava'
import { spawn, type ChildProcess } from 'node:child_process'
import { StallWatch } from '../src/progress.js'

function child (t: import('ava').ExecutionContext, script: string): ChildProcess {
  const c = spawn(process.execPath, ['-e', script], { stdio: 'ignore' })
  t.teardown(() => { c.kill('SIGKILL') })
  return c
}

async function stalled (opts: { stallMs: number, limitMs: number, pid: number | undefined, poke?: () => boolean }): Promise<{ why: string, afterMs: number }> {
  const start = Date.now()
  return await new Promise((resolve) => {
    const watch = new StallWatch({ stallMs: opts.stallMs, limitMs: opts.limitMs, pids: () => [opts.pid], onStall: (why) => { clearInterval(poker); resolve({ why, afterMs: Date.now() - start }) } })
    const poker = setInterval(() => { if (opts.poke?.() === true) watch.progress() }, 100)
  })
}

test('a process that uses no CPU and says nothing is stuck once the stall time has passed', async (t) => {
  const idle = child(t, 'setTimeout(() => {}, 60_000)')
  await new Promise((resolve) => setTimeout(resolve, 500)) // past its start-up, which uses CPU
  const r = await stalled({ stallMs: 1500, limitMs: 60_000, pid: idle.pid })
  t.regex(r.why, /^no progress for \d+ s$/)
  t.true(r.afterMs >= 1500)
})

test('a process busy on the CPU is making progress: only the overall limit ends it', async (t) => {
  const busy = child(t, 'for (;;) {}')
  const r = await stalled({ stallMs: 1500, limitMs: 5000, pid: busy.pid })
  t.regex(r.why, /^not ready after \d+ s$/)
  t.true(r.afterMs >= 5000)
})

test('progress reported by hand holds off the stall until it stops', async (t) => {
  const started = Date.now()
  const r = await stalled({ stallMs: 1500, limitMs: 60_000, pid: undefined, poke: () => Date.now() - started < 3000 })
  t.regex(r.why, /^no progress/)
  t.true(r.afterMs >= 4500, `stalled after ${r.afterMs} ms, while progress was reported for 3000 ms`)
})

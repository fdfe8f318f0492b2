import test from 'ava'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from '@mirrorcast/logger'
import { LoopWatch } from '../src/index.js'

test('a process whose event loop is held half a second logs it, with how long', async (t) => {
  const warnings: Array<{ message: string, maxMs: number }> = []
  // LoopWatch only warns
  const logger = { warn: (message: string, meta: { maxMs: number }) => { warnings.push({ message, maxMs: meta.maxMs }) } } as unknown as Logger
  const watch = new LoopWatch(logger)
  watch.start()
  t.teardown(() => { watch.close() })
  await sleep(100)
  const until = Date.now() + 500
  while (Date.now() < until);
  await sleep(2200)
  t.true(warnings.some((w) => w.message.startsWith('event loop held') && w.maxMs >= 450), JSON.stringify(warnings))
})

import type { ExecutionContext } from 'ava'
import { netnsUnavailable, TestNet, Testbed, type TestbedOptions } from '@mirrorcast/testbed'
import { tempDir } from './cluster.js'
import { holdClusterSlot } from './slots.js'

export { netnsUnavailable, TestNet }
export type { Host } from '@mirrorcast/testbed'

/**
 * Registers a test that needs network namespaces. Where they are missing it
 * fails under MIRRORCAST_REQUIRE_NETNS=1 (CI) and is otherwise not registered,
 * with one line saying why.
 */
export function netnsTest (register: (title: string, fn: (t: ExecutionContext) => Promise<void>) => void, title: string, fn: (t: ExecutionContext) => Promise<void>): void {
  const why = netnsUnavailable()
  if (why === undefined) {
    register(title, fn)
  } else if (process.env.MIRRORCAST_REQUIRE_NETNS === '1') {
    register(title, async (t) => { t.fail(`MIRRORCAST_REQUIRE_NETNS=1 but ${why}`) })
  } else {
    process.stderr.write(`not running "${title}": ${why}\n`)
  }
}

/** A new TestNet, destroyed when the test ends, passing or not. */
export async function createNet (t: ExecutionContext): Promise<TestNet> {
  await holdClusterSlot(t)
  const net = await TestNet.create()
  t.teardown(async () => { await net.destroy() })
  return net
}

/** A whole test bed cluster, destroyed when the test ends; a failed test's logs are kept with MIRRORCAST_KEEP_TEST_DIRS=1. */
export async function startTestbed (t: ExecutionContext, options: Omit<TestbedOptions, 'dir'> = {}): Promise<Testbed> {
  await holdClusterSlot(t)
  const dir = await tempDir(t, 'mirrorcast-testbed-')
  const bed = await Testbed.start({ ...options, dir })
  t.teardown(async () => { await bed.destroy() })
  return bed
}

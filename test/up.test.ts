import test from 'ava'
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import { once } from 'node:events'
import { promisify } from 'node:util'
import { launchUp } from '@mirrorcast/cli'
import { until } from '@mirrorcast/testkit'
import { randomPort, tempDir } from './helpers/cluster.js'
import { holdClusterSlot } from './helpers/slots.js'

const exec = promisify(execFile)

async function processesUsing (dir: string): Promise<string[]> {
  try {
    return (await exec('pgrep', ['-f', dir])).stdout.trim().split('\n')
  } catch {
    return [] // pgrep exits 1 when nothing matches
  }
}

test('a member that cannot start is named with the end of its log, and up stops every process it started', async (t) => {
  await holdClusterSlot(t)
  const dir = await tempDir(t)
  // east-node1 binds 127.1.0.1 on the node port: taken here first, so its start fails
  const blocker = createServer()
  blocker.listen(0, '127.1.0.1')
  await once(blocker, 'listening')
  t.teardown(() => { blocker.close() })
  const port = (blocker.address() as { port: number }).port
  const err = await t.throwsAsync(launchUp(dir, ['--port', '0', '--node-port', String(port), '--mcast-port', String(randomPort()), '--nodes', '1']))
  t.regex(err?.message ?? '', /east-node1 exited \(1\) before it was ready; log: \S+east-node1\.log; the last lines of its log:\n[\s\S]*EADDRINUSE/)
  await until(async () => (await processesUsing(dir)).length === 0, { what: 'every process of the failed start to exit', timeoutMs: 15_000 })
  t.pass()
})

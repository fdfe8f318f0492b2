import test from 'ava'
import { randomBytes } from 'node:crypto'
import { until } from '@mirrorcast/testkit'
import { http, startUp, tempDir } from './helpers/cluster.js'
import { killMember, readClusterJson, replayedBeforeHealthy, startByHand, untilHealthy } from './helpers/failover.js'

// A returning node takes new writes while it catches up, and deletes made
// meanwhile are journaled for it too: the catch-up must still end while the
// clients go on writing and deleting without a pause.
test('a node catches up and serves again while writes and deletes go on without a pause', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--nodes', '1'])
  const cluster = await readClusterJson(dir)
  const victim = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'east')
  if (victim === undefined) { t.fail('no east node'); return }
  await killMember([c.url], victim)
  for (let i = 0; i < 40; i++) t.is((await http(c.url, 'PUT', `/files/out/f${i}`, randomBytes(30_000))).status, 201)

  let running = true
  let ops = 0
  let failures = 0
  const churn = async (w: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const path = `/files/churn/w${w}-${i}`
      const put = await http(c.url, 'PUT', path, randomBytes(2_000))
      const del = await http(c.url, 'DELETE', path)
      ops += 2
      if (put.status !== 201 || del.status !== 200) failures++
    }
  }
  const workers = Array.from({ length: 6 }, async (_, w) => await churn(w))
  try {
    await until(() => ops > 40, { what: 'churn before the restart', timeoutMs: 20_000 })
    startByHand(t, victim.argv)
    await untilHealthy(c.url, victim.id, 'the node to catch up while the churn goes on')
    const atHealthy = ops
    await until(() => ops > atHealthy + 20, { what: 'churn after the catch-up', timeoutMs: 20_000 })
  } finally {
    // a wait that failed stops the churn too, so its failure is the one reported, not the churn's against a stopped cluster
    running = false
    await Promise.allSettled(workers)
  }
  await Promise.all(workers)
  // Its 40 missed PUTs (and the churn's writes and deletes before the restart) were journaled
  // while it was out: it serves again only once a resync replayed every one of them.
  const replayed = await replayedBeforeHealthy(dir, victim)
  t.true(replayed !== undefined && replayed >= 40, `the resync before it was healthy again replayed ${String(replayed)} journal entries, expected at least 40`)
  t.is(failures, 0)
})

import test, { type ExecutionContext } from 'ava'
import { until } from '@mirrorcast/testkit'
import { http, json, startUp, tempDir, type ListJson } from '../helpers/cluster.js'
import { failoverByHand, killMember, readClusterJson, startByHand, statusOf } from '../helpers/failover.js'

/** Every path below `dir` through the manager, depth first. */
async function tree (url: string, dir = '/'): Promise<string[]> {
  const page = json<ListJson>(await http(url, 'GET', `/files${dir === '/' ? '/' : dir + '/'}`))
  const out: string[] = []
  for (const e of page.entries) {
    out.push(`${e.type}:${e.path}`)
    if (e.type === 'dir') out.push(...await tree(url, e.path))
  }
  return out
}

/**
 * Claims 21, 24: file-system information in a directory and its duplicate in the
 * other center; the directory manager stops using a failed directory and serves
 * from the duplicate; the returning directory catches up from the change log.
 * `kill`: kill -9, then a restart. `pause`: SIGSTOP, then SIGCONT: the paused
 * server still holds requests the manager gave up on and made again elsewhere,
 * and commits them when it resumes; its log must be set right, not trusted.
 */
async function outageDuringNamespaceOps (t: ExecutionContext, how: 'kill' | 'pause'): Promise<void> {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const cluster = await readClusterJson(dir)
  const victim = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'east')
  const twin = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'west')
  if (victim === undefined || twin === undefined) { t.fail('no directory pair'); return }

  let failures = 0
  let ops = 0
  let running = true
  const worker = async (w: number): Promise<void> => {
    for (let i = 0; running; i++) {
      const base = `/w${w}/d${i}`
      const steps: Array<[string, string, Buffer?]> = [
        ['POST', `/files${base}/sub/?mkdir&parents`],
        ['PUT', `/files${base}/sub/file.txt`, Buffer.from(`${w}-${i}`)],
        ['POST', `/files${base}/sub?move-to=${base}/moved`],
        ['POST', `/files${base}/tmp/?mkdir&parents`],
        ['DELETE', `/files${base}/tmp`]
      ]
      for (const [method, path, body] of steps) {
        const r = await http(c.url, method, path, body).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }))
        ops++
        if (r.status >= 300) { failures++; t.log(`${method} ${path}: ${r.status} ${r.body.toString().slice(0, 200)}`) }
      }
    }
  }
  const workers = [0, 1, 2].map(worker)
  await until(() => ops > 30, { what: 'traffic before the outage', timeoutMs: 20_000 })
  if (how === 'kill') {
    await killMember([c.url], victim)
  } else {
    process.kill(victim.pid, 'SIGSTOP')
    t.teardown(() => { try { process.kill(victim.pid, 'SIGCONT') } catch {} })
    await until(async () => await statusOf(c.url, victim.id) === 'failed-over', { what: 'the paused directory server to be failed over' })
  }
  const atFailover = ops
  await until(() => ops > atFailover + 40, { what: 'operations during the failover', timeoutMs: 30_000 })

  if (how === 'kill') startByHand(t, victim.argv)
  else process.kill(victim.pid, 'SIGCONT')
  await until(async () => await statusOf(c.url, victim.id) === 'healthy', { what: 'the directory server to be healthy again', timeoutMs: 30_000 })
  const atReturn = ops
  await until(() => ops > atReturn + 40, { what: 'operations after its return', timeoutMs: 30_000 })
  running = false
  await Promise.all(workers)
  t.is(failures, 0, 'no namespace operation failed')

  // Both directories now hold the same namespace: read it from each alone.
  await until(async () => await statusOf(c.url, victim.id) === 'healthy', { what: 'the directory server to be in use', timeoutMs: 30_000 })
  const fromBoth = await tree(c.url)
  await failoverByHand(c.url, twin.id)
  const fromVictim = await tree(c.url)
  await failoverByHand(c.url, twin.id, 'failback')
  t.true(fromBoth.length > 50)
  t.deepEqual(fromVictim, fromBoth, 'the returning directory holds exactly the acknowledged namespace')
  t.true(fromBoth.every((p) => !p.includes('/tmp') && !p.endsWith('/sub')), 'removes and renames were applied')
}

test('kill -9 of the primary directory server during mkdir/put/mv/rm: no failed operation, no acknowledged change lost', async (t) => {
  await outageDuringNamespaceOps(t, 'kill')
})

test('the primary directory server paused (SIGSTOP) during mkdir/put/mv/rm, then resumed: no failed operation, its log set right', async (t) => {
  await outageDuringNamespaceOps(t, 'pause')
})

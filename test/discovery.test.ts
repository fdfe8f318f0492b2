import test from 'ava'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import { until } from '@mirrorcast/testkit'
import { http, json, readClusterJson, startUp, tempDir } from './helpers/cluster.js'
import { startByHand } from './helpers/failover.js'

const run = promisify(execFile)

interface ClusterView { nodes: Array<{ id: string, role: string, state: string, bootId: string, restarts: number, lastHeard: string, reason: string }> }

test('members are found by multicast alone; kill -9 of a node shows it dead, its restart healthy with a new boot id', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const cluster = await readClusterJson(dir)
  const view = json<ClusterView>(await http(c.url, 'GET', '/cluster'))
  t.deepEqual(view.nodes.map((n) => n.id).sort(), cluster.nodes.map((n) => n.id).sort(), 'every node and directory server was heard')
  t.true(view.nodes.every((n) => n.state === 'healthy'))

  const victim = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'west') ?? t.fail('no west node') as never
  const before = view.nodes.find((n) => n.id === victim.id)
  process.kill(victim.pid, 'SIGKILL')
  const killedAt = Date.now()
  let detectedAfter = 0
  await until(async () => {
    const n = json<ClusterView>(await http(c.url, 'GET', '/cluster')).nodes.find((x) => x.id === victim.id)
    detectedAfter = Date.now() - killedAt
    return n?.state === 'dead'
  }, { what: 'the killed node to be dead', timeoutMs: 10_000, intervalMs: 50 })
  t.log(`kill -9 detected after ${detectedAfter} ms (polling every 50 ms)`)

  startByHand(t, victim.argv)
  await until(async () => {
    const n = json<ClusterView>(await http(c.url, 'GET', '/cluster')).nodes.find((x) => x.id === victim.id)
    return n?.state === 'healthy'
  }, { what: 'the restarted node to be healthy', timeoutMs: 15_000 })
  const after = json<ClusterView>(await http(c.url, 'GET', '/cluster')).nodes.find((x) => x.id === victim.id)
  t.not(after?.bootId, before?.bootId)
  t.is(after?.restarts, 1)
  t.is(after?.reason, 'restarted')

  const { stdout } = await run(process.execPath, [CLI_BIN, 'members', '--json', '--url', c.url])
  const members = JSON.parse(stdout) as ClusterView['nodes']
  t.is(members.length, cluster.nodes.length)
  t.true(members.every((m) => typeof m.lastHeard === 'string' && m.state === 'healthy'))
  const table = (await run(process.execPath, [CLI_BIN, 'members', '--url', c.url])).stdout
  t.regex(table, /LAST HEARD/)
  const [memberLines, pairs] = table.trim().split('\n\n')
  t.is(memberLines?.split('\n').length, 1 + cluster.nodes.length + 1, 'the manager, a header and a line per member')
  t.is(pairs?.split('\n').length, 1 + 1 + cluster.nodes.length / 2, 'a title, a header and a line per twin pair')
})

import test from 'ava'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { RpcClient } from '@mirrorcast/rpc'
import { readClusterKeyFile } from '@mirrorcast/wire'
import { until } from '@mirrorcast/testkit'
import { http, json, startUp, tempDir, type ListJson } from './helpers/cluster.js'
import { readClusterJson } from './helpers/failover.js'

// A manager that dies between the steps of a rename across partitions leaves the
// subtree pending in the source partition. Another manager (or the same one,
// restarted) finishes the move, or moves it back when the destination refuses it.
test('a cross-partition move left half done by a crash is finished, or undone when the destination refuses it', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--dirs', '2'])
  const cluster = await readClusterJson(dir)
  // /alpha lives in partition 1, /a and /b in partition 2.
  t.is((await http(c.url, 'PUT', '/files/alpha/one/f', Buffer.from('one'))).status, 201)
  t.is((await http(c.url, 'PUT', '/files/alpha/two/f', Buffer.from('two'))).status, 201)
  t.is((await http(c.url, 'POST', '/files/a/?mkdir')).status, 201)
  t.is((await http(c.url, 'POST', '/files/b/two/?mkdir&parents')).status, 201)

  const leader = cluster.nodes.find((n) => n.role === 'directory' && n.center === 'east' && n.slot === 1)
  if (leader === undefined) { t.fail('no east/dir1'); return }
  const client = new RpcClient({ key: await readClusterKeyFile(join(dir, 'cluster.key')), selfId: 'mgr-crashed', host: leader.address, port: leader.port })
  t.teardown(async () => { await client.close() })
  // Step 1 of two moves, as a manager that crashed right after it would leave them.
  await client.request('dir.move-out', { path: '/alpha/one', to: '/a/one', intent: randomBytes(16).toString('hex') })
  await client.request('dir.move-out', { path: '/alpha/two', to: '/b/two', intent: randomBytes(16).toString('hex') })
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/alpha/')).entries, [], 'both subtrees are out of the source')

  await until(async () => (await client.request('dir.info', {})).body.intents === 0, { what: 'the pending moves to be recovered', timeoutMs: 30_000 })
  t.is((await http(c.url, 'GET', '/files/a/one/f')).body.toString(), 'one', 'the first move was finished')
  const back = await http(c.url, 'GET', '/files/alpha/two/f')
  t.is(back.body.toString(), 'two', 'the second, refused by its destination (/b/two exists), went back')
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/b/two/')).entries, [], 'and left nothing at the destination')
})

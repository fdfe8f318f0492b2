import test from 'ava'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { until } from '@mirrorcast/testkit'
import { http, json, startUp, tempDir, type ErrorJson, type FileJson, type ListJson } from './helpers/cluster.js'
import { failoverByHand, homeOf, locateLog, members, readClusterJson } from './helpers/failover.js'
import { createNet, netnsTest } from './helpers/netns.js'
import { blockMulticast, cliIn, joinedGroups, memberArgs, startIn, type LanProcess } from './helpers/lan.js'

test('with multicast off, `up` members announce to the manager by unicast: PUT, GET, ls work and a failed-over node\'s file is found point-to-point', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--no-multicast', '--no-mapping'])
  const cluster = await readClusterJson(dir)
  t.true(cluster.nodes.every((n) => n.argv.includes('--no-multicast') && n.argv.includes('--peers')), 'every member runs with multicast off and the manager as its static peer')
  t.deepEqual((await members(c.url)).filter((m) => m.state === 'healthy').map((m) => m.id).sort(), cluster.nodes.map((n) => n.id).sort())

  const body = randomBytes(200_000)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/docs/a.bin', body))
  t.true((await http(c.url, 'GET', '/files/docs/a.bin')).body.equals(body))
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/docs/')).entries.map((e) => e.name), ['a.bin'])
  const search = await http(c.url, 'GET', `/search?key=${entry.id}`)
  t.is(search.status, 503)
  t.is(json<ErrorJson>(search).error.code, 'ERR_DISCOVERY_MULTICAST_OFF')

  const home = homeOf(cluster, entry)
  await failoverByHand(c.url, home.id)
  t.true((await http(c.url, 'GET', '/files/docs/a.bin')).body.equals(body))
  const found = (await locateLog(dir)).filter((l) => l.fileId === entry.id)
  t.like(found[0], { method: 'point-to-point', center: home.center === 'east' ? 'west' : 'east' })
})

netnsTest(test, 'hosts whose network drops all multicast form a cluster from static peers: nothing joins or sends to the group, files are stored, listed, read, and found point-to-point after failover', async (t) => {
  const dir = await tempDir(t)
  const keyFile = join(dir, 'cluster.key')
  await writeClusterKeyFile(keyFile, generateClusterKey())
  const net = await createNet(t)
  const mgrHost = await net.addHost('mgr', '10.1.0.100')
  const specs = [
    { name: 'east-n1', address: '10.1.0.1', role: 'node', center: 'east' },
    { name: 'west-n1', address: '10.2.0.1', role: 'node', center: 'west' },
    { name: 'east-d1', address: '10.1.1.1', role: 'directory', center: 'east' },
    { name: 'west-d1', address: '10.2.1.1', role: 'directory', center: 'west' }
  ] as const
  const hosts = [mgrHost, ...await Promise.all(specs.map(async (s) => await net.addHost(s.name, s.address)))]
  const dropped = await Promise.all(hosts.map(async (h) => await blockMulticast(net, h)))

  const manager = await startIn(net, mgrHost, ['manager', '--data', join(dir, 'mgr'), '--key-file', keyFile, '--interface', '10.1.0.100', '--no-multicast', '--no-mapping', '--port', '8700'])
  const started = await Promise.all(specs.map(async (s, i) => await startIn(net, hosts[i + 1] as typeof mgrHost,
    [...memberArgs(dir, keyFile, s.role, s.center, 1, s.address), '--no-multicast', '--peers', '10.1.0.100:7700'])))
  const url = 'http://127.0.0.1:8700'
  const cli = async (...args: string[]): Promise<{ code: number, stdout: string, stderr: string }> => await cliIn(net, mgrHost, ['--url', url, ...args])
  await until(async () => {
    const r = await cli('status', '--json')
    return r.code === 0 && (JSON.parse(r.stdout) as Array<{ state: string }>).filter((m) => m.state === 'healthy').length === specs.length
  }, { what: 'the manager to hear every member by unicast', timeoutMs: 15_000 })

  const local = join(dir, 'in.bin')
  const body = randomBytes(300_000)
  await writeFile(local, body)
  const put = await cli('put', local, '/lan/in.bin', '--json')
  t.is(put.code, 0, put.stderr)
  const entry = JSON.parse(put.stdout) as FileJson
  t.regex((await cli('ls', '/lan')).stdout, /in\.bin/)
  const out = join(dir, 'out.bin')
  t.is((await cli('get', '/lan/in.bin', out)).code, 0)
  t.true((await readFile(out)).equals(body))

  const home = started.find((p) => p.ready.id === entry.replicas[0]?.node) as LanProcess
  t.is((await cli('failover', String(home.ready.id))).code, 0)
  const again = join(dir, 'again.bin')
  t.is((await cli('get', '/lan/in.bin', again)).code, 0)
  t.true((await readFile(again)).equals(body))
  const located = manager.logs.find((l) => l.message === 'file located after failover' && l.fileId === entry.id)
  t.like(located, { method: 'point-to-point', center: home.ready.center === 'east' ? 'west' : 'east' })

  for (const h of hosts) t.false((await joinedGroups(net, h)).includes('239.192.77.1'), `${h.name} joined no group`)
  t.deepEqual(await Promise.all(dropped.map(async (count) => await count())), hosts.map(() => 0), 'no host sent or received a multicast datagram')
})

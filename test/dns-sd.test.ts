import test from 'ava'
import { join } from 'node:path'
import { CLI_BIN } from '@mirrorcast/cli'
import { ensureDebianPackages, hasPythonModule } from '@mirrorcast/testbed'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { createNet, netnsTest } from './helpers/netns.js'
import { REPO, tempDir } from './helpers/cluster.js'

interface Found { name: string, server: string, port: number, addresses: string[], txt: Record<string, string> }

netnsTest(test.serial, 'a DNS-SD browser in a test namespace lists and resolves every node and directory server (host, port, TXT)', async (t) => {
  // The standard browser: python3-zeroconf, for Debian's own python3.
  await ensureDebianPackages([{ debianPackage: 'python3-zeroconf', present: () => hasPythonModule('zeroconf') }])
  const dir = await tempDir(t)
  const keyFile = join(dir, 'cluster.key')
  await writeClusterKeyFile(keyFile, generateClusterKey())
  const net = await createNet(t)
  const members = [
    { host: 'east-n1', address: '10.1.0.1', role: 'node', center: 'east', slot: 1 },
    { host: 'west-n1', address: '10.2.0.1', role: 'node', center: 'west', slot: 1 },
    { host: 'east-d1', address: '10.1.1.1', role: 'directory', center: 'east', slot: 1 }
  ]
  const ready: Array<Promise<{ id: string, port: number }>> = []
  for (const m of members) {
    const host = await net.addHost(m.host, m.address)
    const child = net.spawn(host, process.execPath, [CLI_BIN, m.role, '--data', join(dir, m.host), '--key-file', keyFile, '--center', m.center, '--slot', String(m.slot), '--address', m.address, '--port', '8701', '--interface', m.address, '--log-level', 'info'])
    ready.push(new Promise((resolve, reject) => {
      let out = ''
      child.stderr?.on('data', (d: Buffer) => {
        out += d.toString()
        const line = out.split('\n').find((l) => l.includes('"message":"ready"'))
        if (line !== undefined) resolve(JSON.parse(line) as { id: string, port: number })
      })
      child.once('exit', (code) => reject(new Error(`${m.host} exited ${String(code)}: ${out}`)))
    }))
  }
  const started = await Promise.all(ready)
  const browser = await net.addHost('browser', '10.1.0.200')
  const { stdout } = await net.exec(browser, '/usr/bin/python3', [join(REPO, 'test/fixtures/browse-dns-sd.py'), '10.1.0.200', String(members.length), '20'])
  const found = JSON.parse(stdout) as Found[]
  t.is(found.length, members.length, stdout)
  members.forEach((m, i) => {
    const id = started[i]?.id as string
    const f = found.find((x) => x.name === `${id}._mirrorcast._tcp.local.`)
    if (f === undefined) { t.fail(`${id} not found in ${stdout}`); return }
    t.is(f.server, `mirrorcast-${id}.local.`)
    t.is(f.port, 8701)
    t.deepEqual(f.addresses, [m.address])
    t.deepEqual(f.txt, { role: m.role === 'node' ? 'storage' : 'directory', center: m.center, slot: String(m.slot), id, protocol: '1' })
  })
})

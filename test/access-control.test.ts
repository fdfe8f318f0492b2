import test from 'ava'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { tempDir } from './helpers/cluster.js'
import { createNet, netnsTest, type Host, type TestNet } from './helpers/netns.js'
import { cliIn, MANAGER_ADDRESS, startLanCluster, type CliResult } from './helpers/lan.js'

const RW = randomBytes(32).toString('hex')
const RO = randomBytes(32).toString('hex')

/** One raw HTTP request from a host: status, WWW-Authenticate and body. */
async function probe (net: TestNet, host: Host, url: string, method: string, token?: string): Promise<{ status: number, auth: string | null, body: string }> {
  const code = 'const [url, method, token] = process.argv.slice(1); const r = await fetch(url, { method, headers: token ? { authorization: "Bearer " + token } : {}, body: method === "PUT" ? "x" : undefined }); console.log(JSON.stringify({ status: r.status, auth: r.headers.get("www-authenticate"), body: await r.text() }))'
  const { stdout } = await net.exec(host, process.execPath, ['--input-type=module', '-e', code, url, method, ...(token === undefined ? [] : [token])])
  return JSON.parse(stdout) as { status: number, auth: string | null, body: string }
}

async function secret (file: string, text: string, mode = 0o600): Promise<string> {
  await writeFile(file, text, { mode })
  return file
}

netnsTest(test, 'a manager on a LAN address: 401 without a valid token, read-only tokens read but every write is 403, read-write tokens write; refused requests change nothing', async (t) => {
  const dir = await tempDir(t)
  const net = await createNet(t)
  const tokens = await secret(join(dir, 'tokens'), `# access tokens\nread-write admin ${RW}\nread-only  monitor ${RO}   # dashboards\n`)
  const c = await startLanCluster(net, dir, { manager: { host: MANAGER_ADDRESS, 'tokens-file': tokens } })
  const client = await net.addHost('client', '10.1.0.200')
  const url = `http://${MANAGER_ADDRESS}:8700`
  const as = (tokenFile?: string) => async (...args: string[]): Promise<CliResult> => await cliIn(net, client, ['--url', url, ...args], tokenFile === undefined ? {} : { MIRRORCAST_TOKEN_FILE: tokenFile })
  const admin = as(await secret(join(dir, 'rw.token'), `${RW}\n`))
  const monitor = as(await secret(join(dir, 'ro.token'), `${RO}\n`))
  const nobody = as()
  const forger = as(await secret(join(dir, 'bad.token'), `${randomBytes(32).toString('hex')}\n`))

  const local = join(dir, 'a.bin')
  const body = randomBytes(100_000)
  await writeFile(local, body)
  t.is((await admin('put', local, '/docs/a.bin')).code, 0)
  t.is((await admin('mkdir', '/docs/sub')).code, 0)
  const before = JSON.parse((await admin('ls', '/docs', '--json')).stdout) as unknown[]

  const anonymous = await probe(net, client, `${url}/cluster`, 'GET')
  t.is(anonymous.status, 401)
  t.is(anonymous.auth, 'Bearer realm="mirrorcast"')
  t.is((await probe(net, client, `${url}/files/docs/new.bin`, 'PUT')).status, 401)
  const wrong = await probe(net, client, `${url}/files/docs/a.bin`, 'GET', randomBytes(32).toString('hex'))
  t.is(wrong.status, 401)
  t.is(wrong.auth, 'Bearer realm="mirrorcast", error="invalid_token"')
  t.regex((await nobody('ls', '/docs')).stderr, /needs an access token \(Authorization: Bearer .*\(401 ERR_UNAUTHORIZED\)/)
  t.regex((await forger('rm', '/docs/a.bin')).stderr, /not valid \(401 ERR_UNAUTHORIZED\)/)

  t.is((await monitor('ls', '/docs')).code, 0)
  t.is((await monitor('get', '/docs/a.bin', join(dir, 'ro.bin'))).code, 0)
  t.true((await readFile(join(dir, 'ro.bin'))).equals(body))
  const status = await monitor('status', '--json')
  t.is(status.code, 0)
  const node = (JSON.parse(status.stdout) as Array<{ id: string, role: string }>).find((m) => m.role === 'storage')?.id as string
  const writes: Array<[string, string[]]> = [
    ['PUT', ['put', local, '/docs/b.bin']],
    ['DELETE', ['rm', '/docs/a.bin']],
    ['mv', ['mv', '/docs/a.bin', '/docs/c.bin']],
    ['mkdir', ['mkdir', '/docs/other']],
    ['failover', ['failover', node]]
  ]
  for (const [what, args] of writes) {
    const r = await monitor(...args)
    t.is(r.code, 1, what)
    t.regex(r.stderr, /"monitor" is read-only: .* needs a read-write token \(403 ERR_FORBIDDEN\)/, what)
  }
  const forbidden = await probe(net, client, `${url}/files/docs/a.bin`, 'DELETE', RO)
  t.is(forbidden.status, 403)
  t.is(forbidden.auth, 'Bearer realm="mirrorcast", error="insufficient_scope"')

  t.deepEqual(JSON.parse((await admin('ls', '/docs', '--json')).stdout), before, 'no refused request changed the namespace')
  // The refused failover would show as a manual one; a member a busy machine made late is failed over by the detector, not by hand.
  const after = JSON.parse((await admin('status', '--json')).stdout) as Array<{ id: string, failover: { manual: boolean } | null }>
  t.false(after.some((m) => m.failover?.manual === true), `the refused failover did not happen: ${JSON.stringify(after)}`)
  t.deepEqual(c.manager?.logs.filter((l) => l.message === 'member failed over' && l.manual === true), [], 'nobody was failed over by hand')

  t.is((await admin('mv', '/docs/a.bin', '/docs/sub/a.bin')).code, 0)
  t.is((await admin('rm', '-r', '/docs')).code, 0)
  t.is((await admin('failover', node)).code, 0)
})

netnsTest(test, 'a manager refuses to listen on a LAN address without tokens, and refuses a tokens file others can read', async (t) => {
  const dir = await tempDir(t)
  const net = await createNet(t)
  const host = await net.addHost('mgr', MANAGER_ADDRESS)
  const keyFile = await secret(join(dir, 'cluster.key'), randomBytes(32).toString('hex'))
  const run = async (...extra: string[]): Promise<CliResult> => await cliIn(net, host, ['manager', '--data', join(dir, 'mgr'), '--key-file', keyFile, '--interface', MANAGER_ADDRESS, '--host', MANAGER_ADDRESS, ...extra])
  const open = await run()
  t.is(open.code, 1)
  t.regex(open.stderr, /would listen on 10\.1\.0\.100, which is not loopback, without access tokens: configure a tokens file \(--tokens-file\) or listen on 127\.0\.0\.1/)
  const readable = await secret(join(dir, 'tokens'), `read-write admin ${RW}\n`, 0o644)
  t.regex((await run('--tokens-file', readable)).stderr, /tokens file .*tokens is readable by others \(mode 644\); chmod 600 it/)
  const short = await secret(join(dir, 'short'), 'read-write admin abc\n')
  t.regex((await run('--tokens-file', short)).stderr, /short:1: the token \(the third field\) must be at least 32 printable characters/)
})

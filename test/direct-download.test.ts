import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import { until } from '@mirrorcast/testkit'
import { clientOf, readClusterJson, startUp, tempDir, type FileJson } from './helpers/cluster.js'
import { homeOf, statusOf } from './helpers/failover.js'

const exec = promisify(execFile)
const REDIRECT = 'x-mirrorcast-redirect: allow'

async function curl (...args: string[]): Promise<Buffer> {
  return (await exec('curl', ['-sS', '--fail-with-body', ...args], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 })).stdout
}

test('a GET of a large file that asks for it is redirected (307) to its storage node, which serves it whole or by Range to curl; small files and other clients get the body from the manager', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const client = clientOf(c.url)
  const big = randomBytes(3 * 1024 * 1024 + 5)
  const small = randomBytes(100_000)
  const entry = await client.put('/d/big.bin', big)
  await client.put('/d/small.bin', small)
  const home = homeOf(await readClusterJson(dir), entry as FileJson)

  const head = (await curl('-i', '-H', REDIRECT, `${c.url}/files/d/big.bin`)).toString('latin1')
  t.regex(head, /^HTTP\/1\.1 307 /)
  const location = /^location: (.*)\r$/im.exec(head)?.[1] ?? ''
  t.true(location.startsWith(`http://${home.address}:`), `to the home node: ${location}`)
  t.regex(location, new RegExp(`/blobs/${entry.id}\\?e=\\d+&s=[0-9a-f]{64}$`))
  t.regex(head, new RegExp(`^x-mirrorcast-id: ${entry.id}\\r$`, 'im'))

  t.true((await curl('-L', '-H', REDIRECT, `${c.url}/files/d/big.bin`)).equals(big), 'curl -L gets every byte from the node')
  t.true((await curl('-L', '-H', REDIRECT, '-r', '1000000-1999999', `${c.url}/files/d/big.bin`)).equals(big.subarray(1_000_000, 2_000_000)), 'and a Range')
  t.true((await curl(location)).equals(big), 'the locator alone is enough, without a token')

  const direct = await curl('-i', '-H', REDIRECT, `${c.url}/files/d/small.bin`)
  t.regex(direct.toString('latin1', 0, 20), /^HTTP\/1\.1 200 /, 'a small file is not redirected')
  t.true((await curl('-H', REDIRECT, `${c.url}/files/d/small.bin`)).equals(small))
  t.regex((await curl('-i', `${c.url}/files/d/big.bin`)).toString('latin1', 0, 20), /^HTTP\/1\.1 200 /, 'without the header the manager serves it')
  t.true((await curl(`${c.url}/files/d/big.bin`)).equals(big))

  // A locator for one file opens no other: the same signature on the small file's id is refused by the node.
  const smallId = (await client.stat('/d/small.bin') as FileJson).id
  const forged = await exec('curl', ['-s', '-w', '%{http_code}', '-o', '/dev/null', location.replace(entry.id, smallId)])
  t.is(forged.stdout, '403')
})

test('mirrorcast get of a large file takes it from the node; a kill -9 of that node mid-download finishes through the manager from the twin, byte for byte, with a note', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const body = randomBytes(48 * 1024 * 1024)
  const local = join(dir, 'big.bin')
  await writeFile(local, body)
  const put = await exec(process.execPath, [CLI_BIN, '--url', c.url, 'put', local, '/big.bin', '--json'])
  const entry = JSON.parse(put.stdout) as FileJson
  const home = homeOf(await readClusterJson(dir), entry)

  const child = spawn(process.execPath, [CLI_BIN, '--url', c.url, 'get', '/big.bin', '-'], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('close', resolve))
  const parts: Buffer[] = []
  let received = 0
  child.stdout.on('data', (d: Buffer) => { parts.push(d); received += d.length })
  await until(() => received >= 1024 * 1024, { what: 'the first MiB' })
  // Held back by the paused pipe, the CLI stops reading from the node: the kill lands mid-body.
  child.stdout.pause()
  process.kill(home.pid, 'SIGKILL')
  child.stdout.resume()
  t.is(await exited, 0, stderr)
  t.true(Buffer.concat(parts).equals(body), 'every byte, in order')
  t.regex(stderr, new RegExp(`mirrorcast: note: the storage node at ${home.address.replaceAll('.', '\\.')}:\\d+ failed after \\d+ of ${body.length} bytes .*; the rest comes through the manager`))

  // Once the home is failed over the manager sends no redirect: a new get is quiet, and whole from the twin.
  await until(async () => await statusOf(c.url, home.id) === 'failed-over', { what: 'the home node failed over' })
  const again = await exec(process.execPath, [CLI_BIN, '--url', c.url, 'get', '/big.bin', join(dir, 'again.bin')])
  t.true((await readFile(join(dir, 'again.bin'))).equals(body))
  t.is(again.stderr, '')
})

import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough, Readable } from 'node:stream'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import { until } from '@mirrorcast/testkit'
import { clientOf, readClusterJson, startUp, tempDir, type ClusterFile, type FileJson } from './helpers/cluster.js'
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

test('a large PUT by locator, with curl: the manager hands out an upload URL, the node answers a receipt once both copies are durable, and a PUT of the receipt names the file; the receipt names that path again and no other, and a forged one nothing', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const body = randomBytes(5 * 1024 * 1024 + 3)
  const local = join(dir, 'up.bin')
  await writeFile(local, body)
  const offer = JSON.parse((await curl('-X', 'POST', `${c.url}/files/u/up.bin?upload-locator&size=${body.length}`)).toString()) as { url: string, fileId: string }
  t.regex(offer.url, new RegExp(`^http://127\\.\\d+\\.\\d+\\.\\d+:\\d+/blobs/${offer.fileId}\\?n=${body.length}&th=`))
  await t.throwsAsync(clientOf(c.url).stat('/u/up.bin'), { code: 'ERR_DIR_NOT_FOUND' }, 'nothing is named before the receipt')

  const taken = JSON.parse((await curl('-T', local, offer.url)).toString()) as { fileId: string, sha256: string, receipt: string }
  t.is(taken.fileId, offer.fileId)
  const named = JSON.parse((await curl('-X', 'PUT', '-H', `x-mirrorcast-receipt: ${taken.receipt}`, `${c.url}/files/u/up.bin`)).toString()) as FileJson
  t.is(named.id, offer.fileId)
  t.is(named.sha256, taken.sha256)
  t.is(named.replicas.length, 2)
  t.true((await curl(`${c.url}/files/u/up.bin`)).equals(body), 'the manager serves what the node took')
  t.true((await curl('-L', '-H', REDIRECT, `${c.url}/files/u/up.bin`)).equals(body))

  const again = JSON.parse((await curl('-X', 'PUT', '-H', `x-mirrorcast-receipt: ${taken.receipt}`, `${c.url}/files/u/up.bin`)).toString()) as FileJson
  t.is(again.version, named.version, 'the same receipt for the same path answers the same entry, and removes nothing')
  t.true((await curl(`${c.url}/files/u/up.bin`)).equals(body))
  const status = async (...args: string[]): Promise<string> => (await exec('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', ...args])).stdout
  t.is(await status('-X', 'PUT', '-H', `x-mirrorcast-receipt: ${taken.receipt}`, `${c.url}/files/u/other.bin`), '409', 'no second path')
  const [text = '', mac = ''] = taken.receipt.split('.')
  const bigger = Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(text, 'base64url').toString()) as object, size: body.length + 1 })).toString('base64url')
  t.is(await status('-X', 'PUT', '-H', `x-mirrorcast-receipt: ${bigger}.${mac}`, `${c.url}/files/u/forged.bin`), '403')
  t.is(await status('-T', local, offer.url), '503', 'an upload locator uploads once')
  const getLocator = offer.url.replace(/\?.*/, `?e=${Date.now() + 60_000}&s=${'0'.repeat(64)}`)
  t.is(await status('-T', local, getLocator), '403', 'no upload without an upload locator')
  t.deepEqual((await clientOf(c.url).list('/u/')).entries.map((e) => e.name), ['up.bin'])
})

/** Uploads `body` by locator, holding it after its first `first` bytes until `meanwhile` has run; the entry and the client's notes. */
async function putHeld (url: string, path: string, body: Buffer, first: number, meanwhile: () => Promise<void>): Promise<{ entry: FileJson, notes: string[] }> {
  const client = clientOf(url)
  const held = new PassThrough()
  // The client drops this stream when the node fails (the manager gets the body again from its start): late writes go nowhere.
  held.on('error', () => {})
  const notes: string[] = []
  const putting = client.put(path, held, { size: body.length, direct: true, reopen: () => Readable.from([body]), onNote: (m) => notes.push(m) })
  if (!held.write(body.subarray(0, first))) await new Promise((resolve) => held.once('drain', resolve))
  await meanwhile()
  held.end(body.subarray(first))
  return { entry: await putting as FileJson, notes }
}

function storageNodes (cluster: ClusterFile): ClusterFile['nodes'] {
  return cluster.nodes.filter((n) => n.role === 'storage')
}

async function killed (pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL')
  await until(() => { try { process.kill(pid, 0); return false } catch { return true } }, { what: `process ${pid} gone` })
}

for (const victim of ['home', 'twin'] as const) {
  test(`a kill -9 of the ${victim} node in the middle of a direct upload: the client finishes through the manager with a note, and the file reads back whole`, async (t) => {
    const dir = await tempDir(t)
    const c = await startUp(t, dir, ['--nodes', '1'])
    const cluster = await readClusterJson(dir)
    // One pair: the home of any file is the home of the next.
    const home = homeOf(cluster, await clientOf(c.url).put('/probe', randomBytes(10)) as FileJson)
    const twin = storageNodes(cluster).find((n) => n.id !== home.id)
    if (twin === undefined) throw new Error('no twin in cluster.json')
    const target = victim === 'home' ? home : twin
    const body = randomBytes(24 * 1024 * 1024)
    const { entry, notes } = await putHeld(c.url, '/held.bin', body, 8 * 1024 * 1024, async () => { await killed(target.pid) })
    t.is(notes.length, 1, notes.join(' | '))
    t.regex(notes[0] ?? '', new RegExp(`^the storage node at ${home.address.replaceAll('.', '\\.')}:\\d+ (failed during|refused) the upload.*; the file goes through the manager$`))
    t.is(entry.size, body.length)
    const back = await clientOf(c.url).get('/held.bin')
    const parts: Buffer[] = []
    for await (const p of back.body) parts.push(p as Buffer)
    t.true(Buffer.concat(parts).equals(body), 'every byte')
    await until(async () => await statusOf(c.url, target.id) === 'failed-over', { what: `the ${victim} failed over` })
  })
}

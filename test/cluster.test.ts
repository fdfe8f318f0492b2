import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { connect } from 'node:net'
import { Readable } from 'node:stream'
import { storedBlobIds, until } from '@mirrorcast/testkit'
import { http, json, readClusterJson, startUp, tempDir, type DirJson, type ErrorJson, type FileJson, type ListJson } from './helpers/cluster.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** Every stored body file under the cluster's data dir, by file id. */
async function blobLocations (dir: string): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>()
  for (const center of ['east', 'west']) {
    for (const member of await readdir(join(dir, center)).catch(() => [])) {
      for (const id of await storedBlobIds(join(dir, center, member))) found.set(id, [...(found.get(id) ?? []), `${center}/${member}`])
    }
  }
  return found
}

async function tempFiles (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const center of ['east', 'west']) {
    for (const member of await readdir(join(dir, center)).catch(() => [])) {
      for (const f of await readdir(join(dir, center, member, 'tmp')).catch(() => [])) out.push(join(center, member, f))
    }
  }
  return out
}

test('a file comes back identical, with ETag, ranges and HEAD; its body is on exactly two twin nodes', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const body = randomBytes(5 * 1024 * 1024 + 123)
  const put = await http(c.url, 'PUT', '/files/docs/report.bin', body)
  t.is(put.status, 201, put.body.toString())
  const entry = json<FileJson>(put)
  t.is(entry.size, body.length)
  t.is(entry.sha256, sha(body))
  t.is(entry.replicas.length, 2)
  const [a, b] = entry.replicas
  t.deepEqual([a?.center, b?.center], ['east', 'west'])
  t.is(a?.slot, b?.slot)
  // twins differ only in the subnet part of their address
  t.is(a?.address.replace(/^127\.1\./, '127.x.'), b?.address.replace(/^127\.2\./, '127.x.'))

  const got = await http(c.url, 'GET', '/files/docs/report.bin')
  t.is(got.status, 200)
  t.true(got.body.equals(body))
  t.is(got.headers.etag, `"${sha(body)}"`)
  t.is(Number(got.headers['content-length']), body.length)

  const range = await http(c.url, 'GET', '/files/docs/report.bin', undefined, { range: 'bytes=1048570-2097160' })
  t.is(range.status, 206)
  t.true(range.body.equals(body.subarray(1048570, 2097161)))
  t.is(range.headers['content-range'], `bytes 1048570-2097160/${body.length}`)
  const suffix = await http(c.url, 'GET', '/files/docs/report.bin', undefined, { range: 'bytes=-10' })
  t.true(suffix.body.equals(body.subarray(body.length - 10)))
  const bad = await http(c.url, 'GET', '/files/docs/report.bin', undefined, { range: `bytes=${body.length}-` })
  t.is(bad.status, 416)

  const head = await http(c.url, 'HEAD', '/files/docs/report.bin')
  t.is(head.status, 200)
  t.is(Number(head.headers['content-length']), body.length)

  const locations = await blobLocations(dir)
  const where = locations.get(entry.id) ?? []
  t.is(where.length, 2, `body found on ${where.join(', ')}`)
  t.deepEqual(where.map((w) => w.split('/')[0]).sort(), ['east', 'west'])
})

test('the namespace behaves like a file system: mkdir, ls, mv, rm, overwrite', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  t.is((await http(c.url, 'POST', '/files/a/?mkdir')).status, 201)
  t.is(json<ErrorJson>(await http(c.url, 'POST', '/files/a/?mkdir')).error.code, 'ERR_DIR_EXISTS')
  t.is((await http(c.url, 'POST', '/files/x/y/z/?mkdir')).status, 404)
  t.is((await http(c.url, 'POST', '/files/x/y/z/?mkdir&parents')).status, 201)
  t.is((await http(c.url, 'PUT', '/files/a/one.txt', Buffer.from('one'))).status, 201)
  t.is((await http(c.url, 'PUT', '/files/a/two.txt', Buffer.from('two'))).status, 201)

  const list = json<ListJson>(await http(c.url, 'GET', '/files/a/'))
  t.deepEqual(list.entries.map((e) => e.name), ['one.txt', 'two.txt'])
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/')).entries.map((e) => `${e.name}:${e.type}`), ['a:dir', 'x:dir'])

  // overwrite: a new version, and the old body is gone from the nodes
  const v1 = json<FileJson>(await http(c.url, 'PUT', '/files/a/one.txt', Buffer.from('one, again')))
  t.is((await http(c.url, 'GET', '/files/a/one.txt')).body.toString(), 'one, again')
  const ids = [...(await blobLocations(dir)).keys()]
  t.is(ids.length, 2, 'the replaced body was deleted')
  t.true(ids.includes(v1.id))

  // rename a file and a directory with its subtree
  const moved = await http(c.url, 'POST', '/files/a/two.txt?move-to=/x/two.txt')
  t.is(moved.status, 200)
  t.is(json<FileJson>(moved).path, '/x/two.txt')
  t.is((await http(c.url, 'GET', '/files/a/two.txt')).status, 404)
  t.is((await http(c.url, 'POST', '/files/x?move-to=/renamed')).status, 200)
  t.is((await http(c.url, 'GET', '/files/renamed/two.txt')).body.toString(), 'two')
  t.deepEqual(json<ListJson>(await http(c.url, 'GET', '/files/renamed/')).entries.map((e) => e.name), ['two.txt', 'y'])

  // rm: non-empty directory refused, recursive removes the subtree and its bodies
  const notEmpty = await http(c.url, 'DELETE', '/files/renamed')
  t.is(notEmpty.status, 409)
  t.is(json<ErrorJson>(notEmpty).error.code, 'ERR_DIR_NOT_EMPTY')
  t.is((await http(c.url, 'DELETE', '/files/renamed?recursive')).status, 200)
  t.is((await http(c.url, 'GET', '/files/renamed/two.txt')).status, 404)
  t.is((await http(c.url, 'DELETE', '/files/a/one.txt')).status, 200)
  await until(async () => (await blobLocations(dir)).size === 0, { what: 'every body deleted', timeoutMs: 5000 })
  t.is(json<DirJson>(await http(c.url, 'GET', '/files/a?stat')).type, 'dir')
  t.is((await http(c.url, 'PUT', '/files/a', Buffer.from('x'))).status, 409, 'a file cannot replace a directory')
})

test('bad input gets a clear error and changes nothing', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--max-file-bytes', '1048576'])
  for (const path of ['/files/a/../etc/passwd', '/files/a/%2e%2e/b', '/files/a//b', '/files/a%00b']) {
    const r = await http(c.url, 'PUT', path, Buffer.from('x'))
    t.is(r.status, 400, path)
    t.is(json<ErrorJson>(r).error.code, 'ERR_BAD_PATH', path)
  }
  const long = await http(c.url, 'PUT', `/files/${'n'.repeat(300)}`, Buffer.from('x'))
  t.is(json<ErrorJson>(long).error.code, 'ERR_BAD_PATH')
  const big = await http(c.url, 'PUT', '/files/big', Buffer.alloc(1048577))
  t.is(big.status, 413)
  const noLength = await http(c.url, 'PUT', '/files/chunked', Readable.from([Buffer.from('x')]))
  t.is(noLength.status, 411)
  const badSum = await http(c.url, 'PUT', '/files/sum', Buffer.from('hello'), { 'x-mirrorcast-sha256': '0'.repeat(64) })
  t.is(json<ErrorJson>(badSum).error.code, 'ERR_CHECKSUM_MISMATCH')
  t.is((await http(c.url, 'GET', '/files/sum')).status, 404)
  t.is((await http(c.url, 'GET', '/nowhere')).status, 404)
  t.is((await http(c.url, 'PATCH', '/files/a')).status, 405)
  t.is(json<ListJson>(await http(c.url, 'GET', '/files/')).entries.length, 0)
  t.is((await blobLocations(dir)).size, 0)
})

test('a client that disconnects mid-upload leaves no entry and no temp file, also after a restart', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const url = new URL(c.url)
  const socket = connect(Number(url.port), url.hostname)
  await new Promise((resolve) => socket.once('connect', resolve))
  socket.write(`PUT /files/cut.bin HTTP/1.1\r\nhost: ${url.host}\r\ncontent-length: 20000000\r\n\r\n`)
  socket.write(randomBytes(3 * 1024 * 1024))
  await until(async () => (await tempFiles(dir)).length > 0, { what: 'upload to reach the nodes', timeoutMs: 5000 })
  socket.destroy()
  await until(async () => (await tempFiles(dir)).length === 0, { what: 'temp files removed', timeoutMs: 5000 })
  t.is((await http(c.url, 'GET', '/files/cut.bin')).status, 404)
  t.is((await blobLocations(dir)).size, 0)

  await c.stop()
  const again = await startUp(t, dir)
  t.is((await http(again.url, 'GET', '/files/cut.bin')).status, 404)
  t.deepEqual(await tempFiles(dir), [])
})

test('stopping and starting up finds every file and directory again; cluster.json names every process', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir)
  const body = randomBytes(300_000)
  t.is((await http(c.url, 'PUT', '/files/keep/me.bin', body)).status, 201)
  t.is((await http(c.url, 'POST', '/files/keep/sub/?mkdir')).status, 201)
  const cluster = await readClusterJson(dir)
  t.is(cluster.nodes.filter((n) => n.role === 'storage').length, 4)
  t.is(cluster.nodes.filter((n) => n.role === 'directory').length, 2)
  for (const n of cluster.nodes) {
    t.true(n.argv.includes('--port') && n.argv[n.argv.indexOf('--port') + 1] === String(n.port))
    t.regex(n.id, /^(node|dir)-/)
  }
  const ids = cluster.nodes.map((n) => n.id).sort()
  const view = json<{ nodes: Array<{ id: string, state: string, twin: string }> }>(await http(c.url, 'GET', '/cluster'))
  t.deepEqual(view.nodes.map((n) => n.id).sort(), ids)
  t.true(view.nodes.every((n) => n.state === 'healthy' && typeof n.twin === 'string'))

  await c.stop()
  const again = await startUp(t, dir)
  const got = await http(again.url, 'GET', '/files/keep/me.bin')
  t.true(got.body.equals(body))
  t.deepEqual(json<ListJson>(await http(again.url, 'GET', '/files/keep/')).entries.map((e) => e.name), ['me.bin', 'sub'])
  t.deepEqual((await readClusterJson(dir)).nodes.map((n) => n.id).sort(), ids, 'members keep their ids')
})

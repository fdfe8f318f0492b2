import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { flipByte } from '@mirrorcast/testkit'
import { LOCATOR_TTL_MS, signLocator } from '@mirrorcast/wire'
import { BLOCK_BYTES } from '../src/index.js'
import { KEY, putBlob, startNode } from './node-helpers.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const newId = (): string => randomBytes(16).toString('hex')

/** The download URL the manager would hand out for `fileId`, signed with `key` at `now`. */
function locatorUrl (port: number, fileId: string, { key = KEY, now = Date.now(), signedFor = fileId } = {}): string {
  const { expiresAt, signature } = signLocator(key, signedFor, now)
  return `http://127.0.0.1:${port}/blobs/${fileId}?e=${expiresAt}&s=${signature}`
}

async function errorCode (res: Response): Promise<string> {
  return ((await res.json()) as { error: { code: string } }).error.code
}

test('a node serves a body by signed locator: whole, by Range, and its headers by HEAD; the port is announced', async (t) => {
  const { node, client } = await startNode(t)
  t.true(node.httpPort > 0)
  const body = randomBytes(2 * BLOCK_BYTES + 777)
  const id = newId()
  await putBlob(client, id, body)
  const url = locatorUrl(node.httpPort, id)

  const whole = await fetch(url)
  t.is(whole.status, 200)
  t.is(whole.headers.get('content-length'), String(body.length))
  t.is(whole.headers.get('etag'), `"${sha(body)}"`)
  t.true(Buffer.from(await whole.arrayBuffer()).equals(body))

  const from = BLOCK_BYTES - 10
  const part = await fetch(url, { headers: { range: `bytes=${from}-${from + 99}` } })
  t.is(part.status, 206)
  t.is(part.headers.get('content-range'), `bytes ${from}-${from + 99}/${body.length}`)
  t.true(Buffer.from(await part.arrayBuffer()).equals(body.subarray(from, from + 100)))

  const head = await fetch(url, { method: 'HEAD' })
  t.is(head.status, 200)
  t.is(head.headers.get('content-length'), String(body.length))
  t.is((await head.arrayBuffer()).byteLength, 0)

  const beyond = await fetch(url, { headers: { range: `bytes=${body.length}-` } })
  t.is(beyond.status, 416)
  t.is(await errorCode(beyond), 'ERR_RANGE_NOT_SATISFIABLE')
})

test('a locator expired, signed for another file, or with another key is refused with 403; other methods and paths are refused too', async (t) => {
  const { node, client } = await startNode(t)
  const id = newId()
  const other = newId()
  await putBlob(client, id, randomBytes(1000))
  await putBlob(client, other, randomBytes(1000))
  const port = node.httpPort

  const expired = await fetch(locatorUrl(port, id, { now: Date.now() - LOCATOR_TTL_MS - 1000 }))
  t.is(expired.status, 403)
  t.is(await errorCode(expired), 'ERR_NODE_LOCATOR_EXPIRED')
  for (const url of [locatorUrl(port, id, { signedFor: other }), locatorUrl(port, id, { key: Buffer.alloc(32, 9) }), `http://127.0.0.1:${port}/blobs/${id}`]) {
    const res = await fetch(url)
    t.is(res.status, 403, url)
    t.is(await errorCode(res), 'ERR_NODE_LOCATOR_INVALID')
  }

  const post = await fetch(locatorUrl(port, id), { method: 'POST', body: 'x' })
  t.is(post.status, 405)
  t.is(post.headers.get('allow'), 'GET, HEAD, PUT')
  const elsewhere = await fetch(`http://127.0.0.1:${port}/blobs/../etc/passwd`)
  t.is(elsewhere.status, 404)
  const unknown = await fetch(locatorUrl(port, newId()))
  t.is(unknown.status, 404)
  t.is(await errorCode(unknown), 'ERR_NODE_NOT_FOUND')

  // none of that hurt the node: the good locator still serves
  t.is((await fetch(locatorUrl(port, id))).status, 200)
})

test('a body corrupt in its first block is refused with an error status; corrupt further on, the download is cut after the good blocks', async (t) => {
  const { node, client } = await startNode(t, undefined, { scrub: { bytesPerSecond: 0 } })
  const early = newId()
  const late = newId()
  await putBlob(client, early, randomBytes(2 * BLOCK_BYTES))
  await putBlob(client, late, randomBytes(3 * BLOCK_BYTES))
  await flipByte(node.store.dir, early, 10)
  await flipByte(node.store.dir, late, 2 * BLOCK_BYTES + 10)

  const refused = await fetch(locatorUrl(node.httpPort, early))
  t.is(refused.status, 503)
  t.is(await errorCode(refused), 'ERR_NODE_CORRUPT')

  const cut = await fetch(locatorUrl(node.httpPort, late))
  t.is(cut.status, 200)
  let received = 0
  await t.throwsAsync(async () => { for await (const c of cut.body as unknown as AsyncIterable<Uint8Array>) received += c.length })
  t.true(received <= 2 * BLOCK_BYTES, `no byte of the corrupt block arrived (${received})`)
})

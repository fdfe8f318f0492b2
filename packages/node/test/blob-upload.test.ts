import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { request } from 'node:http'
import { LOCATOR_TTL_MS, openReceipt, putScope, signLocator } from '@mirrorcast/wire'
import type { StorageNode } from '../src/index.js'
import { KEY, startNode } from './node-helpers.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const newId = (): string => randomBytes(16).toString('hex')

/** The upload URL the manager would hand out: `size` bytes to `home`, the second copy to the node at `twinPort`. */
function uploadUrl (home: StorageNode, fileId: string, size: number, twinPort: number, signedSize = size): string {
  const { expiresAt, signature } = signLocator(KEY, fileId, Date.now(), LOCATOR_TTL_MS, putScope(signedSize, '127.0.0.1', twinPort))
  return `http://127.0.0.1:${home.httpPort}/blobs/${fileId}?n=${size}&th=127.0.0.1&tp=${twinPort}&e=${expiresAt}&s=${signature}`
}

/** PUTs `parts` one after the other, calling `between` after the first; the answer's status and JSON. */
async function put (url: string, parts: Buffer[], { length = parts.reduce((n, p) => n + p.length, 0), between = async () => {} } = {}): Promise<{ status: number, json: Record<string, unknown> }> {
  return await new Promise((resolve, reject) => {
    const req = request(url, { method: 'PUT', headers: { 'content-length': length } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, json: JSON.parse(Buffer.concat(chunks).toString()) as Record<string, unknown> }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    void (async () => {
      for (const [i, p] of parts.entries()) {
        req.write(p)
        if (i === 0) await between()
      }
      req.end()
    })()
  })
}

async function held (node: StorageNode, fileId: string): Promise<string | undefined> {
  return await node.store.stat(fileId).then((s) => s.sha256, () => undefined)
}

const code = (json: Record<string, unknown>): unknown => (json.error as { code?: unknown } | undefined)?.code

test('an upload by locator is written on the node and on its twin, and answered with a receipt for both once both hold it', async (t) => {
  const { node: east } = await startNode(t)
  const { node: west } = await startNode(t, undefined, { center: 'west' })
  const body = randomBytes(3 * 1024 * 1024 + 11)
  const fileId = newId()
  const url = uploadUrl(east, fileId, body.length, west.port)
  const { status, json } = await put(url, [body.subarray(0, 1000), body.subarray(1000)])
  t.is(status, 201, JSON.stringify(json))
  t.is(json.sha256, sha(body))
  const receipt = openReceipt(KEY, json.receipt as string)
  t.deepEqual({ ...receipt, expiresAt: 0 }, { fileId, size: body.length, sha256: sha(body), nodes: [east.id, west.id], expiresAt: 0 })
  t.is(await held(east, fileId), sha(body))
  t.is(await held(west, fileId), sha(body))

  const again = await put(url, [body])
  t.is(code(again.json), 'ERR_NODE_EXISTS', 'a locator uploads once')
})

test('a wrong Content-Length or a locator signed for another size is refused before a byte is kept', async (t) => {
  const { node: east } = await startNode(t)
  const { node: west } = await startNode(t, undefined, { center: 'west' })
  const body = randomBytes(100_000)
  const a = newId()
  const short = await put(uploadUrl(east, a, body.length + 1, west.port), [body])
  t.is(short.status, 400)
  t.is(code(short.json), 'ERR_BAD_REQUEST')
  const b = newId()
  const forged = await put(uploadUrl(east, b, body.length, west.port, body.length + 1), [body])
  t.is(forged.status, 403)
  t.is(code(forged.json), 'ERR_NODE_LOCATOR_INVALID')
  for (const id of [a, b]) {
    t.is(await held(east, id), undefined)
    t.is(await held(west, id), undefined)
  }
})

test('a twin that is down, not the twin, or lost mid-upload: 502 ERR_NODE_TWIN_FAILED and neither node keeps anything', async (t) => {
  const { node: east } = await startNode(t)
  const { node: sameCenter } = await startNode(t, undefined, { slot: 1 })
  const body = randomBytes(4 * 1024 * 1024)

  const down = newId()
  const refused = await put(uploadUrl(east, down, body.length, 1), [body])
  t.is(refused.status, 502)
  t.is(code(refused.json), 'ERR_NODE_TWIN_FAILED')
  t.is(await held(east, down), undefined)

  const notTwin = newId()
  const wrong = await put(uploadUrl(east, notTwin, body.length, sameCenter.port), [body])
  t.is(wrong.status, 502)
  t.regex(String((wrong.json.error as { message: string }).message), /not this node's twin/)
  t.is(await held(sameCenter, notTwin), undefined)

  const { node: west } = await startNode(t, undefined, { center: 'west' })
  const lost = newId()
  const cut = await put(uploadUrl(east, lost, body.length, west.port), [body.subarray(0, 2 * 1024 * 1024), body.subarray(2 * 1024 * 1024)], {
    between: async () => { await west.close() }
  })
  t.is(cut.status, 502)
  t.is(code(cut.json), 'ERR_NODE_TWIN_FAILED')
  t.is(await held(east, lost), undefined)
})

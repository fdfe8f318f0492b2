import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { remoteError, until } from '@mirrorcast/testkit'
import { INLINE_BODY_BYTES } from '@mirrorcast/wire'
import { BodyCache, httpStatusFor, type StoredBody } from '../src/index.js'
import { drain, harness, streamOf } from './harness.js'

// In-process tests of the object manager's failure paths, against fake storage
// nodes: what a client would get (its bytes, its error code) and what becomes
// of each node (failed over, journaled, resynced).

const MiB = 1024 * 1024
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

test('a GET whose home node resets mid-stream goes on from the twin at the byte reached: every byte right, the home failed over', async (t) => {
  const h = harness(t)
  const [home, twin] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(3 * MiB + 123)
  const stored = await h.objects.write(streamOf(body), body.length)
  t.deepEqual(stored.replicas.map((r) => r.node), [home.id, twin.id], 'the primary center\'s node is the home')

  home.fail({ t: 'blob.get', afterBytes: 1.5 * MiB, kill: true })
  const { bytes, error } = await drain(h.objects.read(stored, 0, body.length))
  t.is(error, undefined)
  t.true(bytes.equals(body), 'the reader sees one unbroken, right stream')
  await h.untilStatus(home, 'failed-over')
  t.regex(h.member(home).failover?.reason ?? '', /ERR_RPC_CLOSED/)
  const fromTwin = twin.received.filter((r) => r.t === 'blob.get')
  t.deepEqual(fromTwin.map((r) => r.body), [{ fileId: stored.fileId, offset: MiB, length: body.length - MiB }], 'the twin was asked for the rest only, from the first byte the home did not send')
})

// One cut session is one request's failure: the node answers its probe, so it stays in use.
test('a GET whose session to a live home node is cut goes on from the twin; the home answers its probe and is not failed over', async (t) => {
  const h = harness(t)
  const [home, twin] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(3 * MiB)
  const stored = await h.objects.write(streamOf(body), body.length)
  home.fail({ t: 'blob.get', afterBytes: MiB })
  const { bytes, error } = await drain(h.objects.read(stored, 0, body.length))
  t.is(error, undefined)
  t.true(bytes.equals(body))
  t.is(twin.received.filter((r) => r.t === 'blob.get').length, 1)
  await until(() => home.probes > 0, { what: 'the home to be probed' })
  t.is(h.member(home).health, 'healthy')
  const again = await drain(h.objects.read(stored, 0, body.length))
  t.true(again.bytes.equals(body))
  t.is(home.received.filter((r) => r.t === 'blob.get').length, 2, 'the next read is served by the home again')
})

test('a PUT whose session to a live node is cut is acknowledged on the twin, and the node gets its copy from the twin without being failed over', async (t) => {
  const h = harness(t)
  const [east, west] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const statuses: string[] = []
  h.membership.on('failover', (m) => statuses.push(m.name))
  const body = randomBytes(2 * MiB + 3)
  west.fail({ t: 'blob.put', afterBytes: MiB })
  const stored = await h.objects.write(streamOf(body), body.length)
  t.true(east.blobs.get(stored.fileId)?.equals(body))
  await until(() => west.blobs.get(stored.fileId)?.equals(body) === true, { what: 'the live node to get its copy by resync' })
  await h.untilStatus(west, 'healthy')
  t.deepEqual(statuses, [], 'nobody was failed over')
  t.deepEqual(await h.journal.pending(west.id), [])
})

test('a GET whose home node finds a block corrupt goes on from the twin; a refusal does not fail the node over', async (t) => {
  const h = harness(t)
  const [home, twin] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(2 * MiB + 5)
  const stored = await h.objects.write(streamOf(body), body.length)
  home.fail({ t: 'blob.get', afterBytes: MiB, error: remoteError('ERR_NODE_CORRUPT', 'block 1 fails its checksum') })
  const { bytes, error } = await drain(h.objects.read(stored, 0, body.length))
  t.is(error, undefined)
  t.true(bytes.equals(body))
  t.is(h.member(home).health, 'healthy', 'the node answered: it is not failed over for a bad copy')
  t.is(twin.received.filter((r) => r.t === 'blob.get').length, 1)
})

test('a ranged GET cut mid-stream is finished by the twin: exactly the bytes of the range', async (t) => {
  const h = harness(t)
  const home = h.cluster.node('east', 1)
  const body = randomBytes(4 * MiB)
  const stored = await h.objects.write(streamOf(body), body.length)
  const offset = 1.25 * MiB
  const length = 2 * MiB + 17
  home.fail({ t: 'blob.get', afterBytes: MiB })
  const { bytes, error } = await drain(h.objects.read(stored, offset, length))
  t.is(error, undefined)
  t.true(bytes.equals(body.subarray(offset, offset + length)))
  t.deepEqual(h.cluster.node('west', 1).received.filter((r) => r.t === 'blob.get').map((r) => r.body), [{ fileId: stored.fileId, offset: 2 * MiB, length: offset + length - 2 * MiB }])
})

test('a GET that no copy can finish ends with ERR_NO_REPLICA (503) after a right prefix, or before any byte', async (t) => {
  const h = harness(t)
  const [home, twin] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(3 * MiB)
  const stored = await h.objects.write(streamOf(body), body.length)
  home.fail({ t: 'blob.get', afterBytes: MiB, kill: true })
  twin.fail({ t: 'blob.get', afterBytes: MiB, kill: true })
  const cut = await drain(h.objects.read(stored, 0, body.length))
  t.is(cut.error?.code, 'ERR_NO_REPLICA')
  t.is(httpStatusFor(cut.error?.code), 503)
  t.is(cut.bytes.length, 2 * MiB)
  t.true(cut.bytes.equals(body.subarray(0, 2 * MiB)), 'what was sent is right: the home\'s first block, then the twin\'s')
  await h.untilStatus(home, 'failed-over')
  await h.untilStatus(twin, 'failed-over')

  // Nothing left to serve at all: the error comes before any byte, in time for a clean 503.
  const none = h.objects.read(stored, 0, body.length)
  const first = await none.next().then(() => undefined, (err: Error & { code?: string }) => err)
  t.is(first?.code, 'ERR_NO_REPLICA')
})

test('a PUT whose node resets mid-stream is stored on its twin and journaled; back, the node is resynced from the twin and serves again', async (t) => {
  const h = harness(t)
  const [east, west] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(3 * MiB + 1)
  west.fail({ t: 'blob.put', afterBytes: MiB, kill: true })
  const stored = await h.objects.write(streamOf(body), body.length)
  t.is(stored.sha256, sha(body), 'acknowledged, with the body\'s sha256')
  t.true(east.blobs.get(stored.fileId)?.equals(body))
  t.false(west.blobs.has(stored.fileId), 'the node dropped its partial copy')
  await h.untilStatus(west, 'failed-over')
  t.like(await h.journal.pending(west.id), [{ op: 'put', fileId: stored.fileId, size: body.length, sha256: sha(body), source: { node: east.id } }])

  h.restart(west)
  await h.untilStatus(west, 'healthy')
  t.true(west.blobs.get(stored.fileId)?.equals(body), 'the resync copied the body from the twin')
  t.deepEqual(await h.journal.pending(west.id), [])
  h.membership.enterFailover(h.member(east), 'by hand', true)
  const { bytes } = await drain(h.objects.read(stored, 0, body.length))
  t.true(bytes.equals(body), 'the resynced copy serves alone')
})

test('a node killed during a PUT: the upload goes on with the other, and the delete of that body while it is out is journaled too', async (t) => {
  const h = harness(t)
  const [east, west] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(4 * MiB)
  async function * killingEastMidway (): AsyncGenerator<Buffer> {
    let sent = 0
    for await (const chunk of streamOf(body)) {
      yield chunk
      sent += chunk.length
      if (sent === 2 * MiB) h.kill(east)
    }
  }
  const stored = await h.objects.write(killingEastMidway(), body.length)
  t.true(west.blobs.get(stored.fileId)?.equals(body))
  t.is(h.member(east).health, 'failed-over')
  await h.objects.remove(stored)
  t.false(west.blobs.has(stored.fileId))
  t.deepEqual((await h.journal.pending(east.id)).map((op) => op.op), ['put', 'delete'])

  const before = east.received.length
  h.restart(east)
  await h.untilStatus(east, 'healthy')
  t.false(east.blobs.has(stored.fileId), 'a body written and deleted while it was out is not copied at all')
  t.deepEqual(east.received.slice(before).filter((r) => r.t === 'blob.put'), [], 'no copy was made of it')
})

test('a small PUT refused for lack of room goes to another pair, and the copy its twin took is removed', async (t) => {
  const h = harness(t, { storagePairs: 2 })
  const full = h.cluster.node('east', 1)
  const itsTwin = h.cluster.node('west', 1)
  full.fail({ t: 'blob.put', error: remoteError('ERR_NODE_NO_SPACE', 'not enough space'), times: 1000 })
  const stored: StoredBody[] = []
  // Placement is by file id: write until one body was first placed on the full node's pair.
  for (let i = 0; i < 60 && !itsTwin.received.some((r) => r.t === 'blob.put'); i++) stored.push(await h.objects.write(streamOf(randomBytes(1000)), 1000))
  const refusedId = (itsTwin.received.find((r) => r.t === 'blob.put')?.body as { fileId: string } | undefined)?.fileId
  t.truthy(refusedId, 'a body was placed on the full node\'s pair')
  t.true(stored.every((s) => s.replicas.every((r) => r.slot === 2)), 'every body went to pair 2')
  t.true(itsTwin.received.some((r) => r.t === 'blob.delete' && (r.body as { fileId: string }).fileId === refusedId), 'the twin\'s copy of the refused body was deleted')
  t.is(itsTwin.blobs.size, 0)
  t.is(h.member(full).info.free, 0, 'the full node is passed over until it announces room again')
  t.is(h.member(full).health, 'healthy', 'a full node is not failed over')
})

test('a PUT that loses both nodes midway fails with ERR_NO_REPLICA and leaves neither a body nor a journal entry', async (t) => {
  const h = harness(t)
  const [east, west] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  east.fail({ t: 'blob.put', afterBytes: MiB })
  west.fail({ t: 'blob.put', afterBytes: 2 * MiB })
  const err = await t.throwsAsync(h.objects.write(streamOf(randomBytes(3 * MiB)), 3 * MiB))
  t.is((err as { code?: string }).code, 'ERR_NO_REPLICA')
  t.is(httpStatusFor((err as { code?: string }).code), 503)
  t.is(east.blobs.size + west.blobs.size, 0)
  t.deepEqual([...await h.journal.pending(east.id), ...await h.journal.pending(west.id)], [])
})

test('a client body shorter or longer than declared is refused (400) and no node keeps a byte; the nodes stay in use', async (t) => {
  const h = harness(t)
  const [east, west] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const short = await t.throwsAsync(h.objects.write(streamOf(randomBytes(2 * MiB)), 3 * MiB))
  t.is((short as { code?: string }).code, 'ERR_UPLOAD_INCOMPLETE')
  const long = await t.throwsAsync(h.objects.write(streamOf(randomBytes(1000)), 999))
  t.is((long as { code?: string }).code, 'ERR_BAD_REQUEST')
  t.deepEqual([httpStatusFor('ERR_UPLOAD_INCOMPLETE'), httpStatusFor('ERR_BAD_REQUEST')], [400, 400])
  t.is(east.blobs.size + west.blobs.size, 0)
  t.deepEqual([h.member(east).health, h.member(west).health], ['healthy', 'healthy'])
})

const gets = (fake: { received: Array<{ t: string }> }): number => fake.received.filter((r) => r.t === 'blob.get').length

test('a small body written or read once is read again from the manager\'s memory while its home serves; in failover the read goes to the twin; a removed body is forgotten', async (t) => {
  const h = harness(t)
  const [home, twin] = [h.cluster.node('east', 1), h.cluster.node('west', 1)]
  const body = randomBytes(4096)
  const stored = await h.objects.write(streamOf(body), body.length)
  const entry = { ...stored, sha256: sha(body) }
  t.true((await drain(h.objects.read(entry, 0, body.length))).bytes.equals(body))
  t.true((await drain(h.objects.read(entry, 100, 50))).bytes.equals(body.subarray(100, 150)), 'a range is cut from the kept body')
  t.is(gets(home) + gets(twin), 0, 'no node was asked')
  t.like(h.objects.cache.stats(), { bodies: 1, hits: 2 })

  h.kill(home)
  await h.untilStatus(home, 'failed-over')
  t.true((await drain(h.objects.read(entry, 0, body.length))).bytes.equals(body))
  t.is(gets(twin), 1, 'in failover the twin serves it, as without a cache')

  await h.objects.remove(stored)
  t.like(h.objects.cache.stats(), { bodies: 0, bytes: 0 })
})

test('a small body read whole from a node is kept only if it is the body its entry names; with a cache of 0 nothing is kept', async (t) => {
  const h = harness(t)
  const home = h.cluster.node('east', 1)
  const body = randomBytes(5000)
  const stored = await h.objects.write(streamOf(body), body.length)
  h.objects.cache.delete(stored.fileId)
  await drain(h.objects.read({ ...stored, sha256: sha(randomBytes(5000)) }, 0, body.length))
  t.is(h.objects.cache.stats().bodies, 0, 'bytes that do not match the entry\'s sha256 are not kept')
  await drain(h.objects.read(stored, 0, 10))
  t.is(h.objects.cache.stats().bodies, 0, 'nor is a range')
  await drain(h.objects.read(stored, 0, body.length))
  await drain(h.objects.read(stored, 0, body.length))
  t.is(gets(home), 3, 'the third read was served from memory')

  const off = harness(t, { bodyCacheBytes: 0 })
  const again = await off.objects.write(streamOf(body), body.length)
  await drain(off.objects.read(again, 0, body.length))
  await drain(off.objects.read(again, 0, body.length))
  t.is(gets(off.cluster.node('east', 1)), 2)
  t.like(off.objects.cache.stats(), { bodies: 0, maxBytes: 0 })
})

test('the body cache drops the least recently used first, keeps no body larger than an inline one, and refuses a bad size', (t) => {
  const cache = new BodyCache(3 * (1000 + 96))
  const bodies = ['a', 'b', 'c', 'd'].map((id) => [id, randomBytes(1000)] as const)
  for (const [id, b] of bodies.slice(0, 3)) cache.add(id, b)
  t.truthy(cache.get('a'), 'a used again: b is now the oldest')
  cache.add('d', (bodies[3] as readonly [string, Buffer])[1])
  t.is(cache.get('b'), undefined)
  t.deepEqual(['a', 'c', 'd'].map((id) => cache.get(id) !== undefined), [true, true, true])
  t.like(cache.stats(), { bodies: 3, bytes: 3 * 1096 })
  const big = new BodyCache(10 * INLINE_BODY_BYTES)
  big.add('x', Buffer.alloc(INLINE_BODY_BYTES + 1))
  t.is(big.stats().bodies, 0)
  const pooled = Buffer.from('a view of a larger buffer, which the cache copies out of it')
  const view = pooled.subarray(2, 6)
  big.add('v', view)
  view.fill(0)
  t.is(big.get('v')?.toString(), 'view', 'the cache holds its own copy of a view')
  t.throws(() => new BodyCache(-1), { instanceOf: TypeError })
})

import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { join } from 'node:path'
import { storedBlobIds, until } from '@mirrorcast/testkit'
import { clientOf, http, json, startUp, tempDir, type FileJson } from '../helpers/cluster.js'
import { killMember, locateLog, readClusterJson, replayedBeforeHealthy, startByHand, statusOf, untilHealthy } from '../helpers/failover.js'

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')

/** A GET whose client reads nothing after the headers until `resume()`, which resolves with the whole body. */
async function pausedRead (base: string, path: string): Promise<{ resume: () => Promise<Buffer> }> {
  const res = (await clientOf(base).request({ path })).body
  res.pause()
  return {
    resume: async () => await new Promise<Buffer>((resolve, reject) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve(Buffer.concat(chunks)))
      res.on('error', reject)
      res.resume()
    })
  }
}

// Claims 1, 11: a file and its duplicate; the failed node is no longer used and the
// file is accessed on the second node, inside the same client request.
test('kill -9 of the home node while 1,000 GETs run: 0 client errors, 0 wrong bytes, reads resume on the twin mid-stream', async (t) => {
  const dir = await tempDir(t)
  // One twin pair: the victim is the home of every file.
  const c = await startUp(t, dir, ['--nodes', '1'])
  const cluster = await readClusterJson(dir)
  const victim = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'east' && n.slot === 1)
  if (victim === undefined) { t.fail('no east/1'); return }
  const files = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
    const body = randomBytes(1024 * 1024 + i * 4099)
    const r = await http(c.url, 'PUT', `/files/gets/f${i}`, body)
    t.is(r.status, 201)
    return { path: `/gets/f${i}`, sha: sha(body), entry: json<FileJson>(r) }
  }))
  t.true(files.every((f) => f.entry.replicas[0]?.node === victim.id))
  // One read surely cut mid-stream: its client stops reading after the headers, which the
  // manager sends only once the first block came from the node, and resumes after the kill.
  const big = randomBytes(32 * 1024 * 1024)
  const bigEntry = json<FileJson>(await http(c.url, 'PUT', '/files/gets/big', big))
  let paused: { resume: () => Promise<Buffer> } | undefined
  let done = 0
  let errors = 0
  let wrong = 0
  let killedAt = -1
  const worker = async (): Promise<void> => {
    while (done < 1000) {
      const f = files[done % files.length] as typeof files[number]
      done++
      if (done === 300) {
        killedAt = done
        paused = await pausedRead(c.url, '/files/gets/big')
        process.kill(victim.pid, 'SIGKILL')
      }
      const r = await http(c.url, 'GET', `/files${f.path}`).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }))
      if (r.status !== 200) { errors++; t.log(`GET ${f.path}: ${r.status} ${r.body.toString().slice(0, 200)}`) } else if (sha(r.body) !== f.sha) wrong++
    }
  }
  await Promise.all(Array.from({ length: 8 }, worker))
  t.is(killedAt, 300)
  t.is(sha(await (paused as { resume: () => Promise<Buffer> }).resume()), sha(big), 'the read cut mid-stream returned every byte right')
  t.is(errors, 0, 'no GET failed')
  t.is(wrong, 0, 'no GET returned wrong bytes')
  t.is(await statusOf(c.url, victim.id), 'failed-over')
  const resumed = (await locateLog(dir)).filter((l) => l.center === 'west')
  t.true(resumed.length > 0, 'reads were served by the twin')
  t.true(resumed.some((l) => l.fileId === bigEntry.id && l.at > 0), 'the read cut off mid-stream resumed on the twin at the byte reached')
})

// Claims 1, 4, 11, 14: a file and its duplicate in two centers; a failed node is
// no longer used, the file is accessed from the second node; the node comes back
// resynchronised.
test('kill -9 of a storage node during a GET/PUT/DELETE loop: no failed request, writes go on, its restart resyncs every write and delete', async (t) => {
  const dir = await tempDir(t)
  // One twin pair: every write made while the node is out goes to its twin and the repair journal.
  const c = await startUp(t, dir, ['--nodes', '1'])
  const cluster = await readClusterJson(dir)
  const victim = cluster.nodes.find((n) => n.role === 'storage' && n.center === 'east' && n.slot === 1)
  if (victim === undefined) { t.fail('no east/1'); return }

  const stored = new Map<string, { body: Buffer, entry: FileJson }>()
  const deleted = new Set<string>()
  let failures = 0
  let wrong = 0
  let ops = 0
  let i = 0
  const put = async (): Promise<void> => {
    const path = `/loop/f${i++}`
    const body = randomBytes(20_000 + Math.floor(Math.random() * 200_000))
    const r = await http(c.url, 'PUT', `/files${path}`, body)
    if (r.status !== 201) { failures++; t.log(`PUT ${path}: ${r.status} ${r.body.toString().slice(0, 200)}`); return }
    stored.set(path, { body, entry: json<FileJson>(r) })
  }
  const get = async (): Promise<void> => {
    const paths = [...stored.keys()]
    const path = paths[Math.floor(Math.random() * paths.length)]
    const expected = path === undefined ? undefined : stored.get(path)
    if (path === undefined || expected === undefined) return
    const r = await http(c.url, 'GET', `/files${path}`).catch((err: Error) => ({ status: 0, body: Buffer.from(err.message) }))
    // A path another worker deleted meanwhile is rightly gone.
    if (r.status === 404 && !stored.has(path)) return
    if (r.status !== 200) { failures++; t.log(`GET ${path}: ${r.status} ${r.body.toString().slice(0, 200)}`); return }
    if (sha(r.body) !== sha(expected.body)) wrong++
  }
  const del = async (): Promise<void> => {
    const path = [...stored.keys()][0]
    if (path === undefined) return
    const entry = (stored.get(path) as { entry: FileJson }).entry
    stored.delete(path)
    const r = await http(c.url, 'DELETE', `/files${path}`)
    if (r.status !== 200) { failures++; t.log(`DELETE ${path}: ${r.status}`); return }
    deleted.add(entry.id)
  }
  let running = true
  const loop = async (): Promise<void> => {
    while (running) {
      const roll = Math.random()
      await (roll < 0.35 ? put() : roll < 0.9 ? get() : del())
      ops++
    }
  }
  for (let k = 0; k < 10; k++) await put()
  const workers = Array.from({ length: 4 }, loop)

  await until(() => ops > 40, { what: 'traffic before the kill', timeoutMs: 20_000 })
  await killMember([c.url], victim)
  const opsAtFailover = ops
  const pathsAtFailover = new Set(stored.keys())
  const deletedAtFailover = deleted.size
  await until(() => ops > opsAtFailover + 60, { what: 'traffic during the failover', timeoutMs: 30_000 })
  const writtenWhileOut = [...stored.keys()].filter((p) => !pathsAtFailover.has(p)).length
  const deletedWhileOut = deleted.size - deletedAtFailover

  startByHand(t, victim.argv)
  const seen = await untilHealthy(c.url, victim.id, 'the node to be healthy again')
  running = false
  await Promise.all(workers)

  t.is(failures, 0, 'no client request failed')
  t.is(wrong, 0, 'no read returned wrong bytes')
  // Every PUT and DELETE that began after the failover was journaled for it; of those counted
  // above, only the one each of the 4 workers had in flight at the failover may have reached it before it died.
  const replayed = await replayedBeforeHealthy(dir, victim)
  t.true(replayed !== undefined && replayed >= writtenWhileOut + deletedWhileOut - 4, `it was healthy again after a resync that replayed ${String(replayed)} journal entries; ${writtenWhileOut} writes and ${deletedWhileOut} deletes were made while it was out`)
  const held = await storedBlobIds(join(dir, 'east', 'east-node1'))
  const expected = [...stored.values()].filter((s) => s.entry.replicas.some((r) => r.node === victim.id)).map((s) => s.entry.id)
  t.true(writtenWhileOut > 0 && deletedWhileOut > 0, `files were written (${writtenWhileOut}) and deleted (${deletedWhileOut}) while it was out`)
  t.deepEqual(expected.filter((id) => !held.has(id)), [], 'it holds every file of its pair')
  t.deepEqual([...deleted].filter((id) => held.has(id)), [], 'it holds no file deleted in its absence')
  t.log(`${ops} operations, ${stored.size} files, ${deleted.size} deletes; statuses seen: ${[...seen].join(' → ')}`)
})

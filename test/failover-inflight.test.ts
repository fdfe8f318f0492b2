import test from 'ava'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { until } from '@mirrorcast/testkit'
import { clientOf, http, json, startUp, tempDir, type FileJson } from './helpers/cluster.js'
import { locateLog, readClusterJson, statusOf } from './helpers/failover.js'

// A node that freezes (SIGSTOP: alive, silent) in the middle of a read is failed
// over by the detector; the read it was serving is cut at that moment and
// resumes on the twin, rather than waiting for the request timeout.
test('a read from a node that freezes mid-stream moves to the twin when the node is failed over', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--nodes', '1'])
  const cluster = await readClusterJson(dir)
  const body = randomBytes(64 * 1024 * 1024)
  const entry = json<FileJson>(await http(c.url, 'PUT', '/files/big.bin', body))
  const home = cluster.nodes.find((n) => n.id === entry.replicas[0]?.node)
  if (home === undefined) { t.fail('no home node'); return }

  const answer = await clientOf(c.url).request({ path: '/files/big.bin' })
  t.is(answer.status, 200)
  const res = answer.body
  // Read nothing yet: the manager's stream from the node stops at what the sockets hold.
  res.pause()
  process.kill(home.pid, 'SIGSTOP')
  t.teardown(() => { try { process.kill(home.pid, 'SIGCONT') } catch {} })
  await until(async () => await statusOf(c.url, home.id) === 'failed-over', { what: 'the frozen node to be failed over' })

  const hash = createHash('sha256')
  let bytes = 0
  res.on('data', (chunk: Buffer) => { hash.update(chunk); bytes += chunk.length })
  res.resume()
  try {
    await once(res, 'end')
  } catch (err) {
    // What the manager did with this read says why it was cut (the twin failed too, a timeout, …).
    const lines = (await readFile(join(dir, 'logs', 'manager.log'), 'utf8')).split('\n').filter((l) => l.includes(entry.id) || l.includes('failed over') || l.includes('request failed'))
    t.log(lines.slice(-20).join('\n'))
    throw err
  }
  t.is(bytes, body.length)
  t.is(hash.digest('hex'), entry.sha256)
  const log = (await locateLog(dir)).filter((l) => l.fileId === entry.id)
  t.true(log.some((l) => l.center === 'west' && l.at > 0), 'the read resumed on the twin at the byte reached')
  const failed = (await readFile(join(dir, 'logs', 'manager.log'), 'utf8')).split('\n').filter((l) => l.includes('read failed, trying the next place') && l.includes(entry.id)).map((l) => JSON.parse(l) as { code: string, error: string })
  t.true(failed.length > 0)
  t.is(failed[0]?.code, 'ERR_RPC_CLOSED', 'cut by the failover, not by the request timeout')
  t.regex(failed[0]?.error ?? '', /failed over/)
})

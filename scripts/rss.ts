/**
 * `npm run rss`: PUT and GET a 1 GiB file through the manager of a real
 * `mirrorcast up` cluster and print the peak resident memory of the manager
 * and of every node (VmHWM from /proc), which must stay under 200 MB.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { launchUp } from '@mirrorcast/cli'
import { printTable, withTempDir } from './lib.js'

const MiB = 1024 * 1024
const SIZE = Number(process.env.RSS_BYTES ?? 1024 * MiB)
const LIMIT_MB = 200

/** A deterministic body generated on the fly: 1 GiB never sits in this process either. */
function body (size: number, hash: ReturnType<typeof createHash>): Readable {
  const block = randomBytes(MiB)
  let sent = 0
  return new Readable({
    read () {
      if (sent >= size) { this.push(null); return }
      const n = Math.min(MiB, size - sent)
      block.writeUInt32BE(sent / MiB, 0)
      const chunk = Buffer.from(block.subarray(0, n))
      hash.update(chunk)
      sent += n
      this.push(chunk)
    }
  })
}

async function peakRssMb (pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const m = /VmHWM:\s+(\d+) kB/.exec(status)
  return m === null ? NaN : Number(m[1]) / 1024
}

async function main (): Promise<void> {
  await withTempDir('mirrorcast-rss-', async (dir) => {
    const cluster = await launchUp(join(dir, 'cluster'), ['--port', '0', '--node-port', '0', '--log-level', 'warn'])
    try {
      const url = new URL(cluster.url)
      const sent = createHash('sha256')
      const t0 = Date.now()
      const put = await new Promise<{ status: number, text: string }>((resolve, reject) => {
        const req = request({ host: url.hostname, port: url.port, method: 'PUT', path: '/files/big.bin', headers: { 'content-length': SIZE } }, (res) => {
          let text = ''
          res.on('data', (c: Buffer) => { text += c.toString() })
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
        })
        req.on('error', reject)
        body(SIZE, sent).pipe(req)
      })
      if (put.status !== 201) throw new Error(`PUT failed: ${put.status} ${put.text}`)
      const putSeconds = (Date.now() - t0) / 1000
      const t1 = Date.now()
      const got = createHash('sha256')
      let gotBytes = 0
      await new Promise<void>((resolve, reject) => {
        request({ host: url.hostname, port: url.port, method: 'GET', path: '/files/big.bin' }, (res) => {
          res.on('data', (c: Buffer) => { got.update(c); gotBytes += c.length })
          res.on('end', resolve)
          res.on('error', reject)
        }).on('error', reject).end()
      })
      const getSeconds = (Date.now() - t1) / 1000
      const same = sent.digest('hex') === got.digest('hex') && gotBytes === SIZE
      const cj = JSON.parse(await readFile(join(dir, 'cluster', 'cluster.json'), 'utf8')) as { manager: { pid: number }, nodes: Array<{ role: string, center: string, slot: number, pid: number }> }
      const rows: Array<Array<string | number>> = [['manager', await peakRssMb(cj.manager.pid)]]
      for (const n of cj.nodes) rows.push([`${n.role} ${n.center}/${n.slot}`, await peakRssMb(n.pid)])
      process.stdout.write(`\n1 GiB through the manager: PUT ${(SIZE / MiB / putSeconds).toFixed(0)} MiB/s, GET ${(SIZE / MiB / getSeconds).toFixed(0)} MiB/s, body identical: ${same ? 'yes' : 'NO'}\n\n`)
      printTable(['process', 'peak RSS MB', `under ${LIMIT_MB} MB`], rows.map((r) => [...r, Number(r[1]) < LIMIT_MB ? 'yes' : 'NO']))
      const worst = Math.max(...rows.map((r) => Number(r[1])))
      process.stdout.write(`\nrss: max=${worst.toFixed(0)}MB limit=${LIMIT_MB}MB identical=${same ? 'yes' : 'no'}\n`)
      if (!same || worst >= LIMIT_MB) process.exitCode = 1
    } finally {
      await cluster.stop()
    }
  })
}

await main()

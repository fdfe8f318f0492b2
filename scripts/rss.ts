/**
 * `npm run rss`: PUT and GET a 1 GiB file through the manager of a real
 * `mirrorcast up` cluster and print the peak resident memory of the manager
 * and of every node (VmHWM from /proc), which must stay under 200 MB.
 */
import { createHash, randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { launchUp } from '@mirrorcast/cli'
import { MirrorcastClient } from '@mirrorcast/client'
import { peakRssMb, printTable, withTempDir } from './lib.js'

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

async function main (): Promise<void> {
  await withTempDir('mirrorcast-rss-', async (dir) => {
    const cluster = await launchUp(join(dir, 'cluster'), ['--port', '0', '--node-port', '0', '--log-level', 'warn'])
    try {
      const client = new MirrorcastClient({ url: cluster.url, headersTimeoutMs: 0 })
      const sent = createHash('sha256')
      const t0 = Date.now()
      let putSeconds: number
      let getSeconds: number
      const got = createHash('sha256')
      let gotBytes = 0
      try {
        await client.put('/big.bin', body(SIZE, sent), { size: SIZE }).catch((err: Error) => { throw new Error(`PUT failed: ${err.message}`) })
        putSeconds = (Date.now() - t0) / 1000
        const t1 = Date.now()
        for await (const c of (await client.get('/big.bin')).body) { got.update(c as Buffer); gotBytes += (c as Buffer).length }
        getSeconds = (Date.now() - t1) / 1000
      } finally {
        await client.close()
      }
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

/**
 * `npm run bench`: throughput and latency of PUT and GET through the manager
 * of a real `mirrorcast up` cluster, beside this machine's ceilings measured in
 * the same run: the same writes fsynced twice straight to disk, and a bare
 * node:http server answering the same requests.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { createServer } from 'node:http'
import { launchUp } from '@mirrorcast/cli'
import { MirrorcastClient } from '@mirrorcast/client'
import { percentile, printTable, runPhase, transfer, withTempDir, type PhaseResult } from './lib.js'

const KiB = 1024
const MiB = 1024 * KiB

interface Workload { label: string, size: number, concurrency: number, count: number }

const WORKLOADS: Workload[] = [
  { label: '4 KiB', size: 4 * KiB, concurrency: 16, count: Number(process.env.BENCH_SMALL_COUNT ?? 4000) },
  { label: '16 MiB', size: 16 * MiB, concurrency: 4, count: Number(process.env.BENCH_LARGE_COUNT ?? 48) }
]

// Twin pairs of storage nodes: one by default, i.e. two replicas of every file, as in the reference store.
const PAIRS = Number(process.env.BENCH_NODES ?? 1)

// A well-known peer object store with two replicas on this kind of 2-core machine (the figures).
const REFERENCE: Record<string, { put: number, get: number, unit: 'ops/s' | 'MB/s' }> = {
  '4 KiB': { put: 176, get: 569, unit: 'ops/s' },
  '16 MiB': { put: 288, get: 380, unit: 'MB/s' }
}

async function benchHttp (base: string, w: Workload, body: Buffer, prefix: string): Promise<[PhaseResult, PhaseResult]> {
  const client = new MirrorcastClient({ url: base, connections: w.concurrency })
  try {
    const put = await runPhase(`${w.label} PUT`, w.count, w.concurrency, async (i) => { await transfer(client, 'PUT', `${prefix}/${w.label.replace(' ', '')}/f${i}`, body); return body.length })
    const get = await runPhase(`${w.label} GET`, w.count, w.concurrency, async (i) => await transfer(client, 'GET', `${prefix}/${w.label.replace(' ', '')}/f${i}`))
    return [put, get]
  } finally {
    await client.close()
  }
}

/** The durable-write ceiling: each op writes the body to two files and fsyncs both, as two replicas would. */
async function benchDisk (dir: string, w: Workload, body: Buffer): Promise<PhaseResult> {
  const writeOne = async (file: string): Promise<void> => {
    const fh = await open(file, 'w')
    try {
      for (let at = 0; at < body.length; at += MiB) await fh.write(body, at, Math.min(MiB, body.length - at))
      await fh.sync()
    } finally {
      await fh.close()
    }
  }
  return await runPhase(`${w.label} disk 2×fsync`, w.count, w.concurrency, async (i) => {
    await Promise.all([writeOne(join(dir, `a${i}`)), writeOne(join(dir, `b${i}`))])
    return body.length
  })
}

/** A bare node:http server in its own process: PUT drains the body, GET answers `size` bytes from memory. */
async function startBareHttp (): Promise<{ url: string, stop: () => Promise<void> }> {
  const child = fork(new URL(import.meta.url), ['--bare-http-child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const [msg] = await once(child, 'message') as [{ port: number }]
  return {
    url: `http://127.0.0.1:${msg.port}`,
    stop: async () => { const exited = once(child, 'exit'); child.kill(); await exited }
  }
}

function bareHttpChild (): void {
  const lengthByPath = new Map<string, number>()
  const bodyByLength = new Map<number, Buffer>()
  const server = createServer((req, res) => {
    const path = req.url ?? ''
    if (req.method === 'PUT') {
      let n = 0
      req.on('data', (c: Buffer) => { n += c.length })
      req.on('end', () => {
        lengthByPath.set(path, n)
        if (!bodyByLength.has(n)) bodyByLength.set(n, randomBytes(n))
        res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}')
      })
      return
    }
    const body = bodyByLength.get(lengthByPath.get(path) ?? -1) ?? Buffer.alloc(0)
    res.writeHead(200, { 'content-length': body.length }).end(body)
  })
  server.listen(0, '127.0.0.1', () => {
    const address = server.address()
    if (address !== null && typeof address === 'object') process.send?.({ port: address.port })
  })
}

function row (r: PhaseResult, size: number): Array<string | number> {
  return [r.name, r.ops, r.ops / r.seconds, (r.ops * size) / r.seconds / 1e6, percentile(r.latenciesMs, 50), percentile(r.latenciesMs, 99)]
}

async function main (): Promise<void> {
  const results: Array<{ w: Workload, put: PhaseResult, get: PhaseResult, disk: PhaseResult, bare: [PhaseResult, PhaseResult] }> = []
  await withTempDir('mirrorcast-bench-', async (dir) => {
    const cluster = await launchUp(join(dir, 'cluster'), ['--port', '0', '--node-port', '0', '--log-level', 'warn', '--nodes', String(PAIRS)])
    const bare = await startBareHttp()
    try {
      for (const w of WORKLOADS.filter((x) => x.count > 0)) {
        const body = randomBytes(w.size)
        const [put, get] = await benchHttp(cluster.url, w, body, '/files/bench')
        const disk = await withTempDir('mirrorcast-bench-disk-', async (d) => await benchDisk(d, w, body))
        const bareResults = await benchHttp(bare.url, w, body, '/bare')
        results.push({ w, put, get, disk, bare: bareResults })
      }
    } finally {
      await bare.stop()
      await cluster.stop()
    }
  })
  process.stdout.write(`\nmirrorcast bench: through the manager of a local \`mirrorcast up\` cluster (${PAIRS} twin pair${PAIRS === 1 ? '' : 's'}), and this machine's ceilings\n\n`)
  printTable(['workload', 'ops', 'ops/s', 'MB/s', 'p50 ms', 'p99 ms'], results.flatMap(({ w, put, get, disk, bare }) => [
    row(put, w.size), row(get, w.size), row(disk, w.size), row(bare[0], w.size).map((c, i) => i === 0 ? `${w.label} bare http PUT` : c), row(bare[1], w.size).map((c, i) => i === 0 ? `${w.label} bare http GET` : c)
  ]))
  process.stdout.write('\nagainst targets\n\n')
  printTable(['workload', 'measured', 'reference', '× reference', 'target ×', 'ceiling', '% of ceiling', 'target %'], results.flatMap(({ w, put, get, disk, bare }) => {
    const ref = REFERENCE[w.label]
    if (ref === undefined) return []
    const measure = (r: PhaseResult): number => ref.unit === 'ops/s' ? r.ops / r.seconds : (r.ops * w.size) / r.seconds / 1e6
    const small = ref.unit === 'ops/s'
    return [
      [`${w.label} PUT (${ref.unit})`, measure(put), ref.put, measure(put) / ref.put, small ? 5 : 1.5, measure(disk), (100 * measure(put)) / measure(disk), 50],
      [`${w.label} GET (${ref.unit})`, measure(get), ref.get, measure(get) / ref.get, small ? 10 : 1.5, measure(bare[1]), (100 * measure(get)) / measure(bare[1]), 30]
    ]
  }))
}

if (process.argv[2] === '--bare-http-child') bareHttpChild()
else await main()

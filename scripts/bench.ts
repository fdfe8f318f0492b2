/**
 * `npm run bench`: throughput and latency of PUT and GET through the manager
 * of a real `mirrorcast up` cluster, beside this machine's ceilings measured in
 * the same run: the same writes fsynced twice straight to disk, and a bare
 * node:http server answering the same requests; and, when the OpenStack Swift
 * peer of ../shared/peers is running, Swift's own figures for the same load
 * and the ratios, from the same run.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { createHash, randomBytes } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { createServer } from 'node:http'
import { launchUp } from '@mirrorcast/cli'
import { MirrorcastClient } from '@mirrorcast/client'
import { signS3Headers } from '@mirrorcast/manager'
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

// The targets against Swift (issue 14): × Swift, and % of this machine's ceiling where that is the bound.
const TARGETS: Record<string, { put: number, get: number, putCeiling?: number, getCeiling?: number }> = {
  '4 KiB': { put: 5, get: 10 },
  '16 MiB': { put: 1.2, get: 1.5, putCeiling: 85, getCeiling: 80 }
}

// The Swift peer of ../shared/peers/swift (tempauth on its proxy); env overrides.
const SWIFT_AUTH_URL = process.env.SWIFT_AUTH_URL ?? 'http://127.0.0.1:8080/auth/v1.0'
const SWIFT_USER = process.env.SWIFT_USER ?? 'test:tester'
const SWIFT_KEY = process.env.SWIFT_KEY ?? 'testing'

interface Target { url: string, prefix: string, headers?: Record<string, string> }

/** The Swift peer's storage URL and a token, or undefined when none answers. */
async function swiftPeer (): Promise<Target | undefined> {
  let res: Response
  try {
    res = await fetch(SWIFT_AUTH_URL, { headers: { 'x-auth-user': SWIFT_USER, 'x-auth-key': SWIFT_KEY }, signal: AbortSignal.timeout(3000) })
  } catch {
    return undefined
  }
  const storage = res.headers.get('x-storage-url')
  const token = res.headers.get('x-auth-token')
  if (!res.ok || storage === null || token === null) return undefined
  const url = new URL(storage)
  const headers = { 'x-auth-token': token }
  for (const w of WORKLOADS) {
    const made = await fetch(`${storage}/bench-${w.label.replace(' ', '')}`, { method: 'PUT', headers })
    if (!made.ok) throw new Error(`the Swift peer refused a container: ${made.status}`)
  }
  return { url: url.origin, prefix: `${url.pathname}/bench-`, headers }
}

async function benchHttp (target: Target, w: Workload, body: Buffer): Promise<[PhaseResult, PhaseResult]> {
  const client = new MirrorcastClient({ url: target.url, connections: w.concurrency })
  const path = (i: number): string => `${target.prefix}${w.label.replace(' ', '')}/f${i}`
  try {
    const put = await runPhase(`${w.label} PUT`, w.count, w.concurrency, async (i) => { await transfer(client, 'PUT', path(i), body, target.headers); return body.length })
    const get = await runPhase(`${w.label} GET`, w.count, w.concurrency, async (i) => await transfer(client, 'GET', path(i), undefined, target.headers))
    return [put, get]
  } finally {
    await client.close()
  }
}

// 1 MiB: from this size on the manager offers a PUT or a GET straight to a storage node
const DIRECT_MIN_BYTES = MiB

/** The same PUTs and GETs as the CLI makes them: by locator, the body between the client and a node, not through the manager. */
async function benchDirect (url: string, w: Workload, body: Buffer): Promise<[PhaseResult, PhaseResult]> {
  const client = new MirrorcastClient({ url, connections: w.concurrency })
  const notes: string[] = []
  const path = (i: number): string => `/bench/${w.label.replace(' ', '')}-direct/f${i}`
  try {
    const put = await runPhase(`${w.label} PUT direct`, w.count, w.concurrency, async (i) => {
      await client.put(path(i), body, { direct: true, onNote: (m) => notes.push(m) })
      return body.length
    })
    const get = await runPhase(`${w.label} GET direct`, w.count, w.concurrency, async (i) => {
      const file = await client.get(path(i), { direct: true, onNote: (m) => notes.push(m) })
      let n = 0
      for await (const chunk of file.body) n += (chunk as Buffer).length
      return n
    })
    if (notes.length > 0) throw new Error(`${notes.length} direct transfers fell back to the manager: ${notes[0] ?? ''}`)
    return [put, get]
  } finally {
    await client.close()
  }
}

/** The S3 endpoint `up` serves and the key pair it wrote, from the cluster's directory. */
async function s3Of (dir: string): Promise<{ url: string, key: { accessKeyId: string, secretAccessKey: string } }> {
  const cluster = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as { manager: { s3Url: string } }
  const text = await readFile(join(dir, 's3-credentials'), 'utf8')
  const field = (name: string): string => new RegExp(`^${name}\\s*=\\s*(\\S+)`, 'm').exec(text)?.[1] ?? ''
  return { url: cluster.manager.s3Url, key: { accessKeyId: field('aws_access_key_id'), secretAccessKey: field('aws_secret_access_key') } }
}

const EMPTY_SHA256 = createHash('sha256').digest('hex')

/**
 * The same PUTs and GETs through the S3 front end, each signed as aws-cli
 * signs over HTTP (SigV4 with the body's sha256), by a signer as cheap as
 * the load generator's native requests, so the client's CPU does not weigh
 * on the server's in the ratio.
 */
async function benchS3 (dir: string, w: Workload, body: Buffer): Promise<[PhaseResult, PhaseResult]> {
  const { url, key } = await s3Of(dir)
  const { host } = new URL(url)
  const client = new MirrorcastClient({ url, connections: w.concurrency })
  const bodyHash = createHash('sha256').update(body).digest('hex')
  const signed = async (method: string, path: string, payload?: Buffer): Promise<number> => {
    const headers = signS3Headers({ method, path, host, payloadHash: payload === undefined ? EMPTY_SHA256 : bodyHash }, key, 'us-east-1')
    return await transfer(client, method, path, payload, headers)
  }
  const path = (i: number): string => `/bench-s3/${w.label.replace(' ', '')}/f${i}`
  try {
    await signed('PUT', '/bench-s3')
    const put = await runPhase(`${w.label} PUT S3`, w.count, w.concurrency, async (i) => { await signed('PUT', path(i), body); return body.length })
    const get = await runPhase(`${w.label} GET S3`, w.count, w.concurrency, async (i) => await signed('GET', path(i)))
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

type Pair = [PhaseResult, PhaseResult]
interface Result { w: Workload, put: PhaseResult, get: PhaseResult, direct?: Pair, s3?: Pair, disk: PhaseResult, bare: Pair, swift?: Pair }

async function main (): Promise<void> {
  const results: Result[] = []
  const swift = await swiftPeer()
  await withTempDir('mirrorcast-bench-', async (dir) => {
    const cluster = await launchUp(join(dir, 'cluster'), ['--port', '0', '--node-port', '0', '--log-level', 'warn', '--nodes', String(PAIRS)])
    const bare = await startBareHttp()
    try {
      for (const w of WORKLOADS.filter((x) => x.count > 0)) {
        const body = randomBytes(w.size)
        const [put, get] = await benchHttp({ url: cluster.url, prefix: '/files/bench/' }, w, body)
        const direct = w.size >= DIRECT_MIN_BYTES ? await benchDirect(cluster.url, w, body) : undefined
        const s3 = w.size < DIRECT_MIN_BYTES ? await benchS3(join(dir, 'cluster'), w, body) : undefined
        const disk = await withTempDir('mirrorcast-bench-disk-', async (d) => await benchDisk(d, w, body))
        const bareResults = await benchHttp({ url: bare.url, prefix: '/bare/' }, w, body)
        const swiftResults = swift === undefined ? undefined : await benchHttp(swift, w, body)
        const optional = { ...(direct === undefined ? {} : { direct }), ...(s3 === undefined ? {} : { s3 }), ...(swiftResults === undefined ? {} : { swift: swiftResults }) }
        results.push({ w, put, get, disk, bare: bareResults, ...optional })
      }
    } finally {
      await bare.stop()
      await cluster.stop()
    }
  })
  process.stdout.write(`\nmirrorcast bench: through the manager of a local \`mirrorcast up\` cluster (${PAIRS} twin pair${PAIRS === 1 ? '' : 's'}), this machine's ceilings${swift === undefined ? '' : ' and the Swift peer'}\n\n`)
  const named = (r: PhaseResult, size: number, name: string): Array<string | number> => row(r, size).map((c, i) => i === 0 ? name : c)
  printTable(['workload', 'ops', 'ops/s', 'MB/s', 'p50 ms', 'p99 ms'], results.flatMap(({ w, put, get, direct, s3, disk, bare, swift: peer }) => [
    row(put, w.size), row(get, w.size), ...(direct === undefined ? [] : direct.map((r) => row(r, w.size))), ...(s3 === undefined ? [] : s3.map((r) => row(r, w.size))), row(disk, w.size), named(bare[0], w.size, `${w.label} bare http PUT`), named(bare[1], w.size, `${w.label} bare http GET`),
    ...(peer === undefined ? [] : [named(peer[0], w.size, `${w.label} Swift PUT`), named(peer[1], w.size, `${w.label} Swift GET`)])
  ]))
  const s3Rows = results.filter((r) => r.s3 !== undefined)
  if (s3Rows.length > 0) {
    // issue 15: S3 within 20 % of the native API, both through the same manager in this run
    process.stdout.write('\nS3 front end against the native API (same manager, same run; target ≥ 0.8)\n\n')
    printTable(['workload', 'native ops/s', 'S3 ops/s', 'S3 / native'], s3Rows.flatMap(({ w, put, get, s3 }) => [
      [`${w.label} PUT`, put.ops / put.seconds, (s3?.[0].ops ?? 0) / (s3?.[0].seconds ?? 1), ((s3?.[0].ops ?? 0) / (s3?.[0].seconds ?? 1)) / (put.ops / put.seconds)],
      [`${w.label} GET`, get.ops / get.seconds, (s3?.[1].ops ?? 0) / (s3?.[1].seconds ?? 1), ((s3?.[1].ops ?? 0) / (s3?.[1].seconds ?? 1)) / (get.ops / get.seconds)]
    ]))
  }
  if (swift === undefined) process.stdout.write('\nno Swift peer answers at ' + SWIFT_AUTH_URL + ': start one (../shared/peers/README.md) for its rows and the ratios\n')
  process.stdout.write('\nagainst targets (ratios from this run)\n\n')
  printTable(['workload', 'MB/s', '× Swift', 'target ×', 'ceiling MB/s', '% of ceiling', 'target %'], results.flatMap(({ w, put, get, direct, disk, bare, swift: peer }) => {
    const target = TARGETS[w.label]
    const mbs = (r: PhaseResult): number => (r.ops * w.size) / r.seconds / 1e6
    const line = (name: string, r: PhaseResult, ref: PhaseResult | undefined, times: number | undefined, ceiling: PhaseResult, percent: number | undefined): Array<string | number> =>
      [name, mbs(r), ref === undefined ? '-' : mbs(r) / mbs(ref), times ?? '-', mbs(ceiling), (100 * mbs(r)) / mbs(ceiling), percent ?? '-']
    return [
      line(`${w.label} PUT`, put, peer?.[0], target?.put, disk, target?.putCeiling),
      line(`${w.label} GET`, get, peer?.[1], target?.get, bare[1], target?.getCeiling),
      ...(direct === undefined
        ? []
        : [line(`${w.label} PUT direct`, direct[0], peer?.[0], target?.put, disk, target?.putCeiling), line(`${w.label} GET direct`, direct[1], peer?.[1], target?.get, bare[1], target?.getCeiling)])
    ]
  }))
}

if (process.argv[2] === '--bare-http-child') bareHttpChild()
else await main()

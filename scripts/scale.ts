/**
 * `npm run scale`: how a storage node's costs grow with the bodies it holds,
 * and how a large directory lists.
 *
 * For each count of SCALE_FILES (default 10000,100000,1000000) a node's data
 * dir is filled with that many 1 KiB bodies in its volumes (what a node that
 * took them holds), then a node process starts on it: its start time and
 * memory, then 4 KiB PUTs and GETs (of bodies it held before) over the node
 * protocol at c16. Then a directory of SCALE_DIR_ENTRIES (default 100,000)
 * empty files is made through a real cluster's HTTP API and listed in pages
 * of 1,000: the rate of each tenth of the creation and of the listing.
 */
import { fork } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { launchUp } from '@mirrorcast/cli'
import { MirrorcastClient } from '@mirrorcast/client'
import { StorageNode, VolumeStore } from '@mirrorcast/node'
import { RpcClient } from '@mirrorcast/rpc'
import { DIGEST_SHARDS, generateClusterKey } from '@mirrorcast/wire'
import { peakRssMb, printTable, runPhase, withTempDir } from './lib.js'

const COUNTS = (process.env.SCALE_FILES ?? '10000,100000,1000000').split(',').map(Number)
const DIR_ENTRIES = Number(process.env.SCALE_DIR_ENTRIES ?? 100_000)
const SEED_BYTES = 1024
const OP_BYTES = 4096
const OPS = Number(process.env.SCALE_OPS ?? 5000)
const CONCURRENCY = 16
const PAGE = 1000
const SEED_BATCH = 4096
const MB = 2 ** 20

/** Fills a data dir's volumes with `n` bodies, a batch at a time (one fdatasync each); returns some of their ids. */
async function seed (dataDir: string, n: number): Promise<string[]> {
  const store = new VolumeStore(dataDir, { compactBytesPerSecond: 0 })
  await store.open()
  const sample: string[] = []
  try {
    for (let done = 0; done < n;) {
      const batch = Math.min(SEED_BATCH, n - done)
      await Promise.all(Array.from({ length: batch }, async () => {
        const fileId = randomBytes(16).toString('hex')
        const body = randomBytes(SEED_BYTES)
        if (sample.length < OPS) sample.push(fileId)
        await store.put(fileId, body, createHash('sha256').update(body).digest('hex'))
      }))
      done += batch
    }
  } finally {
    await store.close()
  }
  return sample
}

/** The child: one storage node on a data dir; reports how long its start took and its memory once started. */
async function serveNode (dataDir: string, keyHex: string): Promise<void> {
  const started = process.hrtime.bigint()
  const node = new StorageNode({ dataDir, key: Buffer.from(keyHex, 'hex'), center: 'east', slot: 1, scrub: { bytesPerSecond: 0 } })
  await node.start()
  const startSeconds = Number(process.hrtime.bigint() - started) / 1e9
  const { rss, heapUsed } = process.memoryUsage()
  process.send?.({ port: node.port, startSeconds, rss, heapUsed })
  process.on('disconnect', () => { void node.close().then(() => process.exit(0)) })
}

interface NodeRow { files: number, seedSeconds: number, startSeconds: number, rssMb: number, heapMb: number, putOps: number, getOps: number, listSeconds: number, digestMs: number[], peakMb: number }

async function measureNode (dir: string, files: number): Promise<NodeRow> {
  const dataDir = join(dir, `node-${files}`)
  const seeding = process.hrtime.bigint()
  const held = await seed(dataDir, files)
  const seedSeconds = Number(process.hrtime.bigint() - seeding) / 1e9
  const key = generateClusterKey()
  const child = fork(fileURLToPath(import.meta.url), ['--serve-node', dataDir, key.toString('hex')])
  try {
    const [ready] = await once(child, 'message') as [{ port: number, startSeconds: number, rss: number, heapUsed: number }]
    const client = new RpcClient({ key, selfId: 'scale-bench', host: '127.0.0.1', port: ready.port, maxIdle: CONCURRENCY })
    try {
      const body = randomBytes(OP_BYTES)
      const put = await runPhase('put', OPS, CONCURRENCY, async () => {
        await client.request('blob.put', { fileId: randomBytes(16).toString('hex'), size: OP_BYTES, inline: true }, { payload: body })
        return OP_BYTES
      })
      const get = await runPhase('get', OPS, CONCURRENCY, async (i) => {
        const { body: chunks } = await client.download('blob.get', { fileId: held[i % held.length] as string, offset: 0, length: SEED_BYTES })
        let bytes = 0
        for await (const c of chunks) bytes += c.length
        if (bytes !== SEED_BYTES) throw new Error(`GET returned ${bytes} of ${SEED_BYTES} bytes`)
        return bytes
      })
      const listSeconds = await listEveryShard(client)
      const digestMs = [await timedDigest(client), await timedDigest(client)]
      const peakMb = await peakRssMb(child.pid as number)
      const rates = { putOps: OPS / put.seconds, getOps: OPS / get.seconds }
      return { files, seedSeconds, startSeconds: ready.startSeconds, rssMb: ready.rss / MB, heapMb: ready.heapUsed / MB, ...rates, listSeconds, digestMs, peakMb }
    } finally {
      await client.close()
    }
  } finally {
    const exited = once(child, 'exit')
    child.disconnect()
    await exited
  }
}

/** ms the node takes to answer for its set digest (the first ask builds it, a shard per event-loop turn). */
async function timedDigest (client: RpcClient): Promise<number> {
  const asked = process.hrtime.bigint()
  await client.request('blob.digest', {})
  return Number(process.hrtime.bigint() - asked) / 1e6
}

/** Seconds to list every shard page by page, as a round of pair anti-entropy that finds every shard different would. */
async function listEveryShard (client: RpcClient): Promise<number> {
  const started = process.hrtime.bigint()
  for (let shard = 0; shard < DIGEST_SHARDS; shard++) {
    for (let after: string | undefined, more = true; more;) {
      const page = (await client.request('blob.list', { shard, ...(after === undefined ? {} : { after }) })).body
      after = page.files.at(-1)?.fileId
      more = page.more
    }
  }
  return Number(process.hrtime.bigint() - started) / 1e9
}

/** Ops per second of each tenth of `n` operations run in order of index. */
async function tenths (n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<number[]> {
  const rates: number[] = []
  const tenth = Math.ceil(n / 10)
  for (let from = 0; from < n; from += tenth) {
    const count = Math.min(tenth, n - from)
    const phase = await runPhase('tenth', count, concurrency, async (i) => { await op(from + i); return 0 })
    rates.push(count / phase.seconds)
  }
  return rates
}

async function measureDirectory (dir: string): Promise<{ create: number[], list: number[] }> {
  const cluster = await launchUp(join(dir, 'cluster'), ['--nodes', '1'])
  const client = new MirrorcastClient({ url: cluster.url })
  try {
    await client.mkdir('/big')
    const name = (i: number): string => `f${String(i).padStart(7, '0')}`
    const empty = Buffer.alloc(0)
    const create = await tenths(DIR_ENTRIES, CONCURRENCY, async (i) => await client.put(`/big/${name(i)}`, empty))
    // A page per op, each from the name after the last one of the page before: as a client pages.
    const pages = Math.ceil(DIR_ENTRIES / PAGE)
    const list = await tenths(pages, 1, async (p) => {
      const page = await client.list('/big', { limit: PAGE, ...(p === 0 ? {} : { after: name(p * PAGE - 1) }) })
      if (page.entries.length !== Math.min(PAGE, DIR_ENTRIES - p * PAGE)) throw new Error(`page ${p}: ${page.entries.length} entries`)
    })
    return { create, list: list.map((pagesPerSecond) => pagesPerSecond * PAGE) }
  } finally {
    await client.close()
    await cluster.stop()
  }
}

async function main (): Promise<void> {
  await withTempDir('mirrorcast-scale-', async (dir) => {
    const rows: NodeRow[] = []
    for (const files of COUNTS) {
      rows.push(await measureNode(dir, files))
      process.stderr.write(`scale: ${files} bodies measured\n`)
    }
    const base = rows[0] as NodeRow
    process.stdout.write(`\nA storage node holding N bodies of ${SEED_BYTES} B in volumes; ${OP_BYTES} B PUT and GET over the node protocol, c${CONCURRENCY}, ${OPS} each\n\n`)
    const share = (a: number, b: number): string => `${(100 * a / b).toFixed(0)} %`
    printTable(['bodies held', 'seeded in s', 'start s', 'RSS after start MB', 'heap MB', 'peak RSS MB', 'PUT ops/s', 'GET ops/s', `PUT vs ${base.files}`, `GET vs ${base.files}`, 'list all shards s', 'set digest ms, first / next'],
      rows.map((r) => [r.files, r.seedSeconds, r.startSeconds, r.rssMb, r.heapMb, r.peakMb, r.putOps, r.getOps, share(r.putOps, base.putOps), share(r.getOps, base.getOps), r.listSeconds, r.digestMs.map((ms) => ms.toFixed(1)).join(' / ')]))
    if (rows.length > 1) {
      const last = rows.at(-1) as NodeRow
      const grow = (a: number, b: number): string => ((b - a) / (last.files - base.files) * 1e6).toFixed(2)
      process.stdout.write(`\nper million bodies more: start +${grow(base.startSeconds, last.startSeconds)} s, RSS +${grow(base.rssMb, last.rssMb)} MB, heap +${grow(base.heapMb, last.heapMb)} MB\n`)
    }
    if (DIR_ENTRIES > 0) {
      const { create, list } = await measureDirectory(dir)
      process.stdout.write(`\nOne directory of ${DIR_ENTRIES} empty files through the HTTP API (\`up --nodes 1\`): rate by tenth of the directory\n\n`)
      printTable(['tenth', 'entries before', 'create ops/s (c16)', `list entries/s (pages of ${PAGE})`], create.map((c, i) => [String(i + 1), String(i * Math.ceil(DIR_ENTRIES / 10)), c, list[i] ?? NaN]))
    }
  })
}

if (process.argv[2] === '--serve-node') await serveNode(process.argv[3] as string, process.argv[4] as string)
else await main()

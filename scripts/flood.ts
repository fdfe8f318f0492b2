/**
 * `npm run flood`: floods a real storage node with connections that never
 * authenticate (each sends an 8 MiB frame length prefix, then MiBs of zeros),
 * while a client holding the key keeps asking for the node's stats; prints the
 * node's resident memory before, during (peak) and after, which must stay flat.
 * FLOOD_CONNECTIONS (1,000) and FLOOD_ZERO_MIB (4) set the size of the flood.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { readFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { StorageNode } from '@mirrorcast/node'
import { RpcClient } from '@mirrorcast/rpc'
import { generateClusterKey } from '@mirrorcast/wire'
import { printTable, withTempDir } from './lib.js'

const MiB = 1024 * 1024
const CONNECTIONS = Number(process.env.FLOOD_CONNECTIONS ?? 1000)
const ZERO_MIB = Number(process.env.FLOOD_ZERO_MIB ?? 4)
// 100 connections at a time, from 50 loopback addresses: the flood spreads over the per-address cap
const WAVE = 100
const SOURCES = 50
const LIMIT_MIB = 64

/** The child: one storage node on loopback; prints its port. */
async function serveNode (dir: string, keyHex: string): Promise<void> {
  const node = new StorageNode({ dataDir: dir, key: Buffer.from(keyHex, 'hex'), center: 'east', slot: 1, scrub: { bytesPerSecond: 0 } })
  await node.start()
  process.send?.({ port: node.port })
  process.on('disconnect', () => { void node.close().then(() => process.exit(0)) })
}

async function rssMiB (pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return m === null ? NaN : Number(m[1]) / 1024
}

/** One unauthenticated connection: a length prefix of 8 MiB, then zeros until the node cuts it. */
async function floodOne (port: number, localAddress: string, zeros: Buffer): Promise<void> {
  const socket = connect({ host: '127.0.0.1', port, localAddress })
  socket.on('error', () => {})
  const prefix = Buffer.alloc(4)
  prefix.writeUInt32BE(8 * MiB)
  socket.write(prefix)
  for (let i = 0; i < ZERO_MIB && !socket.destroyed; i++) socket.write(zeros)
  const timer = setTimeout(() => socket.destroy(), 30_000)
  await new Promise((resolve) => socket.once('close', resolve))
  clearTimeout(timer)
}

async function flood (port: number): Promise<void> {
  const zeros = Buffer.alloc(MiB)
  for (let sent = 0; sent < CONNECTIONS; sent += WAVE) {
    const n = Math.min(WAVE, CONNECTIONS - sent)
    await Promise.all(Array.from({ length: n }, async (_, i) => await floodOne(port, `127.0.1.${1 + (i % SOURCES)}`, zeros)))
  }
}

async function main (): Promise<void> {
  await withTempDir('mirrorcast-flood-', async (dir) => {
    const key = generateClusterKey()
    const child = fork(fileURLToPath(import.meta.url), ['--serve-node', join(dir, 'node'), key.toString('hex')])
    try {
      const [{ port }] = await once(child, 'message') as [{ port: number }]
      const pid = child.pid as number
      const client = new RpcClient({ key, selfId: 'flood-bystander', host: '127.0.0.1', port })
      await client.request('node.stats', {})
      await sleep(500)
      const before = await rssMiB(pid)
      let peak = before
      let served = 0
      let failed = 0
      let flooding = true
      const sampler = (async () => { while (flooding) { peak = Math.max(peak, await rssMiB(pid)); await sleep(50) } })()
      const bystander = (async () => {
        while (flooding) {
          await client.request('node.stats', {}).then(() => { served++ }, () => { failed++ })
          await sleep(100)
        }
      })()
      const t0 = Date.now()
      await flood(port)
      const seconds = (Date.now() - t0) / 1000
      flooding = false
      await Promise.all([sampler, bystander])
      await sleep(1000)
      await client.request('node.stats', {})
      const after = await rssMiB(pid)
      await client.close()
      process.stdout.write(`\n${CONNECTIONS} unauthenticated connections (8 MiB length prefix + ${ZERO_MIB} MiB of zeros each) in ${seconds.toFixed(1)} s; stats requests during the flood: ${served} served, ${failed} failed\n\n`)
      printTable(['storage node RSS', 'MiB'], [['before', before.toFixed(1)], ['during (peak)', peak.toFixed(1)], ['after', after.toFixed(1)], ['growth (peak - before)', (peak - before).toFixed(1)]])
      const flat = peak - before < LIMIT_MIB && served > 0
      process.stdout.write(`\nflood: growth=${(peak - before).toFixed(0)}MiB limit=${LIMIT_MIB}MiB served=${served} ${flat ? 'ok' : 'FAILED'}\n`)
      if (!flat) process.exitCode = 1
    } finally {
      child.disconnect()
      await once(child, 'exit')
    }
  })
}

if (process.argv[2] === '--serve-node') await serveNode(process.argv[3] as string, process.argv[4] as string)
else await main()

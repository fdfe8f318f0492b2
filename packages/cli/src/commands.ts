import { createReadStream, createWriteStream } from 'node:fs'
import { rename, rm, stat } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { Transform, type Readable } from 'node:stream'
import cliProgress from 'cli-progress'
import { ClientErrorCode, type Entry, type MirrorcastClient, type PairReplication, type PairSide } from '@mirrorcast/client'
import { CliError } from './errors.js'

// 8 MiB: below this a transfer is over before a progress bar would help
const PROGRESS_MIN_BYTES = 8 * 1024 * 1024

type Out = (line: string) => void
const out: Out = (line) => { process.stdout.write(line + '\n') }

/** Counts bytes through a stream and draws a bar on a terminal for large transfers. */
function progress (total: number, label: string): Transform {
  const bar = process.stderr.isTTY && total >= PROGRESS_MIN_BYTES
    ? new cliProgress.SingleBar({ format: `${label} [{bar}] {percentage}% {value}/{total} bytes`, stream: process.stderr }, cliProgress.Presets.shades_classic)
    : undefined
  bar?.start(total, 0)
  let done = 0
  return new Transform({
    transform (chunk: Buffer, _enc, cb) {
      done += chunk.length
      bar?.update(done)
      cb(null, chunk)
    },
    flush (cb) {
      bar?.stop()
      cb()
    }
  })
}

function printNote (message: string): void {
  process.stderr.write(`mirrorcast: note: ${message}\n`)
}

export async function put (client: MirrorcastClient, local: string, remote: string, json: boolean, direct = true): Promise<void> {
  let size: number
  try {
    const info = await stat(local)
    if (!info.isFile()) throw new CliError(`${local} is not a regular file`)
    size = info.size
  } catch (err) {
    if (err instanceof CliError) throw err
    throw new CliError(`cannot read ${local}: ${(err as Error).message}`)
  }
  const target = remote.endsWith('/') ? remote + local.split('/').pop() : remote
  const open = (): Readable => createReadStream(local).pipe(progress(size, 'put'))
  const entry = await client.put(target, open(), { size, direct, reopen: open, onNote: printNote })
  out(json ? JSON.stringify(entry) : `${entry.path}  ${entry.size} bytes  sha256 ${entry.sha256}  version ${entry.version}`)
}

export async function get (client: MirrorcastClient, remote: string, local: string | undefined, direct = true): Promise<void> {
  let file
  try {
    file = await client.get(remote, { direct, onNote: printNote })
  } catch (err) {
    if ((err as { code?: string }).code === ClientErrorCode.IS_A_DIRECTORY) throw new CliError(`${remote} is a directory; use ls`)
    throw err
  }
  const dest = local ?? remote.split('/').pop() ?? 'download'
  if (dest === '-') {
    await pipeline(file.body, process.stdout)
    return
  }
  // Write beside the target and rename at the end: a failed download never leaves a partial file under its name.
  const tmp = `${dest}.mirrorcast-partial`
  try {
    await pipeline(file.body, progress(file.length, 'get'), createWriteStream(tmp))
    await rename(tmp, dest)
  } catch (err) {
    await rm(tmp, { force: true })
    if ((err as { code?: string }).code === ClientErrorCode.CONNECTION_LOST) throw new CliError('the manager closed the connection before the whole body arrived')
    throw err instanceof CliError ? err : new CliError(`download failed: ${(err as Error).message}`)
  }
}

export async function ls (client: MirrorcastClient, remote: string, json: boolean): Promise<void> {
  const entries: Entry[] = []
  for await (const e of client.listAll(remote)) entries.push(e)
  if (json) {
    out(JSON.stringify(entries))
    return
  }
  for (const e of entries) {
    const kind = e.type === 'dir' ? 'd' : '-'
    const size = e.type === 'dir' ? '' : String(e.size)
    out(`${kind} ${size.padStart(12)}  ${e.mtime}  ${e.name}${e.type === 'dir' ? '/' : ''}`)
  }
}

export async function statPath (client: MirrorcastClient, remote: string): Promise<void> {
  const entry = await client.stat(remote)
  out(JSON.stringify(entry, null, 2))
}

export async function mkdirPath (client: MirrorcastClient, remote: string, parents: boolean): Promise<void> {
  const entry = await client.mkdir(remote, { parents })
  out(`${entry.path}/`)
}

export async function mv (client: MirrorcastClient, from: string, to: string): Promise<void> {
  const entry = await client.move(from, to)
  out(`${from} -> ${entry.path}`)
}

export async function rmPath (client: MirrorcastClient, remote: string, recursive: boolean): Promise<void> {
  const result = await client.remove(remote, { recursive })
  out(`removed ${result.path} (${result.removed} file${result.removed === 1 ? '' : 's'})`)
}

export async function status (client: MirrorcastClient, json: boolean): Promise<void> {
  const cluster = await client.cluster()
  const rows = cluster.nodes
  if (json) {
    out(JSON.stringify(rows, null, 2))
    return
  }
  const manager = cluster.manager
  out(`manager ${manager.id} at ${manager.url}; centers ${cluster.centers.join(' (primary), ')} (backup)`)
  const header = ['ROLE', 'CENTER', 'SLOT', 'ADDRESS', 'STATE', 'STATUS', 'LAST HEARD', 'ID', 'TWIN', 'BOOT']
  const ago = (iso: unknown): string => `${((Date.now() - Date.parse(String(iso))) / 1000).toFixed(1)}s ago`
  const table = [header, ...rows.map((n) => [n.role, n.center, n.slot, `${n.address}:${n.port}`, n.state, n.status, ago(n.lastHeard), n.id, n.twin ?? '-', n.bootId].map(String))]
  printColumns(table)
  out('')
  out(`twin pairs (${cluster.twins} twins, ${cluster.directoryPartitions} directory partition${cluster.directoryPartitions === 1 ? '' : 's'}):`)
  const side = (s: PairSide | null): string => s === null ? 'missing' : `${s.name} ${s.address} ${s.status}${s.failover === null ? '' : ` since ${s.failover.since} (${s.failover.reason})`}`
  printColumns([['PAIR', 'PRIMARY', 'TWIN'], ...cluster.pairs.map((p) => [`${p.role === 'storage' ? 'storage' : 'directory partition'} ${p.index}`, side(p.primary), side(p.twin)])])
  out('')
  out('redundancy of the storage pairs (pair anti-entropy):')
  printColumns([['PAIR', 'ONE COPY', 'LOST', 'UNDER-REPLICATED SINCE', 'LAST RECONCILED', 'PROGRESS', 'BY'], ...cluster.pairs.flatMap((p) => p.replication === undefined ? [] : [replicationRow(p.index, p.replication)])])
}

function replicationRow (index: number, r: PairReplication): string[] {
  const counts = (c: { files: number, bytes: number }): string => `${c.files} file${c.files === 1 ? '' : 's'}, ${sizeText(c.bytes)}`
  const progress = r.running ? `running, ${r.progress.shardsDone}/${r.progress.shardsToCompare} shards` : 'idle'
  const last = r.lastReconciled === null ? 'never' : `${r.lastReconciled} (${r.lastMs} ms)`
  return [String(index), counts(r.oneCopy), counts(r.lost), r.underReplicatedSince ?? '-', last, progress, r.by]
}

/** Bytes for a person: 1.5 MiB. */
export function sizeText (bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = bytes
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i] as string}`
}

export async function reconcile (client: MirrorcastClient, pair: number | undefined, json: boolean): Promise<void> {
  const rounds = await client.reconcile(pair === undefined ? {} : { pair })
  if (json) {
    out(JSON.stringify(rounds, null, 2))
    return
  }
  const counts = (c: { files: number, bytes: number }): string => `${c.files} (${sizeText(c.bytes)})`
  printColumns([['PAIR', 'SHARDS COMPARED', 'COPIED', 'REMOVED', 'ORPHANS WAITING', 'LOST', 'EXCHANGED', 'MS'],
    ...rounds.map((r) => [r.pair, `${r.shardsDone}/${r.shardsToCompare}`, counts(r.copied), counts(r.removed), r.orphansWaiting, counts(r.lost), sizeText(r.exchangedBytes), r.lastMs].map(String))])
}

function printColumns (table: string[][]): void {
  const widths = (table[0] as string[]).map((_, i) => Math.max(...table.map((r) => (r[i] as string).length)))
  for (const r of table) out(r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd())
}

export async function failover (client: MirrorcastClient, id: string, action: 'failover' | 'failback'): Promise<void> {
  const member = action === 'failover' ? await client.failover(id) : await client.failback(id)
  out(`${member.id}: ${member.status}`)
}

export async function searchCommand (client: MirrorcastClient, key: string, center: string | undefined, json: boolean): Promise<void> {
  const result = await client.search(key, center === undefined ? {} : { center })
  if (json) {
    out(JSON.stringify(result, null, 2))
    return
  }
  out(`file ${result.fileId}`)
  for (const round of result.rounds) {
    out(`center ${round.center}: ${round.holders.length === 0 ? 'no holder' : ''}`)
    for (const h of round.holders) out(`  ${h.id}  ${h.center}/${h.slot}  ${h.address}:${h.port}  ${h.ms} ms`)
  }
}

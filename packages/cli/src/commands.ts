import { createReadStream, createWriteStream } from 'node:fs'
import { rename, rm, stat } from 'node:fs/promises'
import { pipeline } from 'node:stream/promises'
import { Transform } from 'node:stream'
import cliProgress from 'cli-progress'
import { ManagerClient, readJson } from './client.js'
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

export async function put (client: ManagerClient, local: string, remote: string, json: boolean): Promise<void> {
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
  const body = createReadStream(local).pipe(progress(size, 'put'))
  const res = await client.call({ method: 'PUT', path: client.filesPath(target), headers: { 'content-length': size, 'content-type': 'application/octet-stream' }, body })
  const entry = await readJson(res)
  out(json ? JSON.stringify(entry) : `${String(entry.path)}  ${String(entry.size)} bytes  sha256 ${String(entry.sha256)}  version ${String(entry.version)}`)
}

export async function get (client: ManagerClient, remote: string, local: string | undefined): Promise<void> {
  const res = await client.call({ method: 'GET', path: client.filesPath(remote) })
  if ((res.statusCode ?? 500) >= 400 || res.headers['content-type']?.startsWith('application/json') === true) {
    const body = await readJson(res)
    if (body.type === 'dir') throw new CliError(`${remote} is a directory; use ls`)
  }
  const size = Number(res.headers['content-length'] ?? 0)
  const dest = local ?? remote.split('/').pop() ?? 'download'
  if (dest === '-') {
    await pipeline(res, process.stdout)
    return
  }
  // Write beside the target and rename at the end: a failed download never leaves a partial file under its name.
  const tmp = `${dest}.mirrorcast-partial`
  try {
    await pipeline(res, progress(size, 'get'), createWriteStream(tmp))
    if (!res.complete) throw new CliError('the manager closed the connection before the whole body arrived')
    await rename(tmp, dest)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err instanceof CliError ? err : new CliError(`download failed: ${(err as Error).message}`)
  }
}

export async function ls (client: ManagerClient, remote: string, json: boolean): Promise<void> {
  const entries: Array<Record<string, unknown>> = []
  let after: string | undefined
  for (;;) {
    const q = after === undefined ? '' : `?after=${encodeURIComponent(after)}`
    const page = await client.json({ method: 'GET', path: client.filesPath(remote, true) + q })
    if (page.type !== 'dir') {
      entries.push(page)
      break
    }
    const got = page.entries as Array<Record<string, unknown>>
    entries.push(...got)
    if (page.more !== true || got.length === 0) break
    after = String(got[got.length - 1]?.name)
  }
  if (json) {
    out(JSON.stringify(entries))
    return
  }
  for (const e of entries) {
    const kind = e.type === 'dir' ? 'd' : '-'
    const size = e.type === 'dir' ? '' : String(e.size)
    out(`${kind} ${size.padStart(12)}  ${String(e.mtime)}  ${String(e.name)}${e.type === 'dir' ? '/' : ''}`)
  }
}

export async function statPath (client: ManagerClient, remote: string): Promise<void> {
  const entry = await client.json({ method: 'GET', path: client.filesPath(remote) + '?stat' })
  out(JSON.stringify(entry, null, 2))
}

export async function mkdirPath (client: ManagerClient, remote: string, parents: boolean): Promise<void> {
  const entry = await client.json({ method: 'POST', path: client.filesPath(remote, true) + (parents ? '?mkdir&parents' : '?mkdir') })
  out(`${String(entry.path)}/`)
}

export async function mv (client: ManagerClient, from: string, to: string): Promise<void> {
  const target = to.startsWith('/') ? to : '/' + to
  const entry = await client.json({ method: 'POST', path: client.filesPath(from) + `?move-to=${encodeURIComponent(target)}` })
  out(`${from} -> ${String(entry.path)}`)
}

export async function rmPath (client: ManagerClient, remote: string, recursive: boolean): Promise<void> {
  const result = await client.json({ method: 'DELETE', path: client.filesPath(remote) + (recursive ? '?recursive' : '') })
  out(`removed ${String(result.path)} (${String(result.removed)} file${result.removed === 1 ? '' : 's'})`)
}

export async function status (client: ManagerClient, json: boolean): Promise<void> {
  const cluster = await client.json({ method: 'GET', path: '/cluster' })
  const rows = cluster.nodes as Array<Record<string, unknown>>
  if (json) {
    out(JSON.stringify(rows, null, 2))
    return
  }
  const manager = cluster.manager as { id: string, url: string }
  out(`manager ${manager.id} at ${manager.url}; centers ${(cluster.centers as string[]).join(' (primary), ')} (backup)`)
  const header = ['ROLE', 'CENTER', 'SLOT', 'ADDRESS', 'STATE', 'STATUS', 'LAST HEARD', 'ID', 'TWIN', 'BOOT']
  const ago = (iso: unknown): string => `${((Date.now() - Date.parse(String(iso))) / 1000).toFixed(1)}s ago`
  const table = [header, ...rows.map((n) => [n.role, n.center, n.slot, `${String(n.address)}:${String(n.port)}`, n.state, n.status, ago(n.lastHeard), n.id, n.twin ?? '-', n.bootId].map(String))]
  printColumns(table)
  out('')
  out(`twin pairs (${String(cluster.twins)} twins, ${String(cluster.directoryPartitions)} directory partition${cluster.directoryPartitions === 1 ? '' : 's'}):`)
  type Side = { name: string, address: string, status: string, failover: { since: string, reason: string } | null } | null
  const side = (s: Side): string => s === null ? 'missing' : `${s.name} ${s.address} ${s.status}${s.failover === null ? '' : ` since ${s.failover.since} (${s.failover.reason})`}`
  const pairs = cluster.pairs as Array<{ role: string, index: number, primary: Side, twin: Side }>
  printColumns([['PAIR', 'PRIMARY', 'TWIN'], ...pairs.map((p) => [`${p.role === 'storage' ? 'storage' : 'directory partition'} ${p.index}`, side(p.primary), side(p.twin)])])
}

function printColumns (table: string[][]): void {
  const widths = (table[0] as string[]).map((_, i) => Math.max(...table.map((r) => (r[i] as string).length)))
  for (const r of table) out(r.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd())
}

export async function failover (client: ManagerClient, id: string, action: 'failover' | 'failback'): Promise<void> {
  const member = await client.json({ method: 'POST', path: `/cluster/nodes/${encodeURIComponent(id)}/${action}` })
  out(`${String(member.id)}: ${String(member.status)}`)
}

export async function searchCommand (client: ManagerClient, key: string, center: string | undefined, json: boolean): Promise<void> {
  const q = new URLSearchParams({ key, ...(center === undefined ? {} : { center }) })
  const result = await client.json({ method: 'GET', path: `/search?${q.toString()}` })
  if (json) {
    out(JSON.stringify(result, null, 2))
    return
  }
  out(`file ${String(result.fileId)}`)
  for (const round of result.rounds as Array<{ center: string, holders: Array<Record<string, unknown>> }>) {
    out(`center ${round.center}: ${round.holders.length === 0 ? 'no holder' : ''}`)
    for (const h of round.holders) out(`  ${String(h.id)}  ${String(h.center)}/${String(h.slot)}  ${String(h.address)}:${String(h.port)}  ${String(h.ms)} ms`)
  }
}

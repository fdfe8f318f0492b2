import { spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'
import { until } from '@mirrorcast/testkit'
import { clientOf, readClusterJson, type ClusterFile, type FileJson } from './cluster.js'

export interface MemberStatus { id: string, role: string, center: string, slot: number, address: string, state: string, status: string, failover: { reason: string } | null }

export async function members (url: string): Promise<MemberStatus[]> {
  return (await clientOf(url).cluster()).nodes
}

export async function statusOf (url: string, id: string): Promise<string | undefined> {
  return (await members(url)).find((m) => m.id === id)?.status
}

export async function failoverByHand (url: string, id: string, action: 'failover' | 'failback' = 'failover'): Promise<void> {
  const client = clientOf(url)
  await (action === 'failover' ? client.failover(id) : client.failback(id))
}

/** The manager's "file located after failover" log lines: how each read found its file. */
export async function locateLog (dir: string): Promise<Array<{ fileId: string, method: string, center: string, member: string, at: number }>> {
  return await logLines(dir, 'file located after failover')
}

/** The manager's "directory located after failover" log lines: how each partition's copy was found. */
export async function directoryLocateLog (dir: string): Promise<Array<{ partition: number, method: string, center: string, member: string }>> {
  return await logLines(dir, 'directory located after failover')
}

async function logLines<T> (dir: string, message: string): Promise<T[]> {
  const text = await readFile(join(dir, 'logs', 'manager.log'), 'utf8')
  return text.split('\n').filter((l) => l.includes(message)).map((l) => JSON.parse(l) as T)
}

/** The storage node (from cluster.json) that is the home of a stored file. */
export function homeOf (cluster: ClusterFile, entry: FileJson): ClusterFile['nodes'][number] {
  const home = entry.replicas[0]
  const node = cluster.nodes.find((n) => n.id === home?.node)
  if (node === undefined) throw new Error(`home ${home?.node ?? '?'} not in cluster.json`)
  return node
}

export { readClusterJson }

type ClusterMember = ClusterFile['nodes'][number]

/** kill -9 of a member; resolves once every manager given has failed it over. */
export async function killMember (urls: string[], member: ClusterMember): Promise<void> {
  process.kill(member.pid, 'SIGKILL')
  for (const url of urls) await until(async () => await statusOf(url, member.id) === 'failed-over', { what: `${member.role} ${member.center}/${member.slot} to be failed over by ${url}` })
}

/** Starts a process again by hand with its argv (from cluster.json, or changed); killed at the test's end. */
export function startByHand (t: ExecutionContext, argv: string[]): ChildProcess {
  const [cmd, ...args] = argv
  const child = spawn(cmd as string, args, { stdio: 'ignore' })
  t.teardown(() => { child.kill('SIGKILL') })
  return child
}

/**
 * What the manager's resyncs replayed on a storage node between its first
 * failover and its return to healthy, by the manager's log: the sum of
 * `repaired` over the resyncs that ended meanwhile (done, or failed and
 * retried). Undefined when the log shows no return to healthy after a
 * failover. A storage node is healthy again only at the end of a resync that
 * emptied its repair journal, so this counts every write and delete it missed.
 */
export async function replayedBeforeHealthy (dir: string, member: ClusterMember): Promise<number | undefined> {
  const name = `${member.center}/node${member.slot}`
  const text = await readFile(join(dir, 'logs', 'manager.log'), 'utf8')
  type Line = { message: string, member?: string, memberId?: string, repaired?: number }
  const lines = text.split('\n').filter((l) => l.includes(member.id) || l.includes(`"${name}"`)).flatMap((l): Line[] => {
    try { return [JSON.parse(l) as Line] } catch { return [] }
  })
  const out = lines.findIndex((l) => l.message === 'member failed over' && l.memberId === member.id)
  if (out < 0) return undefined
  let replayed = 0
  for (const l of lines.slice(out + 1)) {
    if (l.message === 'member healthy again' && l.memberId === member.id) return replayed
    if ((l.message === 'resync done' || l.message === 'resync failed, will retry') && l.member === name) replayed += l.repaired ?? 0
  }
  return undefined
}

/** Polls the member's status until it is healthy; resolves with every status seen on the way. */
export async function untilHealthy (url: string, id: string, what: string, timeoutMs = 30_000): Promise<Set<string>> {
  const seen = new Set<string>()
  await until(async () => {
    const s = await statusOf(url, id)
    if (s !== undefined) seen.add(s)
    return s === 'healthy'
  }, { what, timeoutMs })
  return seen
}

/** A second manager on the same cluster, started by hand as an operator would; resolves with its URL. */
export async function secondManager (t: ExecutionContext, dir: string, cluster: ClusterFile): Promise<string> {
  const argv = [...cluster.manager.argv]
  argv[argv.indexOf('--data') + 1] = join(dir, 'manager-b')
  argv[argv.indexOf('--port') + 1] = '0'
  // the first manager's S3 port is its own
  if (argv.includes('--s3-port')) argv[argv.indexOf('--s3-port') + 1] = '0'
  const [cmd, ...args] = argv
  const child = spawn(cmd as string, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  let log = ''
  return await new Promise<string>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      log += d.toString()
      const m = /"message":"manager listening"[^\n]*"url":"(http:[^"]+)"/.exec(log)
      if (m !== null) resolve(m[1] as string)
    })
    child.once('exit', (code) => reject(new Error(`second manager exited ${String(code)}: ${log}`)))
  })
}

import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { Readable } from 'node:stream'
import type { ExecutionContext } from 'ava'
import { launchUp, type LaunchedCluster } from '@mirrorcast/cli'
import { MirrorcastClient, type BufferedResponse } from '@mirrorcast/client'
import { holdClusterSlot } from './slots.js'

export const REPO = resolve(import.meta.dirname, '../../..')

/** A port for a test's own multicast group, so parallel tests do not hear each other. */
export function randomPort (): number {
  return 20000 + Math.floor(Math.random() * 40000)
}

export async function tempDir (t: ExecutionContext, prefix = 'mirrorcast-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  // MIRRORCAST_KEEP_TEST_DIRS=1 keeps a failed test's data dirs and logs for a post-mortem.
  t.teardown(async () => {
    if ((process.env.MIRRORCAST_KEEP_TEST_DIRS === '1' && !t.passed) || process.env.MIRRORCAST_KEEP_TEST_DIRS === 'all') process.stderr.write(`kept ${dir}\n`)
    else await rm(dir, { recursive: true, force: true })
  })
  return dir
}

/** Runs `mirrorcast up` as a user would, on ephemeral ports; stopped at the test's end. */
export async function startUp (t: ExecutionContext, dir: string, extra: string[] = []): Promise<LaunchedCluster> {
  await holdClusterSlot(t)
  const cluster = await launchUp(dir, ['--port', '0', '--node-port', '0', '--mcast-port', String(randomPort()), '--nodes', '2', ...extra])
  t.teardown(cluster.stop)
  return cluster
}

export type HttpResult = BufferedResponse

const clients = new Map<string, MirrorcastClient>()

/**
 * The test process's client of the manager at `base`, one per URL. Its
 * keep-alive connections are closed by the client after 2 s idle, before the
 * manager's 5 s, so none is closed by the manager as idle just as a request is
 * sent on it (see MirrorcastClient). Idle connections do not keep the process alive.
 */
export function clientOf (base: string): MirrorcastClient {
  let client = clients.get(base)
  if (client === undefined) {
    client = new MirrorcastClient({ url: base })
    clients.set(base, client)
  }
  return client
}

/**
 * One raw HTTP request: the path goes out exactly as given (no URL
 * normalisation), any status comes back with the whole body. A stream body
 * without a content-length header goes out chunked.
 */
export async function http (base: string, method: string, path: string, body?: Buffer | Readable, headers: Record<string, string | number> = {}): Promise<HttpResult> {
  return await clientOf(base).send({ method, path, headers, ...(body === undefined ? {} : { body }) })
}

export interface FileJson { path: string, name: string, type: 'file', id: string, size: number, sha256: string, version: number, replicas: Array<{ node: string, center: string, slot: number, address: string }> }
export interface DirJson { path: string, name: string, type: 'dir', version: number }
export interface ListJson { path: string, type: 'dir', entries: Array<FileJson | DirJson>, more: boolean }
export interface ErrorJson { error: { code: string, message: string } }
export interface ClusterFile {
  manager: { url: string, pid: number, argv: string[] }
  nodes: Array<{ id: string, role: 'storage' | 'directory', center: string, slot: number, address: string, port: number, pid: number, argv: string[] }>
}

export function json<T = Record<string, unknown>> (r: HttpResult): T {
  return JSON.parse(r.body.toString('utf8')) as T
}

export async function readClusterJson (dir: string): Promise<ClusterFile> {
  return JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as ClusterFile
}

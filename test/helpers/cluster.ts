import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { request } from 'node:http'
import type { ExecutionContext } from 'ava'
import { launchUp, type LaunchedCluster } from '@mirrorcast/cli'
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
    if (process.env.MIRRORCAST_KEEP_TEST_DIRS === '1' && !t.passed) process.stderr.write(`kept ${dir}\n`)
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

export interface HttpResult { status: number, headers: Record<string, string | string[] | undefined>, body: Buffer }

/**
 * One raw HTTP request: the path goes out exactly as given (no URL
 * normalisation), on a connection of its own: a pooled keep-alive connection
 * may be closed by the server as idle just as a request is sent on it.
 */
export async function http (base: string, method: string, path: string, body?: Buffer, headers: Record<string, string | number> = {}): Promise<HttpResult> {
  const url = new URL(base)
  return await new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path, agent: false, headers: body === undefined ? headers : { 'content-length': body.length, ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
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

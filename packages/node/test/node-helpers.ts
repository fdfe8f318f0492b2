import type { ExecutionContext } from 'ava'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { RpcClient } from '@mirrorcast/rpc'
import { StorageNode, type StorageNodeOptions } from '../src/index.js'

export const KEY = Buffer.alloc(32, 3)

/** A storage node in a temp dir (or `dir`), and a client of its node protocol; both closed at the test's end. */
export async function startNode (t: ExecutionContext, dir?: string, options: Partial<StorageNodeOptions> = {}): Promise<{ node: StorageNode, client: RpcClient, dir: string }> {
  const dataDir = dir ?? await mkdtemp(join(tmpdir(), 'mc-node-'))
  if (dir === undefined) t.teardown(async () => { await rm(dataDir, { recursive: true, force: true }) })
  const node = new StorageNode({ dataDir, key: KEY, center: 'east', slot: 1, ...options })
  await node.start()
  t.teardown(async () => { await node.close() })
  const client = new RpcClient({ key: KEY, selfId: 'test', host: '127.0.0.1', port: node.port })
  t.teardown(async () => { await client.close() })
  return { node, client, dir: dataDir }
}

/** Stores a body through the node protocol, in 100,000-byte chunks. */
export async function putBlob (client: RpcClient, fileId: string, body: Buffer, declared = body.length): Promise<{ fileId: string, size: number, sha256: string }> {
  const up = await client.upload('blob.put', { fileId, size: declared })
  for (let at = 0; at < body.length; at += 100_000) await up.write(body.subarray(at, at + 100_000))
  return (await up.finish()).body
}

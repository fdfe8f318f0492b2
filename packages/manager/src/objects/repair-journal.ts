import { open, readFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { fileIdSchema, fsyncDir, mkdirDurable, replicaSchema, sha256Schema, uintSchema, writeFileAtomic } from '@mirrorcast/wire'

/** What a failed-over storage node missed: a body to copy from its twin, or one to delete. */
export const repairOpSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('put'), fileId: fileIdSchema, size: uintSchema, sha256: sha256Schema, source: replicaSchema }),
  z.object({ op: z.literal('delete'), fileId: fileIdSchema })
])
export type RepairOp = z.infer<typeof repairOpSchema>

/**
 * The repair journal: per failed-over node, the writes and deletes it missed,
 * appended and fsynced before the client is answered, so a manager restart
 * loses none of them. One JSON line per op, one file per node.
 */
export class RepairJournal {
  private readonly dir: string | undefined
  private readonly memory = new Map<string, RepairOp[]>()
  private readonly handles = new Map<string, FileHandle>()
  private readonly locks = new Map<string, Promise<unknown>>()

  /** Without a directory the journal lives in memory only (tests, or a manager given no data dir). */
  constructor (dir?: string) {
    this.dir = dir
  }

  async open (): Promise<void> {
    if (this.dir === undefined) return
    await mkdirDurable(this.dir)
  }

  async close (): Promise<void> {
    await Promise.all([...this.handles.values()].map(async (h) => await h.close()))
    this.handles.clear()
  }

  /** Durably records an op for a node; resolves once it is on disk. */
  async append (nodeId: string, op: RepairOp): Promise<void> {
    await this.locked(nodeId, async () => {
      const ops = await this.pending(nodeId)
      if (this.dir !== undefined) {
        const fh = await this.handle(nodeId)
        // appendFile, not write: it goes on after a short write, which would tear the line.
        await fh.appendFile(JSON.stringify(op) + '\n')
        await fh.datasync()
      }
      ops.push(op)
    })
  }

  /** Ops recorded for a node, oldest first. */
  async pending (nodeId: string): Promise<RepairOp[]> {
    const cached = this.memory.get(nodeId)
    if (cached !== undefined) return cached
    const loaded = await this.load(nodeId)
    this.memory.set(nodeId, loaded)
    return loaded
  }

  /** Drops the first `count` ops (they were repaired), rewriting the file atomically. */
  async done (nodeId: string, count: number): Promise<void> {
    await this.locked(nodeId, async () => {
      const rest = await this.pending(nodeId)
      rest.splice(0, count)
      if (this.dir === undefined) return
      await this.handles.get(nodeId)?.close()
      this.handles.delete(nodeId)
      await writeFileAtomic(this.file(nodeId), rest.map((op) => JSON.stringify(op) + '\n').join(''))
    })
  }

  /** Runs `fn` after every earlier locked call for the node: appends and rewrites never interleave. */
  private async locked<X> (nodeId: string, fn: () => Promise<X>): Promise<X> {
    const before = this.locks.get(nodeId) ?? Promise.resolve()
    const run = before.catch(() => {}).then(fn)
    this.locks.set(nodeId, run)
    try {
      return await run
    } finally {
      if (this.locks.get(nodeId) === run) this.locks.delete(nodeId)
    }
  }

  private file (nodeId: string): string {
    return join(this.dir as string, `${nodeId.replace(/[^A-Za-z0-9._-]/g, '_')}.jsonl`)
  }

  private async handle (nodeId: string): Promise<FileHandle> {
    let fh = this.handles.get(nodeId)
    if (fh === undefined) {
      fh = await open(this.file(nodeId), 'a')
      // The file may be new: its name must be durable before the first op in it is acknowledged.
      await fsyncDir(this.dir as string)
      this.handles.set(nodeId, fh)
    }
    return fh
  }

  private async load (nodeId: string): Promise<RepairOp[]> {
    if (this.dir === undefined) return []
    let text: string
    try {
      text = await readFile(this.file(nodeId), 'utf8')
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return []
      throw err
    }
    // A line torn by a crash mid-append was never acknowledged: it is skipped.
    return text.split('\n').flatMap((line) => {
      if (line === '') return []
      try {
        const parsed = repairOpSchema.safeParse(JSON.parse(line))
        return parsed.success ? [parsed.data] : []
      } catch {
        return []
      }
    })
  }
}

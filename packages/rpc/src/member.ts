import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { idSchema } from '@mirrorcast/wire'

/** A new id for this process's life: a restart is told apart from a slow heartbeat by it. */
export function newBootId (): string {
  return randomBytes(8).toString('hex')
}

/**
 * The member's id, created at first start and kept in its data dir: it names
 * the member across restarts and address changes.
 */
export async function loadOrCreateMemberId (dataDir: string, prefix: string): Promise<string> {
  await mkdir(dataDir, { recursive: true })
  const file = join(dataDir, 'member-id')
  try {
    const id = (await readFile(file, 'utf8')).trim()
    return idSchema.parse(id)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw new Error(`member id in ${file} is unreadable or invalid`, { cause: err })
  }
  const id = `${prefix}-${randomBytes(6).toString('hex')}`
  await writeFile(file, id + '\n', { flag: 'wx' })
  return id
}

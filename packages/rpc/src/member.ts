import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isIPv4 } from 'node:net'
import { centerSchema, idSchema, MAX_SLOT, slotSchema } from '@mirrorcast/wire'

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

/** What every storage node and directory server is configured with. */
export interface MemberOptions {
  dataDir: string
  key: Uint8Array
  center: string
  slot: number
  address?: string
  port?: number
}

/** Validates a member's options once, in its constructor, and fills in the defaults. */
export function resolveMemberOptions<O extends MemberOptions> (options: O): O & { address: string, port: number } {
  if (typeof options.dataDir !== 'string' || options.dataDir === '') throw new TypeError('dataDir is required')
  if (options.key.length < 16) throw new TypeError('cluster key must be at least 16 bytes')
  if (!centerSchema.safeParse(options.center).success) throw new TypeError(`center ${JSON.stringify(options.center)} must be lowercase letters, digits and dashes`)
  if (!slotSchema.safeParse(options.slot).success) throw new TypeError(`slot ${options.slot} must be 1 to ${MAX_SLOT}`)
  const address = options.address ?? '127.0.0.1'
  if (!isIPv4(address)) throw new TypeError(`address ${address} must be an IPv4 address`)
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new TypeError(`port ${port} must be 0 to 65535`)
  return { ...options, address, port }
}

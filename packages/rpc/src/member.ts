import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { isIPv4 } from 'node:net'
import { centerSchema, CodedError, idSchema, MAX_SLOT, mkdirDurable, slotSchema, StartErrorCode, writeFileAtomic } from '@mirrorcast/wire'

/** The file in a member's data dir that holds its id. */
export const MEMBER_ID_FILE = 'member-id'

/** A new id for this process's life: a restart is told apart from a slow heartbeat by it. */
export function newBootId (): string {
  return randomBytes(8).toString('hex')
}

// What to do about a member-id file that holds no id.
const ID_REMEDY = 'put this member\'s id back in it (`mirrorcast status` lists every member\'s id), or remove it to start under a new id'

/**
 * The member's id, created at first start and kept in its data dir: it names
 * the member across restarts and address changes. It is written whole or not
 * at all; one found empty or damaged (a disk fault, a copy cut short) stops
 * the start with what to do, since a new id would make another member of it.
 */
export async function loadOrCreateMemberId (dataDir: string, prefix: string): Promise<string> {
  await mkdirDurable(dataDir)
  const file = join(dataDir, MEMBER_ID_FILE)
  const found = await readMemberId(file)
  if (found !== undefined) return found
  const id = `${prefix}-${randomBytes(6).toString('hex')}`
  await writeFileAtomic(file, id + '\n', { exclusive: true })
  return id
}

/** The id in a member-id file; undefined if there is none yet. */
async function readMemberId (file: string): Promise<string | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined
    throw new CodedError(StartErrorCode.DATA_DIR_UNUSABLE, `cannot read member id file ${file}: ${(err as Error).message}`, { cause: err })
  }
  const id = text.trim()
  if (id === '') throw new CodedError(StartErrorCode.MEMBER_ID_INVALID, `member id file ${file} is empty: ${ID_REMEDY}`)
  const parsed = idSchema.safeParse(id)
  if (!parsed.success) throw new CodedError(StartErrorCode.MEMBER_ID_INVALID, `member id file ${file} holds no valid id (${JSON.stringify(id.slice(0, 64))}): ${ID_REMEDY}`, { cause: parsed.error })
  return parsed.data
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

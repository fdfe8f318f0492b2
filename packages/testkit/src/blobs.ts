import { createHash } from 'node:crypto'
import { open, readFile, stat } from 'node:fs/promises'
import { BlobStore, blobPath, quarantinePath, readBlobFooter, readVolumes } from '@mirrorcast/node'
import { writeAll } from '@mirrorcast/wire'
import { TestkitError, TestkitErrorCode } from './errors.js'

/*
 * Helpers that look at a storage node's data dir from outside, as a test or
 * the nemesis does. They are built on the layout and the formats that
 * @mirrorcast/node exports (blob files, volumes), so that neither is ever
 * spelled twice. blobPath is where a large body lives; a small one is in a
 * volume (readVolumes says where).
 */
export { blobPath, quarantinePath }

/** What became of a stored body: intact (it matches its sha256), corrupt, set aside by its node, or gone. */
export type BlobState = 'intact' | 'corrupt' | 'quarantined' | 'absent'

/**
 * Flips one byte of a stored body, as bit rot would: the byte at `offset`
 * (within the body), or one at random. Resolves with its offset, or with
 * undefined for an empty body, which has no byte to flip. The change is
 * fsynced, so the node reads it from now on.
 */
export async function flipByte (dataDir: string, fileId: string, offset?: number): Promise<number | undefined> {
  const { file, bodyAt, size } = await locate(dataDir, fileId)
  if (size === 0) return undefined
  const at = offset ?? Math.floor(Math.random() * size)
  if (!Number.isSafeInteger(at) || at < 0 || at >= size) throw new TestkitError(TestkitErrorCode.BAD_OPTIONS, `offset ${at} is outside the ${size}-byte body of ${fileId}`)
  const fh = await open(file, 'r+')
  try {
    const byte = Buffer.alloc(1)
    await fh.read(byte, 0, 1, bodyAt + at)
    byte[0] = (byte[0] as number) ^ 0xff
    await writeAll(fh, byte, bodyAt + at)
    await fh.datasync()
  } finally {
    await fh.close()
  }
  return at
}

/** Where a body's bytes start in which file: its volume, or its blob file. */
async function locate (dataDir: string, fileId: string): Promise<{ file: string, bodyAt: number, size: number, sha256: string }> {
  const inVolume = readVolumes(dataDir).get(fileId)
  if (inVolume !== undefined) return { file: inVolume.path, bodyAt: inVolume.bodyAt, size: inVolume.size, sha256: inVolume.sha256 }
  const file = blobPath(dataDir, fileId)
  return { file, bodyAt: 0, ...await readBlobFooter(file) }
}

/** The ids of the bodies a storage node's data dir holds (none when it has no store yet). */
export async function storedBlobIds (dataDir: string): Promise<Set<string>> {
  const ids = new Set<string>(readVolumes(dataDir).keys())
  try {
    for await (const id of new BlobStore(dataDir).ids()) ids.add(id)
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err
  }
  return ids
}

/** Whether a body is intact, corrupt, quarantined by its node or absent; reads only. */
export async function blobState (dataDir: string, fileId: string): Promise<BlobState> {
  let data: Buffer
  let size: number
  let sha256: string
  let bodyAt: number
  try {
    let file: string
    ({ file, bodyAt, size, sha256 } = await locate(dataDir, fileId))
    data = await readFile(file)
  } catch (err) {
    const code = (err as { code?: string }).code
    if (code === 'ERR_NODE_CORRUPT') return 'corrupt'
    if (code !== 'ENOENT') throw err
    return await stat(quarantinePath(dataDir, fileId)).then(() => 'quarantined' as const, () => 'absent' as const)
  }
  return createHash('sha256').update(data.subarray(bodyAt, bodyAt + size)).digest('hex') === sha256 ? 'intact' : 'corrupt'
}

import { randomBytes } from 'node:crypto'
import { readFile, stat } from 'node:fs/promises'
import { writeFileAtomic } from './durable-file.js'
import { WireError, WireErrorCode } from './errors.js'

// 32 bytes: the HMAC-SHA256 block size makes longer keys no stronger
export const CLUSTER_KEY_BYTES = 32

export function generateClusterKey (): Buffer {
  return randomBytes(CLUSTER_KEY_BYTES)
}

/** The key file holds the key as hex, one line. */
export function parseClusterKey (text: string): Buffer {
  const hex = text.trim()
  if (!/^[0-9a-f]+$/i.test(hex) || hex.length < 32 || hex.length % 2 !== 0) {
    throw new WireError(WireErrorCode.BAD_KEY, 'cluster key must be at least 16 bytes written as hex')
  }
  return Buffer.from(hex, 'hex')
}

// What to do about a key file that holds no key: the same key must be on every host.
const KEY_REMEDY = 'copy the key file of another host of this cluster over it (mode 600); for a cluster of `mirrorcast up`, remove it and up writes a new one'

/**
 * Reads a key file, refusing one that others can read: the key is what makes
 * every datagram and frame trusted. An empty or damaged one (a copy cut short,
 * a disk fault) is refused with what to do, never taken for a key.
 */
export async function readClusterKeyFile (path: string): Promise<Buffer> {
  const text = await readSecretFile(path, 'cluster key file')
  if (text.trim() === '') throw new WireError(WireErrorCode.BAD_KEY, `cluster key file ${path} is empty: ${KEY_REMEDY}`)
  try {
    return parseClusterKey(text)
  } catch (err) {
    throw new WireError(WireErrorCode.BAD_KEY, `cluster key file ${path} holds no valid key (at least 16 bytes as hex on one line): ${KEY_REMEDY}`, { cause: err })
  }
}

/**
 * Reads a file holding a secret (cluster key, access tokens). One that the
 * group or others may read is refused: a secret anyone on the host can copy
 * is no secret, and saying so beats running with it.
 */
export async function readSecretFile (path: string, what: string): Promise<string> {
  const info = await stat(path).catch((err: unknown) => {
    throw new WireError(WireErrorCode.BAD_KEY, `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err })
  })
  if ((info.mode & 0o077) !== 0) {
    throw new WireError(WireErrorCode.BAD_KEY, `${what} ${path} is readable by others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 it`)
  }
  return await readFile(path, 'utf8')
}

/** Writes a new key file, whole or not at all; never over an existing one (EEXIST). */
export async function writeClusterKeyFile (path: string, key: Buffer): Promise<void> {
  await writeFileAtomic(path, key.toString('hex') + '\n', { mode: 0o600, exclusive: true })
}

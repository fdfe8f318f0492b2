import { signLocator, type FileEntry } from '@mirrorcast/wire'
import type { Membership } from '../cluster/membership.js'

// 1 MiB: below it the redirect's extra round trip costs more than the hop through the manager saves
export const DIRECT_DOWNLOAD_MIN_BYTES = 1024 * 1024

/**
 * Where a client may fetch a file's body straight from its home node: a URL
 * with a signed locator (see wire's locator.ts), or undefined when the file is
 * small or its home is not in use, in which case the manager serves it as
 * always (in failover from wherever the locator finds it).
 */
export function directDownloadUrl (membership: Pick<Membership, 'byId'>, clusterKey: Uint8Array, entry: Pick<FileEntry, 'fileId' | 'size' | 'replicas'>): string | undefined {
  const home = entry.replicas[0]
  if (entry.size < DIRECT_DOWNLOAD_MIN_BYTES || home === undefined) return undefined
  const member = membership.byId(home.node)
  const port = member?.info.httpPort
  if (member === undefined || !member.usable || port === undefined) return undefined
  const { expiresAt, signature } = signLocator(clusterKey, entry.fileId)
  const host = member.address.includes(':') ? `[${member.address}]` : member.address
  return `http://${host}:${port}/blobs/${entry.fileId}?e=${expiresAt}&s=${signature}`
}

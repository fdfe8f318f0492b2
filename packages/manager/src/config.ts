import { centerSchema, roleSchema, slotSchema, portSchema, addressSchema } from '@mirrorcast/wire'
import { z } from 'zod'

/** One storage node or directory server the manager is told about. */
export const peerConfigSchema = z.object({
  role: roleSchema.exclude(['manager']),
  center: centerSchema,
  slot: slotSchema,
  address: addressSchema,
  port: portSchema.min(1)
})
export type PeerConfig = z.infer<typeof peerConfigSchema>

export const DEFAULT_HTTP_HOST = '127.0.0.1'
// 8700: the manager's HTTP port when none is given
export const DEFAULT_HTTP_PORT = 8700
// 64 GiB: the largest body a PUT may carry unless configured otherwise
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 ** 3
// 3 s: how often an unreachable peer is tried again
export const DEFAULT_PEER_RETRY_MS = 3_000

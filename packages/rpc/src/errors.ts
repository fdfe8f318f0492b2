import { CodedError, RpcErrorCode, WireErrorCode } from '@mirrorcast/wire'

export { RpcErrorCode }

/** A failure of the transport itself: the peer is unreachable, gone, slow or speaking nonsense. */
export class RpcError extends CodedError {}

/**
 * The peer answered with an error of its own (not found, corrupt, full...).
 * `code` is the peer's code, so callers branch on it as if it were local.
 */
export class RemoteError extends CodedError {
  readonly peer: string

  constructor (code: string, message: string, peer: string) {
    super(code, message)
    this.peer = peer
  }
}

/** A message this side refused to send (it fails its schema or the frame limit): nothing was written. */
export function isRefusedSend (err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === WireErrorCode.INVALID_OUTGOING
}

// Failures of one request, not of the session's peer: given up by us, refused by us
// before sending, our own shortage of a resource, or content refused by either side of
// a session that was sound.
const NOT_TRANSPORT: ReadonlySet<string> = new Set([RpcErrorCode.ABORTED, RpcErrorCode.LOCAL, RpcErrorCode.BAD_REQUEST, RpcErrorCode.BAD_REPLY, WireErrorCode.INVALID_OUTGOING, WireErrorCode.BAD_KEY])

/**
 * Transport failures that mean "this peer cannot be used now": the failover
 * issue treats these as hard errors of the node protocol. A RemoteError never
 * is one, whatever its code: the peer answered.
 */
export function isTransportFailure (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string' || err instanceof RemoteError || NOT_TRANSPORT.has(code)) return false
  // A peer whose frames fail the wire checks mid-session is as unusable as one that hung up.
  return err instanceof RpcError || code.startsWith('ERR_WIRE_')
}

import { CodedError, RpcErrorCode } from '@mirrorcast/wire'

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

/**
 * Transport failures that mean "this peer cannot be used now": the failover
 * issue treats these as hard errors of the node protocol.
 */
export function isTransportFailure (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return false
  // A peer whose frames fail the wire checks mid-session is as unusable as one that hung up.
  // ABORTED is our own choice and LOCAL our own shortage: neither says anything about the peer.
  if (code === RpcErrorCode.ABORTED || code === RpcErrorCode.LOCAL) return false
  return err instanceof RpcError || code.startsWith('ERR_WIRE_')
}

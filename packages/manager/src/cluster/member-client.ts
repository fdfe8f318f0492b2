import type { AnyEnvelope, MessageBody, MessageType, ReplyType, RequestType } from '@mirrorcast/wire'

/** A reply of type `R`, as the node protocol delivers it. */
export type MemberReply<R extends MessageType> = Extract<AnyEnvelope, { t: R }>

/** A request body being written to a member chunk by chunk (an rpc `Upload`). */
export interface MemberUpload<R extends MessageType> {
  write: (data: Uint8Array | readonly Uint8Array[]) => Promise<void>
  /** Ends the body; `end` carries its sha256 when the request said the sender hashes it. */
  finish: (end?: MessageBody<'end'>) => Promise<MemberReply<R>>
  /** Tells the member to drop what it received. */
  abort: (reason: string) => void
}

/**
 * What the manager needs of the way it reaches one member: the part of
 * `RpcClient` (a session pool over the node protocol) that the object
 * manager, the directory manager and the membership use, and no more, so
 * that a test can put an in-process fake in its place. A transport failure
 * (refused, reset, timeout) is an `RpcError`; a refusal by the member is a
 * `RemoteError` carrying the member's own code.
 */
export interface MemberClient {
  /** Where the member listens: a member announcing another address gets a new client. */
  readonly host: string
  readonly port: number
  /** One request, one reply of its type (wire's REPLY_TYPES); `payload` rides in the request's frame. */
  request: <T extends RequestType>(t: T, body: MessageBody<T>, options?: { signal?: AbortSignal, payload?: Uint8Array }) => Promise<MemberReply<ReplyType<T>>>
  /** Starts a request whose body is then written chunk by chunk. */
  upload: <T extends RequestType>(t: T, body: MessageBody<T>, options?: { signal?: AbortSignal }) => Promise<MemberUpload<ReplyType<T>>>
  /** A request answered by a head, then a body streamed in chunks. */
  download: <T extends RequestType>(t: T, body: MessageBody<T>, options?: { signal?: AbortSignal }) => Promise<{ head: MemberReply<ReplyType<T>>, body: AsyncGenerator<Buffer> }>
  /** Resolves if the member answers a ping on a fresh session within `timeoutMs` (connect and handshake included). */
  probe: (timeoutMs: number) => Promise<void>
  /** Fails every request now in flight: the member was declared unusable. */
  abortInFlight: (reason: Error) => void
  close: () => Promise<void>
}

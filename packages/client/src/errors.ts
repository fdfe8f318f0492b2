import { STATUS_CODES } from 'node:http'
import { CodedError } from '@mirrorcast/wire'

/**
 * The client's own codes. An answer of the manager with an error status
 * carries the manager's code instead (`ERR_DIR_NOT_EMPTY`, `ERR_BAD_PATH`,
 * …, see README's HTTP API), or HTTP_STATUS when its body names none.
 */
export const ClientErrorCode = {
  /** Options refused by the constructor. */
  INVALID_OPTION: 'ERR_CLIENT_INVALID_OPTION',
  /** A token file that cannot be read, is readable by others or holds no token. */
  TOKEN_FILE: 'ERR_CLIENT_TOKEN_FILE',
  /** A request that cannot be sent as asked (a path or header undici refuses, a streamed PUT without its size). */
  INVALID_REQUEST: 'ERR_CLIENT_INVALID_REQUEST',
  /** No connection could be made: the request certainly did not reach the manager. */
  UNREACHABLE: 'ERR_CLIENT_UNREACHABLE',
  /** The connection failed after the request went out: it may have taken effect. */
  CONNECTION_LOST: 'ERR_CLIENT_CONNECTION_LOST',
  /** No answer (headers) or no body bytes for the timeout. */
  TIMEOUT: 'ERR_CLIENT_TIMEOUT',
  /** The caller's signal aborted the request. */
  ABORTED: 'ERR_CLIENT_ABORTED',
  /** The client was closed. */
  CLOSED: 'ERR_CLIENT_CLOSED',
  /** The request body (a stream of the caller) failed. */
  BODY_FAILED: 'ERR_CLIENT_BODY_FAILED',
  /** A success status with a body that is not what the API promises (not JSON, a directory where a file was asked). */
  BAD_RESPONSE: 'ERR_CLIENT_BAD_RESPONSE',
  /** `get()` of a path that is a directory. */
  IS_A_DIRECTORY: 'ERR_CLIENT_IS_A_DIRECTORY',
  /** An error status whose body names no code. */
  HTTP_STATUS: 'ERR_CLIENT_HTTP_STATUS'
} as const

export type ClientErrorCodeValue = typeof ClientErrorCode[keyof typeof ClientErrorCode]

export interface ClientErrorOptions {
  cause?: unknown
  /** The HTTP status, for an answer of the manager. */
  status?: number
}

/**
 * Every failure of the client. `code` is stable: the manager's error code for
 * an error answer, else one of ClientErrorCode. `status` is set for answers.
 */
export class ClientError extends CodedError {
  readonly status: number | undefined

  constructor (code: string, message: string, options: ClientErrorOptions = {}) {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause })
    this.status = options.status
  }
}

/**
 * The error for an answer with an error status and its (JSON) body:
 * `<message> (<status> <code>)`, the line the CLI prints.
 */
export function answerError (status: number, parsed: unknown): ClientError {
  const error = (parsed as { error?: { code?: unknown, message?: unknown } } | undefined)?.error
  const code = typeof error?.code === 'string' ? error.code : undefined
  const message = typeof error?.message === 'string' ? error.message : (STATUS_CODES[status] ?? 'request failed')
  return new ClientError(code ?? ClientErrorCode.HTTP_STATUS, `${message} (${status}${code === undefined ? '' : ' ' + code})`, { status })
}

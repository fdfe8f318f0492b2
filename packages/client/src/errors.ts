import { STATUS_CODES } from 'node:http'
import { ClientErrorCode, CodedError } from '@mirrorcast/wire'

// The client's own codes are in wire's table with every other; an error answer of the manager carries
// the manager's code instead (`ERR_DIR_NOT_EMPTY`, …), or HTTP_STATUS when its body names none.
export { ClientErrorCode }

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

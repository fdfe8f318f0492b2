import { WireErrorCode } from './error-codes.js'

export { WireErrorCode }

export type WireErrorCodeValue = typeof WireErrorCode[keyof typeof WireErrorCode]

/** The base of every mirrorcast error: a stable `code` to branch on, the `cause` kept. */
export class CodedError extends Error {
  readonly code: string

  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
  }
}

export class WireError extends CodedError {
  declare readonly code: WireErrorCodeValue

  // not useless: it narrows `code` to the wire's own codes
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor (code: WireErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

export function isWireError (err: unknown): err is WireError {
  const code: unknown = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && code.startsWith('ERR_WIRE_')
}

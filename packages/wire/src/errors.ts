/** Stable codes: branch on `code`, never on the message text or the class. */
export const WireErrorCode = {
  MISSING_MAC: 'ERR_WIRE_MISSING_MAC',
  BAD_MAC: 'ERR_WIRE_BAD_MAC',
  UNKNOWN_VERSION: 'ERR_WIRE_UNKNOWN_VERSION',
  UNKNOWN_TYPE: 'ERR_WIRE_UNKNOWN_TYPE',
  OVERSIZE: 'ERR_WIRE_OVERSIZE',
  TRUNCATED: 'ERR_WIRE_TRUNCATED',
  MALFORMED: 'ERR_WIRE_MALFORMED',
  INVALID_FIELD: 'ERR_WIRE_INVALID_FIELD',
  BAD_KEY: 'ERR_WIRE_BAD_KEY'
} as const

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

  constructor (code: WireErrorCodeValue, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

export function isWireError (err: unknown): err is WireError {
  const code: unknown = (err as { code?: unknown } | null)?.code
  return err instanceof Error && typeof code === 'string' && code.startsWith('ERR_WIRE_')
}

export const ManagerErrorCode = {
  BAD_REQUEST: 'ERR_BAD_REQUEST',
  NOT_FOUND: 'ERR_NOT_FOUND',
  METHOD_NOT_ALLOWED: 'ERR_METHOD_NOT_ALLOWED',
  LENGTH_REQUIRED: 'ERR_LENGTH_REQUIRED',
  TOO_LARGE: 'ERR_TOO_LARGE',
  RANGE_NOT_SATISFIABLE: 'ERR_RANGE_NOT_SATISFIABLE',
  CHECKSUM_MISMATCH: 'ERR_CHECKSUM_MISMATCH',
  REPLICA_MISMATCH: 'ERR_REPLICA_MISMATCH',
  NO_REPLICA: 'ERR_NO_REPLICA',
  UNAVAILABLE: 'ERR_UNAVAILABLE',
  UPLOAD_INCOMPLETE: 'ERR_UPLOAD_INCOMPLETE'
} as const

export class ManagerError extends Error {
  readonly code: string

  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'ManagerError'
    this.code = code
  }
}

const STATUS_BY_CODE: Record<string, number> = {
  ERR_BAD_REQUEST: 400,
  ERR_BAD_PATH: 400,
  ERR_DIR_INVALID: 400,
  ERR_CHECKSUM_MISMATCH: 400,
  ERR_UPLOAD_INCOMPLETE: 400,
  ERR_NOT_FOUND: 404,
  ERR_DIR_NOT_FOUND: 404,
  ERR_NODE_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_DIR_EXISTS: 409,
  ERR_DIR_NOT_EMPTY: 409,
  ERR_DIR_NOT_A_DIRECTORY: 409,
  ERR_DIR_IS_A_DIRECTORY: 409,
  ERR_DIR_TOO_LARGE: 409,
  ERR_LENGTH_REQUIRED: 411,
  ERR_TOO_LARGE: 413,
  ERR_RANGE_NOT_SATISFIABLE: 416,
  ERR_NODE_NO_SPACE: 507
}

/** The HTTP status for an error code; anything unknown means a replica or server could not do its part. */
export function httpStatusFor (code: string | undefined): number {
  if (code === undefined) return 500
  return STATUS_BY_CODE[code] ?? 503
}

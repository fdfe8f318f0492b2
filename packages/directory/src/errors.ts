import { CodedError } from '@mirrorcast/wire'

export const DirectoryErrorCode = {
  NOT_FOUND: 'ERR_DIR_NOT_FOUND',
  EXISTS: 'ERR_DIR_EXISTS',
  NOT_EMPTY: 'ERR_DIR_NOT_EMPTY',
  NOT_A_DIRECTORY: 'ERR_DIR_NOT_A_DIRECTORY',
  IS_A_DIRECTORY: 'ERR_DIR_IS_A_DIRECTORY',
  INVALID: 'ERR_DIR_INVALID',
  SEQ_GAP: 'ERR_DIR_SEQ_GAP',
  TOO_LARGE: 'ERR_DIR_TOO_LARGE',
  UNSUPPORTED: 'ERR_DIR_UNSUPPORTED'
} as const

export class DirectoryError extends CodedError {}

import { CodedError } from '@mirrorcast/wire'

export class DiagError extends CodedError {}

export const DiagErrorCode = {
  BAD_SETTINGS: 'ERR_DIAG_BAD_SETTINGS'
} as const

import { CodedError, ManagerErrorCode } from '@mirrorcast/wire'

// The manager's code for bad input, kept as it was when this code lived there: callers
// branch on it and the HTTP API answers it with 400.
export const TopologyErrorCode = {
  BAD_REQUEST: ManagerErrorCode.BAD_REQUEST
} as const

export class TopologyError extends CodedError {}

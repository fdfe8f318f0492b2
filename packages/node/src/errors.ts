import { CodedError } from '@mirrorcast/wire'

export const NodeErrorCode = {
  NOT_FOUND: 'ERR_NODE_NOT_FOUND',
  CORRUPT: 'ERR_NODE_CORRUPT',
  SIZE_MISMATCH: 'ERR_NODE_SIZE_MISMATCH',
  NO_SPACE: 'ERR_NODE_NO_SPACE',
  BAD_RANGE: 'ERR_NODE_BAD_RANGE',
  EXISTS: 'ERR_NODE_EXISTS',
  BAD_ID: 'ERR_NODE_BAD_ID',
  DATA_DIR: 'ERR_NODE_DATA_DIR',
  UNSUPPORTED: 'ERR_NODE_UNSUPPORTED'
} as const

export class NodeError extends CodedError {}

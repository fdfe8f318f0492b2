import { CodedError, NodeErrorCode } from '@mirrorcast/wire'

export { NodeErrorCode }

export class NodeError extends CodedError {}

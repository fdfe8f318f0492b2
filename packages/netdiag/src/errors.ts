import { CodedError, DiagErrorCode } from '@mirrorcast/wire'

export { DiagErrorCode }

export class DiagError extends CodedError {}

import { CodedError, DirectoryErrorCode } from '@mirrorcast/wire'

export { DirectoryErrorCode }

export class DirectoryError extends CodedError {}

import { CodedError, ManagerErrorCode, httpStatusFor } from '@mirrorcast/wire'

export { ManagerErrorCode, httpStatusFor }

export class ManagerError extends CodedError {}

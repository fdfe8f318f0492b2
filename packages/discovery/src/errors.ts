import { CodedError, DiscoveryErrorCode } from '@mirrorcast/wire'

export { DiscoveryErrorCode }

export class DiscoveryError extends CodedError {}

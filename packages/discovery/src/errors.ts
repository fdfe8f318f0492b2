import { CodedError } from '@mirrorcast/wire'

export class DiscoveryError extends CodedError {}

export const DiscoveryErrorCode = {
  BAD_OPTIONS: 'ERR_DISCOVERY_BAD_OPTIONS',
  NOT_STARTED: 'ERR_DISCOVERY_NOT_STARTED',
  MULTICAST_OFF: 'ERR_DISCOVERY_MULTICAST_OFF'
} as const

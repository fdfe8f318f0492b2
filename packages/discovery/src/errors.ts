export class DiscoveryError extends Error {
  readonly code: string

  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DiscoveryError'
    this.code = code
  }
}

export const DiscoveryErrorCode = {
  BAD_OPTIONS: 'ERR_DISCOVERY_BAD_OPTIONS',
  NOT_STARTED: 'ERR_DISCOVERY_NOT_STARTED'
} as const

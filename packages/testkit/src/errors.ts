import { CodedError } from '@mirrorcast/wire'

export const TestkitErrorCode = {
  TIMEOUT: 'ERR_TESTKIT_TIMEOUT',
  BAD_OPTIONS: 'ERR_TESTKIT_BAD_OPTIONS'
} as const

export class TestkitError extends CodedError {}

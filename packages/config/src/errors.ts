import { CodedError } from '@mirrorcast/wire'

export class ConfigError extends CodedError {}

export const ConfigErrorCode = {
  UNREADABLE: 'ERR_CONFIG_UNREADABLE',
  SYNTAX: 'ERR_CONFIG_SYNTAX',
  INVALID: 'ERR_CONFIG_INVALID'
} as const

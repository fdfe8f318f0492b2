import { CodedError, ConfigErrorCode } from '@mirrorcast/wire'

export { ConfigErrorCode }

export class ConfigError extends CodedError {}

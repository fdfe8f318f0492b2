import { CliErrorCode } from '@mirrorcast/wire'

/** An error meant for the user: printed as is, exit code 1. */
export class CliError extends Error {
  readonly code = CliErrorCode.CLI

  constructor (message: string) {
    super(message)
    this.name = 'CliError'
  }
}

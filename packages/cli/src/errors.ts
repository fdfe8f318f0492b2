/** An error meant for the user: printed as is, exit code 1. */
export class CliError extends Error {
  readonly code = 'ERR_CLI'

  constructor (message: string) {
    super(message)
    this.name = 'CliError'
  }
}

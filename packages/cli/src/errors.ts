import { CliErrorCode, CodedError, StartErrorCode } from '@mirrorcast/wire'

/** An error meant for the user: printed as is, exit code 1. */
export class CliError extends Error {
  readonly code = CliErrorCode.CLI

  constructor (message: string) {
    super(message)
    this.name = 'CliError'
  }
}

/** A port a process must listen on is taken: it names the port and the flag that moves it. */
export class PortInUseError extends CodedError {
  declare readonly code: typeof StartErrorCode.PORT_IN_USE

  constructor (message: string, cause: unknown) {
    super(StartErrorCode.PORT_IN_USE, message, { cause })
  }
}

/**
 * The reason a service could not start, in the user's terms: EADDRINUSE names
 * the port (from the error's syscall: TCP listen or UDP bind) and its flag;
 * anything else is passed on as it is.
 */
export function startFailure (err: unknown, tcpPort: string, s3Port?: number): unknown {
  const e = err as (NodeJS.ErrnoException & { address?: string, port?: number }) | undefined
  if (e?.code !== 'EADDRINUSE') return err
  const at = `${e.address ?? '?'}:${e.port ?? '?'}`
  const tcp = s3Port !== undefined && s3Port !== 0 && e.port === s3Port ? `S3 port ${at} (TCP, --s3-port)` : `${tcpPort} port ${at} (TCP, --port)`
  const what = e.syscall === 'listen' ? tcp : `UDP port ${at} (--peer-port or --mcast-port)`
  return new PortInUseError(`the ${what} is in use by another process (EADDRINUSE): stop it or choose another port`, err)
}

import { ConfigErrorCode, HTTP_SETTING_BOUNDS, type HttpSetting } from '@mirrorcast/wire'
import { ManagerError } from './errors.js'

export const DEFAULT_HTTP_HOST = '127.0.0.1'
// 8700: the manager's HTTP port when none is given
export const DEFAULT_HTTP_PORT = 8700
// 64 GiB: the largest body a PUT may carry unless configured otherwise
export const DEFAULT_MAX_FILE_BYTES = 64 * 1024 ** 3
// 120 s: a request body that brings no byte, or a response of which the client takes no byte, for this long is given up
export const DEFAULT_BODY_IDLE_TIMEOUT_MS = 120_000
// 10 s: for a client to send a request's headers (a slowloris client sends them a byte at a time)
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000
// 1,024: connections open at once; the server closes any more as they arrive
export const DEFAULT_MAX_CONNECTIONS = 1024
// 8: multicast searches served at once; each asks every node of a center and waits up to 0.6 s for replies
export const DEFAULT_MAX_SEARCHES = 8
// 5 s: keep-alive idle; the project's client closes its idle connections at 2 s, before the server does
export const KEEP_ALIVE_TIMEOUT_MS = 5_000

/** The HTTP server's limits, every one set. */
export interface HttpLimits {
  bodyIdleTimeoutMs: number
  headersTimeoutMs: number
  maxConnections: number
  /** Multicast searches `GET /search` serves at once. */
  maxSearches: number
}

/** Fills in the defaults and checks each limit against its bounds, naming it by its config key. */
export function resolveHttpLimits (options: Partial<HttpLimits>): HttpLimits {
  return {
    bodyIdleTimeoutMs: bounded('body-idle-timeout-ms', options.bodyIdleTimeoutMs, DEFAULT_BODY_IDLE_TIMEOUT_MS),
    headersTimeoutMs: bounded('headers-timeout-ms', options.headersTimeoutMs, DEFAULT_HEADERS_TIMEOUT_MS),
    maxConnections: bounded('max-connections', options.maxConnections, DEFAULT_MAX_CONNECTIONS),
    maxSearches: bounded('max-searches', options.maxSearches, DEFAULT_MAX_SEARCHES)
  }
}

export function bounded (key: HttpSetting, value: number | undefined, fallback: number): number {
  const { min, max } = HTTP_SETTING_BOUNDS[key]
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ManagerError(ConfigErrorCode.INVALID, `${key} must be a whole number from ${min} to ${max}, got ${String(value)}`)
  }
  return value
}

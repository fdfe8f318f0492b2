import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import { isLoopback } from '@mirrorcast/topology'
import { ManagerError, ManagerErrorCode } from '../errors.js'

// the names a user or a tool on this host gives the loopback address
const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '[::1]']

/**
 * Without access tokens the API trusts whoever reaches it, which on loopback
 * is meant to be this host's users and tools. A web page open in this host's
 * browser reaches it too, in two ways this guard closes:
 *
 * - DNS rebinding: a page of evil.example has its name re-resolved to
 *   127.0.0.1 and then talks to the manager as its own origin, reading the
 *   answers. The browser still sends `Host: evil.example`, so only requests
 *   addressed to this manager by a loopback name are served.
 * - A cross-site POST, PUT or DELETE (a form, a no-cors fetch) acts even though
 *   the page cannot read the answer. The browser says where it comes from, with
 *   `Origin` or `Sec-Fetch-Site: cross-site`; curl and the CLI send neither.
 *
 * With tokens there is nothing to guard: a page has no token to send, and a
 * browser adds no `Authorization: Bearer` of its own.
 */
export class SameHostGuard {
  private readonly hosts: Set<string>
  private readonly origins: Set<string>

  constructor (listenHost: string, port: number) {
    const listen = isIP(listenHost) === 6 ? `[${listenHost}]` : listenHost
    this.hosts = new Set([`${listen}:${port}`.toLowerCase(), ...LOOPBACK_NAMES.flatMap((name) => [name, `${name}:${port}`])])
    this.origins = new Set([...this.hosts].map((host) => `http://${host}`))
  }

  /** Throws the 403 for a request this host's users did not address to the manager themselves. */
  check (req: IncomingMessage): void {
    // A browser always sends Host; a request without one (HTTP/1.0 by hand) comes from no web page.
    const host = req.headers.host
    if (host !== undefined && !this.hosts.has(host.toLowerCase())) {
      throw new ManagerError(ManagerErrorCode.FORBIDDEN_HOST, `Host ${JSON.stringify(host.slice(0, 100))} is not this manager: without access tokens it answers only requests addressed to ${[...this.hosts][0] ?? ''} or localhost (a guard against DNS rebinding)`)
    }
    const origin = req.headers.origin
    if (origin !== undefined && !this.origins.has(origin.toLowerCase())) {
      throw new ManagerError(ManagerErrorCode.CROSS_SITE, `a request from the web origin ${JSON.stringify(origin.slice(0, 100))} is refused: without access tokens only this host's own tools may use the API`)
    }
    if (req.headers['sec-fetch-site'] === 'cross-site') {
      throw new ManagerError(ManagerErrorCode.CROSS_SITE, 'a cross-site request from a web page is refused: without access tokens only this host\'s own tools may use the API')
    }
  }
}

/** The guard a listener needs: one on loopback without tokens, none otherwise. */
export function sameHostGuard (listenHost: string, port: number, tokensConfigured: boolean): SameHostGuard | undefined {
  return tokensConfigured || !isLoopback(listenHost) ? undefined : new SameHostGuard(listenHost, port)
}

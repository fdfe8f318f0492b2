import type { IncomingMessage, ServerResponse } from 'node:http'
import { ManagerError, ManagerErrorCode } from '../errors.js'

export interface RequestContext {
  /** The raw path after the route's prefix (still percent-encoded); '' for an exact route. */
  rest: string
  query: URLSearchParams
}

export type Handler = (req: IncomingMessage, res: ServerResponse, ctx: RequestContext) => Promise<void> | void

export interface Route {
  /** An exact path, or with `prefix`, a path and everything below it (`/files`, `/files/a/b`). */
  path: string
  prefix?: boolean
  methods: Partial<Record<string, Handler>>
}

/**
 * Finds a request's route by its raw path and method: 404 for a path no
 * route serves, 405 with `Allow` for a method the route does not take.
 */
export class Router {
  constructor (private readonly routes: Route[]) {}

  async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    // The raw path, not new URL(): URL parsing would resolve `..` before the path rules could refuse it.
    const [pathname = '/', query = ''] = (req.url ?? '/').split('?', 2)
    const match = this.match(pathname)
    if (match === undefined) throw new ManagerError(ManagerErrorCode.NOT_FOUND, `no such endpoint: ${req.method ?? ''} ${pathname.slice(0, 100)}`)
    const { route, rest } = match
    const method = req.method ?? 'GET'
    const handler = route.methods[method] ?? (method === 'HEAD' ? route.methods.GET : undefined)
    if (handler === undefined) {
      const allow = Object.keys(route.methods)
      if (allow.includes('GET') && !allow.includes('HEAD')) allow.push('HEAD')
      res.setHeader('allow', allow.join(', '))
      throw new ManagerError(ManagerErrorCode.METHOD_NOT_ALLOWED, `method ${method.slice(0, 20)} is not allowed on ${route.path}; allowed: ${allow.join(', ')}`)
    }
    await handler(req, res, { rest, query: new URLSearchParams(query) })
  }

  private match (pathname: string): { route: Route, rest: string } | undefined {
    for (const route of this.routes) {
      if (pathname === route.path) return { route, rest: '' }
      if (route.prefix === true && pathname.startsWith(route.path + '/')) return { route, rest: pathname.slice(route.path.length) }
    }
    return undefined
  }
}

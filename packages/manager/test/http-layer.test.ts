import test from 'ava'
import { silentLogger } from '@mirrorcast/logger'
import { Authorizer } from '../src/http/auth.js'
import { HttpServer } from '../src/http/server.js'
import { Router } from '../src/http/router.js'
import { sendJson } from '../src/http/respond.js'
import { ManagerError } from '../src/errors.js'
import { Lifecycle } from '../src/lifecycle.js'
import { resolveHttpLimits } from '../src/config.js'

async function serve (t: import('ava').ExecutionContext, router: Router, port = 0): Promise<HttpServer> {
  const server = new HttpServer({ host: '127.0.0.1', port, auth: new Authorizer([], '127.0.0.1'), router, limits: resolveHttpLimits({}), logger: silentLogger() })
  await server.start()
  t.teardown(async () => { await server.close() })
  return server
}

const router = new Router([
  { path: '/things', prefix: true, methods: { GET: (_req, res, ctx) => { sendJson(res, 200, { rest: ctx.rest, q: ctx.query.get('q') }) }, DELETE: () => { throw new ManagerError('ERR_DIR_NOT_EMPTY', 'has things') } } },
  { path: '/boom', methods: { GET: () => { throw new Error('a bug') } } }
])

test('the route table answers 404 for an unknown path and 405 with Allow for a method a route does not take', async (t) => {
  const { port } = await serve(t, router)
  const base = `http://127.0.0.1:${port}`
  const missing = await fetch(`${base}/nothing`)
  t.is(missing.status, 404)
  t.is(((await missing.json()) as { error: { code: string } }).error.code, 'ERR_NOT_FOUND')
  const post = await fetch(`${base}/things/a`, { method: 'POST' })
  t.is(post.status, 405)
  t.is(post.headers.get('allow'), 'GET, DELETE, HEAD')
  t.is(((await post.json()) as { error: { code: string } }).error.code, 'ERR_METHOD_NOT_ALLOWED')
  t.deepEqual(await (await fetch(`${base}/things/a%2Fb?q=1`)).json(), { rest: '/a%2Fb', q: '1' }, 'the rest of the path stays raw, the query is parsed')
  t.is((await fetch(`${base}/things/x`, { method: 'HEAD' })).status, 200, 'HEAD is served by GET')
})

test('an error becomes its code\'s status; an unexpected one is a 500 that shows no internals', async (t) => {
  const { port } = await serve(t, router)
  const conflict = await fetch(`http://127.0.0.1:${port}/things/x`, { method: 'DELETE' })
  t.is(conflict.status, 409)
  t.deepEqual(await conflict.json(), { error: { code: 'ERR_DIR_NOT_EMPTY', message: 'has things' } })
  const bug = await fetch(`http://127.0.0.1:${port}/boom`)
  t.is(bug.status, 500)
  t.deepEqual(await bug.json(), { error: { code: 'ERR_INTERNAL', message: 'internal error' } })
})

test('a listener whose port is taken fails to start with EADDRINUSE', async (t) => {
  const first = await serve(t, router)
  const second = new HttpServer({ host: '127.0.0.1', port: first.port, auth: new Authorizer([], '127.0.0.1'), router, limits: resolveHttpLimits({}), logger: silentLogger() })
  await t.throwsAsync(second.start(), { code: 'EADDRINUSE' })
  t.throws(() => second.port, { message: 'manager is not listening' })
})

test('a lifecycle that fails to start one part stops those started, last first, and none after', async (t) => {
  const events: string[] = []
  const part = (name: string, fail = false): { name: string, start: () => void, stop: () => void } => ({
    name,
    start: () => { if (fail) throw new Error(`${name} cannot start`); events.push(`start ${name}`) },
    stop: () => { events.push(`stop ${name}`) }
  })
  const lifecycle = new Lifecycle()
  await t.throwsAsync(lifecycle.start([part('journal'), part('membership'), part('http', true), part('announcer')]), { message: 'http cannot start' })
  t.deepEqual(events, ['start journal', 'start membership', 'stop membership', 'stop journal'])
  await lifecycle.stop()
  t.is(events.length, 4, 'nothing is stopped twice')
})

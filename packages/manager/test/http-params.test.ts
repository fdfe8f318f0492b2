import test from 'ava'
import { harness, serveApi } from './harness.js'

// The native API's query parameters, as a client sends them: a bad one is
// answered 400 ERR_HTTP_BAD_PARAMETER naming it, before any member is asked anything.

interface Answer { status: number, code: string | undefined, message: string | undefined, body: Record<string, unknown> }

async function ask (base: string, method: string, path: string, body?: string): Promise<Answer> {
  const res = await fetch(base + path, { method, ...(body === undefined ? {} : { body }) })
  const json = await res.json() as Record<string, unknown> & { error?: { code: string, message: string } }
  return { status: res.status, code: json.error?.code, message: json.error?.message, body: json }
}

test('a bad query parameter is answered 400 ERR_HTTP_BAD_PARAMETER naming it, and nothing reaches a member', async (t) => {
  const h = harness(t)
  const searched: string[] = []
  const base = await serveApi(t, h, { search: async (_id, center) => { searched.push(center); return [] } })
  t.is((await ask(base, 'PUT', '/files/docs/a.txt', 'hello')).status, 201)
  const received = (): number => h.cluster.members.reduce((n, m) => n + m.received.length, 0)
  const before = received()
  const bad: Array<[string, string, string]> = [
    ['GET', `/files/docs/?after=${'a'.repeat(5000)}`, 'after'],
    ['GET', '/files/docs/?after=sub/name', 'after'],
    ['GET', `/files/docs/?after=${encodeURIComponent('é'.repeat(128))}`, 'after'],
    ['GET', '/files/docs/?after=a%00b', 'after'],
    ['GET', '/files/docs/?after=a&after=b', 'after'],
    ['GET', '/files/docs/?limit=0', 'limit'],
    ['GET', '/files/docs/?limit=10001', 'limit'],
    ['GET', '/files/docs/?limit=1e3', 'limit'],
    ['GET', '/files/docs/?limit=-1', 'limit'],
    ['GET', '/files/docs/?limit=%205', 'limit'],
    ['GET', '/files/docs/?limit=abc', 'limit'],
    ['GET', '/files/docs/?limit=5&limit=6', 'limit'],
    ['GET', '/files/docs/a.txt?stat=no', 'stat'],
    ['DELETE', '/files/docs?recursive=false', 'recursive'],
    ['POST', '/files/new/?mkdir=0', 'mkdir'],
    ['POST', '/files/new/?mkdir&parents=no', 'parents'],
    ['POST', '/files/docs/a.txt?move-to=relative', 'move-to'],
    ['POST', '/files/docs/a.txt?move-to=/docs/../etc', 'move-to'],
    ['POST', '/files/docs/a.txt?move-to=', 'move-to'],
    ['GET', '/search', 'key'],
    ['GET', '/search?key=', 'key'],
    ['GET', '/search?key=docs/a.txt', 'key'],
    ['GET', '/search?key=/docs/a.txt&center=mars', 'center'],
    ['GET', `/search?key=${'f'.repeat(32)}&center=`, 'center'],
    ['POST', '/cluster/nodes/%zz/failover', 'member id']
  ]
  for (const [method, path, name] of bad) {
    const r = await ask(base, method, path)
    t.is(r.status, 400, `${method} ${path.slice(0, 60)}`)
    t.is(r.code, 'ERR_HTTP_BAD_PARAMETER', `${method} ${path.slice(0, 60)}`)
    t.true(r.message?.includes(name), `${r.message ?? ''} names ${name}`)
    t.true((r.message?.length ?? 0) < 300, 'the message quotes a bounded part of the value')
  }
  t.is(received(), before, 'no member was asked anything')
  t.deepEqual(searched, [], 'no search went out')
})

test('good parameters are served as before: a page after a name of 255 bytes, a limit, a switch given as 1, a search of one center', async (t) => {
  const h = harness(t)
  const searched: string[] = []
  const base = await serveApi(t, h, { search: async (_id, center) => { searched.push(center); return [] } })
  for (const name of ['a', 'b', 'c']) t.is((await ask(base, 'PUT', `/files/docs/${name}`, name)).status, 201)
  const page = await ask(base, 'GET', '/files/docs/?after=a&limit=1')
  t.deepEqual((page.body.entries as Array<{ name: string }>).map((e) => e.name), ['b'])
  t.true(page.body.more)
  t.deepEqual((await ask(base, 'GET', `/files/docs/?after=${'z'.repeat(255)}`)).body.entries, [])
  t.is((((await ask(base, 'GET', '/files/docs/?after=')).body.entries) as unknown[]).length, 3, 'an empty after: from the start')
  t.is((await ask(base, 'GET', '/files/docs/a?stat')).body.type, 'file')
  t.is((await ask(base, 'POST', '/files/x/y/?mkdir&parents=1')).status, 201)
  t.is((await ask(base, 'POST', '/files/docs/c?move-to=/x/c')).status, 200)
  t.is((await ask(base, 'DELETE', '/files/x?recursive=true')).status, 200)
  const found = await ask(base, 'GET', '/search?key=/docs/a&center=west')
  t.is(found.status, 200)
  t.is(found.body.key, '/docs/a')
  t.deepEqual(searched, ['west'])
  t.is((await ask(base, 'POST', '/files/docs/?mkdir&move-to=/y')).code, 'ERR_BAD_REQUEST', 'mkdir and move-to at once')
})

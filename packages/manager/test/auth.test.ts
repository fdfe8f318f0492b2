import test from 'ava'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Authorizer, parseCredentials, parseTokens } from '../src/http/auth.js'

const RW = 'a'.repeat(40)
const RO = 'b'.repeat(40)

function request (method: string, authorization?: string): { req: IncomingMessage, res: ServerResponse, headers: Record<string, string> } {
  const headers: Record<string, string> = {}
  const req = { method, headers: authorization === undefined ? {} : { authorization } } as unknown as IncomingMessage
  const res = { setHeader: (k: string, v: string) => { headers[k] = v } } as unknown as ServerResponse
  return { req, res, headers }
}

test('the tokens file: access, name, token a line; a # in a token is part of it; mistakes are named with file and line', (t) => {
  t.deepEqual(parseTokens(`# comment\nread-write admin ${RW}\n\nread-only mon ${RO} # why\n`, 'f'), [{ access: 'read-write', name: 'admin', token: RW }, { access: 'read-only', name: 'mon', token: RO }])
  t.deepEqual(parseTokens(`read-write admin ${RW}#${RO}\n`, 'f'), [{ access: 'read-write', name: 'admin', token: `${RW}#${RO}` }])
  t.throws(() => parseTokens(`write admin ${RW}`, 'f'), { code: 'ERR_BAD_TOKENS', message: /^f:1: the first field must be read-only or read-write \(the line is not shown/ })
  t.throws(() => parseTokens(`read-only ${RO}`, 'f'), { code: 'ERR_BAD_TOKENS', message: /^f:1: has 2 fields, a token line has 3/ })
  t.throws(() => parseTokens(`read-only a ${RO}\nread-only a ${RW}`, 'f'), { message: /^f:2: the name is already the name of the credential on line 1/ })
})

test('a bad line of the tokens file is named by its line, and no part of it is echoed: any field may be a token', (t) => {
  const secret = 'S3cr3t' + 'x'.repeat(40)
  const lines: Array<[string, RegExp]> = [
    [`read-write ${secret} admin`, /^tokens:3: the token \(the third field\) .*the name and the token look swapped/],
    [`${secret} admin read-write`, /^tokens:3: the first field must be read-only or read-write: the columns look swapped/],
    [`admin read-only ${secret}`, /^tokens:3: the first field .*columns look swapped/],
    [`readwrite admin ${secret}`, /^tokens:3: the first field must be read-only or read-write \(/],
    [`read-write ${secret}`, /^tokens:3: has 2 fields/],
    [`read-write admin ${secret} extra`, /^tokens:3: the secret access key \(the fourth field\) must be at least 16/],
    [`read-write admin ${secret} extra more`, /^tokens:3: has 5 fields/],
    [`read-write admin ${secret.slice(0, 20)}`, /^tokens:3: the token .* at least 32 printable characters/],
    [`read-write ad"min ${secret}`, /^tokens:3: the name \(the second field\)/]
  ]
  for (const [line, message] of lines) {
    const err = t.throws(() => parseTokens(`# tokens\nread-only mon ${RO}\n${line}\n`, 'tokens'), { code: 'ERR_BAD_TOKENS', message }, line)
    for (const part of [secret, secret.slice(0, 20), 'admin', 'readwrite', 'extra', 'more', 'ad"min']) t.false(err?.message.includes(part), `${line}: ${part} is not echoed`)
    t.is(err?.cause, undefined)
  }
})

test('a line of four fields is an S3 key pair (access, name, access key id, secret), kept apart from the bearer tokens; names are unique across both', (t) => {
  const secret = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
  const both = parseCredentials(`read-write admin ${RW}\nread-only backup AKIDBACKUP01 ${secret}\n`, 'f')
  t.deepEqual(both.tokens, [{ access: 'read-write', name: 'admin', token: RW }])
  t.deepEqual(both.s3Keys, [{ access: 'read-only', name: 'backup', accessKeyId: 'AKIDBACKUP01', secretAccessKey: secret }])
  t.deepEqual(parseTokens(`read-only backup AKIDBACKUP01 ${secret}\n`, 'f'), [], 'the native API takes no S3 key as a token')
  t.throws(() => parseCredentials(`read-write s3 AKID/BAD ${secret}`, 'f'), { code: 'ERR_BAD_TOKENS', message: /^f:1: the access key id \(the third field\)/ })
  t.throws(() => parseCredentials(`read-write admin ${RW}\nread-only admin AKIDBACKUP01 ${secret}`, 'f'), { message: /^f:2: the name is already the name of the credential on line 1/ })
})

test('without tokens only loopback is allowed; with them reads need any token and writes a read-write one', (t) => {
  t.notThrows(() => new Authorizer([], '127.0.0.1').check(request('PUT').req, request('PUT').res))
  t.throws(() => new Authorizer([], '0.0.0.0'), { code: 'ERR_BAD_TOKENS' })
  const auth = new Authorizer(parseTokens(`read-write admin ${RW}\nread-only mon ${RO}`, 'f'), '0.0.0.0')
  const none = request('GET')
  t.throws(() => auth.check(none.req, none.res), { code: 'ERR_UNAUTHORIZED' })
  t.is(none.headers['www-authenticate'], 'Bearer realm="mirrorcast"')
  for (const method of ['GET', 'HEAD']) t.is(auth.check(request(method, `Bearer ${RO}`).req, request(method).res), 'mon')
  for (const method of ['PUT', 'POST', 'DELETE']) {
    const r = request(method, `Bearer ${RO}`)
    t.throws(() => auth.check(r.req, r.res), { code: 'ERR_FORBIDDEN' })
    t.is(auth.check(request(method, `bearer ${RW}`).req, r.res), 'admin')
  }
  const wrong = request('GET', `Bearer ${RW}x`)
  t.throws(() => auth.check(wrong.req, wrong.res), { code: 'ERR_UNAUTHORIZED', message: 'the access token is not valid' })
  t.throws(() => auth.check(request('GET', `Basic ${RW}`).req, wrong.res), { code: 'ERR_UNAUTHORIZED' })
})

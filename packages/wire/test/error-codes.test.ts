import test from 'ava'
import { readFile } from 'node:fs/promises'
import { ERROR_CODES, httpStatusFor } from '../src/index.js'

test('the README lists every error code once, with the status the table gives it', async (t) => {
  const readme = await readFile(new URL('../../../../README.md', import.meta.url), 'utf8')
  const rows = [...readme.matchAll(/^\| `(ERR_[A-Z0-9_]+)` \| (\d{3}|—) \|/gm)].map((m) => [m[1], m[2] === '—' ? null : Number(m[2])])
  t.deepEqual(rows, Object.entries(ERROR_CODES).map(([code, { status }]) => [code, status]))
})

test('a code maps to its status; an unknown one (a newer member\'s) to 503, none to 500', (t) => {
  t.is(httpStatusFor('ERR_DIR_NOT_FOUND'), 404)
  t.is(httpStatusFor('ERR_NODE_NO_SPACE'), 507)
  t.is(httpStatusFor('ERR_FROM_THE_FUTURE'), 503)
  t.is(httpStatusFor(undefined), 500)
})

import test from 'ava'
import { readFile } from 'node:fs/promises'
import { S3_ERRORS } from '../src/s3/errors.js'

test('the README lists every S3 error code once, with its status, as the table gives them', async (t) => {
  const readme = await readFile(new URL('../../../../README.md', import.meta.url), 'utf8')
  const section = readme.slice(readme.indexOf('### S3 error codes'), readme.indexOf('## CLI'))
  const rows = [...section.matchAll(/^\| `([A-Za-z0-9]+)` \| (\d{3}) \|/gm)].map((m) => [m[1], Number(m[2])])
  t.deepEqual(rows, Object.entries(S3_ERRORS).map(([code, { status }]) => [code, status]))
})

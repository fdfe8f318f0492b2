import test from 'ava'
import { tolerant, until } from '../src/index.js'

test('until() returns as soon as its check holds, checking first at once', async (t) => {
  let calls = 0
  await until(() => ++calls === 3, { what: 'the third call', intervalMs: 1 })
  t.is(calls, 3)
  let once = 0
  await until(async () => { once++; return true }, { what: 'nothing', timeoutMs: 0 })
  t.is(once, 1, 'a check that holds at once is called once, even with no time left')
})

test('until() fails past its deadline with ERR_TESTKIT_TIMEOUT, saying what it waited for; a check that throws ends it with its error', async (t) => {
  const started = Date.now()
  const err = await t.throwsAsync(until(() => false, { what: 'the impossible', timeoutMs: 60, intervalMs: 10 }))
  t.is((err as { code?: string }).code, 'ERR_TESTKIT_TIMEOUT')
  t.is(err?.message, 'timed out after 60 ms waiting for the impossible')
  t.true(Date.now() - started >= 60)
  const boom = await t.throwsAsync(until(() => { throw new Error('boom') }, { what: 'x' }))
  t.is(boom?.message, 'boom')
  const bad = await t.throwsAsync(until(() => true, { what: 'x', intervalMs: 0 }))
  t.is((bad as { code?: string }).code, 'ERR_TESTKIT_BAD_OPTIONS')
})

test('tolerant() takes a check\'s error for "not yet"', async (t) => {
  let calls = 0
  await until(tolerant(async () => { if (++calls < 3) throw new Error('not up yet'); return true }), { what: 'the third call', intervalMs: 1 })
  t.is(calls, 3)
})

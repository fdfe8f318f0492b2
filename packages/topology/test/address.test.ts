import test from 'ava'
import { isLoopback } from '../src/index.js'

test('loopback: 127.0.0.0/8, ::1 and localhost', (t) => {
  t.true(isLoopback('127.0.0.1') && isLoopback('127.2.0.1') && isLoopback('::1') && isLoopback('localhost'))
  t.false(isLoopback('0.0.0.0') || isLoopback('10.1.0.1'))
})

import test from 'ava'
import { check, type Op } from '../src/checker.js'

let ids = 0
const op = (o: Omit<Op, 'id'>): Op => ({ id: ids++, ...o })
const put = (path: string, write: string, start: number, end: number, outcome: Op['outcome'] = 'ok'): Op => op({ kind: 'put', path, write, start, end, outcome })
const get = (path: string, value: string | null, start: number, end: number): Op => op({ kind: 'get', path, value, start, end, outcome: value === null ? 'absent' : 'ok' })
const del = (path: string, start: number, end: number, outcome: Op['outcome'] = 'ok'): Op => op({ kind: 'delete', path, start, end, outcome })
const mv = (path: string, to: string, start: number, end: number, outcome: Op['outcome'] = 'ok'): Op => op({ kind: 'rename', path, to, start, end, outcome })

test('a read after an acknowledged overwrite that returns the old version is stale', (t) => {
  const read = get('/a', 'w1', 4, 5)
  const r = check([put('/a', 'w1', 0, 1), put('/a', 'w2', 2, 3), read], [])
  t.is(r.counts.stale, 1)
  t.is(r.anomalies[0]?.op, read.id)
})

test('a read concurrent with an overwrite may see either version', (t) => {
  const h = [put('/a', 'w1', 0, 1), put('/a', 'w2', 2, 6), get('/a', 'w1', 3, 4), get('/a', 'w2', 3, 4)]
  t.deepEqual(check(h, []).anomalies, [])
})

test('a read of a path deleted before it began that returns the file is flagged deleted; 404 is right', (t) => {
  const r = check([put('/a', 'w1', 0, 1), del('/a', 2, 3), get('/a', 'w1', 4, 5), get('/a', null, 4, 5)], [])
  t.deepEqual(r.anomalies.map((a) => a.kind), ['deleted'])
})

test('a 404 for an acknowledged write is missing during the run and lost at the end', (t) => {
  const h = [put('/a', 'w1', 0, 1), get('/a', null, 2, 3)]
  const r = check(h, [get('/a', null, 10, 11)])
  t.deepEqual(r.anomalies.map((a) => a.kind), ['missing', 'lost'])
  t.deepEqual(r.anomalies[1]?.expected, ['w1'])
})

test('a write that failed may or may not have landed, before or after the client gave up', (t) => {
  const h = [put('/a', 'w1', 0, 1), put('/a', 'w2', 2, 3, 'error'), get('/a', 'w2', 4, 5), get('/a', 'w1', 6, 7), get('/a', 'w2', 8, 9)]
  t.deepEqual(check(h, []).anomalies, [])
})

test('a write that never began before the read cannot be seen by it', (t) => {
  const r = check([get('/a', 'w9', 0, 1), put('/a', 'w9', 2, 3)], [])
  t.deepEqual(r.anomalies.map((a) => a.kind), ['wrong'])
})

test('renames carry a file: its old path is empty, its new path holds it, along chains', (t) => {
  const h = [put('/a', 'w1', 0, 1), mv('/a', '/b', 2, 3), mv('/b', '/c', 4, 5), get('/c', 'w1', 6, 7), get('/b', null, 6, 7), get('/a', null, 6, 7)]
  t.deepEqual(check(h, []).anomalies, [])
  const bad = check([...h, get('/a', 'w1', 8, 9), get('/c', null, 8, 9)], [])
  t.deepEqual(bad.anomalies.map((a) => a.kind), ['deleted', 'missing'])
})

test('a rename replacing a file makes the replaced version stale', (t) => {
  const h = [put('/a', 'w1', 0, 1), put('/b', 'w2', 0, 1), mv('/a', '/b', 2, 3), get('/b', 'w2', 4, 5)]
  t.deepEqual(check(h, []).anomalies.map((a) => a.kind), ['stale'])
})

test('overlapping renames in both directions are bounded without looping', (t) => {
  const h = [put('/a', 'w1', 0, 1), put('/b', 'w2', 0, 1), mv('/a', '/b', 2, 5), mv('/b', '/a', 3, 6), get('/a', 'w1', 7, 8), get('/b', 'w1', 7, 8)]
  t.deepEqual(check(h, []).anomalies, [])
})

test('bytes that are no write, torn or with the wrong ETag are wrong', (t) => {
  const r = check([put('/a', 'w1', 0, 1), op({ kind: 'get', path: '/a', start: 2, end: 3, outcome: 'ok', wrong: 'sha256 matches no write' })], [])
  t.deepEqual(r.anomalies.map((a) => a.kind), ['wrong'])
})

test('a final read that fails is a loss', (t) => {
  const r = check([put('/a', 'w1', 0, 1)], [op({ kind: 'get', path: '/a', start: 2, end: 3, outcome: 'error', error: '503' })])
  t.is(r.counts.lost, 1)
})

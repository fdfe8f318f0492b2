import test from 'ava'
import { normalizePath, parentPath, baseName, isWithin } from '../src/index.js'

test('normalizePath accepts canonical paths and one trailing slash', (t) => {
  t.is(normalizePath('/'), '/')
  t.is(normalizePath('/a/b.txt'), '/a/b.txt')
  t.is(normalizePath('/a/b/'), '/a/b')
})

test('normalizePath refuses traversal, NUL, empty segments and long names with ERR_BAD_PATH', (t) => {
  for (const bad of ['a/b', '/a/../b', '/a/./b', '/..', '/a//b', '/a\0b', '/' + 'x'.repeat(256), '/' + 'a/'.repeat(2100), 42]) {
    const err = t.throws(() => normalizePath(bad))
    t.is((err as { code?: string }).code, 'ERR_BAD_PATH')
  }
})

test('parentPath, baseName and isWithin', (t) => {
  t.is(parentPath('/a/b'), '/a')
  t.is(parentPath('/a'), '/')
  t.is(baseName('/a/b'), 'b')
  t.true(isWithin('/a/b', '/a'))
  t.false(isWithin('/ab', '/a'))
  t.true(isWithin('/x', '/'))
})

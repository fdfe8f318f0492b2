import type { Entry, FileEntry } from '@mirrorcast/wire'
import type { DirectoryManager } from '../directory/directory-manager.js'
import { bucketPath, decodeSegment, encodeSegment } from './keys.js'
import { S3_DIR, entriesOf } from './store.js'

export interface ListRequest {
  bucket: string
  prefix: string
  delimiter: string
  /** Keys up to this one (and prefixes equal to it) are left out: a continuation token's or start-after's key. */
  after: string
  maxKeys: number
}

export interface ListResult {
  objects: Array<{ key: string, entry: FileEntry }>
  prefixes: string[]
  /** The last key or prefix given, when more follow: where the next page starts. */
  next: string | undefined
}

type Lister = Pick<DirectoryManager, 'list'>

/**
 * A page of a bucket's keys in S3's order (UTF-8 byte order of the whole
 * key), from the tree. Within a directory, a subdirectory sorts as its name
 * with a `/` after it, which is where its keys fall among its siblings' (so
 * `a-c` comes before `a/b`): walking the tree depth first in that order gives
 * the keys in key order, and only what the prefix and `after` leave in is read.
 */
export async function listObjects (dirs: Lister, req: ListRequest): Promise<ListResult> {
  const result: ListResult = { objects: [], prefixes: [], next: undefined }
  const { dir, keyPrefix } = startingDirectory(req.bucket, req.prefix)
  let last = ''
  let count = 0
  for await (const item of walk(dirs, dir, keyPrefix, req)) {
    if (count === req.maxKeys) {
      result.next = last
      break
    }
    if (item.kind === 'object') result.objects.push({ key: item.key, entry: item.entry })
    else result.prefixes.push(item.key)
    last = item.key
    count++
  }
  return result
}

/** The deepest directory every key with the prefix lies in, and the key prefix its own keys share. */
function startingDirectory (bucket: string, prefix: string): { dir: string, keyPrefix: string } {
  const whole = prefix.split('/').slice(0, -1)
  return { dir: [bucketPath(bucket), ...whole.map(encodeSegment)].join('/'), keyPrefix: whole.map((s) => s + '/').join('') }
}

type Item = { kind: 'object', key: string, entry: FileEntry } | { kind: 'prefix', key: string }

async function * walk (dirs: Lister, dir: string, keyPrefix: string, req: ListRequest): AsyncGenerator<Item> {
  const children = await sortedChildren(dirs, dir, keyPrefix)
  let lastPrefix: string | undefined
  for (const child of children) {
    const key = child.sortKey
    if (!key.startsWith(req.prefix) && !(child.entry.type === 'dir' && req.prefix.startsWith(key))) continue
    if (child.entry.type === 'file') {
      const rolled = rollUp(key, req)
      if (rolled !== undefined) {
        if (rolled !== lastPrefix && includesPrefix(rolled, req.after)) yield { kind: 'prefix', key: rolled }
        lastPrefix = rolled
      } else if (isAfter(key, req.after)) yield { kind: 'object', key, entry: child.entry }
      continue
    }
    // every key below starts with `key` and comes after it: none of them is past `after` when `after` is beyond them all
    if (!isAfter(key, req.after) && !req.after.startsWith(key)) continue
    const rolled = req.delimiter === '/' && key.startsWith(req.prefix) ? key : undefined
    if (rolled !== undefined) {
      if (includesPrefix(rolled, req.after)) yield { kind: 'prefix', key: rolled }
      lastPrefix = rolled
      continue
    }
    for await (const item of walk(dirs, child.entry.path, key, req)) {
      if (item.kind === 'prefix') {
        if (item.key === lastPrefix) continue
        lastPrefix = item.key
      }
      yield item
    }
  }
}

/** The common prefix a key rolls up into, with a delimiter: the prefix and what follows up to the delimiter's first occurrence after it. */
function rollUp (key: string, req: ListRequest): string | undefined {
  if (req.delimiter === '') return undefined
  const at = key.indexOf(req.delimiter, req.prefix.length)
  return at < 0 ? undefined : key.slice(0, at + req.delimiter.length)
}

function isAfter (key: string, after: string): boolean {
  return after === '' || compareKeys(key, after) > 0
}

/** A common prefix is given unless the page before ended on it, or after everything it holds. */
function includesPrefix (prefix: string, after: string): boolean {
  return after === '' || after.startsWith(prefix) ? after !== prefix : compareKeys(prefix, after) > 0
}

/** UTF-8 byte order, S3's order of keys. */
export function compareKeys (a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

interface Child { sortKey: string, entry: Entry }

async function sortedChildren (dirs: Lister, dir: string, keyPrefix: string): Promise<Child[]> {
  const children: Child[] = []
  // a prefix naming no directory (or a file) holds no keys: entries() gives none
  for await (const entry of entriesOf(dirs, dir)) {
    const name = entry.path.slice(entry.path.lastIndexOf('/') + 1)
    if (keyPrefix === '' && name === S3_DIR) continue
    children.push({ sortKey: keyPrefix + decodeSegment(name) + (entry.type === 'dir' ? '/' : ''), entry })
  }
  return children.sort((a, b) => compareKeys(a.sortKey, b.sortKey))
}

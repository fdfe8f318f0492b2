import { MAX_NAME_BYTES, type Change, type FileEntry } from '@mirrorcast/wire'

/*
 * Paths as long as the path rules allow (4,096 bytes, names of 255), for the
 * tests of what travels in pages: a listing, a log, a moved subtree or the
 * removed files of such paths are far larger than one frame.
 */

/** A directory of `bytes` bytes below `/top`, made of 250-byte names; 3,744 by default, so that a longName() below it makes a path of 4,000 bytes. */
export function deepDir (top: string, bytes = 3744): string {
  let dir = `/${top}`
  while (dir.length < bytes - 251) dir += '/' + 'd'.repeat(250)
  return dir + '/' + 'e'.repeat(bytes - dir.length - 1)
}

/** The i-th name of a directory: 255 bytes, the most a name may take, in the order of i. */
export function longName (i: number): string {
  return `f${String(i).padStart(5, '0')}`.padEnd(MAX_NAME_BYTES, 'x')
}

/** The file id of the i-th file of longFiles(). */
export function longFileId (i: number): string {
  return (i + 1).toString(16).padStart(32, '0')
}

/**
 * The changes that make `dir` and `count` files named longName(0…) in it,
 * numbered from 1: what a directory server replays, in one transaction, much
 * faster than as many requests.
 */
export function longFiles (dir: string, count: number): Change[] {
  const changes: Change[] = [{ op: 'mkdir', seq: 1, mtime: 1, path: dir }]
  for (let i = 0; i < count; i++) {
    const seq = i + 2
    const entry: FileEntry = { type: 'file', path: `${dir}/${longName(i)}`, fileId: longFileId(i), size: i, sha256: 'a'.repeat(64), version: seq, mtime: 2, replicas: [{ node: 'node-1', center: 'east', slot: 1 }, { node: 'node-2', center: 'west', slot: 1 }] }
    changes.push({ op: 'put', seq, mtime: 2, entry })
  }
  return changes
}

import { encodedBytes, isWithin, MAX_PAGE_BYTES, PageBudget, pageFrom, type Entry, type FileEntry } from '@mirrorcast/wire'
import { DirectoryError, DirectoryErrorCode } from './errors.js'

/*
 * What a directory server answers in pages, the same for the LMDB namespace
 * and the test kit's in-memory one: every answer stays below the frame limit
 * (MAX_PAGE_BYTES of entries), however long its paths.
 */

/** A cross-partition move whose subtree left this partition and is not yet known to have arrived. */
export interface PendingMove {
  intent: string
  path: string
  to: string
  mtime: number
  tree: Entry[]
}

/** A pending move as `dir.intents` lists it; its subtree is read in pages (`dir.intent-tree`). */
export interface PendingMoveSummary {
  intent: string
  path: string
  to: string
  mtime: number
  entries: number
}

/** Pending moves, oldest first, as many as fit one page. */
export function pendingPage (moves: Iterable<PendingMoveSummary>): { intents: PendingMoveSummary[], more: boolean } {
  const summaries = [...moves].sort((a, b) => a.mtime - b.mtime).map(({ intent, path, to, mtime, entries }) => ({ intent, path, to, mtime, entries }))
  const { items, more } = pageFrom(summaries)
  return { intents: items, more }
}

/**
 * A page of a pending move's subtree from entry `from` on (`rest` gives the
 * entries from there, read only as far as the page goes): the slices its
 * move-in takes.
 */
export function treePage (move: { entries: number } | undefined, intent: string, from: number, rest: () => Iterable<Entry>): { tree: Entry[], more: boolean } {
  if (move === undefined) throw new DirectoryError(DirectoryErrorCode.NOT_FOUND, `no move ${intent} is pending here`)
  if (from >= move.entries) throw new DirectoryError(DirectoryErrorCode.INVALID, `the subtree of move ${intent} holds ${move.entries} entries, none from ${from}`)
  const page = new PageBudget()
  const tree: Entry[] = []
  for (const e of rest()) {
    if (!page.admit(e)) break
    tree.push(e)
  }
  return { tree, more: from + tree.length < move.entries }
}

/**
 * Refuses, before anything is staged, a slice of a moved subtree that leaves
 * the subtree's top or that is larger than a page: its change could not travel
 * to the twin in one frame.
 */
export function checkSlice (path: string, tree: Entry[]): void {
  if (tree.some((e) => !isWithin(e.path, path))) throw new DirectoryError(DirectoryErrorCode.INVALID, `a moved tree must start at ${path} and stay below it`)
  const bytes = encodedBytes(tree)
  if (bytes > MAX_PAGE_BYTES) {
    throw new DirectoryError(DirectoryErrorCode.TOO_LARGE, `a slice of ${bytes} bytes of the subtree at ${path} is above the ${MAX_PAGE_BYTES} one message carries: send it in smaller slices`)
  }
}

/** The refusals of a move-in whose slices do not make a subtree: one missing, an entry before its directory, no top. */
export const sliceMissing = (intent: string, part: number): DirectoryError => new DirectoryError(DirectoryErrorCode.INVALID, `slice ${part} of the subtree moved by ${intent} never arrived`)
export const listedBeforeItsDirectory = (path: string): DirectoryError => new DirectoryError(DirectoryErrorCode.INVALID, `moved tree lists ${path} before its directory`)
export const noTop = (path: string): DirectoryError => new DirectoryError(DirectoryErrorCode.INVALID, `a moved tree must start at ${path} and stay below it`)

// 8: removals whose removed files did not fit their answer, kept (in memory) until the manager
// has read them, which it does at once; one it never reads (it died) is dropped as newer ones
// come. At most 8 lists of 10,000 entries of some 5 KiB
export const MAX_PARKED_REMOVALS = 8

/** A removal's answer: its removed files, or the first page of them and `more` when they do not fit one. */
export function removedAnswer (removed: FileEntry[]): { removed: FileEntry[], more?: true } {
  const page = pageFrom(removed)
  return page.more ? { removed: page.items, more: true } : { removed }
}

/** A page of parked removed files, from index `from` on. */
export function removedPage (parked: FileEntry[] | undefined, seq: number, from: number): { removed: FileEntry[], more: boolean } {
  if (parked === undefined) throw new DirectoryError(DirectoryErrorCode.NOT_FOUND, `the removed files of change ${seq} are not held here (read already, or dropped)`)
  const { items, more } = pageFrom(parked, from)
  return { removed: items, more }
}

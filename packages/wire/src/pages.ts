import { encodedBytes } from './codec.js'
import { MAX_PAGE_BYTES } from './limits.js'
import { MAX_LIST_ENTRIES } from './messages.js'

/**
 * What one page holds so far (a listing, a change-log page, an apply batch, a
 * slice of a moved subtree): it is full at MAX_LIST_ENTRIES items or when the
 * next item would take its encoded size past MAX_PAGE_BYTES, so the message
 * that carries it never reaches the frame limit, whatever the paths' length.
 */
export class PageBudget {
  private bytes = 0
  private items = 0
  private readonly maxBytes: number
  private readonly maxItems: number

  constructor (options: { maxBytes?: number, maxItems?: number } = {}) {
    this.maxBytes = options.maxBytes ?? MAX_PAGE_BYTES
    this.maxItems = options.maxItems ?? MAX_LIST_ENTRIES
  }

  /**
   * Whether `item` joins the page; if it does, it is counted. The first item
   * always does, so a reader paging through always moves on: every entry and
   * every change is far smaller than the budget (paths are bounded, a moved
   * subtree travels in slices of at most the budget).
   */
  admit (item: unknown): boolean {
    if (this.items >= this.maxItems) return false
    const size = encodedBytes(item)
    if (this.items > 0 && this.bytes + size > this.maxBytes) return false
    this.bytes += size
    this.items++
    return true
  }

  /** Encoded bytes of the items admitted. */
  get size (): number {
    return this.bytes
  }

  get count (): number {
    return this.items
  }
}

/** The items from index `from` that fit one page, and whether any follow them. */
export function pageFrom<T> (items: readonly T[], from = 0, budget = new PageBudget()): { items: T[], more: boolean } {
  let end = from
  while (end < items.length && budget.admit(items[end])) end++
  return { items: items.slice(from, end), more: end < items.length }
}

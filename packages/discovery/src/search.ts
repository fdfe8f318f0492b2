import { randomBytes } from 'node:crypto'
import type { AnyEnvelope, MessageBody } from '@mirrorcast/wire'
import type { MulticastChannel } from './multicast-channel.js'

export type SearchKind = MessageBody<'search'>['kind']
export type SearchReply = MessageBody<'search.reply'>
export type Identity = Pick<SearchReply, 'id' | 'role' | 'center' | 'slot' | 'address' | 'port' | 'bootId'>
/** What a holder adds to its reply: size, sha256 or version of what it holds. */
export type Holding = Pick<SearchReply, 'size' | 'sha256' | 'version'>

// 200 ms: holders spread their replies over this window unless the asker says otherwise
export const DEFAULT_SEARCH_WINDOW_MS = 200

export interface SearchOptions {
  kind: SearchKind
  key: string
  /** Only members of this center answer; all centers when absent. */
  center?: string
  /** Holders reply after a random delay in [0, windowMs]. */
  windowMs?: number
  /** Stop collecting at this many ms after asking. */
  timeoutMs?: number
  /** Resolve at the first reply instead of waiting for the deadline. */
  first?: boolean
  /** Only replies this accepts are collected (and count as the first). */
  accept?: (reply: SearchReply) => boolean
  signal?: AbortSignal
}

export interface SearchResult {
  queryId: string
  replies: Array<{ reply: SearchReply, elapsedMs: number }>
}

/**
 * Asks the group "who holds <key>?" and collects the holders' unicast replies
 * until the deadline (or the first one).
 */
export async function search (channel: MulticastChannel, options: SearchOptions): Promise<SearchResult> {
  const windowMs = options.windowMs ?? DEFAULT_SEARCH_WINDOW_MS
  const timeoutMs = options.timeoutMs ?? windowMs + 300
  const queryId = randomBytes(8).toString('hex')
  const started = performance.now()
  const replies: SearchResult['replies'] = []
  const seen = new Set<string>()
  const { address, port } = channel.replyAddress
  return await new Promise<SearchResult>((resolve, reject) => {
    const finish = (): void => {
      clearTimeout(timer)
      channel.off('message', onMessage)
      options.signal?.removeEventListener('abort', onAbort)
      resolve({ queryId, replies })
    }
    const onAbort = (): void => finish()
    const onMessage = (msg: AnyEnvelope): void => {
      if (msg.t !== 'search.reply' || msg.body.queryId !== queryId || seen.has(msg.body.id)) return
      if (options.accept !== undefined && !options.accept(msg.body)) return
      seen.add(msg.body.id)
      replies.push({ reply: msg.body, elapsedMs: performance.now() - started })
      if (options.first === true) finish()
    }
    const timer = setTimeout(finish, timeoutMs)
    channel.on('message', onMessage)
    options.signal?.addEventListener('abort', onAbort, { once: true })
    const body: MessageBody<'search'> = { cluster: channel.options.cluster, queryId, kind: options.kind, key: options.key, replyAddress: address, replyPort: port, windowMs, ...(options.center === undefined ? {} : { center: options.center }) }
    channel.multicast('search', body).catch((err: Error) => {
      clearTimeout(timer)
      channel.off('message', onMessage)
      reject(err)
    })
  })
}

/**
 * Answers searches for what this member holds: `lookup` says whether it holds
 * the key; the reply goes by unicast after a random delay in [0, W] so that
 * hundreds of holders do not answer at once.
 */
export class SearchResponder {
  private readonly channel: MulticastChannel
  private readonly identity: () => Identity
  private readonly lookup: (kind: SearchKind, key: string) => Promise<Holding | undefined>
  private readonly timers = new Set<NodeJS.Timeout>()
  private started = false
  answered = 0
  private readonly onMessage = (msg: AnyEnvelope): void => {
    if (msg.t === 'search') void this.answer(msg.body)
  }

  constructor (channel: MulticastChannel, identity: () => Identity, lookup: (kind: SearchKind, key: string) => Promise<Holding | undefined>) {
    this.channel = channel
    this.identity = identity
    this.lookup = lookup
  }

  start (): void {
    if (this.started) return
    this.started = true
    this.channel.on('message', this.onMessage)
  }

  close (): void {
    this.started = false
    this.channel.off('message', this.onMessage)
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
  }

  private async answer (q: MessageBody<'search'>): Promise<void> {
    const me = this.identity()
    if (q.center !== undefined && q.center !== me.center) return
    let holding: Holding | undefined
    try {
      holding = await this.lookup(q.kind, q.key)
    } catch (err) {
      this.channel.options.logger.warn('search lookup failed', { kind: q.kind, error: (err as Error).message })
      return
    }
    if (holding === undefined || !this.started) return
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      const reply: SearchReply = { cluster: this.channel.options.cluster, queryId: q.queryId, ...me, ...holding }
      this.channel.sendTo('search.reply', reply, q.replyPort, q.replyAddress)
        .then(() => { this.answered++ })
        .catch((err: Error) => this.channel.options.logger.warn('search reply failed', { error: err.message }))
    }, Math.random() * q.windowMs)
    this.timers.add(timer)
  }
}

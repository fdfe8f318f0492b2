import { search, type MulticastChannel } from '@mirrorcast/discovery'
import { RpcClient } from '@mirrorcast/rpc'
import { memberName, round } from './listen.js'
import type { Check } from './report.js'
import type { DiagSettings } from './settings.js'
import type { Known } from './twins.js'

// 100 ms: holders spread their replies over this window
const SEARCH_WINDOW_MS = 100
// 1.5 s: replies later than this would be too late for a manager too
const SEARCH_TIMEOUT_MS = 1500

interface Holder { who: string, address: string, ms: number }

/**
 * A test search for a known file id, the way a manager looks for a file after
 * failover: by multicast when it is on, else point-to-point to every node.
 */
export async function searchCheck (s: DiagSettings, channel: MulticastChannel | undefined, known: Known[]): Promise<Check[]> {
  if (s.fileId === undefined) return [{ status: 'warn', check: 'search', message: 'no file id was given, so no test search was made', advice: 'pass --file-id <id> (the "id" of `mirrorcast stat <path>`)' }]
  const method = channel === undefined ? 'point-to-point' : 'multicast'
  const holders = channel === undefined ? await askEveryNode(s, s.fileId, known) : await searchGroup(channel, s.fileId)
  const list = holders.map((h) => `${h.who} at ${h.address} (${round(h.ms, 1)} ms)`).join(', ')
  const data = { fileId: s.fileId, method, holders }
  if (holders.length === 0) {
    return [{ status: 'fail', check: 'search', subject: s.fileId, message: `nobody answered a ${method} search within ${SEARCH_TIMEOUT_MS / 1000} s`, advice: channel === undefined ? 'the file does not exist, or no node holding it answers by unicast' : `the file does not exist, or the search does not reach its holders, or their unicast replies do not reach this host (UDP to ${channel.replyAddress.address}:${channel.replyAddress.port})`, data }]
  }
  if (holders.length === 1) return [{ status: 'warn', check: 'search', subject: s.fileId, message: `only ${list} answered the ${method} search: the twin copy did not`, advice: 'the twin is failed over or lost the copy; the manager replays its repair journal when the twin is back', data }]
  return [{ status: 'ok', check: 'search', subject: s.fileId, message: `${method} search answered by ${list}`, data }]
}

async function searchGroup (channel: MulticastChannel, fileId: string): Promise<Holder[]> {
  const { replies } = await search(channel, { kind: 'blob', key: fileId, windowMs: SEARCH_WINDOW_MS, timeoutMs: SEARCH_TIMEOUT_MS })
  return replies.map((r) => ({ who: `${memberName(r.reply)} (${r.reply.id})`, address: `${r.reply.address}:${r.reply.port}`, ms: r.elapsedMs }))
}

async function askEveryNode (s: DiagSettings, fileId: string, known: Known[]): Promise<Holder[]> {
  const nodes = known.filter((k) => k.role === 'storage')
  const answers = await Promise.all(nodes.map(async (k) => {
    const client = new RpcClient({ key: s.key, selfId: 'netdiag', host: k.address, port: k.port, connectTimeoutMs: SEARCH_TIMEOUT_MS, requestTimeoutMs: SEARCH_TIMEOUT_MS })
    const started = performance.now()
    try {
      await client.request('blob.stat', { fileId })
      return { who: `${memberName(k)} (${k.id})`, address: `${k.address}:${k.port}`, ms: performance.now() - started }
    } catch {
      return undefined
    } finally {
      await client.close()
    }
  }))
  return answers.filter((h): h is Holder => h !== undefined)
}

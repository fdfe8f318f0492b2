import { connect } from 'node:net'
import { once } from 'node:events'
import { isLoopback } from '@mirrorcast/topology'
import { RpcClient, RemoteError } from '@mirrorcast/rpc'
import { RpcErrorCode, type MessageBody } from '@mirrorcast/wire'
import { memberName, round, type Heard, type HeardMember } from './listen.js'
import type { Check } from './report.js'
import type { DiagSettings, Expected } from './settings.js'

// 1.5 s: a LAN peer that has not answered by then is as good as unreachable for the manager
const PROBE_TIMEOUT_MS = 1500

export interface Probe {
  reachable: boolean
  /** Round trip of one request on an open session (ms). */
  rttMs?: number
  /** Connect plus handshake (ms). */
  connectMs?: number
  /** Who answered, from its hello. */
  identity?: MessageBody<'hello'>
  error?: { code: string, message: string }
  /** Not probed: a manager whose HTTP API listens on its own loopback. */
  loopbackOnly?: boolean
}

/**
 * Asks a member over the node protocol who it is and how it is (node.stats or
 * dir.info), timing the connect and one round trip on the open session.
 */
export async function probeMember (s: DiagSettings, address: string, port: number, role?: string): Promise<Probe> {
  const client = new RpcClient({ key: s.key, selfId: 'netdiag', host: address, port, connectTimeoutMs: PROBE_TIMEOUT_MS, requestTimeoutMs: PROBE_TIMEOUT_MS, maxIdle: 1 })
  const ask = async (): Promise<void> => {
    const directory = role === 'directory' || client.peer?.role === 'directory'
    try {
      if (directory) await client.request('dir.info', {})
      else await client.request('node.stats', {})
    } catch (err) {
      // A refusal in the peer's own words still is an answer over the node protocol.
      if (!(err instanceof RemoteError)) throw err
    }
  }
  try {
    const started = performance.now()
    await ask()
    const connectMs = performance.now() - started
    const again = performance.now()
    await ask()
    return { reachable: true, rttMs: performance.now() - again, connectMs, ...(client.peer === undefined ? {} : { identity: client.peer }) }
  } catch (err) {
    const e = err as { code?: string, message: string }
    return { reachable: false, error: { code: e.code ?? 'ERR', message: e.message } }
  } finally {
    await client.close()
  }
}

/** A manager speaks HTTP, not the node protocol: its port accepting a connection is what can be checked. */
async function probeTcp (address: string, port: number): Promise<Probe> {
  const socket = connect({ host: address, port })
  const started = performance.now()
  const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS)
  try {
    await Promise.race([once(socket, 'connect'), once(socket, 'error').then(([err]) => { throw err })])
    return { reachable: true, connectMs: performance.now() - started }
  } catch (err) {
    const e = err as { code?: string, message: string }
    return { reachable: false, error: { code: e.code ?? 'ERR', message: e.message } }
  } finally {
    clearTimeout(timer)
    socket.destroy()
  }
}

interface Target { address: string, port: number, heard?: HeardMember, expected?: Expected }

/** Every member heard or expected, probed by unicast; the verdict combines both views. */
export async function unicastChecks (s: DiagSettings, heard: Heard, expected: Expected[]): Promise<{ checks: Check[], probes: Map<string, Probe> }> {
  const targets = new Map<string, Target>()
  for (const m of heard.members.values()) targets.set(`${m.address}:${m.port}`, { address: m.address, port: m.port, heard: m })
  for (const e of expected) {
    const key = `${e.address}:${e.port}`
    const t = targets.get(key)
    if (t === undefined) targets.set(key, { address: e.address, port: e.port, expected: e })
    else t.expected ??= e
  }
  const list = [...targets.values()].sort((a, b) => subjectOf(a).localeCompare(subjectOf(b)))
  const probes = await Promise.all(list.map(async (t) => {
    if (t.heard?.role !== 'manager') return await probeMember(s, t.address, t.port, t.heard?.role)
    // A manager's HTTP API on loopback is reachable on its own host only, by design.
    if (isLoopback(t.address) && !isLoopback(s.interface)) return { reachable: false, loopbackOnly: true }
    return await probeTcp(t.address, t.port)
  }))
  return {
    checks: list.map((t, i) => verdict(s, t, probes[i] as Probe)),
    probes: new Map(list.map((t, i) => [`${t.address}:${t.port}`, probes[i] as Probe]))
  }
}

function subjectOf (t: Target): string {
  return t.heard !== undefined ? memberName(t.heard) : t.expected?.name ?? `${t.address}:${t.port}`
}

function verdict (s: DiagSettings, t: Target, p: Probe): Check {
  const where = `${t.address}:${t.port}`
  const subject = p.identity !== undefined && t.heard === undefined ? memberName(p.identity) : subjectOf(t)
  const data = {
    address: t.address,
    port: t.port,
    heard: t.heard !== undefined,
    reachable: p.reachable,
    rttMs: p.rttMs === undefined ? undefined : round(p.rttMs, 2),
    connectMs: p.connectMs === undefined ? undefined : round(p.connectMs, 2),
    error: p.error,
    answeredAs: p.identity?.id
  }
  const timing = p.rttMs !== undefined ? `round trip ${round(p.rttMs, 2)} ms (connect and handshake ${round(p.connectMs ?? 0, 2)} ms)` : `port open in ${round(p.connectMs ?? 0, 2)} ms`
  const check = (status: Check['status'], message: string, advice?: string): Check => ({ status, check: 'unicast', subject, message, ...(advice === undefined ? {} : { advice }), data })
  if (p.loopbackOnly === true) return check('ok', `heard on the group; its HTTP API listens on ${where}, the loopback of its own host (no access tokens needed there)`)
  if (t.heard !== undefined) {
    if (!p.reachable) return check('fail', `heard on the group, but ${where} does not answer: ${p.error?.message ?? ''}`, `open TCP ${t.port} to ${t.address} from here (a firewall drops it), or make the member announce the address it listens on`)
    if (p.identity !== undefined && p.identity.id !== t.heard.id) return check('fail', `${where} answers as ${p.identity.id}, but ${t.heard.id} announces that address`, 'two processes claim one address: give each its own address or port')
    return check('ok', `${where} answers by unicast and is heard on the group; ${timing}`)
  }
  if (p.reachable) {
    const who = p.identity === undefined ? '' : ` as ${memberName(p.identity)} (${p.identity.id})`
    if (!s.multicast) return check('ok', `${where} answers${who}; ${timing} (multicast is off: it is not expected on the group)`)
    return check('fail', `${where} answers by unicast${who}, but none of its announcements was heard on the group`, `multicast is blocked or filtered between ${t.address} and this host: a firewall rule on UDP ${s.port} or the group ${s.group}, IGMP snooping without a querier, TTL 0 or another group/port/interface on that member; where multicast cannot be had, list static peers (--peers)`)
  }
  if (p.error?.code === RpcErrorCode.HANDSHAKE) return check('fail', `${where} answers, but not with this cluster's key: ${p.error.message}`, `give the process at ${where} this cluster's key file`)
  return check('fail', `not heard on the group and ${where} does not answer: ${p.error?.message ?? ''}`, `the process at ${where} is down or the network to it is cut: start it (systemctl start), check its log, check the link`)
}

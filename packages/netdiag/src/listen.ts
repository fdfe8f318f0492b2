import { randomBytes } from 'node:crypto'
import { DEFAULT_MAX_SKEW_MS, MulticastChannel, type DropReason, type RosterMember } from '@mirrorcast/discovery'
import type { AnyEnvelope, MessageBody } from '@mirrorcast/wire'
import type { Check } from './report.js'
import type { DiagSettings } from './settings.js'

/** One member as heard on the group: what it announces, and how its datagrams arrive. */
export interface HeardMember extends Pick<RosterMember, 'id' | 'role' | 'center' | 'slot' | 'address' | 'port' | 'bootId' | 'heartbeatMs'> {
  /** Source address of its datagrams. */
  from: string
  received: number
  firstAt: number
  lastAt: number
  /** Sequence numbers per boot: a restart starts a new run. */
  runs: Map<string, { min: number, max: number, count: number }>
  /** Its clock minus ours, per datagram (ms). */
  skews: number[]
  saidGoodbye: boolean
}

export interface Heard {
  members: Map<string, HeardMember>
  /** Refused datagrams by reason and source address. */
  drops: Map<string, { reason: DropReason, from: string, count: number }>
}

// 1 s: clocks further apart than this are worth fixing before they reach the 30 s limit
const SKEW_WARN_MS = 1000
// 1 %: any steady loss on a LAN segment deserves a look
const LOSS_WARN = 0.01
// 30 %: the failure detector will call such a member dead now and then
const LOSS_FAIL = 0.3
// 50 %: fewer heartbeats than half the announced rate mean a starved or paused process
const RATE_WARN = 0.5

/**
 * Joins the group with the cluster's own discovery code, on the configured
 * interface, and records every datagram for `listenMs`. The channel accepts
 * any timestamp (skew is measured here, not refused) and stays open for the
 * test search; the caller closes it.
 */
export async function listen (s: DiagSettings): Promise<{ channel: MulticastChannel, heard: Heard }> {
  const channel = new MulticastChannel(`netdiag-${randomBytes(4).toString('hex')}`, { key: s.key, cluster: s.cluster, group: s.group, searchGroup: s.searchGroup, port: s.port, interface: s.interface, ttl: s.ttl, maxSkewMs: Number.MAX_SAFE_INTEGER, peerPort: 0 })
  const heard: Heard = { members: new Map(), drops: new Map() }
  channel.on('message', (msg, rinfo) => observe(heard, msg, rinfo.address))
  channel.on('drop', (reason, rinfo) => {
    const k = `${reason} ${rinfo.address}`
    const d = heard.drops.get(k) ?? { reason, from: rinfo.address, count: 0 }
    d.count++
    heard.drops.set(k, d)
  })
  await channel.start()
  await new Promise((resolve) => setTimeout(resolve, s.listenMs))
  return { channel, heard }
}

function observe (heard: Heard, msg: AnyEnvelope, from: string): void {
  const now = Date.now()
  if (msg.t === 'goodbye') {
    const m = heard.members.get(msg.body.id)
    if (m !== undefined) m.saidGoodbye = true
    return
  }
  if (msg.t !== 'announce') return
  const a: MessageBody<'announce'> = msg.body
  let m = heard.members.get(a.id)
  if (m === undefined) {
    m = {
      id: a.id,
      role: a.role,
      center: a.center,
      slot: a.slot,
      address: a.address,
      port: a.port,
      bootId: a.bootId,
      heartbeatMs: a.heartbeatMs,
      from,
      received: 0,
      firstAt: now,
      lastAt: now,
      runs: new Map(),
      skews: [],
      saidGoodbye: false
    }
    heard.members.set(a.id, m)
  }
  Object.assign(m, { role: a.role, center: a.center, slot: a.slot, address: a.address, port: a.port, bootId: a.bootId, heartbeatMs: a.heartbeatMs, from, lastAt: now })
  m.received++
  m.skews.push(msg.ts - now)
  const run = m.runs.get(a.bootId)
  if (run === undefined) m.runs.set(a.bootId, { min: msg.seq, max: msg.seq, count: 1 })
  else Object.assign(run, { min: Math.min(run.min, msg.seq), max: Math.max(run.max, msg.seq), count: run.count + 1 })
}

/** east/node1, west/dir1; a manager by its id, since it has no slot of its own. */
export function memberName (m: { id: string, role: string, center: string, slot: number }): string {
  return m.role === 'manager' ? `manager ${m.id}` : `${m.center}/${m.role === 'storage' ? 'node' : 'dir'}${m.slot}`
}

/** Sequence numbers skipped: datagrams sent but never heard. */
export function lossOf (m: HeardMember): { lost: number, sent: number } {
  let lost = 0
  let sent = 0
  for (const r of m.runs.values()) {
    sent += r.max - r.min + 1
    lost += r.max - r.min + 1 - r.count
  }
  return { lost, sent }
}

function median (xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? 0
}

/** The "members" line and one line per member heard. */
export function memberChecks (s: DiagSettings, heard: Heard): Check[] {
  const all = [...heard.members.values()].sort((a, b) => memberName(a).localeCompare(memberName(b)))
  const byRole = (role: string): number => all.filter((m) => m.role === role).length
  const counts = `${byRole('storage')} storage node(s), ${byRole('directory')} directory server(s), ${byRole('manager')} manager(s)`
  const summary: Check = all.length === 0
    ? { status: 'fail', check: 'listen', message: `nothing was heard on ${s.group}:${s.port} through ${s.interface} in ${s.listenMs / 1000} s`, advice: 'either no member is running, or multicast does not reach this host: check the members run with the same group, port and cluster name, TTL ≥ 1 on the senders, no firewall dropping UDP ' + String(s.port) + ', and an IGMP querier on switches that snoop IGMP' }
    : { status: 'ok', check: 'listen', message: `heard ${counts} in ${s.listenMs / 1000} s`, data: { storage: byRole('storage'), directory: byRole('directory'), manager: byRole('manager') } }
  return [summary, ...all.map((m) => memberCheck(m))]
}

function memberCheck (m: HeardMember): Check {
  const { lost, sent } = lossOf(m)
  const loss = sent === 0 ? 0 : lost / sent
  const skew = median(m.skews)
  const spanS = (m.lastAt - m.firstAt) / 1000
  const rate = spanS > 0 ? (m.received - 1) / spanS : 0
  const expected = 1000 / m.heartbeatMs
  const data = {
    id: m.id,
    role: m.role,
    center: m.center,
    slot: m.slot,
    address: m.address,
    port: m.port,
    from: m.from,
    bootId: m.bootId,
    heartbeatsPerSecond: round(rate),
    expectedPerSecond: round(expected),
    received: m.received,
    lost,
    loss: round(loss, 3),
    skewMs: Math.round(skew),
    boots: m.runs.size
  }
  const base = `${m.id} at ${m.address}:${m.port}, boot ${m.bootId}: ${round(rate)} heartbeats/s (announces ${round(expected)}/s), loss ${round(loss * 100)} % (${lost} of ${sent}), clock ${skew >= 0 ? '+' : ''}${Math.round(skew)} ms`
  const check = (status: Check['status'], why: string, advice?: string): Check => ({ status, check: 'member', subject: memberName(m), message: `${base}${why}`, ...(advice === undefined ? {} : { advice }), data })
  if (Math.abs(skew) > DEFAULT_MAX_SKEW_MS) return check('fail', ` — its clock is ${round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'ahead' : 'behind'}: every member drops its datagrams as stale (limit ${DEFAULT_MAX_SKEW_MS / 1000} s)`, `synchronise the clock of ${m.address} (chrony or systemd-timesyncd against the same NTP servers as the rest)`)
  if (loss >= LOSS_FAIL) return check('fail', ' — heavy datagram loss: the failure detector will call it dead at times', `find the loss between ${m.address} and this host (switch port errors, a saturated link, tc/netem, a full receive buffer)`)
  if (Math.abs(skew) > SKEW_WARN_MS) return check('warn', ` — its clock is off by ${round(Math.abs(skew) / 1000)} s; at ${DEFAULT_MAX_SKEW_MS / 1000} s its datagrams will be dropped as stale`, `synchronise the clock of ${m.address} with NTP`)
  if (loss > LOSS_WARN) return check('warn', ' — datagrams are being lost', `look for loss between ${m.address} and this host`)
  if (m.runs.size > 1) return check('warn', ` — it restarted while we listened (${m.runs.size} boot ids)`, `see why the process on ${m.address} restarts (its log, systemctl status)`)
  if (m.received > 2 && rate < expected * RATE_WARN) return check('warn', ' — fewer heartbeats than it announces: the process is starved or paused', `check the load of ${m.address}`)
  if (m.saidGoodbye) return check('warn', ' — it said goodbye: it was stopped while we listened')
  return check('ok', '')
}

const REASON_WORDS: Record<DropReason, [Check['status'], string, string]> = {
  'bad-mac': ['fail', 'failed the MAC check: sent with another cluster key', 'give that process this cluster\'s key file, or, if it belongs to another cluster, move one of the two clusters to its own group or port'],
  'missing-mac': ['warn', 'are not mirrorcast datagrams (too short to carry a MAC)', 'another program sends to this group and port: give mirrorcast its own group or port'],
  'foreign-cluster': ['fail', 'carry another cluster name (same key)', 'set the same `cluster` name on every process of the cluster, or give each cluster its own group or port'],
  replayed: ['warn', 'were duplicates or replays', 'duplicates come from a member that is both a static peer and on the group, or from a loop in the network; replays from an attacker'],
  stale: ['fail', 'were too old or too new', 'synchronise the sender\'s clock'],
  oversize: ['warn', 'were larger than a mirrorcast datagram', 'another program sends to this group and port'],
  malformed: ['warn', 'could not be decoded', 'another program or another mirrorcast version sends to this group and port'],
  'unknown-type': ['warn', 'had an unknown message type', 'a newer mirrorcast version is on the group: upgrade every process'],
  'unknown-version': ['warn', 'had an unknown protocol version', 'a newer mirrorcast version is on the group: upgrade every process']
}

/** Refused datagrams, one line per reason and source address. */
export function datagramChecks (heard: Heard): Check[] {
  if (heard.drops.size === 0) return [{ status: 'ok', check: 'datagrams', message: 'every datagram heard passed the MAC, cluster, replay and size checks' }]
  return [...heard.drops.values()].map((d) => {
    const [status, words, advice] = REASON_WORDS[d.reason]
    return { status, check: 'datagrams', subject: d.from, message: `${d.count} datagram(s) from ${d.from} ${words}`, advice, data: { reason: d.reason, from: d.from, count: d.count } }
  })
}

export function round (x: number, digits = 1): number {
  const f = 10 ** digits
  return Math.round(x * f) / f
}

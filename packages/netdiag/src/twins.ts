import { inSubnet, SubnetMap, TwinMap, type Place } from '@mirrorcast/topology'
import { memberName, type Heard } from './listen.js'
import type { Check } from './report.js'
import type { DiagSettings, Expected } from './settings.js'
import type { Probe } from './unicast.js'

/** A storage node or directory server known by its announcement or by its answer to a probe. */
export interface Known {
  id: string
  role: 'storage' | 'directory'
  center: string
  slot: number
  address: string
  port: number
}

function subnetsOf (s: DiagSettings): SubnetMap | undefined {
  return s.centerSubnets === undefined ? undefined : new SubnetMap(s.centerSubnets)
}

/** The centers: configured, named by the center subnets, or the ones heard. */
function centersOf (s: DiagSettings, known: Array<{ center: string }>): string[] {
  const named = Object.keys(s.centerSubnets ?? {})
  const centers = s.centers ?? (named.length === 2 ? named : [...new Set(known.map((k) => k.center))].sort())
  return s.localTwins ? centers.slice(0, 1) : centers
}

/** The twin map of the deployment, or why there is none. */
function twinMapOf (s: DiagSettings, known: Array<{ center: string }>): TwinMap | string {
  const centers = centersOf(s, known)
  if (!s.localTwins && centers.length !== 2) return `members were found in ${centers.length} center(s) (${centers.join(', ')}), not two`
  return new TwinMap(centers, s.localTwins ? 'local' : 'centers')
}

const at = (p: Place) => (k: { role: string, center: string, slot: number }, role: string): boolean => k.role === role && k.center === p.center && k.slot === p.slot

/**
 * Where the unheard twins of heard members should be, by the subnet mapping:
 * probing those addresses tells "blocked multicast" from "not running".
 */
export function mappedTwins (s: DiagSettings, heard: Heard): Expected[] {
  const subnets = subnetsOf(s)
  const members = [...heard.members.values()].filter((m) => m.role !== 'manager')
  const map = twinMapOf(s, members)
  if (subnets === undefined || typeof map === 'string' || map.mode === 'local') return []
  const out: Expected[] = []
  for (const m of members) {
    const place = map.twinPlace(m)
    if (members.some((x) => at(place)(x, m.role))) continue
    const address = subnets.twinAddress(m.address, m.center, place.center)
    if (address !== undefined) out.push({ address, port: m.port, name: `twin of ${memberName(m)}` })
  }
  return out
}

/** Members heard, plus those that answered a probe without being heard. */
export function knownMembers (heard: Heard, probes: Map<string, Probe>): Known[] {
  const known = new Map<string, Known>()
  for (const m of heard.members.values()) if (m.role !== 'manager') known.set(m.id, { id: m.id, role: m.role, center: m.center, slot: m.slot, address: m.address, port: m.port })
  for (const p of probes.values()) {
    const h = p.identity
    if (h !== undefined && h.role !== 'manager' && !known.has(h.id)) known.set(h.id, { id: h.id, role: h.role, center: h.center, slot: h.slot, address: h.address, port: h.port })
  }
  return [...known.values()]
}

/**
 * Claims 3, 5–6, 13, 15–16: every member has its twin (the same slot in the
 * other center, or the neighbouring slot for local twins), and twin addresses
 * differ only in the subnet part. Every violation is named.
 */
export function twinChecks (s: DiagSettings, known: Known[]): Check[] {
  if (known.length === 0) return [{ status: 'warn', check: 'twins', message: 'no storage node or directory server is known: the twin map cannot be checked' }]
  const map = twinMapOf(s, known)
  if (typeof map === 'string') return [{ status: 'fail', check: 'twins', message: map, advice: 'every file is kept in two centers: run the twin of each slot in the other center and give every process its center (or run local twins on purpose: --local-twins)' }]
  const subnets = map.mode === 'local' ? undefined : subnetsOf(s)
  const problems: Check[] = []
  let pairs = 0
  for (const role of ['storage', 'directory'] as const) {
    const ofRole = known.filter((k) => k.role === role).sort((a, b) => map.centers.indexOf(a.center) - map.centers.indexOf(b.center) || a.slot - b.slot)
    const paired = new Set<number>()
    for (const k of ofRole) {
      const pair = map.pairIndex(k)
      if (pair === undefined) {
        problems.push({ status: 'fail', check: 'twins', subject: memberName(k), message: `${k.id} at ${k.address} is in center ${k.center}, which is not one of the cluster's (${map.centers.join(', ')})`, advice: 'give it the right center, or the manager the right centers' })
        continue
      }
      if (paired.has(pair)) continue
      paired.add(pair)
      const [first, second] = map.pairPlaces(pair).map((p) => ofRole.filter((x) => at(p)(x, role)))
      problems.push(...duplicates(first as Known[]), ...duplicates(second as Known[]))
      const x = first?.[0]
      const y = second?.[0]
      if (x === undefined || y === undefined) {
        problems.push(noTwin(k, map.twinPlace(k), subnets))
        continue
      }
      pairs++
      if (subnets !== undefined) problems.push(...subnetRule(subnets, x, y))
    }
  }
  if (problems.length > 0) return problems
  const rule = subnets === undefined ? (map.mode === 'local' ? '; local twins: slots 1↔2, 3↔4… of ' + map.primary : '') : `; twin addresses differ only in the subnet part (${Object.entries(s.centerSubnets ?? {}).map(([c, n]) => `${c} ${n}`).join(' ↔ ')})`
  const ok: Check = { status: 'ok', check: 'twins', message: `${pairs} twin pair(s), every member has its twin${map.mode === 'local' ? '' : ' in the other center'}${rule}` }
  if (subnets !== undefined || map.mode === 'local') return [ok]
  return [ok, { status: 'warn', check: 'twins', message: 'the center subnets are not known, so the subnet rule was not checked', advice: 'pass --center-subnets east=10.1.0.0/16,west=10.2.0.0/16 (or use the manager\'s config file)' }]
}

function noTwin (k: Known, place: Place, subnets: SubnetMap | undefined): Check {
  const kind = k.role === 'storage' ? 'node' : 'dir'
  const where = subnets === undefined ? '' : ` at ${subnets.twinAddress(k.address, k.center, place.center) ?? 'the mapped address'}`
  return { status: 'fail', check: 'twins', subject: memberName(k), message: `${k.id} at ${k.address} has no twin: no ${k.role === 'storage' ? 'storage node' : 'directory server'} was found at ${place.center}/${kind}${place.slot}`, advice: `run ${place.center}/${kind}${place.slot}${where}, or see why it is neither heard nor reachable (lines above)` }
}

function duplicates (same: Known[]): Check[] {
  if (same.length < 2) return []
  const first = same[0] as Known
  return [{ status: 'fail', check: 'twins', subject: memberName(first), message: `${same.length} members claim ${memberName(first)}: ${same.map((k) => `${k.id} at ${k.address}`).join(', ')}`, advice: 'give each its own slot; a replaced node keeps its data dir (and id) or the old one is retired' }]
}

function subnetRule (subnets: SubnetMap, x: Known, y: Known): Check[] {
  const out: Check[] = []
  for (const k of [x, y]) {
    const net = subnets.subnetOf(k.center)
    if (net === undefined || !inSubnet(k.address, net)) {
      out.push({ status: 'fail', check: 'twins', subject: memberName(k), message: `${k.id} at ${k.address} is outside ${k.center}'s subnet`, advice: `give it an address in ${k.center}'s subnet, or correct the center subnets` })
    }
  }
  if (out.length > 0) return out
  if (subnets.areTwins(x.address, x.center, y.address, y.center)) return []
  const should = subnets.twinAddress(x.address, x.center, y.center) as string
  return [{ status: 'fail', check: 'twins', subject: `${memberName(x)} ↔ ${memberName(y)}`, message: `twins ${x.address} and ${y.address} differ outside the subnet part: by the mapping the twin of ${x.address} is ${should}`, advice: `give ${memberName(y)} the address ${should} (or ${memberName(x)} ${subnets.twinAddress(y.address, y.center, x.center) ?? 'the mapped one'}): after a failover the manager looks for the twin at the mapped address` }]
}

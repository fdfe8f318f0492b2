import { inSubnet, SubnetMap } from '@mirrorcast/manager'
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

/** The two centers: configured, named by the center subnets, or the ones heard. */
function centersOf (s: DiagSettings, known: Known[]): string[] {
  const named = Object.keys(s.centerSubnets ?? {})
  return s.centers ?? (named.length === 2 ? named : [...new Set(known.map((k) => k.center))].sort())
}

/**
 * Where the unheard twins of heard members should be, by the subnet mapping:
 * probing those addresses tells "blocked multicast" from "not running".
 */
export function mappedTwins (s: DiagSettings, heard: Heard): Expected[] {
  const subnets = subnetsOf(s)
  const members = [...heard.members.values()].filter((m) => m.role !== 'manager')
  const centers = centersOf(s, members as Known[])
  if (subnets === undefined || centers.length !== 2) return []
  const out: Expected[] = []
  for (const m of members) {
    const other = centers.find((c) => c !== m.center)
    if (other === undefined || members.some((x) => x.role === m.role && x.center === other && x.slot === m.slot)) continue
    const address = subnets.twinAddress(m.address, m.center, other)
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
 * Claims 3, 5, 13, 15: every slot has its twin in the other center, and twin
 * addresses differ only in the subnet part. Every violation is named.
 */
export function twinChecks (s: DiagSettings, known: Known[]): Check[] {
  if (known.length === 0) return [{ status: 'warn', check: 'twins', message: 'no storage node or directory server is known: the twin map cannot be checked' }]
  const centers = centersOf(s, known)
  if (centers.length !== 2) return [{ status: 'fail', check: 'twins', message: `members were found in ${centers.length} center(s) (${centers.join(', ')}), not two`, advice: 'every file is kept in two centers: run the twins of each slot in the other center, and give every process its center' }]
  const subnets = subnetsOf(s)
  const problems: Check[] = []
  let pairs = 0
  for (const role of ['storage', 'directory'] as const) {
    const ofRole = known.filter((k) => k.role === role)
    for (const slot of [...new Set(ofRole.map((k) => k.slot))].sort((a, b) => a - b)) {
      const [a, b] = centers.map((c) => ofRole.filter((k) => k.center === c && k.slot === slot))
      problems.push(...duplicates(a as Known[]), ...duplicates(b as Known[]))
      const x = a?.[0]
      const y = b?.[0]
      if (x === undefined || y === undefined) {
        const lone = (x ?? y) as Known
        const other = centers.find((c) => c !== lone.center) as string
        problems.push({ status: 'fail', check: 'twins', subject: memberName(lone), message: `${lone.id} at ${lone.address} has no twin: no ${role === 'storage' ? 'storage node' : 'directory server'} of slot ${slot} was found in ${other}`, advice: `run ${other}/${role === 'storage' ? 'node' : 'dir'}${slot}${subnets === undefined ? '' : ` at ${subnets.twinAddress(lone.address, lone.center, other) ?? 'the mapped address'}`}, or check why it is neither heard nor reachable (lines above)` })
        continue
      }
      pairs++
      if (subnets !== undefined) problems.push(...subnetRule(subnets, x, y))
    }
  }
  if (problems.length > 0) return problems
  const rule = s.centerSubnets === undefined ? '' : `; twin addresses differ only in the subnet part (${Object.entries(s.centerSubnets).map(([c, n]) => `${c} ${n}`).join(' ↔ ')})`
  const ok: Check = { status: 'ok', check: 'twins', message: `${pairs} twin pair(s), every slot has its twin in the other center${rule}` }
  if (subnets !== undefined) return [ok]
  return [ok, { status: 'warn', check: 'twins', message: 'the center subnets are not known, so the subnet rule was not checked', advice: 'pass --center-subnets east=10.1.0.0/16,west=10.2.0.0/16 (or use the manager\'s config file)' }]
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

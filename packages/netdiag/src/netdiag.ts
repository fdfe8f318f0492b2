import type { MulticastChannel } from '@mirrorcast/discovery'
import { hostChecks } from './host-checks.js'
import { datagramChecks, listen, memberChecks, type Heard } from './listen.js'
import { summarize, type Check, type Report } from './report.js'
import { redundancyChecks } from './redundancy.js'
import { searchCheck } from './search-check.js'
import type { DiagSettings } from './settings.js'
import { knownMembers, mappedTwins, twinChecks } from './twins.js'
import { unicastChecks } from './unicast.js'

/**
 * Every check, in the order an operator reads them: this host's interface and
 * route, what is heard on the group, who answers by unicast, the twin map, and
 * a test search, and the manager's view of each pair's redundancy.
 */
export async function runDiagnostics (s: DiagSettings): Promise<Report> {
  const checks: Check[] = await hostChecks(s)
  let channel: MulticastChannel | undefined
  let heard: Heard = { members: new Map(), drops: new Map() }
  try {
    if (s.multicast) {
      ({ channel, heard } = await listen(s))
      checks.push(...memberChecks(s, heard), ...datagramChecks(heard))
    } else {
      checks.push({ status: s.expect.length === 0 ? 'warn' : 'ok', check: 'listen', message: 'multicast is off: members announce to their static peers only, so they are checked by unicast', ...(s.expect.length === 0 ? { advice: 'name the members to check with --expect ADDRESS:PORT,...' } : {}) })
    }
    const unicast = await unicastChecks(s, heard, [...s.expect, ...mappedTwins(s, heard)])
    checks.push(...unicast.checks)
    const known = knownMembers(heard, unicast.probes)
    checks.push(...twinChecks(s, known))
    checks.push(...await searchCheck(s, channel, known))
    checks.push(...await redundancyChecks(s))
  } finally {
    await channel?.close()
  }
  return { settings: describe(s), checks, summary: summarize(checks) }
}

function describe (s: DiagSettings): Record<string, unknown> {
  return { source: s.source, cluster: s.cluster, group: s.group, searchGroup: s.searchGroup, port: s.port, interface: s.interface, ttl: s.ttl, multicast: s.multicast, peers: s.peers.map((p) => `${p.address}:${p.port}`), centers: s.centers, centerSubnets: s.centerSubnets, listenSeconds: s.listenMs / 1000, fileId: s.fileId, manager: s.managerUrl, underReplicatedWarnSeconds: s.underReplicatedWarnMs / 1000 }
}

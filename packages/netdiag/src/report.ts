export type Status = 'ok' | 'warn' | 'fail'

/** One finding: a plain-words diagnosis and, when something is wrong, what to do. */
export interface Check {
  status: Status
  /** The group it belongs to: interface, route, ttl, listen, member, datagrams, unicast, twins, search. */
  check: string
  /** What it is about: a member, an address, an interface. */
  subject?: string
  message: string
  advice?: string
  data?: Record<string, unknown>
}

export interface Report {
  settings: Record<string, unknown>
  checks: Check[]
  summary: Record<Status, number>
}

export function summarize (checks: Check[]): Record<Status, number> {
  const summary: Record<Status, number> = { ok: 0, warn: 0, fail: 0 }
  for (const c of checks) summary[c.status]++
  return summary
}

/** The report for a terminal: one line a check, the advice indented under it. */
export function formatText (report: Report): string {
  const s = report.settings
  const lines = [`mirrorcast netdiag: cluster "${String(s.cluster)}", groups ${String(s.group)} (announcements) and ${String(s.searchGroup)} (searches), port ${String(s.port)}, on ${String(s.interface)}${s.multicast === false ? ' (multicast off)' : ''}, listened ${String(s.listenSeconds)} s (${String(s.source)})`]
  const width = Math.max(...report.checks.map((c) => c.check.length))
  for (const c of report.checks) {
    lines.push(`${c.status.padEnd(4)}  ${c.check.padEnd(width)}  ${c.subject === undefined ? '' : `${c.subject}: `}${c.message}`)
    if (c.advice !== undefined) lines.push(`${' '.repeat(width + 8)}→ ${c.advice}`)
  }
  const { ok, warn, fail } = report.summary
  lines.push(`${fail > 0 ? 'FAIL' : warn > 0 ? 'WARN' : 'OK'}: ${ok} ok, ${warn} warn, ${fail} fail`)
  return lines.join('\n') + '\n'
}

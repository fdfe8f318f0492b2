import type { OpKind } from './checker.js'
import type { NemesisReport } from './run-nemesis.js'

/** A Markdown table (the README's format). */
export function formatTable (header: string[], rows: Array<Array<string | number>>): string {
  const cells = [header, ...rows.map((r) => r.map(String))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: string[]): string => '| ' + r.map((c, i) => c.padEnd(widths[i] as number)).join(' | ') + ' |'
  return [line(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n') + '\n'
}

const KINDS: OpKind[] = ['put', 'get', 'delete', 'rename']

/** The run's tables: faults, operations, errors by fault kind, what the checker found; then the one summary line. */
export function formatNemesisReport (r: NemesisReport): string {
  const faults = new Map<string, { n: number, targets: Set<string>, maxRecovery: number, failed: number }>()
  for (const w of r.windows) {
    const f = faults.get(w.kind) ?? { n: 0, targets: new Set<string>(), maxRecovery: 0, failed: 0 }
    f.n++
    f.targets.add(w.target)
    f.maxRecovery = Math.max(f.maxRecovery, w.recovered - w.healed)
    if (w.error !== undefined) f.failed++
    faults.set(w.kind, f)
  }
  const ops = KINDS.map((k) => {
    const of = r.ops.filter((o) => o.kind === k)
    return [k, of.length, of.filter((o) => o.outcome === 'ok').length, of.filter((o) => o.outcome === 'absent').length, of.filter((o) => o.outcome === 'error').length]
  })
  const errorRows = Object.entries(r.errors).map(([fault, row]) => [fault, ...KINDS.map((k) => row[k]), codes(r, fault)])
  const { counts } = r.check
  const s = r.summary
  return [
    `nemesis run of ${r.seconds.toFixed(0)} s`,
    '',
    formatTable(['fault', 'injected', 'targets', 'slowest recovery after heal', 'not recovered', 'slowest op during'], [...faults].map(([k, f]) => [k, f.n, [...f.targets].sort().join(' '), `${(f.maxRecovery / 1000).toFixed(1)} s`, f.failed, `${(slowest(r, k) / 1000).toFixed(1)} s`])),
    formatTable(['operation', 'total', 'ok', '404', 'errors'], ops),
    errorRows.length === 0 ? 'client-visible errors: none\n' : formatTable(['errors during', ...KINDS, 'answers'], errorRows),
    formatTable(['checker', 'count'], [
      ['final reads (every path; all up, east out, west out)', r.finalReads.length],
      ['stale version read', counts.stale],
      ['deleted file read', counts.deleted],
      ['wrong bytes read', counts.wrong],
      ['404 for a file that was there', counts.missing],
      ['acknowledged write lost at the end', counts.lost],
      ['bit rot: copies flipped / repaired / deleted since / still bad', `${r.bitRot.flipped} / ${r.bitRot.repaired} / ${r.bitRot.gone} / ${r.bitRot.corrupt}`]
    ]),
    ...r.check.anomalies.slice(0, 20).map((a) => `anomaly: ${a.kind} ${a.path} (op ${a.op}): ${a.detail}`),
    `nemesis: ops=${s.ops} faults=${s.faults} errors=${s.errors} lost=${s.lost} stale=${s.stale}`
  ].join('\n') + '\n'
}

/** The longest client request while a fault of this kind was on (or being recovered from), ms. */
function slowest (r: NemesisReport, fault: string): number {
  return r.ops.filter((o) => o.fault === fault).reduce((max, o) => Math.max(max, o.end - o.start), 0)
}

function codes (r: NemesisReport, fault: string): string {
  const seen = new Map<string, number>()
  for (const o of r.ops) if (o.outcome === 'error' && (o.fault ?? 'none') === fault) seen.set(o.error ?? '?', (seen.get(o.error ?? '?') ?? 0) + 1)
  return [...seen].map(([c, n]) => `${c} ×${n}`).join(', ')
}

import { MirrorcastClient, type ClusterView, type PairReplication } from '@mirrorcast/client'
import type { Check } from './report.js'
import type { DiagSettings } from './settings.js'

// 15 min: a node restart and its reconciliation are over well within it; longer is an outage to act on
export const DEFAULT_UNDER_REPLICATED_WARN_MS = 15 * 60_000

/**
 * The manager's view of redundancy: every storage pair whose files have had
 * one copy for longer than the set time is a warning, a named file on neither
 * node a failure. Skipped without a manager to ask, or when the manager of a
 * config file or data dir does not answer (the member checks say why).
 */
export async function redundancyChecks (s: DiagSettings, now = Date.now()): Promise<Check[]> {
  if (s.managerUrl === undefined) return []
  let cluster: ClusterView
  const client = new MirrorcastClient({ url: s.managerUrl, ...(s.token === undefined ? {} : { token: s.token }) })
  try {
    cluster = await client.cluster({ signal: AbortSignal.timeout(5000) })
  } catch (err) {
    if (s.managerNamed !== true) return []
    return [{ status: 'warn', check: 'redundancy', subject: s.managerUrl, message: `cannot read /cluster from the manager: ${(err as Error).message}`, advice: 'check the manager is running, or give its URL with --manager (and --token-file when it has tokens)' }]
  } finally {
    await client.close()
  }
  return cluster.pairs.flatMap((p) => p.replication === undefined ? [] : [pairCheck(p.index, p.replication, s.underReplicatedWarnMs, now)])
}

function pairCheck (index: number, r: PairReplication, warnMs: number, now: number): Check {
  const subject = `storage pair ${index}`
  const data = { ...r }
  const copies = `${r.oneCopy.files} file${r.oneCopy.files === 1 ? '' : 's'} (${r.oneCopy.bytes} bytes) with one copy`
  if (r.lost.files > 0) {
    return { status: 'fail', check: 'redundancy', subject, message: `${r.lost.files} named file${r.lost.files === 1 ? ' is' : 's are'} on neither node of the pair (${r.lost.bytes} bytes)`, advice: 'restore the node\'s disk or the bodies from a backup; the manager log names each file id ("a named body is on neither node")', data }
  }
  if (r.underReplicatedSince === null) {
    return { status: 'ok', check: 'redundancy', subject, message: `every file has both copies; last reconciled ${r.lastReconciled ?? 'never yet'}`, data }
  }
  const forMs = now - Date.parse(r.underReplicatedSince)
  const since = `under-replicated since ${r.underReplicatedSince} (${Math.round(forMs / 1000)} s): ${copies}`
  if (forMs < warnMs) return { status: 'ok', check: 'redundancy', subject, message: `${since}, within ${Math.round(warnMs / 1000)} s`, data }
  return { status: 'warn', check: 'redundancy', subject, message: since, advice: 'bring the failed node of the pair back (its reconciliation copies what it lacks), or replace it; `mirrorcast status` shows the pair', data }
}

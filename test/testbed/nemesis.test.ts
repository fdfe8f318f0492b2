import test from 'ava'
import { ensureTools, FAULT_KINDS, formatNemesisReport, runNemesis } from '@mirrorcast/testbed'
import { netnsTest, startTestbed } from '../helpers/netns.js'

// 50 s of faults, and at least one of each kind (each held 3 s, then healed and recovered).
const DURATION_MS = 50_000
const SMALL_DISK = 'west-node2'

netnsTest(test, 'nemesis: clients PUT, GET, DELETE and rename through every kind of fault, one at a time; nothing acknowledged is lost, no read is stale, reads never fail while a twin lives', async (t) => {
  t.timeout(6 * 60_000)
  await ensureTools()
  const bed = await startTestbed(t, {
    smallDisks: { [SMALL_DISK]: 160 * 1024 * 1024 },
    // A fast scrub, so every flipped byte is found (and repaired) before the run is judged.
    nodeArgs: ['--scrub-mb-per-s', '64', '--scrub-interval-s', '2']
  })
  const report = await runNemesis(bed, { durationMs: DURATION_MS, nemesis: { smallDiskNode: SMALL_DISK, faultMs: 3000 } })
  t.log('\n' + formatNemesisReport(report))

  t.deepEqual([...new Set(report.windows.map((w) => w.kind))].sort(), [...FAULT_KINDS].sort(), 'every kind of fault was injected')
  t.deepEqual(report.windows.filter((w) => w.error !== undefined).map((w) => `${w.kind} on ${w.target}: ${w.error ?? ''}`), [], 'the cluster recovered from every fault')
  t.true(report.summary.ops > 500, `only ${report.summary.ops} operations`)
  t.is(report.summary.lost, 0)
  t.is(report.summary.stale, 0)
  t.deepEqual(report.check.anomalies, [])
  const readErrors = report.ops.filter((o) => o.kind === 'get' && o.outcome === 'error').map((o) => `${o.path} during ${o.fault ?? '?'}: ${o.error ?? '?'} after ${(o.end - o.start).toFixed(0)} ms`)
  t.deepEqual(readErrors, [], 'reads never fail while one twin of every pair lives')
  t.is(report.bitRot.corrupt, 0, 'every flipped copy was repaired or deleted with its file')
  t.true(report.finalReads.every((r) => r.outcome !== 'error'))
})

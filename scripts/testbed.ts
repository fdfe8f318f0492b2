/**
 * `npm run testbed -- <scenario> [options]`: the multi-host test bed by hand.
 * Builds a two-center cluster of real processes, each in its own network
 * namespace, runs a scenario, prints what it saw and tears everything down,
 * also on Ctrl-C. Needs root (network namespaces).
 *
 *   nemesis [--duration S] [--clients N] [--fault-s S]   workload + faults + checker (prints the table)
 *   up [--topology one-segment|routed|local-twins]        a cluster to look at until Ctrl-C
 */
import { parseArgs } from 'node:util'
import { ensureTools, formatNemesisReport, netnsUnavailable, runNemesis, Testbed, type Topology } from '@mirrorcast/testbed'

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    duration: { type: 'string', default: '180' },
    clients: { type: 'string', default: '4' },
    'fault-s': { type: 'string', default: '4' },
    topology: { type: 'string', default: 'one-segment' },
    keep: { type: 'boolean', default: false }
  }
})

const scenario = positionals[0] ?? 'nemesis'
let bed: Testbed | undefined

async function teardown (): Promise<void> {
  await bed?.destroy()
}

process.once('SIGINT', () => {
  process.stderr.write('\ntestbed: interrupted, tearing down\n')
  void teardown().finally(() => process.exit(130))
})

const log = (line: string): void => { process.stderr.write(`testbed: ${line}\n`) }

async function main (): Promise<void> {
  const why = netnsUnavailable()
  if (why !== undefined) throw new Error(why)
  await ensureTools()
  if (values.keep) process.env.MIRRORCAST_KEEP_TEST_DIRS = '1'
  if (scenario === 'nemesis') {
    const smallDiskNode = 'west-node2'
    log('building the test bed (one segment, 2 storage nodes and 1 directory server per center)')
    bed = await Testbed.start({ smallDisks: { [smallDiskNode]: 160 * 1024 * 1024 }, nodeArgs: ['--scrub-mb-per-s', '64', '--scrub-interval-s', '5'] })
    log(`up; data and logs in ${bed.dir}`)
    const report = await runNemesis(bed, {
      durationMs: Number(values.duration) * 1000,
      workload: { clients: Number(values.clients) },
      nemesis: { smallDiskNode, faultMs: Number(values['fault-s']) * 1000 },
      log
    })
    process.stdout.write(formatNemesisReport(report))
    if (report.summary.lost > 0 || report.summary.stale > 0) process.exitCode = 1
  } else if (scenario === 'up') {
    bed = await Testbed.start({ topology: values.topology as Topology })
    process.stdout.write(`test bed up (${bed.topology}); data and logs in ${bed.dir}; namespaces ${bed.net.prefix}-*; Ctrl-C tears it down\n`)
    await new Promise(() => {})
  } else {
    throw new Error(`unknown scenario ${scenario}: nemesis or up`)
  }
}

main().catch((err: Error) => {
  process.stderr.write(`testbed: ${err.message}\n`)
  process.exitCode = 1
}).finally(() => { void teardown() })

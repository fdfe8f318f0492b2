import { Command } from 'commander'
import { formatText, runDiagnostics, settingsFromConfig, settingsFromUpDir, type DiagExtras, type Expected } from '@mirrorcast/netdiag'
import { CliError } from './errors.js'
import { readTokenFile } from '@mirrorcast/client'
import { parseCenter, parseCenters, parseInteger, parseSubnets } from './serve.js'

interface DiagFlags {
  config?: string
  data?: string
  json?: boolean
  listen: string
  fileId?: string
  expect?: string
  centers?: string
  localTwins?: boolean
  centerSubnets?: string
  manager?: string
  tokenFile?: string
  underReplicatedWarnS?: string
}

/**
 * `mirrorcast diag`, which `npm run netdiag` runs too: finds why a member is
 * not seen, in one run. Exit code 1 when any check fails.
 */
export function diagCommand (name = 'diag'): Command {
  return new Command(name)
    .description('diagnose the network of a cluster: interface, route, TTL, members heard (rate, loss, clock skew), foreign keys, unicast reachability, twin map, a test search')
    .option('--config <file>', 'a host\'s config file: the group, port, interface and key of the process it configures')
    .option('--data <dir>', 'the data dir of `mirrorcast up` (cluster.json, cluster.key)')
    .option('--json', 'print the report as one JSON document')
    .option('--listen <seconds>', 'how long to listen to the group', '3')
    .option('--file-id <id>', 'a file id to search for (the "id" of `mirrorcast stat`)')
    .option('--expect <list>', 'node-protocol addresses that should answer, e.g. 10.1.0.1:8701,10.2.0.1:8701')
    .option('--centers <a,b>', 'primary and backup center (default: from a manager config, or the two heard)')
    .option('--local-twins', 'twins are slots 1↔2, 3↔4… of one center')
    .option('--manager <url>', 'a manager to ask for the redundancy of each storage pair (default: the one of --data, or of a manager\'s --config)')
    .option('--token-file <file>', 'the manager\'s access token, when it has tokens')
    .option('--under-replicated-warn-s <s>', 'warn when a storage pair has had files with one copy for longer than this (default 900)')
    .option('--center-subnets <list>', 'each center\'s subnet, e.g. east=10.1.0.0/16,west=10.2.0.0/16, to check the twin rule')
    .action(async (o: DiagFlags) => {
      if ((o.config === undefined) === (o.data === undefined)) throw new CliError('give either --config FILE or --data DIR')
      const extras = await diagExtras(o)
      const settings = o.config !== undefined ? await settingsFromConfig(o.config, extras) : await settingsFromUpDir(o.data as string, extras)
      const report = await runDiagnostics(settings)
      process.stdout.write(o.json === true ? JSON.stringify(report, null, 2) + '\n' : formatText(report))
      if (report.summary.fail > 0) process.exitCode = 1
    })
}

async function diagExtras (o: DiagFlags): Promise<DiagExtras> {
  const token = o.tokenFile === undefined ? undefined : await readTokenFile(o.tokenFile)
  const seconds = Number(o.listen)
  if (!Number.isFinite(seconds)) throw new CliError(`--listen must be a number of seconds, got ${JSON.stringify(o.listen)}`)
  return {
    listenMs: Math.round(seconds * 1000),
    ...(o.fileId === undefined ? {} : { fileId: o.fileId }),
    ...(o.expect === undefined ? {} : { expect: parseExpect(o.expect) }),
    ...(o.centers === undefined ? {} : { centers: o.localTwins === true ? [parseCenter(o.centers)] : parseCenters(o.centers) }),
    ...(o.localTwins === true ? { localTwins: true } : {}),
    ...(o.centerSubnets === undefined ? {} : { centerSubnets: parseSubnets(o.centerSubnets) }),
    ...(o.manager === undefined ? {} : { managerUrl: o.manager }),
    ...(token === undefined ? {} : { token }),
    ...(o.underReplicatedWarnS === undefined ? {} : { underReplicatedWarnMs: parseInteger(o.underReplicatedWarnS, 'under-replicated-warn-s') * 1000 })
  }
}

function parseExpect (list: string): Expected[] {
  return list.split(',').map((entry) => {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(entry.trim())
    if (m === null) throw new CliError(`--expect wants ADDRESS:PORT entries, got ${JSON.stringify(entry)}`)
    return { address: m[1] as string, port: Number(m[2]), name: `${m[1] as string}:${m[2] as string}` }
  })
}

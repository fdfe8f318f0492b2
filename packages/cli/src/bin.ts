#!/usr/bin/env node
// Storage nodes keep several fsyncs in flight, which libuv's default of 4 threads would queue;
// many more threads only add wake-ups (measured: 32 threads cost a node a third more CPU per read).
process.env.UV_THREADPOOL_SIZE ??= '8'
import { Command, Option } from 'commander'
import { DEFAULT_HTTP_PORT } from '@mirrorcast/manager'
import { ClientErrorCode, DEFAULT_URL, MirrorcastClient, readTokenFile } from '@mirrorcast/client'
import { StartErrorCode } from '@mirrorcast/wire'
import { CliError } from './errors.js'
import { failover, get, ls, mkdirPath, mv, put, reconcile, rmPath, searchCommand, statPath, status } from './commands.js'
import { parseInteger, serveManager, serveNode, type ManagerServeOptions, type MemberServeOptions } from './serve.js'
import { up, type UpOptions } from './up.js'
import { withConfig } from './config-flags.js'
import { diagCommand } from './diag.js'

const program = new Command('mirrorcast')
  .description('mirrorcast: a distributed object store and virtual file system over two storage centers')
  .addOption(new Option('--url <url>', 'manager URL').env('MIRRORCAST_URL').default(DEFAULT_URL))
  .addOption(new Option('--log-level <level>', 'error, warn, info, debug or silent').env('MIRRORCAST_LOG'))
  .addOption(new Option('--token-file <file>', 'file holding the access token for the manager (mode 600)').env('MIRRORCAST_TOKEN_FILE'))
  .showHelpAfterError()

/** Multicast settings: the same on every process of a cluster. */
function withMulticast (cmd: Command, member: boolean): Command {
  cmd.option('--cluster <name>', 'cluster name (datagrams of other clusters are dropped)')
    .option('--group <ip>', 'multicast group of the announcements, which managers join (default 239.192.77.1)')
    .option('--search-group <ip>', 'multicast group of the searches, which storage nodes and directory servers join (default 239.192.77.2)')
    .option('--mcast-port <port>', 'multicast UDP port (default 7700)')
    .option('--heartbeat-ms <ms>', 'announce period (default 100)')
    .option('--no-multicast', 'join and send nothing to the group: announce to static peers only, no multicast search, no DNS-SD')
  if (member) cmd.option('--no-dns-sd', 'do not advertise over DNS-SD (multicast-dns)')
  return cmd
}

function withInterface (cmd: Command): Command {
  return cmd.option('--interface <ip>', 'address of the interface for multicast (default 127.0.0.1)')
    .option('--ttl <n>', 'multicast TTL (default 0 on loopback, 1 elsewhere)')
    .option('--peers <list>', 'static peers that get every announcement by unicast, e.g. 10.1.0.100:7700,10.2.0.100:7700')
    .option('--peer-port <port>', 'UDP port where static peers reach this process (default: the multicast port when peers are listed or multicast is off)')
}

/** Runs a command with a client of the manager, closed when the command is done. */
const withClient = async (command: (client: MirrorcastClient) => Promise<void>): Promise<void> => {
  const { url, tokenFile } = program.opts<{ url: string, tokenFile?: string }>()
  const token = tokenFile === undefined ? undefined : await readTokenFile(tokenFile)
  let client: MirrorcastClient
  try {
    // No headers timeout: a PUT is answered once both nodes fsynced its body, which for a file
    // of many GiB takes as long as the disks need; Ctrl-C ends a command that waits too long.
    client = new MirrorcastClient({ url, headersTimeoutMs: 0, ...(token === undefined ? {} : { token }) })
  } catch (err) {
    if ((err as { code?: string }).code === ClientErrorCode.INVALID_OPTION) throw new CliError(`--url ${JSON.stringify(url)} is not a URL`)
    throw err
  }
  try {
    await command(client)
  } finally {
    await client.close()
  }
}
const logLevel = (): string | undefined => program.opts<{ logLevel?: string }>().logLevel

/** What `up` passes on to its manager. */
interface UpManagerFlags {
  mapping?: boolean
  multicastSearch?: boolean
  pointToPoint?: boolean
  reconcilePeriodMs?: string
  orphanGraceMs?: string
  reconcileMbPerS?: string
  maxAnnounceRate?: string
}
const upManagerArgs = (o: UpManagerFlags): string[] => [
  ...(o.mapping === false ? ['--no-mapping'] : []),
  ...(o.multicastSearch === false ? ['--no-multicast-search'] : []),
  ...(o.pointToPoint === false ? ['--no-point-to-point'] : []),
  ...(o.reconcilePeriodMs === undefined ? [] : ['--reconcile-period-ms', o.reconcilePeriodMs]),
  ...(o.orphanGraceMs === undefined ? [] : ['--orphan-grace-ms', o.orphanGraceMs]),
  ...(o.reconcileMbPerS === undefined ? [] : ['--reconcile-mb-per-s', o.reconcileMbPerS]),
  ...(o.maxAnnounceRate === undefined ? [] : ['--max-announce-rate', o.maxAnnounceRate])
]

withMulticast(program.command('up'), false)
  .description('start a local two-center cluster of real processes on loopback')
  .option('--data <dir>', 'data directory (kept across runs)', '.mirrorcast')
  .option('--port <port>', 'manager HTTP port', String(DEFAULT_HTTP_PORT))
  .option('--node-port <port>', 'port of every storage node and directory server, each on its own address (0: any)', '8701')
  .option('--centers <a,b>', 'primary and backup center', 'east,west')
  .option('--nodes <n>', 'twin pairs of storage nodes', '3')
  .option('--dirs <n>', 'twin pairs of directory servers: the namespace is partitioned among them', '1')
  .option('--local-twins', 'put both twins of every pair in the first center (claims 6, 16, 26)')
  .option('--max-file-bytes <n>', 'largest PUT body the manager accepts')
  .option('--body-cache-mb <n>', 'MiB of small bodies the manager keeps in memory for reads (default 16; 0: none)')
  .option('--s3-port <port>', 'manager: port of the S3 API (0: any; default: the manager port + 10)')
  .option('--no-mapping', 'manager: do not locate twins by the subnet/slot mapping')
  .option('--no-multicast-search', 'manager: do not locate files by multicast search')
  .option('--no-point-to-point', 'manager: do not locate files by point-to-point queries')
  .option('--reconcile-period-ms <ms>', 'manager: pair anti-entropy: how often each twin pair is compared and repaired (default 60000)')
  .option('--orphan-grace-ms <ms>', 'manager: pair anti-entropy: how old a body no entry names must be before it is removed (default 3600000)')
  .option('--reconcile-mb-per-s <n>', 'manager: pair anti-entropy: MiB copied per second at most, 0: no limit (default 32)')
  .option('--max-announce-rate <n>', 'manager: announcements a second the whole cluster may send; past it every member is asked for a longer heartbeat (default 1000)')
  .action(async (o: UpOptions & UpManagerFlags) => {
    const managerArgs = upManagerArgs(o)
    await up({ ...o, managerArgs, ...(logLevel() === undefined ? {} : { logLevel: logLevel() }) })
  })

for (const role of ['node', 'directory'] as const) {
  const cmd = withConfig(withInterface(withMulticast(program.command(role), true)), role, program)
  if (role === 'directory') cmd.option('--partition <n>', 'namespace partition held (default: the slot)')
  if (role === 'node') {
    cmd.option('--scrub-mb-per-s <n>', 'background scrub: MiB verified per second at most, 0 turns it off (default 8)')
      .option('--scrub-interval-s <n>', 'background scrub: least seconds from one pass start to the next (default 3600)')
      .option('--http-port <port>', 'TCP port of downloads and uploads by signed locator, sent here by the manager (0: any)', '0')
  }
  cmd.description(role === 'node' ? 'run a storage node' : 'run a directory server')
    .requiredOption('--data <dir>', 'data directory')
    .requiredOption('--key-file <file>', 'cluster key file (hex, mode 600)')
    .requiredOption('--center <name>', 'storage center')
    .requiredOption('--slot <n>', 'slot: twin of the same slot in the other center (local twins: 1↔2, 3↔4…)')
    .option('--address <ip>', 'address to bind and announce', '127.0.0.1')
    .option('--port <port>', 'TCP port of the node protocol (0: any)', '0')
    .action(async (o: MemberServeOptions) => { await serveNode(role === 'node' ? 'storage' : 'directory', { ...o, logLevel: logLevel() }) })
}

withConfig(withInterface(withMulticast(program.command('manager'), false)), 'manager', program)
  .description('run a manager (object + directory manager, HTTP API)')
  .requiredOption('--data <dir>', 'data directory (keeps the manager id)')
  .requiredOption('--key-file <file>', 'cluster key file (hex, mode 600)')
  .option('--centers <a,b>', 'primary and backup center (with --local-twins: the one center)', 'east,west')
  .option('--local-twins', 'twins are slots 1↔2, 3↔4… of one center')
  .option('--directory-partitions <n>', 'partitions of the namespace (directory server k of a center holds partition k)', '1')
  .option('--host <ip>', 'HTTP address', '127.0.0.1')
  .option('--port <port>', 'HTTP port', String(DEFAULT_HTTP_PORT))
  .option('--max-file-bytes <n>', 'largest PUT body accepted')
  .option('--body-cache-mb <n>', 'MiB of small bodies kept in memory for reads (default 16; 0: none)')
  .option('--tokens-file <file>', 'access tokens of the HTTP API, "<read-only|read-write> <name> <token>" a line, and S3 key pairs, "<read-only|read-write> <name> <access-key-id> <secret>" (mode 600); tokens are needed to listen on anything but loopback')
  .option('--s3-port <port>', 'port of the S3 API at the HTTP address (0: any; off: no S3 API; default: the HTTP port + 10)')
  .option('--s3-domains <list>', 'host names below which a request\'s Host names its bucket, virtual-host style (default localhost)')
  .option('--s3-region <name>', 'the region S3 clients sign for and buckets say they are in (default us-east-1)')
  .option('--body-idle-timeout-ms <ms>', 'a request body that brings no byte, or a response the client takes no byte of, for this long is given up (default 120000)')
  .option('--headers-timeout-ms <ms>', 'time for a client to send a request\'s headers (default 10000)')
  .option('--max-connections <n>', 'HTTP connections open at once; more are closed as they arrive (default 1024)')
  .option('--max-searches <n>', 'multicast searches (GET /search) served at once; more are answered 503 with Retry-After (default 8)')
  .option('--directory-check-ms <ms>', 'how often each directory partition\'s twins are compared whole, a follower that differs rebuilt (default 60000)')
  .option('--reconcile-period-ms <ms>', 'pair anti-entropy: how often each twin pair is compared and repaired (default 60000)')
  .option('--orphan-grace-ms <ms>', 'pair anti-entropy: how old a body no entry names must be before it is removed (default 3600000)')
  .option('--reconcile-mb-per-s <n>', 'pair anti-entropy: MiB copied per second at most, 0: no limit (default 32)')
  .option('--max-announce-rate <n>', 'announcements a second the whole cluster may send; past it every member is asked for a longer heartbeat (default 1000)')
  .option('--center-subnets <list>', 'each center\'s subnet, e.g. east=10.1.0.0/16,west=10.2.0.0/16 (twins differ only in it)')
  .option('--no-mapping', 'do not locate twins by the subnet/slot mapping')
  .option('--no-multicast-search', 'do not locate files by multicast search')
  .option('--no-point-to-point', 'do not locate files by point-to-point queries')
  .action(async (o: ManagerServeOptions) => { await serveManager({ ...o, logLevel: logLevel() }) })

program.command('put <local> <remote>').description('upload a local file').option('--json', 'print the entry as JSON')
  .option('--no-direct', 'send a large file through the manager rather than straight to a storage node')
  .action(async (local: string, remote: string, o: { json?: boolean, direct: boolean }) => { await withClient(async (c) => { await put(c, local, remote, o.json === true, o.direct) }) })
program.command('get <remote> [local]').description('download a file (local "-" for stdout)')
  .option('--no-direct', 'take a large file\'s body through the manager rather than straight from its storage node')
  .action(async (remote: string, local: string | undefined, o: { direct: boolean }) => { await withClient(async (c) => { await get(c, remote, local, o.direct) }) })
program.command('ls [remote]').description('list a directory').option('--json', 'print JSON')
  .action(async (remote: string | undefined, o: { json?: boolean }) => { await withClient(async (c) => { await ls(c, remote ?? '/', o.json === true) }) })
program.command('reconcile').description('run a round of pair anti-entropy now and show what it did').option('--pair <n>', 'only this storage pair').option('--json', 'print JSON')
  .action(async (o: { pair?: string, json?: boolean }) => { await withClient(async (c) => { await reconcile(c, o.pair === undefined ? undefined : parseInteger(o.pair, 'pair'), o.json === true) }) })
program.command('stat <remote>').description('show an entry as JSON')
  .action(async (remote: string) => { await withClient(async (c) => { await statPath(c, remote) }) })
program.command('mkdir <remote>').description('create a directory').option('-p, --parents', 'create missing parents, no error if it exists')
  .action(async (remote: string, o: { parents?: boolean }) => { await withClient(async (c) => { await mkdirPath(c, remote, o.parents === true) }) })
program.command('mv <from> <to>').description('rename a file or directory')
  .action(async (from: string, to: string) => { await withClient(async (c) => { await mv(c, from, to) }) })
program.command('rm <remote>').description('remove a file or an empty directory').option('-r, --recursive', 'remove a directory and everything below it')
  .action(async (remote: string, o: { recursive?: boolean }) => { await withClient(async (c) => { await rmPath(c, remote, o.recursive === true) }) })
program.command('failover <id>').description('put a node or directory server in the failover condition by hand')
  .action(async (id: string) => { await withClient(async (c) => { await failover(c, id, 'failover') }) })
program.command('failback <id>').description('bring a failed-over member back (it resyncs first)')
  .action(async (id: string) => { await withClient(async (c) => { await failover(c, id, 'failback') }) })
program.command('search <key>').description('multicast search for the holders of a file (path or file id): backup center first, then primary')
  .option('--center <name>', 'ask only this center').option('--json', 'print JSON')
  .action(async (key: string, o: { center?: string, json?: boolean }) => { await withClient(async (c) => { await searchCommand(c, key, o.center, o.json === true) }) })
program.command('status').alias('members').description('every storage node and directory server: role, center, slot, address, state, last heard').option('--json', 'print JSON')
  .action(async (o: { json?: boolean }) => { await withClient(async (c) => { await status(c, o.json === true) }) })

program.addCommand(diagCommand())

// 5 s: how long a failed command may take to exit by itself once it said why (its sockets and timers are closed by then)
const EXIT_GRACE_MS = 5_000

program.parseAsync().catch((err: Error & { code?: unknown }) => {
  // A start refused for a reason of its own code says so: a script can tell a held data dir from a taken port.
  const code = typeof err.code === 'string' && (Object.values(StartErrorCode) as string[]).includes(err.code) ? ` (${err.code})` : ''
  process.stderr.write(`mirrorcast: ${err.message}${code}\n`)
  process.exitCode = 1
  // Whatever a failure left open must not keep a process that cannot start alive; unref'd, so a clean exit is not delayed.
  setTimeout(() => {
    process.stderr.write('mirrorcast: something was still open after the failure; exiting\n')
    process.exit(1)
  }, EXIT_GRACE_MS).unref()
})

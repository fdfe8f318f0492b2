import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The commands the nemesis runs inside hosts, and the Debian package of each. */
export const TOOL_PACKAGES: Record<string, string> = {
  iptables: 'iptables',
  python3: 'python3'
}

export function hasCommand (cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Whether Debian's own python3 can import `module` (the DNS-SD browser needs zeroconf). */
export function hasPythonModule (module: string): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', `import ${module}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

// One install at a time over every test process: apt-get's DPkg::Lock::Timeout covers the dpkg
// lock but not the lists lock that `apt-get update` takes, so two updates side by side fail.
const APT_LOCK = '/tmp/mirrorcast-apt.lock'
// Under the lock, a package another test has installed meanwhile is not fetched again.
const INSTALL_MISSING = [
  "need=''",
  // eslint-disable-next-line no-template-curly-in-string -- ${Status} is dpkg-query's field, for the shell
  'for p; do dpkg-query -W -f \'${Status}\' "$p" 2>/dev/null | grep -q \'ok installed\' || need="$need $p"; done',
  '[ -z "$need" ] || { apt-get update -qq && apt-get install -y -qq $need; }'
].join('\n')

/**
 * Installs with apt-get the Debian packages a test needs and lacks, so that a
 * plain `npm test` works on a fresh Debian machine (as root, which network
 * namespaces need anyway; .ci/run installs the same beforehand). Test files
 * run in parallel: they take turns through one flock.
 */
export async function ensureDebianPackages (needs: Array<{ debianPackage: string, present: () => boolean }>): Promise<void> {
  const missing = needs.filter((n) => !n.present()).map((n) => n.debianPackage)
  if (missing.length === 0) return
  if (!hasCommand('apt-get')) throw new Error(`this test needs ${missing.join(', ')} and there is no apt-get to install them`)
  await run('flock', ['-w', '900', APT_LOCK, 'sh', '-c', INSTALL_MISSING, 'sh', ...missing], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    maxBuffer: 64 * 1024 * 1024
  })
}

/** The commands the nemesis runs inside hosts, installed when missing. */
export async function ensureTools (cmds: string[] = Object.keys(TOOL_PACKAGES)): Promise<void> {
  await ensureDebianPackages(cmds.map((c) => ({ debianPackage: TOOL_PACKAGES[c] ?? c, present: () => hasCommand(c) })))
}

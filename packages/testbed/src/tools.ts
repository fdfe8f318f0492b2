import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'

const run = promisify(execFile)

/** The commands the nemesis runs inside hosts, and the Debian package of each. */
export const TOOL_PACKAGES: Record<string, string> = {
  iptables: 'iptables',
  python3: 'python3'
}

function has (cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/**
 * Installs with apt-get whatever the nemesis needs and is missing, so a plain
 * `npm test` works on a fresh Debian machine (as root, which network
 * namespaces need anyway).
 */
export async function ensureTools (cmds: string[] = Object.keys(TOOL_PACKAGES)): Promise<void> {
  const missing = cmds.filter((c) => !has(c)).map((c) => TOOL_PACKAGES[c] ?? c)
  if (missing.length === 0) return
  if (!has('apt-get')) throw new Error(`the test bed needs ${missing.join(', ')} and there is no apt-get to install them`)
  await run('apt-get', ['update', '-qq'], { maxBuffer: 64 * 1024 * 1024 })
  await run('apt-get', ['install', '-y', '-qq', ...missing], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 * 1024 * 1024 })
}

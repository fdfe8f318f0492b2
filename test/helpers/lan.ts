import { execFile, type ChildProcess } from 'node:child_process'
import { promisify } from 'node:util'
import { join } from 'node:path'
import { CLI_BIN } from '@mirrorcast/cli'
import type { Host, TestNet } from './netns.js'

const run = promisify(execFile)

/**
 * Installs a Debian package a test needs when its command is missing, so that
 * plain `npm test` works on a fresh machine (.ci/run installs the same).
 */
export async function ensureCommand (command: string, debianPackage: string): Promise<void> {
  try {
    await run('sh', ['-c', `command -v ${command}`])
    return
  } catch {}
  await run('apt-get', ['update', '-qq'], { maxBuffer: 64 * 1024 * 1024 })
  await run('apt-get', ['install', '-y', '-qq', debianPackage], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 64 * 1024 * 1024 })
}

/** A mirrorcast process in a test host, with the JSON log lines it wrote so far. */
export interface LanProcess {
  host: Host
  child: ChildProcess
  ready: Record<string, unknown>
  logs: Array<Record<string, unknown>>
}

// 20 s: the longest one process may take to say it is ready (2 shared cores, several starting at once)
const READY_TIMEOUT_MS = 20_000

/**
 * Runs `mirrorcast <args>` in a host, as an operator would on that machine,
 * and resolves when its log says ready. `env` adds variables (e.g. LD_PRELOAD).
 */
export async function startIn (net: TestNet, host: Host, args: string[], env: NodeJS.ProcessEnv = {}): Promise<LanProcess> {
  const child = net.spawn(host, process.execPath, [CLI_BIN, ...args, '--log-level', 'info'], env)
  const logs: Array<Record<string, unknown>> = []
  let text = ''
  let partial = ''
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${host.name}: not ready within ${READY_TIMEOUT_MS} ms: ${text}`)), READY_TIMEOUT_MS)
    child.stderr?.on('data', (d: Buffer) => {
      text += d.toString()
      const lines = (partial + d.toString()).split('\n')
      partial = lines.pop() ?? ''
      for (const line of lines) {
        let entry: Record<string, unknown>
        try { entry = JSON.parse(line) as Record<string, unknown> } catch { continue }
        logs.push(entry)
        if (entry.message === 'ready') { clearTimeout(timer); resolve(entry) }
      }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${host.name}: mirrorcast ${args[0] ?? ''} exited ${String(code)}: ${text}`)) })
  })
  return { host, child, ready, logs }
}

export interface CliResult { code: number, stdout: string, stderr: string }

/** Runs a `mirrorcast` client command in a host (the manager is reached from there). */
export async function cliIn (net: TestNet, host: Host, args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`)
  try {
    const { stdout, stderr } = await net.exec(host, 'env', [...envArgs, process.execPath, CLI_BIN, ...args])
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number, stdout: string, stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

/** Drops every multicast datagram a host sends or receives; returns how many were dropped so far. */
export async function blockMulticast (net: TestNet, host: Host): Promise<() => Promise<number>> {
  await ensureCommand('nft', 'nftables')
  const rules = [
    'add table ip mirrorcast_test',
    'add chain ip mirrorcast_test out { type filter hook output priority 0 ; }',
    'add chain ip mirrorcast_test in { type filter hook input priority 0 ; }',
    'add rule ip mirrorcast_test out ip daddr 224.0.0.0/4 counter drop',
    'add rule ip mirrorcast_test in ip daddr 224.0.0.0/4 counter drop'
  ]
  for (const rule of rules) await net.exec(host, 'nft', rule.split(' '))
  return async () => {
    const { stdout } = await net.exec(host, 'nft', ['list', 'table', 'ip', 'mirrorcast_test'])
    return [...stdout.matchAll(/counter packets (\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0)
  }
}

/** The multicast groups a host's eth0 has joined (`ip maddr`). */
export async function joinedGroups (net: TestNet, host: Host): Promise<string[]> {
  const { stdout } = await net.exec(host, 'ip', ['-4', 'maddr', 'show', 'dev', 'eth0'])
  return [...stdout.matchAll(/inet\s+(\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] as string)
}

/** A cluster member's flags: data dir under `dir`, its address as node-protocol address and interface. */
export function memberArgs (dir: string, keyFile: string, role: 'node' | 'directory', center: string, slot: number, address: string): string[] {
  return [role, '--data', join(dir, `${center}-${role}${slot}`), '--key-file', keyFile, '--center', center, '--slot', String(slot), '--address', address, '--port', '8701', '--interface', address]
}

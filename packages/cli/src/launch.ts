import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'

export const CLI_BIN = fileURLToPath(new URL('./bin.js', import.meta.url))

export interface LaunchedCluster {
  url: string
  dir: string
  child: ChildProcess
  /** SIGTERM to `up`, which stops every process it started; resolves when it exited. */
  stop: () => Promise<void>
}

// 30 s: the longest a whole cluster may take to print its URL
const LAUNCH_TIMEOUT_MS = 30_000

/**
 * Runs `mirrorcast up` in a child process, as a user would, and resolves with
 * the URL it prints. For tests, benchmarks and scripts.
 */
export async function launchUp (dir: string, args: string[] = []): Promise<LaunchedCluster> {
  const child = spawn(process.execPath, [CLI_BIN, 'up', '--data', dir, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stopped: Promise<void> | undefined
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
    })()
    await stopped
  }
  let output = ''
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`mirrorcast up printed no URL within ${LAUNCH_TIMEOUT_MS} ms: ${output}`)), LAUNCH_TIMEOUT_MS)
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString()
        const m = /mirrorcast is up: (http:\/\/\S+)/.exec(output)
        if (m !== null) { clearTimeout(timer); resolve(m[1] as string) }
      })
      child.stderr.on('data', (d: Buffer) => { output += d.toString() })
      child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`mirrorcast up exited ${String(code)}: ${output}`)) })
    })
    return { url, dir, child, stop }
  } catch (err) {
    await stop()
    throw err
  }
}

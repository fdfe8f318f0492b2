import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { StallWatch } from './progress.js'

export const CLI_BIN = fileURLToPath(new URL('./bin.js', import.meta.url))

/**
 * V8 flags for a cluster member's process. A storage node moves hundreds of
 * MB/s through short-lived socket and disk buffers; V8 counts that external
 * memory against the old generation's limit, which a 17 MB heap puts near
 * 41 MB, so a node ran a full mark-compact every ~24 MB received (a fifth of
 * its CPU on 16 MiB PUTs). With a higher starting limit the scavenger frees
 * them, and a full collection comes about once per 80 MB. The limit reserves
 * nothing. The committed bin's shebang passes the same flag.
 */
export const MEMBER_EXEC_ARGV = ['--initial-old-space-size=96']

export interface LaunchedCluster {
  url: string
  dir: string
  child: ChildProcess
  /** SIGTERM to `up`, which stops every process it started; resolves when it exited. */
  stop: () => Promise<void>
}

// 30 s: how long `up` may go without a line of output or a second of CPU time before it counts as stuck
const STALL_MS = 30_000
// 5 min: the longest a whole cluster may take to print its URL, progress or not
const LAUNCH_LIMIT_MS = 300_000

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
  let watch: StallWatch | undefined
  try {
    const url = await new Promise<string>((resolve, reject) => {
      // `up` reports each process it started; its own CPU time counts too (it waits on the manager at the end)
      watch = new StallWatch({
        stallMs: STALL_MS,
        limitMs: LAUNCH_LIMIT_MS,
        pids: () => [child.pid],
        onStall: (why) => { reject(new Error(`mirrorcast up printed no URL (${why}): ${output}`)) }
      })
      child.stdout.on('data', (d: Buffer) => {
        output += d.toString()
        watch?.progress()
        const m = /mirrorcast is up: (http:\/\/\S+)/.exec(output)
        if (m !== null) resolve(m[1] as string)
      })
      child.stderr.on('data', (d: Buffer) => { output += d.toString(); watch?.progress() })
      child.once('exit', (code) => { reject(new Error(`mirrorcast up exited ${String(code)}: ${output}`)) })
    })
    return { url, dir, child, stop }
  } catch (err) {
    await stop()
    throw err
  } finally {
    watch?.close()
  }
}

import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile, readdir } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { promisify } from 'node:util'

export const exec = promisify(execFile)

/** The S3 endpoint and key pair `mirrorcast up` wrote for a cluster in `dir`. */
export interface S3Access { s3Url: string, credentialsFile: string, accessKeyId: string, secret: string }

export async function s3Access (dir: string): Promise<S3Access> {
  const cluster = JSON.parse(await readFile(join(dir, 'cluster.json'), 'utf8')) as { manager: { s3Url: string } }
  const credentialsFile = join(dir, 's3-credentials')
  const text = await readFile(credentialsFile, 'utf8')
  const field = (name: string): string => new RegExp(`^${name}\\s*=\\s*(\\S+)`, 'm').exec(text)?.[1] ?? ''
  return { s3Url: cluster.manager.s3Url, credentialsFile, accessKeyId: field('aws_access_key_id'), secret: field('aws_secret_access_key') }
}

/** The environment without any AWS settings of the machine's own, so a client sees only what the test gives it. */
export function cleanEnv (extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('AWS_') && !name.startsWith('RCLONE_') && !name.startsWith('RESTIC_')))
  return { ...env, ...extra }
}

/** A client run to its end, its stdout; an error with its stderr when it fails. */
export async function run (command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await exec(command, args, { env, maxBuffer: 64 * 1024 * 1024 })
    return stdout
  } catch (err) {
    const e = err as { stderr?: string, code?: number }
    throw new Error(`${command} ${args.join(' ')} exited ${String(e.code)}: ${e.stderr ?? ''}`)
  }
}

export async function fileDigest (path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex')
}

/** Every file below `root` by its path relative to it, with the sha256 of its bytes. */
export async function treeDigest (root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, e.name)
      if (e.isDirectory()) await walk(p)
      else out.set(relative(root, p), await fileDigest(p))
    }
  }
  await walk(root)
  return out
}

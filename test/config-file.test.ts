import test from 'ava'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { CLI_BIN } from '@mirrorcast/cli'
import { generateClusterKey, writeClusterKeyFile } from '@mirrorcast/wire'
import { randomPort, tempDir } from './helpers/cluster.js'

const exec = promisify(execFile)

async function nodeConfig (dir: string): Promise<string> {
  const keyFile = join(dir, 'cluster.key')
  await writeClusterKeyFile(keyFile, generateClusterKey())
  const port = randomPort()
  const file = join(dir, 'node.toml')
  await writeFile(file, [
    '# storage node 2 of the east center',
    'role = "node"',
    `data = "${join(dir, 'data')}"`,
    `key-file = "${keyFile}"`,
    'log-level = "info"',
    'center = "east"',
    'slot = 2',
    'address = "127.1.0.2"',
    'port = 0',
    'interface = "127.1.0.2"',
    `mcast-port = ${port}`,
    'multicast = false',
    `peers = ["127.0.0.1:${port}"]`,
    'heartbeat-ms = 200'
  ].join('\n') + '\n')
  return file
}

/** Starts `mirrorcast <args>`, returns its ready log line, and stops it. */
async function readyLine (args: string[]): Promise<Record<string, unknown>> {
  const child = spawn(process.execPath, [CLI_BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
  let text = ''
  try {
    return await new Promise((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        text += d.toString()
        const line = text.split('\n').find((l) => l.includes('"message":"ready"'))
        if (line !== undefined) resolve(JSON.parse(line) as Record<string, unknown>)
      })
      child.once('exit', (code) => reject(new Error(`exited ${String(code)}: ${text}`)))
    })
  } finally {
    const exited = once(child, 'exit')
    child.kill('SIGTERM')
    await exited
  }
}

async function fails (args: string[]): Promise<string> {
  try {
    await exec(process.execPath, [CLI_BIN, ...args])
  } catch (err) {
    return (err as { stderr: string }).stderr
  }
  throw new Error(`mirrorcast ${args.join(' ')} succeeded`)
}

test('a node runs from its config file; a flag overrides the file wherever it stands', async (t) => {
  const dir = await tempDir(t)
  const file = await nodeConfig(dir)
  t.like(await readyLine(['node', '--config', file]), { role: 'storage', center: 'east', slot: 2, address: '127.1.0.2' })
  t.like(await readyLine(['node', '--config', file, '--slot', '5']), { slot: 5, center: 'east' })
  t.like(await readyLine(['node', '--center', 'west', '--config', file]), { slot: 2, center: 'west' })
})

test('a bad config file, a key file others can read, or a missing setting stop the process with a message naming the cause', async (t) => {
  const dir = await tempDir(t)
  const file = await nodeConfig(dir)
  const bad = join(dir, 'bad.toml')
  await writeFile(bad, 'role = "node"\nsolt = 2\n')
  t.regex(await fails(['node', '--config', bad]), /^mirrorcast: .*bad\.toml: unknown key "solt" for a node/m)
  await writeFile(bad, 'role = "node"\nslot = "two"\n')
  t.regex(await fails(['node', '--config', bad]), /bad\.toml: key "slot": .*expected number, received string/)
  t.regex(await fails(['manager', '--config', file]), /node\.toml: role = "node", but this is `mirrorcast manager`/)
  t.regex(await fails(['node', '--config', join(dir, 'missing.toml')]), /cannot read config file .*missing\.toml/)

  await chmod(join(dir, 'cluster.key'), 0o640)
  t.regex(await fails(['node', '--config', file]), /cluster key file .*cluster\.key is readable by others \(mode 640\); chmod 600 it/)
  await writeFile(bad, 'role = "node"\ncenter = "east"\nslot = 1\n')
  t.regex(await fails(['node', '--config', bad]), /required option '--data <dir>'/)
})

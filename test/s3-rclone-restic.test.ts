import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, open, stat, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import test from 'ava'
import { signS3Headers } from '@mirrorcast/manager'
import { until } from '@mirrorcast/testkit'
import { http, json, readClusterJson, startUp, tempDir, type HttpResult, type ListJson } from './helpers/cluster.js'
import { cleanEnv, run, s3Access, treeDigest, type S3Access } from './helpers/s3.js'

// names S3 tools meet, and what the key encoding must round-trip: spaces, unicode, +, %, a literal %2E and %25, dots
const ODD_NAMES = ['with space.txt', 'ünïcødé €.bin', 'plus+sign.txt', '100% sure.txt', 'literal %2E and %25.txt', '.hidden', 'trailing.dot.', 'a-b', 'a/b']
const BIG_BYTES = 300 * 1024 * 1024

/** A tree of `count` files: empty ones, small ones across directories, the odd names, and (if asked) one of 300 MiB. */
async function makeTree (root: string, count: number, big: boolean): Promise<void> {
  const names = [...ODD_NAMES.map((n) => `odd/${n}`)]
  if (big) names.push('big/three-hundred.bin')
  for (let i = 0; names.length < count; i++) names.push(`d${String(i % 25).padStart(2, '0')}/file ${i}${i % 7 === 0 ? ' +%' : ''}.dat`)
  for (const [i, name] of names.entries()) {
    const path = join(root, name)
    await mkdir(dirname(path), { recursive: true })
    if (name.startsWith('big/')) await writeLarge(path, BIG_BYTES)
    else await writeFile(path, i % 40 === 0 ? Buffer.alloc(0) : randomBytes(1 + (i * 7919) % 20_000))
  }
}

async function writeLarge (path: string, size: number): Promise<void> {
  const file = await open(path, 'w')
  try {
    for (let at = 0; at < size; at += 16 * 1024 * 1024) await file.write(randomBytes(Math.min(16 * 1024 * 1024, size - at)))
  } finally {
    await file.close()
  }
}

test('rclone: sync of 1,000 files (empty ones, odd names, 300 MiB in parts) to a bucket and back with a storage node killed -9 mid-sync; rclone check finds them identical', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--nodes', '1'])
  const s3 = await s3Access(dir)
  // the credentials file `up` wrote, as rclone reads AWS's (env_auth)
  const env = cleanEnv({
    RCLONE_CONFIG_MC_TYPE: 's3',
    RCLONE_CONFIG_MC_PROVIDER: 'Other',
    RCLONE_CONFIG_MC_ENV_AUTH: 'true',
    RCLONE_CONFIG_MC_ENDPOINT: s3.s3Url,
    AWS_SHARED_CREDENTIALS_FILE: s3.credentialsFile,
    AWS_PROFILE: 'mirrorcast',
    AWS_EC2_METADATA_DISABLED: 'true'
  })
  const rclone = async (...args: string[]): Promise<string> => await run('rclone', ['--config', '/dev/null', ...args], env)
  const src = join(dir, 'src')
  await makeTree(src, 1000, true)
  await rclone('mkdir', 'mc:backup')

  const sync = spawn('rclone', ['--config', '/dev/null', 'sync', src, 'mc:backup/tree', '--transfers', '4'], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  t.teardown(() => { sync.kill('SIGKILL') })
  let stderr = ''
  sync.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const exited = new Promise<number | null>((resolve) => sync.once('close', resolve))
  // the kill lands while the large file's parts are going up, with small files around them
  await until(async () => await partsUploaded(c.url) >= 10, { what: '10 parts of the large file', timeoutMs: 120_000, intervalMs: 100 })
  const victim = (await readClusterJson(dir)).nodes.find((n) => n.role === 'storage' && n.center === 'east') ?? t.fail('no east node') as never
  process.kill(victim.pid, 'SIGKILL')
  t.is(await exited, 0, `rclone sync failed: ${stderr}`)
  t.notRegex(stderr, /ERROR/, 'rclone saw no error')

  await rclone('check', src, 'mc:backup/tree')
  // 0-byte folder markers, as S3 consoles and some tools make them (rclone 1.60 makes none itself)
  for (const marker of ['tree/markers/', 'tree/markers/empty folder/']) t.is((await signedPut(s3, `/backup/${marker}`)).status, 200, marker)
  t.deepEqual((await rclone('lsf', 'mc:backup/tree/markers')).split('\n').filter((l) => l !== ''), ['empty folder/'])
  const back = join(dir, 'back')
  await rclone('sync', 'mc:backup/tree', back, '--create-empty-src-dirs')
  t.true((await stat(join(back, 'markers', 'empty folder'))).isDirectory(), 'the folder marker came back as a directory')
  await rclone('check', back, 'mc:backup/tree')
  t.deepEqual(await treeDigest(back), await treeDigest(src), 'every file came back with its bytes')
  const listed = (await rclone('lsf', '-R', '--files-only', 'mc:backup/tree')).split('\n').filter((l) => l !== '')
  t.is(listed.length, 1000)
  for (const name of ODD_NAMES) t.true(listed.includes(`odd/${name}`), `${name} is listed as it was named`)
})

/** An empty object PUT by a request signed with the key `up` wrote. */
async function signedPut (s3: S3Access, path: string): Promise<HttpResult> {
  const host = new URL(s3.s3Url).host
  const encoded = path.split('/').map(encodeURIComponent).join('/')
  const headers = signS3Headers({ method: 'PUT', path: encoded, host, payloadHash: createHash('sha256').digest('hex') }, { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secret }, 'us-east-1')
  return await http(s3.s3Url, 'PUT', encoded, Buffer.alloc(0), headers)
}

/** Parts of uploads in progress, as the native API shows the bucket's S3 directory. */
async function partsUploaded (url: string): Promise<number> {
  const uploads = await http(url, 'GET', '/files/backup/%25s3/uploads/')
  if (uploads.status !== 200) return 0
  let parts = 0
  for (const upload of json<ListJson>(uploads).entries) {
    const list = await http(url, 'GET', `/files/backup/%25s3/uploads/${upload.name}/`)
    if (list.status === 200) parts += json<ListJson>(list).entries.filter((e) => e.name !== '%upload').length
  }
  return parts
}

test('restic: init, backup of a tree, check --read-data, restore: identical', async (t) => {
  const dir = await tempDir(t)
  await startUp(t, dir, ['--nodes', '1'])
  const s3 = await s3Access(dir)
  const env = cleanEnv({
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secret,
    RESTIC_REPOSITORY: `s3:${s3.s3Url}/restic-repo`,
    RESTIC_PASSWORD: 'a passphrase of the test',
    RESTIC_CACHE_DIR: join(dir, 'restic-cache')
  })
  const src = join(dir, 'src')
  await makeTree(src, 300, false)
  await writeLarge(join(src, 'forty.bin'), 40 * 1024 * 1024)

  await run('restic', ['init'], env)
  await run('restic', ['backup', '--host', 'test', src], env)
  const snapshots = JSON.parse(await run('restic', ['snapshots', '--json'], env)) as Array<{ paths: string[] }>
  t.deepEqual(snapshots.map((s) => s.paths), [[src]])
  t.regex(await run('restic', ['check', '--read-data'], env), /no errors were found/)
  const target = join(dir, 'restored')
  await run('restic', ['restore', 'latest', '--target', target], env)
  t.deepEqual(await treeDigest(join(target, src)), await treeDigest(src), 'the restored tree is the backed-up one')
})

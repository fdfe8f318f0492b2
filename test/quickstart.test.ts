import test from 'ava'
import { execFile } from 'node:child_process'
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { REPO, startUp, tempDir } from './helpers/cluster.js'

const exec = promisify(execFile)

/** The README's "In another terminal" block: the commands a new user copies first. */
async function quickStartLines (): Promise<string[]> {
  const readme = await readFile(join(REPO, 'README.md'), 'utf8')
  const block = /In another terminal:\n\n```sh\n([\s\S]*?)```/.exec(readme)
  if (block === null) throw new Error('README.md has no quick-start block after "In another terminal:"')
  return (block[1] as string).split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
}

test('every quick-start line of the README works as written, npx resolving the project\'s own CLI', async (t) => {
  const dir = await tempDir(t)
  const cluster = await startUp(t, dir)
  // Inside the repository, as a user in their clone: npx finds node_modules/.bin from there.
  await mkdir(join(REPO, 'test', 'dist'), { recursive: true })
  const cwd = await mkdtemp(join(REPO, 'test', 'dist', 'quickstart-'))
  t.teardown(async () => { await rm(cwd, { recursive: true, force: true }) })
  const lines = await quickStartLines()
  t.true(lines.some((l) => l.startsWith('npx mirrorcast put')), 'the quick start puts a file with npx')
  const outputs: string[] = []
  for (const line of lines) {
    // The README's port is `npm start`'s; this cluster has its own. --no-install: a registry lookup is a failure.
    const command = line.replaceAll('http://127.0.0.1:8700', cluster.url).replaceAll('npx mirrorcast', 'npx --no-install mirrorcast')
    try {
      const { stdout } = await exec('sh', ['-c', command], { cwd, env: { ...process.env, MIRRORCAST_URL: cluster.url }, maxBuffer: 64 * 1024 * 1024 })
      outputs.push(stdout)
    } catch (err) {
      t.fail(`${line}: ${(err as Error).message}`)
      return
    }
  }
  const text = outputs.join('')
  t.regex(text, /hello\.txt/, 'ls lists the file put')
  t.regex(text, /^hello$/m, 'get - prints its content')
  t.regex(text, /^storage +east +1 .* healthy/m, 'status lists the members')
  t.true((await readFile(join(cwd, 'copy.iso'))).equals(await readFile(join(cwd, 'big.iso'))), 'the ISO comes back identical')
})

test('the committed launcher says how to build when the build is missing', async (t) => {
  const dir = await tempDir(t)
  await mkdir(join(dir, 'cli', 'bin'), { recursive: true })
  await copyFile(join(REPO, 'packages', 'cli', 'bin', 'mirrorcast.js'), join(dir, 'cli', 'bin', 'mirrorcast.js'))
  const err = await t.throwsAsync(exec(process.execPath, [join(dir, 'cli', 'bin', 'mirrorcast.js'), '--help'])) as Error & { code: number, stderr: string }
  t.is(err.code, 1)
  t.regex(err.stderr, /^mirrorcast: the CLI is not built \(.*dist\/src\/bin\.js is missing\); run `npm run build` in /m)
})

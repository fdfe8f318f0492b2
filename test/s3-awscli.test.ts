import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import test from 'ava'
import { signS3Headers } from '@mirrorcast/manager'
import { http, json, startUp, tempDir, type ListJson } from './helpers/cluster.js'
import { cleanEnv, exec, fileDigest, run, s3Access, treeDigest as files } from './helpers/s3.js'

/**
 * The S3 API driven by aws-cli itself (the one on the machine, or Debian's
 * awscli that .ci/run installs), against a `mirrorcast up` cluster, with the
 * credentials `up` writes.
 */
interface Aws { run: (...args: string[]) => Promise<string>, s3Url: string }

async function awsAgainst (dir: string): Promise<Aws> {
  const { s3Url, credentialsFile } = await s3Access(dir)
  const config = join(dir, 'aws-config')
  // aws-cli v1 presigns with Signature Version 2 unless the profile asks for s3v4 (v2 always uses s3v4)
  await writeFile(config, '[profile mirrorcast]\nregion = us-east-1\ns3 =\n  signature_version = s3v4\n')
  const env = cleanEnv({ AWS_SHARED_CREDENTIALS_FILE: credentialsFile, AWS_CONFIG_FILE: config, AWS_EC2_METADATA_DISABLED: 'true' })
  return { s3Url, run: async (...args: string[]) => await run('aws', ['--profile', 'mirrorcast', '--endpoint-url', s3Url, ...args], env) }
}

// names S3 tools meet: spaces, unicode, +, %, a name that sorts before its own directory (a-b vs a/b)
const NAMES = ['plain.txt', 'with space.txt', 'ünïcødé €.bin', 'plus+sign.txt', '100% sure.txt', 'a-b', 'a/b', 'a/deep/er/file.dat', 'empty', 'five-mib.bin']

test('aws-cli: mb, ls, sync up and back (identical), head-object with metadata, listing order and pages, presigned GET, rm --recursive, rb', async (t) => {
  const dir = await tempDir(t)
  await startUp(t, dir, ['--nodes', '1'])
  const aws = await awsAgainst(dir)
  const src = join(dir, 'src')
  for (const name of NAMES) {
    await mkdir(join(src, name, '..'), { recursive: true })
    await writeFile(join(src, name), name === 'empty' ? Buffer.alloc(0) : name === 'five-mib.bin' ? randomBytes(5 * 1024 * 1024) : randomBytes(1000 + name.length))
  }

  await aws.run('s3', 'mb', 's3://photos')
  t.regex(await aws.run('s3', 'ls'), /\bphotos\n/)
  await aws.run('s3', 'sync', src, 's3://photos/tree/')

  const listed = JSON.parse(await aws.run('s3api', 'list-objects-v2', '--bucket', 'photos', '--prefix', 'tree/', '--page-size', '3')) as { Contents: Array<{ Key: string, Size: number, ETag: string }> }
  const keys = listed.Contents.map((c) => c.Key)
  const expected = NAMES.map((n) => `tree/${n}`).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
  t.deepEqual(keys, expected, 'every key, once, in UTF-8 byte order, across pages of 3')
  const plain = listed.Contents.find((c) => c.Key === 'tree/plain.txt')
  t.is(plain?.ETag, `"${createHash('md5').update(await readFile(join(src, 'plain.txt'))).digest('hex')}"`, 'ETag is the MD5 of the body')

  const top = JSON.parse(await aws.run('s3api', 'list-objects-v2', '--bucket', 'photos', '--prefix', 'tree/', '--delimiter', '/')) as { Contents: Array<{ Key: string }>, CommonPrefixes: Array<{ Prefix: string }> }
  t.deepEqual(top.CommonPrefixes.map((p) => p.Prefix), ['tree/a/'])
  t.false(top.Contents.some((c) => c.Key.startsWith('tree/a/')))

  const back = join(dir, 'back')
  await aws.run('s3', 'sync', 's3://photos/tree/', back)
  t.deepEqual(await files(back), await files(src), 'the tree came back identical')

  // aws-cli uploads above 8 MiB in parts of 8 MiB (with CRC32 checksums) and downloads them by ranges
  const big = join(dir, 'hundred.bin')
  await writeFile(big, randomBytes(100 * 1024 * 1024))
  await aws.run('s3', 'cp', big, 's3://photos/big/hundred.bin')
  const bigHead = JSON.parse(await aws.run('s3api', 'head-object', '--bucket', 'photos', '--key', 'big/hundred.bin')) as { ContentLength: number, ETag: string }
  t.is(bigHead.ContentLength, 100 * 1024 * 1024)
  t.regex(bigHead.ETag, /^"[0-9a-f]{32}-13"$/, 'the ETag of 13 parts of 8 MiB')
  await aws.run('s3', 'cp', 's3://photos/big/hundred.bin', join(dir, 'hundred.back'))
  t.is(await fileDigest(join(dir, 'hundred.back')), await fileDigest(big), 'the multipart object came back identical')
  t.notRegex(await aws.run('s3api', 'list-multipart-uploads', '--bucket', 'photos'), /UploadId/, 'no upload is left in progress')

  await aws.run('s3api', 'put-object', '--bucket', 'photos', '--key', 'meta.txt', '--body', join(src, 'plain.txt'), '--content-type', 'text/plain', '--metadata', 'camera=x100,owner=ann')
  const head = JSON.parse(await aws.run('s3api', 'head-object', '--bucket', 'photos', '--key', 'meta.txt')) as { ContentLength: number, ETag: string, LastModified: string, ContentType: string, Metadata: Record<string, string> }
  t.is(head.ContentLength, (await readFile(join(src, 'plain.txt'))).length)
  t.is(head.ContentType, 'text/plain')
  t.deepEqual(head.Metadata, { camera: 'x100', owner: 'ann' })
  t.true(Math.abs(Date.parse(head.LastModified) - Date.now()) < 120_000, 'Last-Modified is the time of the upload')
  const missing = await t.throwsAsync(aws.run('s3api', 'head-object', '--bucket', 'photos', '--key', 'nope'))
  t.regex(missing.message, /404|Not Found/)

  const url = (await aws.run('s3', 'presign', 's3://photos/meta.txt', '--expires-in', '2')).trim()
  const fetched = await exec('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', url], { encoding: 'buffer' })
  const body = fetched.stdout.subarray(0, fetched.stdout.lastIndexOf(10))
  t.deepEqual(body, await readFile(join(src, 'plain.txt')), 'the presigned URL serves the object to curl')
  await new Promise((resolve) => setTimeout(resolve, 3500))
  const late = await exec('curl', ['-sS', '-w', '\n%{http_code}', url])
  t.regex(late.stdout, /<Code>AccessDenied<\/Code>[\s\S]*\n403$/, 'refused once expired')

  await aws.run('s3', 'rm', '--recursive', 's3://photos/tree/')
  await aws.run('s3', 'rm', '--recursive', 's3://photos/big/')
  const after = JSON.parse((await aws.run('s3api', 'list-objects-v2', '--bucket', 'photos')) || '{}') as { Contents?: Array<{ Key: string }> }
  t.deepEqual(after.Contents?.map((c) => c.Key), ['meta.txt'], 'only the object outside the tree is left, and no prefix of the tree lingers')
  await t.throwsAsync(aws.run('s3', 'rb', 's3://photos'), { message: /BucketNotEmpty/ })
  await aws.run('s3', 'rm', 's3://photos/meta.txt')
  await aws.run('s3', 'rb', 's3://photos')
  t.notRegex(await aws.run('s3', 'ls'), /photos/)
})

test('aws s3api multipart: parts in order and of 5 MiB but the last, ETags checked, a retried completion succeeds alike, UploadPartCopy, abort, and an overwrite drops the old parts', async (t) => {
  const dir = await tempDir(t)
  const c = await startUp(t, dir, ['--nodes', '1'])
  const aws = await awsAgainst(dir)
  const api = async (...args: string[]): Promise<Record<string, unknown>> => JSON.parse((await aws.run('s3api', ...args)) || '{}') as Record<string, unknown>
  await aws.run('s3', 'mb', 's3://parts')
  const p1 = join(dir, 'p1')
  const p2 = join(dir, 'p2')
  await writeFile(p1, randomBytes(5 * 1024 * 1024))
  await writeFile(p2, randomBytes(1000))
  const id = String((await api('create-multipart-upload', '--bucket', 'parts', '--key', 'obj', '--content-type', 'video/mp4', '--metadata', 'take=3')).UploadId)
  const upload = ['--bucket', 'parts', '--key', 'obj', '--upload-id', id]
  const e1 = String((await api('upload-part', ...upload, '--part-number', '1', '--body', p1)).ETag)
  const e2 = String((await api('upload-part', ...upload, '--part-number', '2', '--body', p2)).ETag)
  // a 1,000-byte part that is not the last is refused; so are parts out of order and an ETag that is not the part's
  const e3 = String((await api('upload-part', ...upload, '--part-number', '3', '--body', p2)).ETag)
  const complete = async (parts: Array<[number, string]>): Promise<Record<string, unknown>> => await api('complete-multipart-upload', ...upload, '--multipart-upload', JSON.stringify({ Parts: parts.map(([n, e]) => ({ PartNumber: n, ETag: e })) }))
  await t.throwsAsync(complete([[1, e1], [2, e2], [3, e3]]), { message: /EntityTooSmall/ })
  await t.throwsAsync(complete([[2, e2], [1, e1]]), { message: /InvalidPartOrder/ })
  await t.throwsAsync(complete([[1, e2], [2, e2]]), { message: /InvalidPart\b/ })
  const listed = await api('list-parts', ...upload)
  t.deepEqual((listed.Parts as Array<{ PartNumber: number, Size: number }>).map((p) => [p.PartNumber, p.Size]), [[1, 5 * 1024 * 1024], [2, 1000], [3, 1000]])
  t.regex(await aws.run('s3api', 'list-multipart-uploads', '--bucket', 'parts'), new RegExp(id))

  // parts 1 and 2 make the object; part 3, left out, goes
  const done = await complete([[1, e1], [2, e2]])
  const again = await complete([[1, e1], [2, e2]])
  t.is(again.ETag, done.ETag, 'a retried completion answers the same')
  t.regex(String(done.ETag), /^"[0-9a-f]{32}-2"$/)
  const head = await api('head-object', '--bucket', 'parts', '--key', 'obj')
  t.is(head.ContentLength, 5 * 1024 * 1024 + 1000)
  t.is(head.ContentType, 'video/mp4')
  t.deepEqual(head.Metadata, { take: '3' })
  await aws.run('s3api', 'get-object', '--bucket', 'parts', '--key', 'obj', '--range', `bytes=${5 * 1024 * 1024 - 10}-${5 * 1024 * 1024 + 9}`, join(dir, 'across'))
  const both = Buffer.concat([await readFile(p1), await readFile(p2)])
  t.deepEqual(await readFile(join(dir, 'across')), both.subarray(5 * 1024 * 1024 - 10, 5 * 1024 * 1024 + 10), 'a range across two parts')
  await t.throwsAsync(api('list-parts', ...upload), { message: /NoSuchUpload/ }, 'a completed upload is no longer in progress')

  // UploadPartCopy: a new object made of a range of the first one; an aborted upload is gone with its parts
  const id2 = String((await api('create-multipart-upload', '--bucket', 'parts', '--key', 'copy')).UploadId)
  const copied = await api('upload-part-copy', '--bucket', 'parts', '--key', 'copy', '--upload-id', id2, '--part-number', '1', '--copy-source', 'parts/obj', '--copy-source-range', 'bytes=100-199')
  await api('complete-multipart-upload', '--bucket', 'parts', '--key', 'copy', '--upload-id', id2, '--multipart-upload', JSON.stringify({ Parts: [{ PartNumber: 1, ETag: (copied.CopyPartResult as { ETag: string }).ETag }] }))
  await aws.run('s3', 'cp', 's3://parts/copy', join(dir, 'copy'))
  t.deepEqual(await readFile(join(dir, 'copy')), both.subarray(100, 200))
  // virtual-host style: the bucket in the Host (below the default domain, localhost), the key as the path
  const { s3Url, accessKeyId, secret } = await s3Access(dir)
  const host = `parts.localhost:${new URL(s3Url).port}`
  const headers = signS3Headers({ method: 'GET', path: '/copy', host, payloadHash: createHash('sha256').digest('hex') }, { accessKeyId, secretAccessKey: secret }, 'us-east-1')
  const virtual = await http(s3Url, 'GET', '/copy', undefined, headers)
  t.is(virtual.status, 200, virtual.body.toString())
  t.deepEqual(virtual.body, both.subarray(100, 200), 'the object, addressed virtual-host style')
  const id3 = String((await api('create-multipart-upload', '--bucket', 'parts', '--key', 'dropped')).UploadId)
  await api('upload-part', '--bucket', 'parts', '--key', 'dropped', '--upload-id', id3, '--part-number', '1', '--body', p2)
  await api('abort-multipart-upload', '--bucket', 'parts', '--key', 'dropped', '--upload-id', id3)
  await t.throwsAsync(api('upload-part', '--bucket', 'parts', '--key', 'dropped', '--upload-id', id3, '--part-number', '2', '--body', p2), { message: /NoSuchUpload/ })

  // an overwrite in one piece drops the parts of what it replaced: the bucket's parts directory holds only copy's
  await aws.run('s3', 'cp', p2, 's3://parts/obj')
  const kept = json<ListJson>(await http(c.url, 'GET', '/files/parts/%25s3/parts/'))
  t.deepEqual(kept.entries.map((e) => e.name), [id2], 'only the parts an object still names are kept')
  t.is((await api('head-object', '--bucket', 'parts', '--key', 'obj')).ContentLength, 1000)
  await aws.run('s3', 'rm', '--recursive', 's3://parts/')
  await aws.run('s3', 'rb', 's3://parts')
})

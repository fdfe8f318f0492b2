import { createHash, randomBytes } from 'node:crypto'
import type { FileEntry } from '@mirrorcast/wire'
import { S3Error } from './errors.js'
import { bucketPath, objectPath } from './keys.js'
import { compareKeys } from './listing.js'
import { intParameter, whileClientStays, type S3Ctx } from './request.js'
import { checksumHeaders } from './respond.js'
import { PARTS_FIELD, S3_DIR, SIZE_FIELD, UPLOAD_RECORD, bytesOf, md5Hash, partsDir, withMd5, type S3Object, type S3Store } from './store.js'
import { listOf, parseXml, readSmallBody, sendXml, textOf, type XmlNode } from './xml.js'

// S3's limits: part numbers, the smallest part but the last, entries a page of ListParts or ListMultipartUploads gives
const MAX_PART_NUMBER = 10_000
export const MIN_PART_BYTES = 5 * 1024 * 1024
const MAX_PAGE = 1000
const UPLOAD_ID = /^[0-9a-f]{32}$/

interface UploadRecord { key: string, meta: Record<string, string>, initiated: number }

/** An upload found: the directory of its parts, its record, and whether it was completed (its directory renamed). */
interface Upload { id: string, dir: string, record: UploadRecord, completed: boolean }

export interface MultipartDeps {
  store: S3Store
  /** The body of a request as S3 sends it (aws-chunked decoded, checksums verified). */
  body: (ctx: S3Ctx) => { body: AsyncIterable<Buffer>, size: number, md5: () => string, checksums: () => Record<string, string> }
  /** The object an x-amz-copy-source names. */
  copySource: (ctx: S3Ctx) => Promise<S3Object>
  /** The headers and x-amz-meta-* of a request, as an object keeps them. */
  requestMeta: (ctx: S3Ctx) => Record<string, string>
}

function uploadsDir (bucket: string): string {
  return `${bucketPath(bucket)}/${S3_DIR}/uploads`
}

function partName (n: number): string {
  return String(n).padStart(5, '0')
}

/**
 * Multipart uploads, each part a body stored twice like any other, named in
 * the upload's directory below the bucket's `%s3`. Completing renames that
 * directory to `%s3/parts/<id>` and names the key with an empty body whose
 * metadata points at it (a manifest, as Swift's static large objects are): no
 * byte is copied again. A completion the client retries after the rename
 * finds the parts there and names the key again, so it succeeds twice alike.
 */
export class MultipartUploads {
  constructor (private readonly deps: MultipartDeps) {}

  async create (ctx: S3Ctx, bucket: string, key: string): Promise<void> {
    objectPath(bucket, key)
    await readSmallBody(this.deps.body(ctx).body, ctx.req)
    await this.deps.store.requireBucket(bucket)
    const record: UploadRecord = { key, meta: this.deps.requestMeta(ctx), initiated: Date.now() }
    const id = randomBytes(16).toString('hex')
    const dir = `${uploadsDir(bucket)}/${id}`
    await this.deps.store.dirs.mkdir(dir, true)
    const text = Buffer.from(JSON.stringify(record))
    await this.deps.store.store(bucket, `${dir}/${UPLOAD_RECORD}`, bytesOf(text), text.length, () => ({}))
    sendXml(ctx.res, 200, 'InitiateMultipartUploadResult', { Bucket: bucket, Key: key, UploadId: id })
  }

  async uploadPart (ctx: S3Ctx, bucket: string, key: string): Promise<void> {
    const n = intParameter(ctx.target.query, 'partNumber', 0, MAX_PART_NUMBER)
    if (n < 1) throw new S3Error('InvalidArgument', `Part number must be an integer between 1 and ${MAX_PART_NUMBER}, inclusive`)
    if (ctx.req.headers['x-amz-copy-source'] !== undefined) return await this.uploadPartCopy(ctx, bucket, key, n)
    const upload = this.deps.body(ctx)
    // looked up while the part travels
    const found = this.upload(ctx, bucket, key, false)
    found.catch(() => {})
    const path = `${uploadsDir(bucket)}/${uploadIdOf(ctx)}/${partName(n)}`
    await whileClientStays(ctx.req, async (signal) => await this.deps.store.store(bucket, path, upload.body, upload.size, () => ({ etag: upload.md5() }), { signal, before: found }))
    ctx.res.writeHead(200, { etag: `"${upload.md5()}"`, ...checksumHeaders(upload.checksums()) }).end()
  }

  private async uploadPartCopy (ctx: S3Ctx, bucket: string, key: string, n: number): Promise<void> {
    await readSmallBody(this.deps.body(ctx).body, ctx.req)
    const { dir } = await this.upload(ctx, bucket, key, false)
    const source = await this.deps.copySource(ctx)
    const { offset, length } = copyRange(ctx.req.headers['x-amz-copy-source-range'], source.size)
    const md5 = md5Hash()
    let etag = ''
    const entry = await this.deps.store.store(bucket, `${dir}/${partName(n)}`, withMd5(source.read(offset, length), md5), length, () => ({ etag: (etag = md5.digest('hex')) }))
    sendXml(ctx.res, 200, 'CopyPartResult', { LastModified: new Date(entry.mtime).toISOString(), ETag: `"${etag}"` })
  }

  async complete (ctx: S3Ctx, bucket: string, key: string): Promise<void> {
    const upload = await this.upload(ctx, bucket, key, true)
    const doc = parseXml(await readSmallBody(this.deps.body(ctx).body, ctx.req), 'CompleteMultipartUpload')
    const parts = await this.chosenParts(upload, listOf(doc, 'Part'))
    if (!upload.completed) {
      const chosen = new Set(parts.map((p) => p.path))
      for await (const e of this.deps.store.entries(upload.dir)) {
        if (e.type === 'file' && !e.path.endsWith(`/${UPLOAD_RECORD}`) && !chosen.has(e.path)) await this.deps.store.removeTree(bucket, e.path)
      }
      await this.deps.store.dirs.mkdir(`${bucketPath(bucket)}/${S3_DIR}/parts`, true)
      await this.deps.store.dirs.rename(upload.dir, partsDir(bucket, upload.id))
    }
    const md5s = createHash('md5')
    for (const part of parts) md5s.update(Buffer.from(part.meta?.etag ?? '', 'hex'))
    const etag = `${md5s.digest('hex')}-${parts.length}`
    const size = parts.reduce((sum, p) => sum + p.size, 0)
    const meta = { ...upload.record.meta, etag, [PARTS_FIELD]: upload.id, [SIZE_FIELD]: String(size) }
    await this.deps.store.store(bucket, objectPath(bucket, key), bytesOf(), 0, () => meta)
    sendXml(ctx.res, 200, 'CompleteMultipartUploadResult', { Location: `/${bucket}/${key}`, Bucket: bucket, Key: key, ETag: `"${etag}"` })
  }

  /** The parts a completion names, each uploaded with the ETag it gives, in ascending order, all but the last of 5 MiB at least. */
  private async chosenParts (upload: Upload, asked: XmlNode[]): Promise<FileEntry[]> {
    if (asked.length === 0) throw new S3Error('MalformedXML', 'You must specify at least one part')
    if (asked.length > MAX_PART_NUMBER) throw new S3Error('MalformedXML', `a completion names ${MAX_PART_NUMBER} parts at most`)
    const have = new Map<string, FileEntry>()
    for await (const e of this.deps.store.entries(upload.dir)) if (e.type === 'file') have.set(e.path, e)
    const parts: FileEntry[] = []
    let last = 0
    for (const item of asked) {
      const n = Number(textOf(item, 'PartNumber'))
      if (!Number.isSafeInteger(n) || n < 1 || n > MAX_PART_NUMBER) throw new S3Error('InvalidArgument', 'PartNumber must be an integer from 1 to 10000')
      if (n <= last) throw new S3Error('InvalidPartOrder', 'The list of parts was not in ascending order. The parts list must be specified in order by part number.')
      last = n
      const part = have.get(`${upload.dir}/${partName(n)}`)
      const etag = (textOf(item, 'ETag') ?? '').replaceAll('"', '')
      if (part === undefined || part.meta?.etag !== etag) throw new S3Error('InvalidPart', `One or more of the specified parts could not be found: part ${n} was not uploaded, or has another ETag`)
      parts.push(part)
    }
    const small = parts.slice(0, -1).find((p) => p.size < MIN_PART_BYTES)
    if (small !== undefined) throw new S3Error('EntityTooSmall', `Your proposed upload is smaller than the minimum allowed size: a part other than the last has ${small.size} bytes, the least is ${MIN_PART_BYTES}`)
    return parts
  }

  async abort (ctx: S3Ctx, bucket: string, key: string): Promise<void> {
    const upload = await this.upload(ctx, bucket, key, false)
    await this.deps.store.removeTree(bucket, upload.dir)
    ctx.res.writeHead(204).end()
  }

  async listParts (ctx: S3Ctx, bucket: string, key: string): Promise<void> {
    const upload = await this.upload(ctx, bucket, key, false)
    const q = ctx.target.query
    const marker = intParameter(q, 'part-number-marker', 0, MAX_PART_NUMBER)
    const maxParts = Math.min(MAX_PAGE, intParameter(q, 'max-parts', MAX_PAGE, 2 ** 31 - 1))
    const parts: XmlNode[] = []
    let truncated = false
    for await (const e of this.deps.store.entries(upload.dir)) {
      const n = Number(e.path.slice(e.path.lastIndexOf('/') + 1))
      if (e.type !== 'file' || !Number.isSafeInteger(n) || n <= marker) continue
      if (parts.length === maxParts) {
        truncated = true
        break
      }
      parts.push({ PartNumber: n, LastModified: new Date(e.mtime).toISOString(), ETag: `"${e.meta?.etag ?? ''}"`, Size: e.size })
    }
    const owner = ownerOf(ctx)
    sendXml(ctx.res, 200, 'ListPartsResult', {
      Bucket: bucket,
      Key: key,
      UploadId: upload.id,
      Initiator: owner,
      Owner: owner,
      StorageClass: 'STANDARD',
      PartNumberMarker: marker,
      ...(truncated ? { NextPartNumberMarker: parts.at(-1)?.PartNumber } : {}),
      MaxParts: maxParts,
      IsTruncated: truncated,
      Part: parts
    })
  }

  /** ListMultipartUploads: the uploads in progress in key order (then by when they began), with prefix, delimiter and markers. */
  async listUploads (ctx: S3Ctx, bucket: string): Promise<void> {
    await this.deps.store.requireBucket(bucket)
    const q = ctx.target.query
    const prefix = q.get('prefix') ?? ''
    const delimiter = q.get('delimiter') ?? ''
    const keyMarker = q.get('key-marker') ?? ''
    const idMarker = q.get('upload-id-marker') ?? ''
    const maxUploads = Math.min(MAX_PAGE, intParameter(q, 'max-uploads', MAX_PAGE, 2 ** 31 - 1))
    const all: Array<{ id: string, record: UploadRecord }> = []
    for await (const e of this.deps.store.entries(uploadsDir(bucket))) {
      const id = e.path.slice(e.path.lastIndexOf('/') + 1)
      const record = e.type === 'dir' ? await this.record(e.path) : undefined
      if (record?.key.startsWith(prefix) === true) all.push({ id, record })
    }
    all.sort((a, b) => compareKeys(a.record.key, b.record.key) || a.record.initiated - b.record.initiated)
    const uploads: XmlNode[] = []
    const prefixes: string[] = []
    let last: { key: string, id: string } | undefined
    let truncated = false
    for (const { id, record } of all) {
      const c = compareKeys(record.key, keyMarker)
      if (keyMarker !== '' && (c < 0 || (c === 0 && (idMarker === '' || id <= idMarker)))) continue
      const at = delimiter === '' ? -1 : record.key.indexOf(delimiter, prefix.length)
      const common = at < 0 ? undefined : record.key.slice(0, at + delimiter.length)
      if (common !== undefined && prefixes.at(-1) === common) continue
      if (uploads.length + prefixes.length === maxUploads) {
        truncated = true
        break
      }
      if (common !== undefined) prefixes.push(common)
      else uploads.push({ Key: record.key, UploadId: id, Initiator: ownerOf(ctx), Owner: ownerOf(ctx), StorageClass: 'STANDARD', Initiated: new Date(record.initiated).toISOString() })
      last = { key: common ?? record.key, id }
    }
    sendXml(ctx.res, 200, 'ListMultipartUploadsResult', {
      Bucket: bucket,
      KeyMarker: keyMarker,
      UploadIdMarker: idMarker,
      ...(truncated && last !== undefined ? { NextKeyMarker: last.key, NextUploadIdMarker: last.id } : {}),
      Prefix: prefix,
      ...(delimiter === '' ? {} : { Delimiter: delimiter }),
      MaxUploads: maxUploads,
      IsTruncated: truncated,
      Upload: uploads,
      CommonPrefixes: prefixes.map((p) => ({ Prefix: p }))
    })
  }

  /** The upload an uploadId names for this key (in progress, or also completed), or NoSuchUpload. */
  private async upload (ctx: S3Ctx, bucket: string, key: string, orCompleted: boolean): Promise<Upload> {
    const id = uploadIdOf(ctx)
    const places = [{ dir: `${uploadsDir(bucket)}/${id}`, completed: false }, ...(orCompleted ? [{ dir: partsDir(bucket, id), completed: true }] : [])]
    for (const { dir, completed } of places) {
      const record = await this.record(dir)
      if (record !== undefined && record.key === key) return { id, dir, record, completed }
    }
    await this.deps.store.requireBucket(bucket)
    throw noSuchUpload()
  }

  private async record (dir: string): Promise<UploadRecord | undefined> {
    const entry = await this.deps.store.dirs.lookup(`${dir}/${UPLOAD_RECORD}`)
    if (entry?.type !== 'file') return undefined
    return JSON.parse((await this.deps.store.readSmall(entry)).toString('utf8')) as UploadRecord
  }
}

function uploadIdOf (ctx: S3Ctx): string {
  const id = ctx.target.query.get('uploadId') ?? ''
  if (!UPLOAD_ID.test(id)) throw noSuchUpload()
  return id
}

function noSuchUpload (): S3Error {
  return new S3Error('NoSuchUpload', 'The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.')
}

/** The owner and initiator S3 shows: the key that signed the request. */
export function ownerOf (ctx: S3Ctx): XmlNode {
  return { ID: ctx.auth.key.accessKeyId, DisplayName: ctx.auth.key.name }
}

/** x-amz-copy-source-range (`bytes=first-last`, both given), or the whole source. */
function copyRange (header: string | string[] | undefined, size: number): { offset: number, length: number } {
  if (header === undefined) return { offset: 0, length: size }
  const m = typeof header === 'string' ? /^bytes=(\d+)-(\d+)$/.exec(header.trim()) : null
  const first = Number(m?.[1])
  const last = Number(m?.[2])
  if (m === null || first > last || last >= size) throw new S3Error('InvalidArgument', `x-amz-copy-source-range must be bytes=first-last within the source's ${size} bytes`)
  return { offset: first, length: last - first + 1 }
}

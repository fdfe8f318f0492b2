import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { DirectoryErrorCode } from '@mirrorcast/wire'
import type { Logger } from '@mirrorcast/logger'
import { S3Error } from './errors.js'
import { bucketPath, checkBucketName, objectPath } from './keys.js'
import { listObjects, type ListResult } from './listing.js'
import { MultipartUploads, ownerOf } from './multipart.js'
import { s3Target, intParameter, whileClientStays, type S3Ctx } from './request.js'
import { checksumHeaders, sendS3Error } from './respond.js'
import { awsEncode, verifySigV4, type S3Key } from './sigv4.js'
import { s3Body } from './body.js'
import { listOf, parseXml, readSmallBody, sendXml, textOf, type XmlNode } from './xml.js'
import { copyMeta, entryEtag, requestMeta, sendObject } from './objects.js'
import { S3_DIR, S3Store, md5Hash, noSuchBucket, objectSize, withMd5, type Directories, type Objects, type S3Object } from './store.js'

export interface S3ApiDeps {
  objects: Objects
  directories: Directories
  /** The S3 key of an access key id, if there is one. */
  keyOf: (accessKeyId: string) => S3Key | undefined
  maxFileBytes: number
  /** The region buckets say they are in (GetBucketLocation), and clients sign for. */
  region: string
  /** Host names below which a Host names a bucket (virtual-host style). */
  domains: readonly string[]
  logger: Logger
}

// S3's page size: more asked for is served as 1,000
const MAX_KEYS = 1000
const METHODS_WRITING = new Set(['PUT', 'POST', 'DELETE'])

/**
 * The S3 front end: each request's signature checked, then served over the
 * object and directory managers as the native API is (see keys.ts for how
 * buckets and keys map to the namespace).
 */
export class S3Api {
  private readonly store: S3Store
  private readonly multipart: MultipartUploads

  constructor (private readonly deps: S3ApiDeps) {
    this.store = new S3Store(deps.objects, deps.directories)
    this.multipart = new MultipartUploads({
      store: this.store,
      body: (ctx) => this.body(ctx),
      copySource: async (ctx) => await this.copySource(ctx),
      requestMeta: (ctx) => requestMeta(ctx.req.headers)
    })
  }

  async handle (req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = randomBytes(8).toString('hex').toUpperCase()
    res.setHeader('x-amz-request-id', requestId)
    try {
      const target = s3Target(req, this.deps.domains)
      const auth = verifySigV4({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }, this.deps.keyOf)
      if (auth.key.access === 'read-only' && METHODS_WRITING.has(req.method ?? '')) throw new S3Error('AccessDenied', `the key of ${auth.key.name} is read-only`)
      await this.dispatch({ req, res, target, auth, requestId })
    } catch (err) {
      const code = (err as { code?: unknown }).code
      this.deps.logger.log(err instanceof S3Error || typeof code === 'string' ? 'debug' : 'error', 's3 request failed', { method: req.method, url: req.url?.slice(0, 200), code, error: (err as Error).message })
      if (!req.complete) req.resume()
      sendS3Error(req, res, err, requestId)
    }
  }

  private async dispatch (ctx: S3Ctx): Promise<void> {
    const { bucket, key } = ctx.target
    const method = ctx.req.method ?? 'GET'
    if (bucket === undefined) {
      if (method === 'GET' || method === 'HEAD') return await this.listBuckets(ctx)
      throw new S3Error('MethodNotAllowed', `${method} is not allowed on the service`)
    }
    checkBucketName(bucket)
    if (key === undefined) return await this.bucketOperation(ctx, bucket, method)
    return await this.objectOperation(ctx, bucket, key, method)
  }

  private async bucketOperation (ctx: S3Ctx, bucket: string, method: string): Promise<void> {
    const q = ctx.target.query
    refuseUnsupported(q, ['acl', 'policy', 'cors', 'lifecycle', 'tagging', 'website', 'replication', 'encryption', 'object-lock', 'notification'])
    switch (method) {
      case 'PUT': return await this.createBucket(ctx, bucket)
      case 'DELETE': return await this.deleteBucket(ctx, bucket)
      case 'HEAD': await this.store.requireBucket(bucket); ctx.res.writeHead(200, { 'x-amz-bucket-region': this.deps.region }).end(); return
      case 'POST':
        if (q.has('delete')) return await this.deleteObjects(ctx, bucket)
        throw new S3Error('NotImplemented', 'POST on a bucket serves ?delete (DeleteObjects) only')
      case 'GET':
        if (q.has('uploads')) return await this.multipart.listUploads(ctx, bucket)
        await this.store.requireBucket(bucket)
        if (q.has('location')) return sendXml(ctx.res, 200, 'LocationConstraint', { '#text': this.deps.region === 'us-east-1' ? '' : this.deps.region })
        if (q.has('versioning')) return sendXml(ctx.res, 200, 'VersioningConfiguration', {})
        return await this.listObjects(ctx, bucket)
    }
    throw new S3Error('MethodNotAllowed', `${method} is not allowed on a bucket`)
  }

  private async objectOperation (ctx: S3Ctx, bucket: string, key: string, method: string): Promise<void> {
    const q = ctx.target.query
    refuseUnsupported(q, ['acl', 'tagging', 'retention', 'legal-hold', 'torrent', 'restore', 'select'])
    if (q.has('uploads') || q.has('uploadId')) return await this.multipartOperation(ctx, bucket, key, method)
    const path = objectPath(bucket, key)
    switch (method) {
      case 'POST': throw new S3Error('NotImplemented', 'POST on an object serves ?uploads and ?uploadId (multipart uploads) only')
      case 'PUT':
        if (ctx.req.headers['x-amz-copy-source'] !== undefined) return await this.copyObject(ctx, bucket, path)
        return await this.putObject(ctx, bucket, path)
      case 'GET':
      case 'HEAD':
        if (q.has('partNumber')) throw new S3Error('NotImplemented', 'GET and HEAD of one part (?partNumber) are not served: ask for a Range')
        return await this.getObject(ctx, bucket, path)
      case 'DELETE':
        await this.deleteObject(bucket, path)
        ctx.res.writeHead(204).end()
        return
    }
    throw new S3Error('MethodNotAllowed', `${method} is not allowed on an object`)
  }

  private async multipartOperation (ctx: S3Ctx, bucket: string, key: string, method: string): Promise<void> {
    const q = ctx.target.query
    if (method === 'POST' && q.has('uploads')) return await this.multipart.create(ctx, bucket, key)
    if (q.has('uploadId')) {
      switch (method) {
        case 'PUT': return await this.multipart.uploadPart(ctx, bucket, key)
        case 'POST': return await this.multipart.complete(ctx, bucket, key)
        case 'GET': return await this.multipart.listParts(ctx, bucket, key)
        case 'DELETE': return await this.multipart.abort(ctx, bucket, key)
      }
    }
    throw new S3Error('MethodNotAllowed', `${method} is not allowed on a multipart upload`)
  }

  private async listBuckets (ctx: S3Ctx): Promise<void> {
    const buckets: XmlNode[] = []
    for await (const e of this.store.entries('/')) {
      const name = e.path.slice(1)
      if (e.type === 'dir' && isBucketName(name)) buckets.push({ Name: name, CreationDate: new Date(e.mtime).toISOString() })
    }
    sendXml(ctx.res, 200, 'ListAllMyBucketsResult', { Owner: ownerOf(ctx), Buckets: { Bucket: buckets } })
  }

  private async createBucket (ctx: S3Ctx, bucket: string): Promise<void> {
    // the body, if any, is a CreateBucketConfiguration naming a region: every bucket here is in the one region
    await readSmallBody(this.body(ctx).body, ctx.req)
    try {
      await this.deps.directories.mkdir(bucketPath(bucket), false)
    } catch (err) {
      if ((err as { code?: string }).code === DirectoryErrorCode.EXISTS) throw new S3Error('BucketAlreadyOwnedByYou', `bucket ${bucket} exists already, and is yours`)
      throw err
    }
    ctx.res.writeHead(200, { location: `/${bucket}` }).end()
  }

  private async deleteBucket (ctx: S3Ctx, bucket: string): Promise<void> {
    try {
      await this.removeBucket(bucket)
    } catch (err) {
      const code = (err as { code?: string }).code
      if (code === DirectoryErrorCode.NOT_FOUND || code === 'ERR_NOT_FOUND') throw noSuchBucket(bucket)
      throw err
    }
    ctx.res.writeHead(204).end()
  }

  /** A bucket that holds no object and no upload in progress goes, with what the front end kept in it (parts no object names). */
  private async removeBucket (bucket: string): Promise<void> {
    const notEmpty = new S3Error('BucketNotEmpty', `bucket ${bucket} is not empty: delete its objects (and abort its uploads) first`)
    try {
      await this.deps.directories.remove(bucketPath(bucket), false)
      return
    } catch (err) {
      if ((err as { code?: string }).code !== DirectoryErrorCode.NOT_EMPTY) throw err
    }
    const top = await this.deps.directories.list(bucketPath(bucket), undefined, 2)
    if (top.entries.length !== 1 || top.entries[0]?.path !== `${bucketPath(bucket)}/${S3_DIR}`) throw notEmpty
    if (!await this.store.isEmpty(`${bucketPath(bucket)}/${S3_DIR}/uploads`)) throw notEmpty
    await this.store.removeTree(bucket, `${bucketPath(bucket)}/${S3_DIR}`)
    try {
      await this.deps.directories.remove(bucketPath(bucket), false)
    } catch (err) {
      if ((err as { code?: string }).code === DirectoryErrorCode.NOT_EMPTY) throw notEmpty
      throw err
    }
  }

  private async listObjects (ctx: S3Ctx, bucket: string): Promise<void> {
    const q = ctx.target.query
    const v2 = q.get('list-type') === '2'
    if (q.has('list-type') && !v2) throw new S3Error('InvalidArgument', 'list-type must be 2')
    const urlEncoded = q.get('encoding-type') === 'url'
    if (q.has('encoding-type') && !urlEncoded) throw new S3Error('InvalidArgument', 'encoding-type must be url')
    const prefix = q.get('prefix') ?? ''
    const delimiter = q.get('delimiter') ?? ''
    const maxKeys = Math.min(MAX_KEYS, intParameter(q, 'max-keys', MAX_KEYS, 2 ** 31 - 1))
    const token = q.get('continuation-token')
    const after = v2 ? (token === undefined ? q.get('start-after') ?? '' : decodeToken(token)) : q.get('marker') ?? ''
    const result: ListResult = maxKeys === 0
      ? { objects: [], prefixes: [], next: undefined }
      : await listObjects(this.deps.directories, { bucket, prefix, delimiter, after, maxKeys })
    const enc = (s: string): string => urlEncoded ? s.split('/').map(awsEncode).join('/') : s
    const body: XmlNode = {
      Name: bucket,
      Prefix: enc(prefix),
      ...(v2 ? { KeyCount: result.objects.length + result.prefixes.length } : { Marker: enc(q.get('marker') ?? '') }),
      MaxKeys: maxKeys,
      ...(delimiter === '' ? {} : { Delimiter: enc(delimiter) }),
      ...(urlEncoded ? { EncodingType: 'url' } : {}),
      IsTruncated: result.next !== undefined,
      Contents: result.objects.map(({ key, entry }) => ({ Key: enc(key), LastModified: new Date(entry.mtime).toISOString(), ETag: entryEtag(entry), Size: objectSize(entry), StorageClass: 'STANDARD' })),
      CommonPrefixes: result.prefixes.map((p) => ({ Prefix: enc(p) }))
    }
    if (v2) {
      if (token !== undefined) body.ContinuationToken = token
      if (q.has('start-after')) body.StartAfter = enc(q.get('start-after') ?? '')
      if (result.next !== undefined) body.NextContinuationToken = encodeToken(result.next)
    } else if (result.next !== undefined && delimiter !== '') body.NextMarker = enc(result.next)
    sendXml(ctx.res, 200, 'ListBucketResult', body)
  }

  private body (ctx: S3Ctx): ReturnType<typeof s3Body> {
    return s3Body(ctx.req, ctx.auth.payload, this.deps.maxFileBytes)
  }

  private async putObject (ctx: S3Ctx, bucket: string, path: string): Promise<void> {
    const meta = requestMeta(ctx.req.headers)
    const upload = this.body(ctx)
    // asked while the body is written, so it costs no time
    const bucketCheck = this.store.requireBucket(bucket)
    bucketCheck.catch(() => {})
    await whileClientStays(ctx.req, async (signal) => await this.store.store(bucket, path, upload.body, upload.size, () => ({ ...meta, etag: upload.md5() }), { signal, before: bucketCheck }))
    ctx.res.writeHead(200, { etag: `"${upload.md5()}"`, ...checksumHeaders(upload.checksums()) }).end()
  }

  /** A server-side copy: the body goes from the source's nodes to the new one's through the manager, never the client. */
  private async copyObject (ctx: S3Ctx, bucket: string, path: string): Promise<void> {
    const source = await this.copySource(ctx)
    const directive = ctx.req.headers['x-amz-metadata-directive'] ?? 'COPY'
    if (directive !== 'COPY' && directive !== 'REPLACE') throw new S3Error('InvalidArgument', 'x-amz-metadata-directive must be COPY or REPLACE')
    if (source.entry.path === path && directive === 'COPY') throw new S3Error('InvalidRequest', 'This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.')
    await readSmallBody(this.body(ctx).body, ctx.req)
    await this.store.requireBucket(bucket)
    const meta = directive === 'COPY' ? copyMeta(source.entry) : requestMeta(ctx.req.headers)
    // an object made of parts is copied as one body, whose ETag is then its MD5
    const md5 = md5Hash()
    const entry = await this.store.store(bucket, path, withMd5(source.read(0, source.size), md5), source.size, () => ({ ...meta, etag: md5.digest('hex') }))
    sendXml(ctx.res, 200, 'CopyObjectResult', { LastModified: new Date(entry.mtime).toISOString(), ETag: entryEtag(entry) })
  }

  /** The object x-amz-copy-source names (`<bucket>/<key>`, percent-encoded), or NoSuchKey. */
  private async copySource (ctx: S3Ctx): Promise<S3Object> {
    const { bucket, path } = this.sourceOf(String(ctx.req.headers['x-amz-copy-source']))
    const entry = await this.deps.directories.lookup(path)
    if (entry?.type !== 'file') throw new S3Error('NoSuchKey', 'The specified key does not exist.')
    return this.store.object(bucket, entry)
  }

  private sourceOf (header: string): { bucket: string, path: string } {
    const [raw = '', version] = header.split('?')
    if (version !== undefined && !/^versionId=(null)?$/.test(version)) throw new S3Error('NotImplemented', 'objects have no versions here: x-amz-copy-source takes no versionId')
    let decoded: string
    try {
      decoded = decodeURIComponent(raw).replace(/^\//, '')
    } catch {
      throw new S3Error('InvalidArgument', 'x-amz-copy-source is not valid percent-encoding')
    }
    const slash = decoded.indexOf('/')
    if (slash < 1) throw new S3Error('InvalidArgument', 'x-amz-copy-source must be <bucket>/<key>')
    const bucket = checkBucketName(decoded.slice(0, slash))
    return { bucket, path: objectPath(bucket, decoded.slice(slash + 1)) }
  }

  private async getObject (ctx: S3Ctx, bucket: string, path: string): Promise<void> {
    const entry = await this.deps.directories.lookup(path)
    if (entry?.type !== 'file') {
      await this.store.requireBucket(bucket)
      throw new S3Error('NoSuchKey', 'The specified key does not exist.')
    }
    await sendObject(ctx.req, ctx.res, this.store.object(bucket, entry), ctx.target.query)
  }

  /** Deleting what is not there succeeds, as in S3; the directories the key made go with it while they are empty. */
  private async deleteObject (bucket: string, path: string): Promise<void> {
    await this.store.removeTree(bucket, path, false)
  }

  private async deleteObjects (ctx: S3Ctx, bucket: string): Promise<void> {
    await this.store.requireBucket(bucket)
    const upload = this.body(ctx)
    const doc = parseXml(await readSmallBody(upload.body, ctx.req), 'Delete')
    const items = listOf(doc, 'Object')
    if (items.length > MAX_KEYS) throw new S3Error('MalformedXML', `DeleteObjects takes ${MAX_KEYS} keys at most`)
    const quiet = textOf(doc, 'Quiet') === 'true'
    const deleted: XmlNode[] = []
    const errors: XmlNode[] = []
    for (const item of items) {
      const key = textOf(item, 'Key') ?? ''
      try {
        await this.deleteObject(bucket, objectPath(bucket, key))
        if (!quiet) deleted.push({ Key: key })
      } catch (err) {
        const e = err instanceof S3Error ? err : new S3Error('InternalError', 'We encountered an internal error. Please try again.')
        errors.push({ Key: key, Code: e.code, Message: e.message })
      }
    }
    sendXml(ctx.res, 200, 'DeleteResult', { Deleted: deleted, Error: errors })
  }
}

function refuseUnsupported (q: Map<string, string>, names: string[]): void {
  for (const name of names) if (q.has(name)) throw new S3Error('NotImplemented', `the ?${name} operations are not served by this S3 front end`)
}

function isBucketName (name: string): boolean {
  try {
    checkBucketName(name)
    return true
  } catch {
    return false
  }
}

function encodeToken (key: string): string {
  return Buffer.from(key, 'utf8').toString('base64url')
}

function decodeToken (token: string): string {
  if (!/^[A-Za-z0-9_-]*$/.test(token)) throw new S3Error('InvalidArgument', 'The continuation token provided is incorrect')
  return Buffer.from(token, 'base64url').toString('utf8')
}

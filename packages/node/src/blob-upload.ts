import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { blocks, CHUNK_BYTES, type RpcClient, type Upload } from '@mirrorcast/rpc'
import { CodedError, LOCATOR_TTL_MS, ManagerErrorCode, NodeErrorCode, putScope, signReceipt, verifyLocator, type MessageBody } from '@mirrorcast/wire'
import type { BlobStore } from './blob-store.js'
import type { TwinLinks } from './twin-links.js'

/** Who this node is, as its twin's hello must match: a storage node of the same slot in the other center. */
export interface UploadSelf {
  id: string
  center: string
  slot: number
}

export interface UploadAnswer {
  fileId: string
  size: number
  sha256: string
  /** For the manager, to name the file (wire's openReceipt). */
  receipt: string
}

/**
 * An upload straight to this node (`PUT /blobs/<id>?n=<size>&th=<twin
 * host>&tp=<twin port>&e=&s=`), for a client the object manager gave an upload
 * locator: the body is written here and sent on to the twin at once, hashed
 * once, at the pace of the slower copy; the answer, a signed receipt, comes
 * only once both copies are durable. Whatever fails, nothing is kept on
 * either node and the client uploads through the manager, which handles a
 * failed node as for any write.
 */
export class BlobUploads {
  private readonly inFlight = new Set<string>()

  constructor (private readonly store: BlobStore, private readonly key: Uint8Array, private readonly self: UploadSelf, private readonly twins: TwinLinks) {}

  async receive (req: IncomingMessage, fileId: string, q: URLSearchParams): Promise<UploadAnswer> {
    const { size, host, port } = this.authorize(fileId, q)
    if (req.headers['content-length'] !== String(size)) throw new CodedError(ManagerErrorCode.BAD_REQUEST, `the upload locator is for ${size} bytes: send Content-Length: ${size}`)
    if (this.inFlight.has(fileId) || await this.store.stat(fileId).then(() => true, () => false)) {
      throw new CodedError(NodeErrorCode.EXISTS, `file ${fileId} is already uploaded: ask the manager for a new locator`)
    }
    this.inFlight.add(fileId)
    try {
      return await this.write(req, fileId, size, this.twins.get(host, port))
    } finally {
      this.inFlight.delete(fileId)
    }
  }

  private authorize (fileId: string, q: URLSearchParams): { size: number, host: string, port: number } {
    const size = Number(q.get('n') ?? '')
    const host = q.get('th') ?? ''
    const port = Number(q.get('tp') ?? '')
    if (!Number.isSafeInteger(size) || size < 0 || host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new CodedError(NodeErrorCode.LOCATOR_INVALID, 'the upload locator is malformed')
    }
    verifyLocator(this.key, { fileId, scope: putScope(size, host, port), expiresAt: Number(q.get('e') ?? ''), signature: q.get('s') })
    return { size, host, port }
  }

  private async write (req: IncomingMessage, fileId: string, size: number, twin: RpcClient): Promise<UploadAnswer> {
    const upload = await twin.upload('blob.put', { fileId, size, senderHashes: true }).catch((err: unknown) => { throw twinFailed(err) })
    const twinId = this.checkTwin(twin.peer, upload)
    const hash = createHash('sha256')
    let sha256: string | undefined
    let twinDone: Promise<{ body: { sha256: string } }> | undefined
    const teed = async function * (): AsyncGenerator<Buffer> {
      for await (const block of blocks(req, CHUNK_BYTES)) {
        for (const part of block) hash.update(part)
        const sent = upload.write(block)
        sent.catch(() => {})
        yield * block
        await sent.catch((err: unknown) => { throw twinFailed(err) })
      }
      sha256 = hash.digest('hex')
      // Both fsyncs at once: the twin's starts while this node's runs.
      twinDone = upload.finish({ sha256 })
      twinDone.catch(() => {})
    }
    try {
      const local = await this.store.put(fileId, size, teed(), () => sha256)
      const remote = await (twinDone as NonNullable<typeof twinDone>).catch((err: unknown) => { throw twinFailed(err) })
      if (remote.body.sha256 !== local.sha256) throw new CodedError(ManagerErrorCode.REPLICA_MISMATCH, `the twin stored ${fileId} with sha256 ${remote.body.sha256}, this node ${local.sha256}`)
      const receipt = signReceipt(this.key, { fileId, size, sha256: local.sha256, nodes: [this.self.id, twinId], expiresAt: Date.now() + LOCATOR_TTL_MS })
      return { fileId, size, sha256: local.sha256, receipt }
    } catch (err) {
      upload.abort((err as Error).message)
      // Once the twin was told the end, it may hold its copy.
      if (twinDone !== undefined) await this.forget(fileId, twin)
      throw err
    }
  }

  /** The locator names where the twin listens; its hello must say it is one. */
  private checkTwin (hello: MessageBody<'hello'> | undefined, upload: Upload<'blob.put.ok'>): string {
    if (hello !== undefined && hello.role === 'storage' && hello.slot === this.self.slot && hello.center !== this.self.center) return hello.id
    upload.abort('not this node\'s twin')
    throw new CodedError(NodeErrorCode.TWIN_FAILED, `the node the upload locator names is not this node's twin (${hello === undefined ? 'no hello' : `${hello.role} ${hello.center}/${hello.slot}`})`)
  }

  /** An upload that failed after this node's copy was durable: neither copy stays. */
  private async forget (fileId: string, twin: RpcClient): Promise<void> {
    await this.store.delete(fileId).catch(() => {})
    await twin.request('blob.delete', { fileId }).catch(() => {})
  }
}

function twinFailed (err: unknown): CodedError {
  const code = (err as { code?: unknown }).code
  // The twin's own refusal (no room, say) is what the client should read.
  if (code === NodeErrorCode.NO_SPACE) return err as CodedError
  return new CodedError(NodeErrorCode.TWIN_FAILED, `the twin could not take its copy (${(err as Error).message}): upload through the manager`, { cause: err })
}

import type { IncomingMessage, ServerResponse } from 'node:http'
import { CommonErrorCode, DirectoryErrorCode, NodeErrorCode } from '@mirrorcast/wire'
import { ManagerErrorCode } from '../errors.js'
import { S3Error, type S3ErrorCode } from './errors.js'
import { toXml } from './xml.js'

// What the object and directory managers' codes mean to an S3 client; any other is a fault of ours
const FROM_CODES: Partial<Record<string, S3ErrorCode>> = {
  [ManagerErrorCode.UPLOAD_INCOMPLETE]: 'IncompleteBody',
  [ManagerErrorCode.TOO_LARGE]: 'EntityTooLarge',
  [ManagerErrorCode.BODY_TIMEOUT]: 'IncompleteBody',
  [ManagerErrorCode.NO_REPLICA]: 'ServiceUnavailable',
  [ManagerErrorCode.UNAVAILABLE]: 'ServiceUnavailable',
  [ManagerErrorCode.REPLICA_MISMATCH]: 'ServiceUnavailable',
  [ManagerErrorCode.BUSY]: 'SlowDown',
  [NodeErrorCode.NO_SPACE]: 'ServiceUnavailable',
  [CommonErrorCode.BAD_PATH]: 'InvalidArgument',
  [DirectoryErrorCode.NOT_A_DIRECTORY]: 'InvalidRequest',
  [DirectoryErrorCode.IS_A_DIRECTORY]: 'InvalidRequest',
  [DirectoryErrorCode.TOO_LARGE]: 'InvalidRequest'
}

export function toS3Error (err: unknown): S3Error {
  if (err instanceof S3Error) return err
  const code = (err as { code?: unknown } | null)?.code
  const mapped = typeof code === 'string' ? FROM_CODES[code] : undefined
  // an rpc failure reaching a member is the cluster being unavailable for now, as a ManagerError would say
  const s3Code = mapped ?? (typeof code === 'string' && code.startsWith('ERR_RPC_') ? 'ServiceUnavailable' : 'InternalError')
  return new S3Error(s3Code, s3Code === 'InternalError' ? 'We encountered an internal error. Please try again.' : (err as Error).message)
}

/** The S3 error document (none for HEAD, whose answer has no body), or a cut connection once the answer has begun. */
export function sendS3Error (req: IncomingMessage, res: ServerResponse, err: unknown, requestId: string): void {
  if (res.headersSent) {
    res.destroy(err as Error)
    return
  }
  const e = toS3Error(err)
  const headers: Record<string, string | number> = { 'x-amz-request-id': requestId }
  if (e.code === 'ServiceUnavailable' || e.code === 'SlowDown') headers['retry-after'] = 1
  if (req.method === 'HEAD') {
    res.writeHead(e.status, headers).end()
    return
  }
  const text = toXml('Error', { Code: e.code, Message: e.message, Resource: (req.url ?? '/').split('?')[0], RequestId: requestId })
  res.writeHead(e.status, { ...headers, 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** The x-amz-checksum-* headers of an upload's answer, for the checksums it declared. */
export function checksumHeaders (checksums: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(checksums).map(([alg, value]) => [`x-amz-checksum-${alg.toLowerCase()}`, value]))
}

/**
 * The S3 error codes this front end answers, with their HTTP status, as AWS
 * documents them (an S3 client acts on the code: a retry, a new region, a
 * fresh clock), and what each means here.
 */
export const S3_ERRORS = {
  AccessDenied: { status: 403, meaning: 'the key may not do this (a read-only key writing), or a presigned URL past its expiry' },
  InvalidAccessKeyId: { status: 403, meaning: 'no S3 key of that access key id' },
  SignatureDoesNotMatch: { status: 403, meaning: 'the request\'s signature is not the one its secret gives' },
  RequestTimeTooSkewed: { status: 403, meaning: 'the request\'s time is more than 15 minutes from the manager\'s clock' },
  AuthorizationHeaderMalformed: { status: 400, meaning: 'an Authorization header that is not AWS Signature Version 4 as AWS defines it' },
  AuthorizationQueryParametersError: { status: 400, meaning: 'presigned query parameters that are missing or malformed' },
  MissingSecurityHeader: { status: 400, meaning: 'a header signed requests need (x-amz-content-sha256, x-amz-date) is missing' },
  XAmzContentSHA256Mismatch: { status: 400, meaning: 'the body is not the one x-amz-content-sha256 names' },
  InvalidArgument: { status: 400, meaning: 'a request parameter or header that fails its check' },
  InvalidRequest: { status: 400, meaning: 'a request that cannot be served as asked' },
  InvalidURI: { status: 400, meaning: 'a path or query that is not valid percent-encoding' },
  KeyTooLongError: { status: 400, meaning: 'a key above 1,024 bytes, or with a segment between slashes above 255 bytes once encoded' },
  BadDigest: { status: 400, meaning: 'the body is not the one its Content-MD5 or x-amz-checksum-* names' },
  InvalidDigest: { status: 400, meaning: 'a Content-MD5 or x-amz-checksum-* value that is not a digest of its kind in base64' },
  IncompleteBody: { status: 400, meaning: 'the body ended before its declared length, or an aws-chunked body before its last chunk' },
  MalformedTrailerError: { status: 400, meaning: 'an aws-chunked body whose trailer is not the one x-amz-trailer declares' },
  InvalidChunkSizeError: { status: 403, meaning: 'an aws-chunked body with a chunk that is malformed or too large' },
  MissingContentLength: { status: 411, meaning: 'an upload without Content-Length (or x-amz-decoded-content-length for aws-chunked)' },
  EntityTooLarge: { status: 400, meaning: 'a body above the manager\'s max-file size, or a part above 5 GiB' },
  EntityTooSmall: { status: 400, meaning: 'a part other than the last below 5 MiB at completion' },
  MetadataTooLarge: { status: 400, meaning: 'x-amz-meta-* headers above S3\'s 2 KB, or stored headers too many or too long to keep with the entry' },
  MalformedXML: { status: 400, meaning: 'a request body that is not the XML the operation takes' },
  InvalidBucketName: { status: 400, meaning: 'a bucket name outside S3\'s rules (3 to 63 lowercase letters, digits, dots and hyphens)' },
  NoSuchBucket: { status: 404, meaning: 'no bucket of that name' },
  NoSuchKey: { status: 404, meaning: 'no object of that key' },
  NoSuchUpload: { status: 404, meaning: 'no multipart upload of that id (never created, completed or aborted)' },
  InvalidPart: { status: 400, meaning: 'a part named at completion that was not uploaded, or with another ETag' },
  InvalidPartOrder: { status: 400, meaning: 'parts at completion not in ascending order' },
  BucketAlreadyOwnedByYou: { status: 409, meaning: 'CreateBucket of a bucket that exists' },
  BucketNotEmpty: { status: 409, meaning: 'DeleteBucket of a bucket that holds objects or uploads' },
  InvalidRange: { status: 416, meaning: 'a Range that starts past the object\'s end' },
  PreconditionFailed: { status: 412, meaning: 'If-Match or If-Unmodified-Since not met' },
  MethodNotAllowed: { status: 405, meaning: 'a method the resource does not take' },
  NotImplemented: { status: 501, meaning: 'an S3 operation or header this front end does not serve' },
  ServiceUnavailable: { status: 503, meaning: 'no member can serve the request now (a pair down on both sides, no directory server): retry' },
  SlowDown: { status: 503, meaning: 'the manager is at a limit (connections, searches): retry later' },
  InternalError: { status: 500, meaning: 'a fault of the manager: retry, and see its log' }
} as const

export type S3ErrorCode = keyof typeof S3_ERRORS

/** An S3 error answer: its code is the one AWS gives the same case. */
export class S3Error extends Error {
  readonly status: number
  constructor (readonly code: S3ErrorCode, message: string) {
    super(message)
    this.name = 'S3Error'
    this.status = S3_ERRORS[code].status
  }
}

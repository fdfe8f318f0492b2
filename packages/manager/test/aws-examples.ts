import type { S3Key, SignedParts } from '../src/s3/sigv4.js'

/**
 * AWS's "Signature Calculations for the Authorization Header: Transferring
 * Payload in Multiple Chunks" example, byte for byte: its key, its request,
 * a time within its skew, and the chunk signatures it published.
 */
export const DOC_KEY: S3Key = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', name: 'aws example', access: 'read-write' }
export const DOC_REQUEST: SignedParts = {
  method: 'PUT',
  url: '/examplebucket/chunkObject.txt',
  headers: {
    host: 's3.amazonaws.com',
    'x-amz-date': '20130524T000000Z',
    'x-amz-storage-class': 'REDUCED_REDUNDANCY',
    authorization: 'AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
    'x-amz-content-sha256': 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD',
    'content-encoding': 'aws-chunked',
    'x-amz-decoded-content-length': '66560',
    'content-length': '66824'
  }
}
export const DOC_NOW = Date.UTC(2013, 4, 24, 0, 0, 30)
export const DOC_SIGNATURES = [
  'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
  '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
  'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9'
]
export const docKeyOf = (id: string): S3Key | undefined => id === DOC_KEY.accessKeyId ? DOC_KEY : undefined

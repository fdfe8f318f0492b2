// http://127.0.0.1:8700: where `mirrorcast up` and a manager without --host/--port listen
export const DEFAULT_URL = 'http://127.0.0.1:8700'
// 10 s, ms: a TCP (or Unix socket) connection not made by then is an unreachable manager
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000
// 60 s, ms: the longest wait for an answer's headers once the request is sent (the manager
// answers a PUT after both nodes fsynced; a failover in the middle costs seconds, not a minute)
export const DEFAULT_HEADERS_TIMEOUT_MS = 60_000
// 60 s, ms: the longest gap between two chunks of an answer's body (a read resumed on the twin
// stalls for the failure detector's second or so)
export const DEFAULT_BODY_TIMEOUT_MS = 60_000
// 2 s, ms: an idle keep-alive connection is closed by the client after this; below the manager's
// 5 s (node:http's default keepAliveTimeout), see MirrorcastClient
export const DEFAULT_KEEP_ALIVE_TIMEOUT_MS = 2_000
// 64 connections: requests beyond this many at once wait for a free connection
export const DEFAULT_CONNECTIONS = 64
// x-mirrorcast-sha256: a PUT whose body has another sha256 is refused (400 ERR_CHECKSUM_MISMATCH)
export const SHA256_HEADER = 'x-mirrorcast-sha256'
// x-mirrorcast-redirect: allow: a GET of a large file may be answered 307 to its storage node
export const REDIRECT_HEADER = 'x-mirrorcast-redirect'
// x-mirrorcast-receipt: a PUT without a body names the one a storage node took by locator and vouched for
export const RECEIPT_HEADER = 'x-mirrorcast-receipt'
// 1 MiB: smaller bodies are not worth the locator's round trip (the manager offers none below it either)
export const DIRECT_UPLOAD_MIN_BYTES = 1024 * 1024

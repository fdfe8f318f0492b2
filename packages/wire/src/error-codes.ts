/**
 * Every error code of mirrorcast, in one table (undici's errors.js is the
 * model): the HTTP status a client of the manager gets for it, and what it
 * means. A code travels between processes (a node's error reaches the manager
 * as a reply, then the client as JSON), so each is defined here once and the
 * packages name them through the groups below; a code missing from the table
 * does not compile. `status` is for codes that can reach an HTTP client; a
 * code that never leaves its process (a bad flag, a config file) has the
 * status it would get if it did; the client's own codes (ERR_CLIENT_*), which
 * no server sends, have none.
 */
export const ERROR_CODES = {
  ERR_INTERNAL: { status: 500, meaning: 'a bug: the message is logged, the client is told only this' },
  ERR_BAD_PATH: { status: 400, meaning: 'a path breaks the path rules (absolute, no . or .. or empty segments, no NUL, lengths)' },

  ERR_WIRE_MISSING_MAC: { status: 503, meaning: 'a frame or datagram carries no MAC' },
  ERR_WIRE_BAD_MAC: { status: 503, meaning: 'a MAC does not match: another cluster key, or bytes changed on the way' },
  ERR_WIRE_UNKNOWN_VERSION: { status: 503, meaning: 'a message of a protocol version this process does not speak' },
  ERR_WIRE_UNKNOWN_TYPE: { status: 503, meaning: 'a message type this process does not know' },
  ERR_WIRE_OVERSIZE: { status: 503, meaning: 'a frame or datagram above its size limit' },
  ERR_WIRE_TRUNCATED: { status: 503, meaning: 'a message shorter than its header says' },
  ERR_WIRE_MALFORMED: { status: 503, meaning: 'a message that does not decode' },
  ERR_WIRE_INVALID_FIELD: { status: 503, meaning: 'a message whose fields fail its schema' },
  ERR_WIRE_INVALID_OUTGOING: { status: 400, meaning: 'a message this process was about to send fails its schema or the frame limit: nothing was sent (in practice a client parameter out of bounds)' },
  ERR_WIRE_BAD_KEY: { status: 500, meaning: 'a cluster key file that is missing, unreadable, too open, empty or damaged (not hex, too short): the message says what to do' },

  ERR_RPC_CONNECT: { status: 503, meaning: 'a member could not be reached' },
  ERR_RPC_CLOSED: { status: 503, meaning: 'a member closed the session' },
  ERR_RPC_TIMEOUT: { status: 503, meaning: 'a member did not answer in time' },
  ERR_RPC_PROTOCOL: { status: 503, meaning: 'a member answered out of turn' },
  ERR_RPC_ABORTED: { status: 503, meaning: 'the request was given up (its client went away, or failover)' },
  ERR_RPC_HANDSHAKE: { status: 503, meaning: 'a member answers, but not with this cluster\'s key' },
  ERR_RPC_LOCAL: { status: 503, meaning: 'this process is out of a resource it needs to reach a member (file descriptors, memory, ports)' },
  ERR_RPC_BAD_REQUEST: { status: 400, meaning: 'a member refused a request whose content fails its schema; the session goes on' },
  ERR_RPC_BAD_REPLY: { status: 503, meaning: 'a member answered with content that fails its schema (another version?): that request fails, the member is not failed over' },

  ERR_NODE_NOT_FOUND: { status: 404, meaning: 'a storage node holds no body of that id' },
  ERR_NODE_CORRUPT: { status: 503, meaning: 'a stored body failed its checksum (it is quarantined and repaired from the twin)' },
  ERR_NODE_SIZE_MISMATCH: { status: 503, meaning: 'a body arrived with another size than announced' },
  ERR_NODE_NO_SPACE: { status: 507, meaning: 'a storage node has no room for the body' },
  ERR_NODE_BAD_RANGE: { status: 503, meaning: 'a read past a body\'s end' },
  ERR_NODE_EXISTS: { status: 503, meaning: 'a body of that id is stored with other content' },
  ERR_NODE_BAD_ID: { status: 503, meaning: 'a file id that is not 32 hex digits' },
  ERR_NODE_DATA_DIR: { status: 503, meaning: 'a storage node\'s data dir is unusable' },
  ERR_NODE_UNSUPPORTED: { status: 503, meaning: 'a request a storage node does not serve' },
  ERR_NODE_BAD_OPTIONS: { status: 500, meaning: 'a storage node\'s settings are invalid' },
  ERR_NODE_LOCATOR_INVALID: { status: 403, meaning: 'a download from or upload to a storage node whose locator is malformed, or not signed by the cluster\'s key for that file and use' },
  ERR_NODE_LOCATOR_EXPIRED: { status: 403, meaning: 'a download from or upload to a storage node whose locator is past its time: ask the manager again' },
  ERR_NODE_TWIN_FAILED: { status: 502, meaning: 'an upload to a storage node whose twin could not take its copy: nothing was kept; upload through the manager' },

  ERR_DIR_NOT_FOUND: { status: 404, meaning: 'no such file or directory' },
  ERR_DIR_EXISTS: { status: 409, meaning: 'the path exists already' },
  ERR_DIR_NOT_EMPTY: { status: 409, meaning: 'the directory is not empty' },
  ERR_DIR_NOT_A_DIRECTORY: { status: 409, meaning: 'a parent in the path is a file' },
  ERR_DIR_IS_A_DIRECTORY: { status: 409, meaning: 'the path is a directory where a file is needed' },
  ERR_DIR_INVALID: { status: 400, meaning: 'a namespace request that cannot be done as asked (e.g. a directory moved below itself)' },
  ERR_DIR_SEQ_GAP: { status: 503, meaning: 'changes replayed out of order on a directory server' },
  ERR_DIR_DIVERGED: { status: 503, meaning: 'a replayed change differs from the one a directory server holds at its sequence number: its log diverged from its twin\'s' },
  ERR_DIR_TOO_LARGE: { status: 409, meaning: 'a subtree too large to move or remove in one change (more than 10,000 entries), or a slice of a moved subtree above the 1 MiB a message may carry' },
  ERR_DIR_UNSUPPORTED: { status: 503, meaning: 'a request a directory server does not serve' },

  ERR_BAD_REQUEST: { status: 400, meaning: 'a request the manager cannot take as it is' },
  ERR_UNAUTHORIZED: { status: 401, meaning: 'no access token, or an unknown one' },
  ERR_FORBIDDEN: { status: 403, meaning: 'a read-only token asked to write' },
  ERR_NOT_FOUND: { status: 404, meaning: 'no such endpoint or member' },
  ERR_METHOD_NOT_ALLOWED: { status: 405, meaning: 'a method the endpoint does not take (Allow lists those it does)' },
  ERR_LENGTH_REQUIRED: { status: 411, meaning: 'a PUT without Content-Length' },
  ERR_TOO_LARGE: { status: 413, meaning: 'a body above the manager\'s limit' },
  ERR_RANGE_NOT_SATISFIABLE: { status: 416, meaning: 'a Range that cannot be served' },
  ERR_CHECKSUM_MISMATCH: { status: 400, meaning: 'the body is not the one the x-mirrorcast-sha256 header names' },
  ERR_UPLOAD_INCOMPLETE: { status: 400, meaning: 'the client went away before the body\'s end' },
  ERR_RECEIPT_INVALID: { status: 403, meaning: 'a PUT naming an upload receipt that is malformed, not signed by a node of this cluster, or not for a twin pair of it' },
  ERR_RECEIPT_EXPIRED: { status: 403, meaning: 'a PUT naming an upload receipt past its time: upload the file again' },
  ERR_RECEIPT_USED: { status: 409, meaning: 'a PUT naming an upload receipt that already named another path' },
  ERR_REPLICA_MISMATCH: { status: 503, meaning: 'the twins stored different bytes for one body' },
  ERR_NO_REPLICA: { status: 503, meaning: 'no node of the pair could serve or take the body' },
  ERR_UNAVAILABLE: { status: 503, meaning: 'no directory server of a partition, or no member, is usable now' },
  ERR_BAD_TOKENS: { status: 500, meaning: 'the tokens file is invalid or readable by others' },
  ERR_HTTP_BODY_TIMEOUT: { status: 408, meaning: 'the request body moved no byte for the body idle timeout: the connection is closed' },
  ERR_HTTP_FORBIDDEN_HOST: { status: 403, meaning: 'without access tokens, a request whose Host is not the manager\'s loopback address or localhost (DNS rebinding)' },
  ERR_HTTP_BAD_PARAMETER: { status: 400, meaning: 'a query parameter (or a name in the path) that fails its check, named in the message: nothing was asked of a member' },
  ERR_HTTP_CROSS_SITE: { status: 403, meaning: 'without access tokens, a request from a web page of another origin (Origin, Sec-Fetch-Site: cross-site)' },
  ERR_HTTP_BUSY: { status: 503, meaning: 'the manager serves as many multicast searches as it may at once (max-searches): try again after Retry-After' },

  ERR_CONFIG_UNREADABLE: { status: 500, meaning: 'the config file cannot be read' },
  ERR_CONFIG_SYNTAX: { status: 500, meaning: 'the config file is not valid TOML' },
  ERR_CONFIG_INVALID: { status: 500, meaning: 'a config key is unknown or has the wrong type' },
  ERR_DATA_DIR_LOCKED: { status: 500, meaning: 'another live process (its pid named) holds the data dir\'s lock: a process cannot start on a data dir in use' },
  ERR_DATA_DIR_UNUSABLE: { status: 500, meaning: 'the data dir cannot be created or its lock file written (permissions, a file in its place, a read-only disk)' },
  ERR_MEMBER_ID_INVALID: { status: 500, meaning: 'a data dir\'s member-id file is empty or holds no valid id: put the member\'s id back in it, or remove it to start under a new id' },
  ERR_PORT_IN_USE: { status: 500, meaning: 'a port a process must listen on is taken by another process: it cannot start' },
  ERR_DISCOVERY_BAD_OPTIONS: { status: 500, meaning: 'multicast settings are invalid' },
  ERR_DISCOVERY_NOT_STARTED: { status: 503, meaning: 'a search before the multicast channel started' },
  ERR_DISCOVERY_MULTICAST_OFF: { status: 503, meaning: 'a multicast search with multicast turned off' },
  ERR_DIAG_BAD_SETTINGS: { status: 500, meaning: 'netdiag\'s settings are invalid' },
  ERR_CLI: { status: 500, meaning: 'a mistake in a command line, printed as is' },

  ERR_CLIENT_INVALID_OPTION: { status: null, meaning: 'the client: options refused by the constructor' },
  ERR_CLIENT_TOKEN_FILE: { status: null, meaning: 'the client: a token file that cannot be read, is readable by others or holds no token' },
  ERR_CLIENT_INVALID_REQUEST: { status: null, meaning: 'the client: a request that cannot be sent as asked (a path or header undici refuses, a streamed PUT without its size)' },
  ERR_CLIENT_UNREACHABLE: { status: null, meaning: 'the client: no connection could be made: the request certainly did not reach the manager' },
  ERR_CLIENT_CONNECTION_LOST: { status: null, meaning: 'the client: the connection failed after the request went out: it may have taken effect' },
  ERR_CLIENT_TIMEOUT: { status: null, meaning: 'the client: no answer (headers) or no body bytes for the timeout' },
  ERR_CLIENT_ABORTED: { status: null, meaning: 'the client: the caller\'s signal aborted the request' },
  ERR_CLIENT_CLOSED: { status: null, meaning: 'the client: the client was closed' },
  ERR_CLIENT_BODY_FAILED: { status: null, meaning: 'the client: the request body (a stream of the caller) failed' },
  ERR_CLIENT_BAD_RESPONSE: { status: null, meaning: 'the client: a success status with a body that is not what the API promises (not JSON, a directory where a file was asked)' },
  ERR_CLIENT_IS_A_DIRECTORY: { status: null, meaning: 'the client: `get()` of a path that is a directory' },
  ERR_CLIENT_HTTP_STATUS: { status: null, meaning: 'the client: an error status whose body names no code' },
  ERR_CLIENT_FILE_CHANGED: { status: null, meaning: 'the client: a download whose storage node failed mid-stream found the file replaced when it went on through the manager: get it again' }
} as const satisfies Record<string, { status: number | null, meaning: string }>

export type ErrorCode = keyof typeof ERROR_CODES

/** The HTTP status for an error code; a code this version does not know (a newer peer's) means a member could not do its part. */
export function httpStatusFor (code: string | undefined): number {
  if (code === undefined) return 500
  return (ERROR_CODES as Record<string, { status: number | null } | undefined>)[code]?.status ?? 503
}

/** The groups each package throws, by name: every value is a code of the table. */
export const CommonErrorCode = { INTERNAL: 'ERR_INTERNAL', BAD_PATH: 'ERR_BAD_PATH' } as const satisfies Record<string, ErrorCode>

export const WireErrorCode = {
  MISSING_MAC: 'ERR_WIRE_MISSING_MAC',
  BAD_MAC: 'ERR_WIRE_BAD_MAC',
  UNKNOWN_VERSION: 'ERR_WIRE_UNKNOWN_VERSION',
  UNKNOWN_TYPE: 'ERR_WIRE_UNKNOWN_TYPE',
  OVERSIZE: 'ERR_WIRE_OVERSIZE',
  TRUNCATED: 'ERR_WIRE_TRUNCATED',
  MALFORMED: 'ERR_WIRE_MALFORMED',
  INVALID_FIELD: 'ERR_WIRE_INVALID_FIELD',
  INVALID_OUTGOING: 'ERR_WIRE_INVALID_OUTGOING',
  BAD_KEY: 'ERR_WIRE_BAD_KEY'
} as const satisfies Record<string, ErrorCode>

export const RpcErrorCode = {
  CONNECT: 'ERR_RPC_CONNECT',
  CLOSED: 'ERR_RPC_CLOSED',
  TIMEOUT: 'ERR_RPC_TIMEOUT',
  PROTOCOL: 'ERR_RPC_PROTOCOL',
  ABORTED: 'ERR_RPC_ABORTED',
  HANDSHAKE: 'ERR_RPC_HANDSHAKE',
  LOCAL: 'ERR_RPC_LOCAL',
  BAD_REQUEST: 'ERR_RPC_BAD_REQUEST',
  BAD_REPLY: 'ERR_RPC_BAD_REPLY'
} as const satisfies Record<string, ErrorCode>

export const NodeErrorCode = {
  NOT_FOUND: 'ERR_NODE_NOT_FOUND',
  CORRUPT: 'ERR_NODE_CORRUPT',
  SIZE_MISMATCH: 'ERR_NODE_SIZE_MISMATCH',
  NO_SPACE: 'ERR_NODE_NO_SPACE',
  BAD_RANGE: 'ERR_NODE_BAD_RANGE',
  EXISTS: 'ERR_NODE_EXISTS',
  BAD_ID: 'ERR_NODE_BAD_ID',
  DATA_DIR: 'ERR_NODE_DATA_DIR',
  UNSUPPORTED: 'ERR_NODE_UNSUPPORTED',
  BAD_OPTIONS: 'ERR_NODE_BAD_OPTIONS',
  LOCATOR_INVALID: 'ERR_NODE_LOCATOR_INVALID',
  LOCATOR_EXPIRED: 'ERR_NODE_LOCATOR_EXPIRED',
  TWIN_FAILED: 'ERR_NODE_TWIN_FAILED'
} as const satisfies Record<string, ErrorCode>

export const DirectoryErrorCode = {
  NOT_FOUND: 'ERR_DIR_NOT_FOUND',
  EXISTS: 'ERR_DIR_EXISTS',
  NOT_EMPTY: 'ERR_DIR_NOT_EMPTY',
  NOT_A_DIRECTORY: 'ERR_DIR_NOT_A_DIRECTORY',
  IS_A_DIRECTORY: 'ERR_DIR_IS_A_DIRECTORY',
  INVALID: 'ERR_DIR_INVALID',
  SEQ_GAP: 'ERR_DIR_SEQ_GAP',
  DIVERGED: 'ERR_DIR_DIVERGED',
  TOO_LARGE: 'ERR_DIR_TOO_LARGE',
  UNSUPPORTED: 'ERR_DIR_UNSUPPORTED'
} as const satisfies Record<string, ErrorCode>

export const ManagerErrorCode = {
  BAD_REQUEST: 'ERR_BAD_REQUEST',
  NOT_FOUND: 'ERR_NOT_FOUND',
  METHOD_NOT_ALLOWED: 'ERR_METHOD_NOT_ALLOWED',
  LENGTH_REQUIRED: 'ERR_LENGTH_REQUIRED',
  TOO_LARGE: 'ERR_TOO_LARGE',
  RANGE_NOT_SATISFIABLE: 'ERR_RANGE_NOT_SATISFIABLE',
  CHECKSUM_MISMATCH: 'ERR_CHECKSUM_MISMATCH',
  REPLICA_MISMATCH: 'ERR_REPLICA_MISMATCH',
  NO_REPLICA: 'ERR_NO_REPLICA',
  UNAVAILABLE: 'ERR_UNAVAILABLE',
  UPLOAD_INCOMPLETE: 'ERR_UPLOAD_INCOMPLETE',
  RECEIPT_INVALID: 'ERR_RECEIPT_INVALID',
  RECEIPT_EXPIRED: 'ERR_RECEIPT_EXPIRED',
  RECEIPT_USED: 'ERR_RECEIPT_USED',
  UNAUTHORIZED: 'ERR_UNAUTHORIZED',
  FORBIDDEN: 'ERR_FORBIDDEN',
  BAD_TOKENS: 'ERR_BAD_TOKENS',
  BODY_TIMEOUT: 'ERR_HTTP_BODY_TIMEOUT',
  FORBIDDEN_HOST: 'ERR_HTTP_FORBIDDEN_HOST',
  CROSS_SITE: 'ERR_HTTP_CROSS_SITE',
  BAD_PARAMETER: 'ERR_HTTP_BAD_PARAMETER',
  BUSY: 'ERR_HTTP_BUSY'
} as const satisfies Record<string, ErrorCode>

export const ConfigErrorCode = { UNREADABLE: 'ERR_CONFIG_UNREADABLE', SYNTAX: 'ERR_CONFIG_SYNTAX', INVALID: 'ERR_CONFIG_INVALID' } as const satisfies Record<string, ErrorCode>
export const StartErrorCode = { DATA_DIR_LOCKED: 'ERR_DATA_DIR_LOCKED', DATA_DIR_UNUSABLE: 'ERR_DATA_DIR_UNUSABLE', MEMBER_ID_INVALID: 'ERR_MEMBER_ID_INVALID', PORT_IN_USE: 'ERR_PORT_IN_USE' } as const satisfies Record<string, ErrorCode>
export const DiscoveryErrorCode = { BAD_OPTIONS: 'ERR_DISCOVERY_BAD_OPTIONS', NOT_STARTED: 'ERR_DISCOVERY_NOT_STARTED', MULTICAST_OFF: 'ERR_DISCOVERY_MULTICAST_OFF' } as const satisfies Record<string, ErrorCode>
export const DiagErrorCode = { BAD_SETTINGS: 'ERR_DIAG_BAD_SETTINGS' } as const satisfies Record<string, ErrorCode>
export const CliErrorCode = { CLI: 'ERR_CLI' } as const satisfies Record<string, ErrorCode>
export const ClientErrorCode = {
  INVALID_OPTION: 'ERR_CLIENT_INVALID_OPTION',
  TOKEN_FILE: 'ERR_CLIENT_TOKEN_FILE',
  INVALID_REQUEST: 'ERR_CLIENT_INVALID_REQUEST',
  UNREACHABLE: 'ERR_CLIENT_UNREACHABLE',
  CONNECTION_LOST: 'ERR_CLIENT_CONNECTION_LOST',
  TIMEOUT: 'ERR_CLIENT_TIMEOUT',
  ABORTED: 'ERR_CLIENT_ABORTED',
  CLOSED: 'ERR_CLIENT_CLOSED',
  BODY_FAILED: 'ERR_CLIENT_BODY_FAILED',
  BAD_RESPONSE: 'ERR_CLIENT_BAD_RESPONSE',
  IS_A_DIRECTORY: 'ERR_CLIENT_IS_A_DIRECTORY',
  HTTP_STATUS: 'ERR_CLIENT_HTTP_STATUS',
  FILE_CHANGED: 'ERR_CLIENT_FILE_CHANGED'
} as const satisfies Record<string, ErrorCode>

/**
 * Limits and shared constants that more than one process must agree on:
 * defined once here, so the manager, the nodes, the config schema and the CLI
 * cannot drift apart.
 */

// 64 KiB: a body this small travels whole in one frame, both ways (PUT to a node, a node's read back)
export const INLINE_BODY_BYTES = 64 * 1024
// 64 MiB: kept free on a node beyond a body, so its file system never fills to the last byte;
// placement avoids nodes that do not announce that much room
export const FREE_SPACE_MARGIN_BYTES = 64 * 1024 * 1024
// 1,024: namespace partitions at most (directory server k of a center holds partition k)
export const MAX_DIRECTORY_PARTITIONS = 1024
// a center's name: lowercase letters, digits and dashes, starting with a letter, 32 at most
export const CENTER_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/
// a cluster's name: lowercase letters, digits and dashes, 32 at most (datagrams of other clusters are dropped)
export const CLUSTER_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/
// 65,535: the highest slot of a center
export const MAX_SLOT = 65535
// 8 MiB: the largest TCP frame a session takes by default; a frame above the limit is never sent,
// and one received ends the session
export const DEFAULT_MAX_FRAME_BYTES = 8 * 1024 * 1024
// 1 MiB: the encoded (msgpack) bytes of the entries or changes one message of the directory
// protocol carries at most: a listing page, a change-log page, an apply batch, a slice of a moved
// subtree, a page of pending moves or of removed files. Counting entries alone cannot bound a frame
// (10,000 entries of 4,096-byte paths are 40 MiB); an eighth of the frame leaves ample room for
// what travels around them (the envelope, a change's own paths and ids: some 10 KB at most), and
// keeps each step short: a directory server decodes, checks, stores and answers one page in one
// turn of its event loop, and its heartbeats wait meanwhile (4 MiB slices stalled them for close
// to a second on a loaded 2-core machine, and the failure detector took the server for dead).
export const MAX_PAGE_BYTES = 1024 * 1024

/**
 * The manager's HTTP settings: the least and the most each may be set to,
 * checked alike by the config file's schema and the manager's constructor.
 */
export const HTTP_SETTING_BOUNDS = {
  // ms without a byte of a request body arriving, or of a response taken by the client: 100 ms to 1 h
  'body-idle-timeout-ms': { min: 100, max: 3_600_000 },
  // ms for a client to send a request's headers: 100 ms to 10 min
  'headers-timeout-ms': { min: 100, max: 600_000 },
  // connections open at once: 1 to 65,536 (each holds a file descriptor)
  'max-connections': { min: 1, max: 65_536 },
  // multicast searches served at once: 1 to 1,024
  'max-searches': { min: 1, max: 1024 }
} as const

export type HttpSetting = keyof typeof HTTP_SETTING_BOUNDS

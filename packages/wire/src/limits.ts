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

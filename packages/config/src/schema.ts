import { z } from 'zod'
import { CENTER_NAME_PATTERN, CLUSTER_NAME_PATTERN, HTTP_SETTING_BOUNDS, MAX_DIRECTORY_PARTITIONS, MAX_SLOT, type HttpSetting } from '@mirrorcast/wire'

export const ROLES = ['node', 'directory', 'manager'] as const
export type Role = typeof ROLES[number]

const port = z.number().int().min(0).max(65535)
const name = z.string().regex(CENTER_NAME_PATTERN, 'must be lowercase letters, digits and dashes, starting with a letter')
const path = z.string().min(1, 'must be a file path')
const peer = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}(:\d{1,5})?$/, 'must be an IPv4 address with an optional port, e.g. "10.1.0.100:7700"')
const cidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'must be an IPv4 subnet like "10.1.0.0/16"')

/** Every process: the keys are the command-line flags without their dashes. */
const common = {
  role: z.enum(ROLES).optional(),
  data: path.optional(),
  'key-file': path.optional(),
  'log-level': z.enum(['error', 'warn', 'info', 'debug', 'silent']).optional(),
  cluster: z.string().regex(CLUSTER_NAME_PATTERN, 'must be lowercase letters, digits and dashes').optional(),
  group: z.ipv4().optional(),
  'search-group': z.ipv4().optional(),
  'mcast-port': port.min(1).optional(),
  interface: z.ipv4().optional(),
  ttl: z.number().int().min(0).max(255).optional(),
  'heartbeat-ms': z.number().int().min(10).max(60_000).optional(),
  multicast: z.boolean().optional(),
  peers: z.array(peer).optional(),
  'peer-port': port.optional()
}

const slot = z.number().int().min(1).max(MAX_SLOT)

/** One of the manager's HTTP limits: a whole number within the bounds the manager checks too. */
function httpSetting (key: HttpSetting): z.ZodOptional<z.ZodNumber> {
  const { min, max } = HTTP_SETTING_BOUNDS[key]
  return z.number().int().min(min).max(max).optional()
}

const member = z.strictObject({
  ...common,
  center: name.optional(),
  slot: slot.optional(),
  address: z.ipv4().optional(),
  port: port.optional(),
  'dns-sd': z.boolean().optional()
})

const directory = member.extend({ partition: z.number().int().min(1).max(MAX_DIRECTORY_PARTITIONS).optional() })

const manager = z.strictObject({
  ...common,
  /** [primary, backup]; with local twins the one center. */
  centers: z.union([z.tuple([name, name]), z.tuple([name])]).optional(),
  'local-twins': z.boolean().optional(),
  'directory-partitions': z.number().int().min(1).max(MAX_DIRECTORY_PARTITIONS).optional(),
  /** How often the twins of each directory partition are compared whole (dir.state), ms. */
  'directory-check-ms': z.number().int().min(10).max(86_400_000).optional(),
  'center-subnets': z.record(name, cidr).optional(),
  'max-announce-rate': z.number().int().min(1).max(1_000_000).optional(),
  host: z.ipv4().optional(),
  port: port.optional(),
  'max-file-bytes': z.number().int().positive().optional(),
  mapping: z.boolean().optional(),
  'multicast-search': z.boolean().optional(),
  'point-to-point': z.boolean().optional(),
  'tokens-file': path.optional(),
  'body-idle-timeout-ms': httpSetting('body-idle-timeout-ms'),
  'headers-timeout-ms': httpSetting('headers-timeout-ms'),
  'max-connections': httpSetting('max-connections'),
  'max-searches': httpSetting('max-searches'),
  'reconcile-period-ms': z.number().int().min(100).optional(),
  'orphan-grace-ms': z.number().int().min(0).optional(),
  'reconcile-mb-per-s': z.number().min(0).optional(),
  'body-cache-mb': z.number().int().min(0).optional(),
  /** The S3 front end's port (0: any), or "off". */
  's3-port': z.union([port, z.literal('off')]).optional(),
  /** Host names below which a request's Host names its bucket (virtual-host style). */
  's3-domains': z.array(z.string().regex(/^[a-z0-9.-]{1,253}$/)).optional(),
  's3-region': z.string().regex(/^[a-z0-9-]{1,32}$/).optional()
})

const node = member.extend({
  'http-port': port.optional(),
  'scrub-mb-per-s': z.number().min(0).optional(),
  'scrub-interval-s': z.number().int().min(0).optional()
})

export const schemas = { node, directory, manager } as const

export type MemberConfig = z.infer<typeof node> & z.infer<typeof directory>
export type ManagerConfig = z.infer<typeof manager>
export type HostConfig = (MemberConfig & { role: 'node' | 'directory' }) | (ManagerConfig & { role: 'manager' })

/** The keys a config file of this role may hold. */
export function keysOf (role: Role): string[] {
  return Object.keys(schemas[role].shape)
}

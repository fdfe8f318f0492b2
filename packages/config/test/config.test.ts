import test from 'ava'
import { readFileSync } from 'node:fs'
import { keysOf, parseConfig, type ConfigError } from '../src/index.js'

const NODE = `
# storage node 3 of the east center
role = "node"
data = "/var/lib/mirrorcast"
key-file = "/etc/mirrorcast/cluster.key"
log-level = "info"
center = "east"
slot = 3
address = "10.1.0.3"
port = 8701
http-port = 8702
dns-sd = true
cluster = "prod"
group = "239.192.77.1"
search-group = "239.192.77.2"
mcast-port = 7700
interface = "10.1.0.3"
ttl = 1
heartbeat-ms = 100
multicast = true
peers = ["10.1.0.100:7700", "10.2.0.100"]
peer-port = 7700
scrub-mb-per-s = 2.5
scrub-interval-s = 600
`

const MANAGER = `
role = "manager"
data = "/var/lib/mirrorcast"
key-file = "/etc/mirrorcast/cluster.key"
centers = ["east", "west"]
center-subnets = { east = "10.1.0.0/16", west = "10.2.0.0/16" }
host = "10.1.0.100"
port = 8700
max-file-bytes = 1_000_000
mapping = true
multicast-search = false
point-to-point = true
tokens-file = "/etc/mirrorcast/tokens"
interface = "10.1.0.100"
local-twins = false
directory-partitions = 2
body-idle-timeout-ms = 60_000
headers-timeout-ms = 5_000
max-connections = 4096
max-searches = 4
max-announce-rate = 2000
body-cache-mb = 32
search-group = "239.192.77.2"
`

test('a node and a manager file with every key are read with their types', (t) => {
  const node = parseConfig(NODE, 'node.toml')
  t.like(node, { role: 'node', slot: 3, port: 8701, 'http-port': 8702, multicast: true, peers: ['10.1.0.100:7700', '10.2.0.100'], 'heartbeat-ms': 100 })
  t.deepEqual(Object.keys(node).sort(), keysOf('node').sort(), 'the example uses every node key')
  const manager = parseConfig(MANAGER, 'mgr.toml')
  t.like(manager, { role: 'manager', centers: ['east', 'west'], 'center-subnets': { east: '10.1.0.0/16', west: '10.2.0.0/16' }, 'max-file-bytes': 1_000_000, 'multicast-search': false })
  t.like(manager, { 'body-idle-timeout-ms': 60_000, 'headers-timeout-ms': 5_000, 'max-connections': 4096, 'max-searches': 4, 'max-announce-rate': 2000, 'search-group': '239.192.77.2', 'body-cache-mb': 32 })
})

test('the manager\'s HTTP limits are whole numbers within their bounds', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['body-idle-timeout-ms = 0', /key "body-idle-timeout-ms": .*>=100/],
    ['body-idle-timeout-ms = 1.5', /key "body-idle-timeout-ms": .*expected int/],
    ['body-idle-timeout-ms = 3_600_001', /key "body-idle-timeout-ms": .*<=3600000/],
    ['headers-timeout-ms = "10s"', /key "headers-timeout-ms": .*expected number, received string/],
    ['headers-timeout-ms = 600_001', /key "headers-timeout-ms": .*<=600000/],
    ['max-connections = 0', /key "max-connections": .*>=1/],
    ['max-connections = 100_000', /key "max-connections": .*<=65536/],
    ['max-searches = 0', /key "max-searches": .*>=1/],
    ['max-searches = 1025', /key "max-searches": .*<=1024/]
  ]
  for (const [line, message] of cases) t.throws(() => parseConfig(`role = "manager"\n${line}`, 'm.toml'), { code: 'ERR_CONFIG_INVALID', message }, line)
})

test('the command gives the role when the file does not, and a file of another role is refused', (t) => {
  t.is(parseConfig('slot = 1', 'a.toml', 'directory').role, 'directory')
  t.throws(() => parseConfig('role = "node"', 'a.toml', 'manager'), { code: 'ERR_CONFIG_INVALID', message: 'a.toml: role = "node", but this is `mirrorcast manager`' })
  t.throws(() => parseConfig('slot = 1', 'a.toml'), { code: 'ERR_CONFIG_INVALID', message: /role = "node", "directory" or "manager"/ })
  t.throws(() => parseConfig('role = "storage"', 'a.toml'), { code: 'ERR_CONFIG_INVALID', message: /role must be one of node, directory, manager, got "storage"/ })
  t.like(parseConfig('partition = 2', 'd.toml', 'directory'), { role: 'directory', partition: 2 })
  t.throws(() => parseConfig('role = "node"\npartition = 2', 'n.toml'), { message: /unknown key "partition" for a node \(it is a directory setting\)/ })
})

test('unknown keys are named, with the likely intended key or the role they belong to', (t) => {
  const err = t.throws<ConfigError>(() => parseConfig('role = "node"\nmcast_port = 7700\nhost = "10.1.0.1"\ncolour = "red"', 'n.toml'))
  t.is(err?.code, 'ERR_CONFIG_INVALID')
  t.regex(err?.message ?? '', /n\.toml: unknown key "mcast_port" for a node \(did you mean mcast-port\?\)/)
  t.regex(err?.message ?? '', /unknown key "host" for a node \(it is a manager setting\)/)
  t.regex(err?.message ?? '', /unknown key "colour" for a node; known keys: role, data, key-file/)
})

test('wrong types and values are named with their key', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['slot = "3"', /key "slot": .*expected number, received string/],
    ['slot = 0', /key "slot": .*>=1/],
    ['port = 70000', /key "port": .*<=65535/],
    ['address = "10.1.0"', /key "address": Invalid IPv4 address/],
    ['peers = "10.1.0.1"', /key "peers": .*expected array/],
    ['peers = ["manager.lan"]', /key "peers.0": must be an IPv4 address with an optional port/],
    ['multicast = "no"', /key "multicast": .*expected boolean/],
    ['center = "East"', /key "center": must be lowercase/]
  ]
  for (const [line, message] of cases) {
    t.throws(() => parseConfig(`role = "node"\n${line}`, 'n.toml'), { code: 'ERR_CONFIG_INVALID', message }, line)
  }
  t.throws(() => parseConfig('role = "manager"\ncenters = "east,west"', 'm.toml'), { message: /key "centers"/ })
  t.throws(() => parseConfig('role = "manager"\ncenter-subnets = { east = "10.1.0.0" }', 'm.toml'), { message: /key "center-subnets.east": must be an IPv4 subnet/ })
})

test('a TOML syntax error gives file, line and column', (t) => {
  t.throws(() => parseConfig('role = "node"\nslot = = 3', 'n.toml'), { code: 'ERR_CONFIG_SYNTAX', message: /^n\.toml:2:\d+: / })
})

test('the example config files of docs/LAN.md are valid', (t) => {
  const guide = readFileSync(new URL('../../../../docs/LAN.md', import.meta.url), 'utf8')
  const examples = [...guide.matchAll(/```toml\n([\s\S]*?)```/g)].map((m) => m[1] as string)
  t.true(examples.length >= 5)
  for (const text of examples) {
    const role = /^role = "(\w+)"/m.exec(text)?.[1] as 'node' | 'directory' | 'manager' | undefined
    // The static-peer snippets name no role: they go into a member's or the manager's file.
    t.notThrows(() => parseConfig(text, 'LAN.md', role ?? (text.includes('peers') ? 'node' : 'manager')), text)
  }
})

import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import { inSubnet, parseSubnet } from '@mirrorcast/topology'
import type { Check } from './report.js'
import type { DiagSettings } from './settings.js'

const run = promisify(execFile)

interface Link {
  ifname: string
  flags: string[]
  operstate: string
  addr_info: Array<{ family: string, local: string, prefixlen: number }>
}

/** `ip -j <args>` (iproute2's JSON output). */
async function ipJson<T> (args: string[]): Promise<T> {
  const { stdout } = await run('ip', ['-j', ...args])
  return JSON.parse(stdout) as T
}

/**
 * The host side: the interface exists, is up, can do multicast and has the
 * address; the group's route leaves through it; TTL and loopback fit.
 */
export async function hostChecks (s: DiagSettings): Promise<Check[]> {
  let links: Link[]
  try {
    links = await ipJson<Link[]>(['addr', 'show'])
  } catch (err) {
    return [{ status: 'warn', check: 'interface', message: `cannot list this host's interfaces: ${(err as Error).message}`, advice: 'install iproute2 (the ip command) to let netdiag check interfaces and routes' }]
  }
  const link = links.find((l) => l.addr_info.some((a) => a.family === 'inet' && (a.local === s.interface || (l.flags.includes('LOOPBACK') && onLoopbackNet(s.interface, a)))))
  const checks = [interfaceCheck(s, link, links)]
  if (link !== undefined && s.multicast) checks.push(await routeCheck(s, link))
  if (s.multicast) checks.push(ttlCheck(s, link))
  return checks
}

function interfaceCheck (s: DiagSettings, link: Link | undefined, links: Link[]): Check {
  if (link === undefined) {
    const have = links.flatMap((l) => l.addr_info.filter((a) => a.family === 'inet').map((a) => `${l.ifname} ${a.local}/${a.prefixlen}`)).join(', ')
    return { status: 'fail', check: 'interface', subject: s.interface, message: `no interface of this host has the address ${s.interface}`, advice: `set \`interface\` to this host's LAN address (this host has: ${have}), or give the interface that address` }
  }
  const loopback = link.flags.includes('LOOPBACK')
  const data = { device: link.ifname, flags: link.flags, operstate: link.operstate }
  if (!link.flags.includes('UP')) return { status: 'fail', check: 'interface', subject: s.interface, message: `${link.ifname} is administratively down`, advice: `ip link set ${link.ifname} up`, data }
  if (!loopback && !link.flags.includes('LOWER_UP')) return { status: 'fail', check: 'interface', subject: s.interface, message: `${link.ifname} has no carrier (cable, switch port or peer veth down)`, advice: `check the link of ${link.ifname}`, data }
  // Loopback carries multicast on Linux without the flag: the socket pins the interface.
  if (s.multicast && !loopback && !link.flags.includes('MULTICAST')) return { status: 'fail', check: 'interface', subject: s.interface, message: `${link.ifname} has multicast switched off`, advice: `ip link set ${link.ifname} multicast on`, data }
  return { status: 'ok', check: 'interface', subject: s.interface, message: `on ${link.ifname}: up${loopback ? ', loopback (multicast stays on this host)' : ', carrier, multicast'}`, data }
}

async function routeCheck (s: DiagSettings, link: Link): Promise<Check> {
  if (link.flags.includes('LOOPBACK')) return { status: 'ok', check: 'route', subject: s.group, message: 'loopback: the sockets pin the interface, no route is used' }
  let route: Array<{ dev?: string, type?: string }>
  try {
    route = await ipJson(['route', 'get', s.group])
  } catch (err) {
    return { status: 'warn', check: 'route', subject: s.group, message: `no route for the group: ${(err as { stderr?: string }).stderr?.trim() ?? (err as Error).message}`, advice: `mirrorcast pins ${link.ifname} on its sockets and works without it, but other tools do not: ip route add 224.0.0.0/4 dev ${link.ifname}` }
  }
  const dev = route[0]?.dev
  if (dev !== link.ifname) return { status: 'warn', check: 'route', subject: s.group, message: `the route for the group points at ${dev ?? 'nothing'}, not at ${link.ifname}`, advice: `mirrorcast pins ${link.ifname} on its sockets; for other tools (tcpdump, avahi, socat) add ip route add 224.0.0.0/4 dev ${link.ifname}`, data: { dev } }
  return { status: 'ok', check: 'route', subject: s.group, message: `the group's route leaves through ${link.ifname}` }
}

function ttlCheck (s: DiagSettings, link: Link | undefined): Check {
  const loopback = link?.flags.includes('LOOPBACK') ?? s.interface.startsWith('127.')
  const data = { ttl: s.ttl, multicastLoopback: true }
  if (!loopback && s.ttl === 0) return { status: 'fail', check: 'ttl', message: 'TTL 0 keeps every announcement on this host: no other host hears it', advice: 'set ttl = 1 (one LAN segment; one center a subnet)', data }
  if (s.ttl > 1) return { status: 'warn', check: 'ttl', message: `TTL ${s.ttl} lets announcements cross ${s.ttl - 1} router(s)`, advice: 'use ttl = 1 unless multicast routing between the centers is set up on purpose', data }
  return { status: 'ok', check: 'ttl', message: `TTL ${s.ttl}${loopback ? ' (this host only)' : ' (one LAN segment)'}; multicast loopback on, so processes on this host hear each other`, data }
}

/** 127.1.0.1 is this host's too when lo holds 127.0.0.1/8. */
function onLoopbackNet (address: string, a: { local: string, prefixlen: number }): boolean {
  return a.prefixlen >= 1 && a.prefixlen <= 31 && inSubnet(address, parseSubnet(`${a.local}/${a.prefixlen}`))
}

import { isIPv4 } from 'node:net'
import { TopologyError, TopologyErrorCode } from './errors.js'

/** An IPv4 subnet as `a.b.c.d/len`. */
export interface Subnet {
  network: number
  prefixLength: number
}

function toInt (ip: string): number {
  return ip.split('.').reduce((acc, octet) => (acc * 256) + Number(octet), 0)
}

function toIp (n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.')
}

function mask (prefixLength: number): number {
  return prefixLength === 0 ? 0 : (0xffffffff << (32 - prefixLength)) >>> 0
}

export function parseSubnet (cidr: string): Subnet {
  const [ip, len] = cidr.split('/')
  const prefixLength = Number(len)
  if (ip === undefined || !isIPv4(ip) || !Number.isInteger(prefixLength) || prefixLength < 1 || prefixLength > 31) {
    throw new TopologyError(TopologyErrorCode.BAD_REQUEST, `subnet ${JSON.stringify(cidr)} must be IPv4 CIDR like 10.1.0.0/16`)
  }
  return { network: (toInt(ip) & mask(prefixLength)) >>> 0, prefixLength }
}

export function inSubnet (address: string, subnet: Subnet): boolean {
  return isIPv4(address) && ((toInt(address) & mask(subnet.prefixLength)) >>> 0) === subnet.network
}

/**
 * The subnet mapping of claims 3, 13 and 23: the twin of a member lives at the
 * address that differs only in the subnet portion, so it is the member's host
 * part placed in the other center's subnet. Undefined when the address is not
 * in `from` or the subnets' prefix lengths differ (no one-to-one mapping).
 */
export function mapAddress (address: string, from: Subnet, to: Subnet): string | undefined {
  if (from.prefixLength !== to.prefixLength || !inSubnet(address, from)) return undefined
  const host = (toInt(address) & ~mask(from.prefixLength)) >>> 0
  return toIp((to.network | host) >>> 0)
}

/** The center subnets of a deployment, e.g. east 10.1.0.0/16 ↔ west 10.2.0.0/16. */
export class SubnetMap {
  private readonly subnets: Map<string, Subnet>

  constructor (centers: Record<string, string>) {
    this.subnets = new Map(Object.entries(centers).map(([center, cidr]) => [center, parseSubnet(cidr)]))
  }

  get size (): number {
    return this.subnets.size
  }

  subnetOf (center: string): Subnet | undefined {
    return this.subnets.get(center)
  }

  /** The twin's address in `toCenter` for a member at `address` in `fromCenter`. */
  twinAddress (address: string, fromCenter: string, toCenter: string): string | undefined {
    const from = this.subnets.get(fromCenter)
    const to = this.subnets.get(toCenter)
    if (from === undefined || to === undefined) return undefined
    return mapAddress(address, from, to)
  }

  /** True when the two addresses differ only in the subnet portion (the twin rule). */
  areTwins (a: string, centerA: string, b: string, centerB: string): boolean {
    return this.twinAddress(a, centerA, centerB) === b
  }
}

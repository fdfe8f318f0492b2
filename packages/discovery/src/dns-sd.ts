import makeMdns from 'multicast-dns'
import type { Answer } from 'dns-packet'
import { isIPv4 } from 'node:net'
import { silentLogger, type Logger } from '@mirrorcast/logger'
import { DiscoveryError, DiscoveryErrorCode } from './errors.js'

export const SERVICE_TYPE = '_mirrorcast._tcp.local'
const SERVICE_ENUMERATION = '_services._dns-sd._udp.local'
// RFC 6762 §10: 120 s for records naming a host (SRV, A), 75 min for the others (PTR, TXT)
const HOST_RECORD_TTL = 120
const OTHER_RECORD_TTL = 4500
// RFC 6762 §6: answers holding shared records wait a random 20–120 ms
const SHARED_DELAY_MIN_MS = 20
const SHARED_DELAY_SPAN_MS = 100
// RFC 6762 §8.3: a second announcement one second after the first
const REANNOUNCE_MS = 1000
export const MDNS_PORT = 5353

export interface DnsSdOptions {
  /** Service instance name, e.g. the member id. */
  instance: string
  /** Host label: the SRV target is `<host>.local`. */
  host: string
  /** Address the A record gives, and the interface to advertise on. */
  address: string
  /** TCP port of the node protocol. */
  servicePort: number
  txt: Record<string, string>
  /** IP TTL of our datagrams: 0 on loopback (never leaves the host), 255 on a LAN (RFC 6762 §11). */
  ttl?: number
  /** mDNS port: 5353; tests may move it. */
  mdnsPort?: number
  logger?: Logger
}

type Mdns = ReturnType<typeof makeMdns>

/**
 * Advertises one `_mirrorcast._tcp` service instance with multicast-dns, as
 * RFC 6762/6763 ask, so that any DNS-SD browser (avahi, zeroconf) lists it.
 */
export class DnsSdAdvertiser {
  private readonly o: Required<Omit<DnsSdOptions, 'logger'>> & { logger: Logger }
  private mdns: Mdns | undefined
  private readonly timers = new Set<NodeJS.Timeout>()
  answered = 0

  constructor (options: DnsSdOptions) {
    if (!isIPv4(options.address)) throw new DiscoveryError(DiscoveryErrorCode.BAD_OPTIONS, `DNS-SD address ${options.address} must be IPv4`)
    if (!/^[A-Za-z0-9-]{1,63}$/.test(options.host)) throw new DiscoveryError(DiscoveryErrorCode.BAD_OPTIONS, `DNS-SD host label ${options.host} must be letters, digits and dashes`)
    const loopback = options.address.startsWith('127.')
    this.o = { ttl: loopback ? 0 : 255, mdnsPort: MDNS_PORT, logger: silentLogger(), ...options }
  }

  get instanceName (): string {
    return `${this.o.instance}.${SERVICE_TYPE}`
  }

  get hostName (): string {
    return `${this.o.host}.local`
  }

  async start (): Promise<void> {
    if (this.mdns !== undefined) return
    // multicast-dns binds to `interface` unless told otherwise, and a socket bound to a unicast address hears no multicast query.
    const mdns = makeMdns({ interface: this.o.address, bind: '0.0.0.0', port: this.o.mdnsPort, ttl: this.o.ttl, loopback: true, reuseAddr: true })
    this.mdns = mdns
    mdns.on('warning', (err: Error) => this.o.logger.debug('mdns warning', { error: err.message }))
    mdns.on('query', (query, rinfo) => this.onQuery(query, rinfo.address))
    await new Promise<void>((resolve, reject) => {
      mdns.once('ready', resolve)
      mdns.once('error', reject)
    })
    mdns.on('error', (err: Error) => this.o.logger.warn('mdns error', { error: err.message }))
    this.announce()
    this.later(REANNOUNCE_MS, () => this.announce())
  }

  /** Sends the goodbye (every record with TTL 0) and closes the socket. */
  async close (): Promise<void> {
    const mdns = this.mdns
    if (mdns === undefined) return
    this.mdns = undefined
    for (const t of this.timers) clearTimeout(t)
    this.timers.clear()
    await new Promise<void>((resolve) => mdns.respond({ answers: this.records(0) }, () => resolve()))
    await new Promise<void>((resolve) => mdns.destroy(() => resolve()))
  }

  private announce (): void {
    this.mdns?.respond({ answers: this.records() })
  }

  private records (ttl?: number): Answer[] {
    const t = (normal: number): number => ttl ?? normal
    return [
      { name: SERVICE_TYPE, type: 'PTR', ttl: t(OTHER_RECORD_TTL), data: this.instanceName },
      { name: this.instanceName, type: 'SRV', ttl: t(HOST_RECORD_TTL), flush: true, data: { target: this.hostName, port: this.o.servicePort, priority: 0, weight: 0 } },
      { name: this.instanceName, type: 'TXT', ttl: t(OTHER_RECORD_TTL), flush: true, data: Object.entries(this.o.txt).map(([k, v]) => `${k}=${v}`) },
      { name: this.hostName, type: 'A', ttl: t(HOST_RECORD_TTL), flush: true, data: this.o.address }
    ]
  }

  private onQuery (query: { questions: Array<{ name: string, type: string }>, answers?: Answer[] }, from: string): void {
    // On loopback only local askers count: a socket bound to 0.0.0.0 can hear other interfaces' groups.
    if (this.o.address.startsWith('127.') && !from.startsWith('127.')) return
    const [ptr, srv, txt, a] = this.records()
    const answers: Answer[] = []
    let shared = false
    for (const q of query.questions) {
      const name = q.name.toLowerCase()
      const any = q.type === 'ANY'
      if (name === SERVICE_TYPE && (any || q.type === 'PTR') && !this.knownAnswer(query.answers, ptr as Answer)) {
        answers.push(ptr as Answer)
        shared = true
      } else if (name === SERVICE_ENUMERATION && (any || q.type === 'PTR')) {
        answers.push({ name: SERVICE_ENUMERATION, type: 'PTR', ttl: OTHER_RECORD_TTL, data: SERVICE_TYPE })
        shared = true
      } else if (name === this.instanceName.toLowerCase()) {
        if (any || q.type === 'SRV') answers.push(srv as Answer)
        if (any || q.type === 'TXT') answers.push(txt as Answer)
      } else if (name === this.hostName.toLowerCase() && (any || q.type === 'A')) {
        answers.push(a as Answer)
      }
    }
    if (answers.length === 0) return
    // RFC 6763 §12: a PTR answer carries the SRV, TXT and A a browser will ask for next.
    const additionals = answers.some((r) => r.type === 'PTR' && r.name === SERVICE_TYPE) ? [srv, txt, a] as Answer[] : []
    const send = (): void => {
      this.answered++
      this.mdns?.respond({ answers, additionals })
    }
    if (shared) this.later(SHARED_DELAY_MIN_MS + Math.random() * SHARED_DELAY_SPAN_MS, send)
    else send()
  }

  /** RFC 6762 §7.1: no answer the asker already holds with more than half its TTL left. */
  private knownAnswer (known: Answer[] | undefined, record: Answer): boolean {
    const field = (r: Answer, k: 'data' | 'ttl'): unknown => (r as unknown as Record<string, unknown>)[k]
    return (known ?? []).some((k) => k.type === record.type && k.name.toLowerCase() === record.name.toLowerCase() &&
      field(k, 'data') === field(record, 'data') && Number(field(k, 'ttl') ?? 0) > Number(field(record, 'ttl') ?? 0) / 2)
  }

  private later (ms: number, fn: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      fn()
    }, ms)
    this.timers.add(timer)
  }
}

import type { AnyEnvelope } from '@mirrorcast/wire'
import { Announcer, type AnnounceInfo } from './announcer.js'
import { DnsSdAdvertiser } from './dns-sd.js'
import { MulticastChannel } from './multicast-channel.js'
import { DiscoveryError, DiscoveryErrorCode } from './errors.js'
import type { MulticastOptions } from './options.js'
import { SearchResponder, type Holding, type SearchKind } from './search.js'

// 1: the node-protocol version advertised in DNS-SD TXT records
export const PROTOCOL_TXT_VERSION = '1'

export interface PresenceOptions extends MulticastOptions {
  heartbeatMs?: number
  /** Advertise over DNS-SD too (multicast-dns); off in unit tests that need no port 5353. */
  dnsSd?: boolean
  /** The mDNS port, 5353 unless a test moves it. */
  mdnsPort?: number
}

/**
 * Everything a storage node or directory server does on the multicast groups:
 * announce itself every heartbeat (at the managers' cadence), answer searches
 * for what it holds, and advertise a DNS-SD service instance. It joins the
 * searches' group only: the cluster's heartbeats are for managers, and
 * hearing them would cost every member more the larger the cluster.
 */
export class MemberPresence {
  readonly channel: MulticastChannel
  private readonly announcer: Announcer
  private readonly responder: SearchResponder
  private readonly dnsSd: DnsSdAdvertiser | undefined

  constructor (options: PresenceOptions, info: () => AnnounceInfo, lookup: (kind: SearchKind, key: string) => Promise<Holding | undefined>) {
    const first = info()
    this.channel = new MulticastChannel(first.id, { ...options, join: ['searches'] })
    const { multicast, peers } = this.channel.options
    if (!multicast && peers.length === 0) throw new DiscoveryError(DiscoveryErrorCode.BAD_OPTIONS, 'multicast is off and no static peers are listed: no manager would ever hear this member')
    this.announcer = new Announcer(this.channel, info, options.heartbeatMs)
    this.responder = new SearchResponder(this.channel, () => {
      const { id, role, center, slot, address, port, bootId } = info()
      return { id, role, center, slot, address, port, bootId }
    }, lookup)
    // DNS-SD is multicast too: off with the rest of it.
    this.dnsSd = options.dnsSd === false || !multicast
      ? undefined
      : new DnsSdAdvertiser({
        instance: first.id,
        host: `mirrorcast-${first.id}`,
        address: first.address,
        servicePort: first.port,
        txt: { role: first.role, center: first.center, slot: String(first.slot), id: first.id, protocol: PROTOCOL_TXT_VERSION },
        ...(options.mdnsPort === undefined ? {} : { mdnsPort: options.mdnsPort }),
        logger: this.channel.options.logger
      })
  }

  private readonly onMessage = (msg: AnyEnvelope): void => {
    if (msg.t === 'cadence') this.announcer.follow(msg.from, msg.body.heartbeatMs)
  }

  /** The period this member announces at now. */
  get heartbeatMs (): number {
    return this.announcer.heartbeatMs
  }

  async start (): Promise<void> {
    this.channel.on('message', this.onMessage)
    await this.channel.start()
    this.responder.start()
    await this.announcer.start()
    await this.dnsSd?.start()
  }

  /** Says goodbye on the group and over DNS-SD, then closes the sockets. */
  async close (): Promise<void> {
    this.channel.off('message', this.onMessage)
    this.responder.close()
    await this.announcer.close()
    await this.dnsSd?.close()
    await this.channel.close()
  }
}

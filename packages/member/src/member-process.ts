import { silentLogger, type Logger } from '@mirrorcast/logger'
import { loadOrCreateMemberId, newBootId, resolveMemberOptions, RpcServer, type MemberOptions, type RequestContext } from '@mirrorcast/rpc'
import type { AnyEnvelope, MessageType } from '@mirrorcast/wire'
import { MemberPresence, type AnnounceInfo, type Holding, type PresenceOptions, type SearchKind } from '@mirrorcast/discovery'
import { DataDirLock } from './data-dir-lock.js'

export interface MemberProcessOptions extends MemberOptions {
  maxFrameBytes?: number
  /** ms a node-protocol session may stay silent (no frame, keepalives included) before it is closed; 60 s by default. */
  sessionIdleTimeoutMs?: number
  /** Multicast announce, search and DNS-SD; omitted: reachable only by its address. */
  presence?: Omit<PresenceOptions, 'key' | 'logger'>
  logger?: Logger
}

/**
 * What a storage node and a directory server share: a persistent id and a boot
 * id, the node-protocol server, and the presence on the multicast group. A
 * subclass opens its store, answers requests, and says what it holds.
 */
export abstract class MemberProcess<O extends MemberProcessOptions = MemberProcessOptions> {
  protected readonly options: O & { address: string, port: number }
  protected logger: Logger
  private server: RpcServer | undefined
  private presence: MemberPresence | undefined
  private lock: DataDirLock | undefined
  private readonly role: 'storage' | 'directory'
  id = ''
  bootId = ''

  constructor (options: O, role: 'storage' | 'directory') {
    this.options = resolveMemberOptions(options)
    this.role = role
    this.logger = options.logger ?? silentLogger()
  }

  get port (): number { return this.server?.port ?? this.options.port }
  get address (): string { return this.options.address }
  get center (): string { return this.options.center }
  get slot (): number { return this.options.slot }

  async start (): Promise<void> {
    if (this.server !== undefined || this.lock !== undefined) return
    const name = this.role === 'storage' ? 'storage node' : 'directory server'
    // The lock comes first: nothing in the dir (its id, the store's leftovers) is touched while another process may use it.
    this.lock = await DataDirLock.acquire(this.options.dataDir, name, this.options.logger)
    try {
      this.id = await loadOrCreateMemberId(this.options.dataDir, this.role === 'storage' ? 'node' : 'dir')
      this.bootId = newBootId()
      this.logger = (this.options.logger ?? silentLogger()).child({ component: this.role === 'storage' ? 'node' : 'directory', nodeId: this.id })
      await this.open()
      await this.serve()
    } catch (err) {
      // roll back in reverse, so a member that cannot start leaves nothing running (its scrub, its store, its lock)
      await this.stop().catch(() => {})
      throw err
    }
    this.logger.info(`${name} started`, { address: `${this.address}:${this.port}`, bootId: this.bootId, ...this.load() })
  }

  private async serve (): Promise<void> {
    const server = new RpcServer({
      key: this.options.key,
      identity: { id: this.id, role: this.role, center: this.center, slot: this.slot, address: this.address, port: this.options.port, bootId: this.bootId },
      host: this.address,
      port: this.options.port,
      streamingRequests: this.streamingRequests(),
      handler: async (req, ctx) => await this.handle(req, ctx),
      logger: this.logger,
      ...(this.options.maxFrameBytes === undefined ? {} : { maxFrameBytes: this.options.maxFrameBytes }),
      ...(this.options.sessionIdleTimeoutMs === undefined ? {} : { idleTimeoutMs: this.options.sessionIdleTimeoutMs })
    })
    await server.start()
    this.server = server
    if (this.options.presence !== undefined) {
      this.presence = new MemberPresence({ ...this.options.presence, key: this.options.key, logger: this.logger },
        () => ({ id: this.id, role: this.role, center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, ...this.load() }),
        async (kind, key) => await this.holds(kind, key))
      await this.presence.start()
    }
  }

  async close (): Promise<void> {
    if (this.server === undefined) return
    await this.stop()
  }

  /** Stops what runs, then closes the store, then lets the dir go: the lock is released last, once nothing uses the dir. */
  private async stop (): Promise<void> {
    const { server, presence, lock } = this
    this.server = undefined
    this.presence = undefined
    this.lock = undefined
    try {
      await presence?.close()
      await server?.close()
      await this.shutdown()
    } finally {
      await lock?.release()
    }
  }

  /** Opens what the member serves (its store), before the server starts. */
  protected abstract open (): Promise<void>
  /** Closes it, after the server stopped. */
  protected abstract shutdown (): Promise<void>
  protected abstract handle (req: AnyEnvelope, ctx: RequestContext): Promise<void>
  /** What the heartbeat says of its load; must not wait on the disk. */
  protected abstract load (): Pick<AnnounceInfo, 'free' | 'files' | 'quarantined' | 'scrub' | 'httpPort'>
  /** Whether it holds a searched key, and what of it. */
  protected abstract holds (kind: SearchKind, key: string): Promise<Holding | undefined>

  protected streamingRequests (): MessageType[] {
    return []
  }
}

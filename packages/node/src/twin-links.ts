import { RpcClient } from '@mirrorcast/rpc'

// 4: twins a node keeps sessions to; one is the rule (a node has one twin), more only across a readdress
const MAX_LINKS = 4

/**
 * Session pools from this node to its twin, for uploads that reach it by
 * signed locator: the node sends the second copy on itself, the way the
 * object manager sends both otherwise. Keyed by where the locator says the
 * twin listens; the oldest pool goes when a readdressed twin makes one too many.
 */
export class TwinLinks {
  private readonly links = new Map<string, RpcClient>()

  constructor (private readonly key: Uint8Array, private readonly selfId: string) {}

  get (host: string, port: number): RpcClient {
    const where = `${host}:${port}`
    let client = this.links.get(where)
    if (client === undefined) {
      client = new RpcClient({ key: this.key, selfId: this.selfId, host, port })
      this.links.set(where, client)
      for (const [old, c] of this.links) {
        if (this.links.size <= MAX_LINKS) break
        this.links.delete(old)
        void c.close()
      }
    }
    return client
  }

  async close (): Promise<void> {
    const all = [...this.links.values()]
    this.links.clear()
    await Promise.all(all.map(async (c) => { await c.close() }))
  }
}

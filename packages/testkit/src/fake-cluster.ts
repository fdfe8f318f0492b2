import type { MessageBody } from '@mirrorcast/wire'
import type { FakeMember, FakeMemberClient } from './fake-member.js'
import { FakeStorageNode } from './fake-storage-node.js'
import { InMemoryDirectory } from './in-memory-directory.js'

export interface FakeClusterOptions {
  /** [primary, backup]; twins are the same slot in the two. */
  centers?: [string, string]
  /** Twin pairs of storage nodes; 1 by default. */
  storagePairs?: number
  /** Twin pairs of directory servers, pair k holding partition k; 1 by default. */
  directoryPairs?: number
}

/**
 * Fake members for a manager's in-process tests, laid out as `mirrorcast up`
 * lays out a cluster: storage node s of center c at 127.c.0.s, directory
 * server k at 127.c.1.k. Give `clientFor` to the Membership and the
 * announcements to its Roster (`roster.observe`).
 */
export class FakeCluster {
  readonly centers: [string, string]
  readonly storage: FakeStorageNode[] = []
  readonly directories: InMemoryDirectory[] = []

  constructor (options: FakeClusterOptions = {}) {
    this.centers = options.centers ?? ['east', 'west']
    this.centers.forEach((center, c) => {
      for (let slot = 1; slot <= (options.storagePairs ?? 1); slot++) this.storage.push(new FakeStorageNode({ id: `node-${center}-${slot}`, center, slot, address: `127.${c + 1}.0.${slot}`, port: 7000 + slot }))
      for (let slot = 1; slot <= (options.directoryPairs ?? 1); slot++) this.directories.push(new InMemoryDirectory({ id: `dir-${center}-${slot}`, center, slot, address: `127.${c + 1}.1.${slot}`, port: 7100 + slot }))
    })
  }

  get members (): FakeMember[] {
    return [...this.storage, ...this.directories]
  }

  /** Storage node `slot` of a center. */
  node (center: string, slot: number): FakeStorageNode {
    return found(this.storage.find((m) => m.center === center && m.slot === slot), `${center}/node${slot}`)
  }

  /** Directory server `slot` of a center. */
  directory (center: string, slot: number): InMemoryDirectory {
    return found(this.directories.find((m) => m.center === center && m.slot === slot), `${center}/dir${slot}`)
  }

  byId (id: string): FakeMember {
    return found(this.members.find((m) => m.id === id), id)
  }

  /** For Membership's `clientFor`: a client of the member with that id. */
  readonly clientFor = (info: { id: string }): FakeMemberClient => this.byId(info.id).client()

  /** One heartbeat of every member that is up. */
  announcements (): Array<MessageBody<'announce'>> {
    return this.members.filter((m) => !m.down).map((m) => m.announcement())
  }
}

function found<X> (x: X | undefined, what: string): X {
  if (x === undefined) throw new Error(`the fake cluster has no ${what}`)
  return x
}

import type { ExecutionContext } from 'ava'
import { Roster } from '@mirrorcast/discovery'
import { silentLogger } from '@mirrorcast/logger'
import { FakeCluster, until, type FakeClusterOptions, type FakeMember } from '@mirrorcast/testkit'
import { TwinMap } from '@mirrorcast/topology'
import { Authorizer, DirectoryManager, Locator, Membership, ObjectManager, RepairJournal, resolveHttpLimits, type Member, type MemberClient } from '../src/index.js'
import { NativeApi, type NativeApiDeps } from '../src/http/native-api.js'
import { HttpServer } from '../src/http/server.js'
import { Router } from '../src/http/router.js'

/**
 * The manager's parts (membership, object manager, directory manager) wired
 * to fake members in process: no socket, no process, no timer of its own.
 * The roster hears what the test announces, on a clock the test moves.
 */
export interface Harness {
  cluster: FakeCluster
  roster: Roster
  membership: Membership
  journal: RepairJournal
  objects: ObjectManager
  directories: DirectoryManager
  /** The roster's clock, ms; `advance()` moves it. */
  clock: { now: number }
  member: (fake: FakeMember) => Member
  /** Every member that is up announces itself once, at the current clock. */
  heartbeat: () => void
  /** Moves the roster's clock, every member that is up announcing itself every 100 ms on the way, and runs the failure detector. */
  advance: (ms: number, silent?: FakeMember[]) => void
  /** kill -9: the member is gone and says so (a goodbye makes it dead at once). */
  kill: (fake: FakeMember) => void
  /** The member starts again (a new boot id) and announces itself: the manager resyncs or catches it up. */
  restart: (fake: FakeMember) => void
  /** Waits until the manager shows the member with this status. */
  untilStatus: (fake: FakeMember, status: string) => Promise<void>
}

export function harness (t: ExecutionContext, options: FakeClusterOptions & { partitions?: number, bodyCacheBytes?: number } = {}): Harness {
  const cluster = new FakeCluster(options)
  const clock = { now: 1_000_000 }
  const roster = new Roster({ now: () => clock.now })
  const twins = new TwinMap(cluster.centers)
  const logger = silentLogger()
  // The fakes' clients stand in for RpcClient: the narrow interface is all the manager may use.
  const clientFor = (info: { id: string }): MemberClient => cluster.clientFor(info)
  const membership = new Membership({ key: Buffer.alloc(32), selfId: 'mgr-test', twins, roster, logger, clientFor })
  const journal = new RepairJournal()
  const locator = new Locator(membership, twins, undefined, () => undefined, {}, logger)
  const objects = new ObjectManager(membership, journal, locator, logger, options.bodyCacheBytes)
  const directories = new DirectoryManager(membership, twins, locator, { partitions: options.partitions ?? options.directoryPairs ?? 1 }, logger)
  directories.start()
  t.teardown(async () => {
    directories.close()
    objects.close()
    await membership.close()
  })
  const heartbeat = (): void => { for (const a of cluster.announcements()) roster.observe(a) }
  heartbeat()
  const member = (fake: FakeMember): Member => {
    const m = membership.byId(fake.id)
    if (m === undefined) throw new Error(`${fake.name} is not a member`)
    return m
  }
  return {
    cluster,
    roster,
    membership,
    journal,
    objects,
    directories,
    clock,
    member,
    heartbeat,
    advance: (ms, silent = []) => {
      for (let at = 0; at < ms; at += Math.min(100, ms - at)) {
        clock.now += Math.min(100, ms - at)
        for (const m of cluster.members) if (!m.down && !silent.includes(m)) roster.observe(m.announcement())
        roster.tick()
      }
    },
    kill: (fake) => {
      fake.kill()
      roster.goodbye(fake.goodbye())
    },
    restart: (fake) => {
      fake.restart()
      clock.now += 100
      roster.observe(fake.announcement())
    },
    untilStatus: async (fake, status) => {
      await until(() => member(fake).health === status, { what: `${fake.name} ${status}`, timeoutMs: 5000, intervalMs: 5 })
    }
  }
}

/** A body as a stream of `piece`-byte chunks, as an HTTP request delivers it. */
export async function * streamOf (body: Buffer, piece = 64 * 1024): AsyncGenerator<Buffer> {
  for (let at = 0; at < body.length; at += piece) yield body.subarray(at, at + piece)
}

/** Reads a whole stream; on an error, resolves with the bytes received before it and the error. */
export async function drain (stream: AsyncIterable<Buffer>): Promise<{ bytes: Buffer, error: (Error & { code?: string }) | undefined }> {
  const parts: Buffer[] = []
  try {
    for await (const chunk of stream) parts.push(chunk)
    return { bytes: Buffer.concat(parts), error: undefined }
  } catch (err) {
    return { bytes: Buffer.concat(parts), error: err as Error & { code?: string } }
  }
}

/**
 * The native API over a harness's parts, on a real HTTP listener on
 * 127.0.0.1 (no tokens): what a client of the manager sees. `search` stands in
 * for the multicast search.
 */
export async function serveApi (t: ExecutionContext, h: Harness, extra: Partial<NativeApiDeps> = {}): Promise<string> {
  const api = new NativeApi({
    objects: h.objects,
    directories: h.directories,
    members: h.membership,
    search: async () => [],
    searchOrder: [h.cluster.centers[1], h.cluster.centers[0]],
    centers: h.cluster.centers,
    cluster: async () => ({}),
    reconcile: async () => [],
    maxFileBytes: 1024 ** 3,
    maxSearches: 8,
    direct: { downloadUrl: () => undefined, uploadLocator: () => ({ url: null, reason: 'no direct transfers in this harness' }), accept: () => { throw new Error('no direct transfers in this harness') }, used: () => {} },
    ...extra
  })
  const server = new HttpServer({ host: '127.0.0.1', port: 0, auth: new Authorizer([], '127.0.0.1'), router: new Router(api.routes()), limits: resolveHttpLimits({}), logger: silentLogger() })
  await server.start()
  t.teardown(async () => { await server.close() })
  return `http://127.0.0.1:${server.port}`
}

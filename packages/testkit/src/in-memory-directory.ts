import { DirectoryErrorCode } from '@mirrorcast/directory'
import type { MessageBody, MessageType } from '@mirrorcast/wire'
import { FakeMember, remoteError, type Answer, type DownloadSource, type FakeMemberOptions, type UploadSink } from './fake-member.js'
import { MemoryNamespace } from './memory-namespace.js'

export interface InMemoryDirectoryOptions extends FakeMemberOptions {
  /** The partition it holds; its slot by default. */
  partition?: number
  /** The clock of its changes' mtimes (Date.now by default). */
  now?: () => number
}

/**
 * A directory server in memory: the requests of @mirrorcast/directory's
 * server (`dir.*`), answered from a MemoryNamespace with the real server's
 * answers and codes. What it holds survives `kill()` and `restart()`.
 */
export class InMemoryDirectory extends FakeMember {
  readonly partition: number
  readonly namespace: MemoryNamespace

  constructor (options: InMemoryDirectoryOptions) {
    super(options, 'directory')
    this.partition = options.partition ?? options.slot
    this.namespace = new MemoryNamespace(options.now === undefined ? {} : { now: options.now })
  }

  protected load (): { free: number, files: number } {
    return { free: 0, files: this.namespace.entryCount }
  }

  protected answer (t: MessageType, body: unknown): Answer {
    const ns = this.namespace
    const change = (result: ReturnType<MemoryNamespace['put']>): Answer => ({ t: 'dir.change.ok', body: result })
    switch (t) {
      case 'dir.put': return change(ns.put((body as MessageBody<'dir.put'>).entry))
      case 'dir.mkdir': { const b = body as MessageBody<'dir.mkdir'>; return change(ns.mkdir(b.path, b.parents)) }
      case 'dir.rename': { const b = body as MessageBody<'dir.rename'>; return change(ns.rename(b.path, b.to)) }
      case 'dir.remove': { const b = body as MessageBody<'dir.remove'>; return change(ns.remove(b.path, b.recursive)) }
      case 'dir.move-out': { const b = body as MessageBody<'dir.move-out'>; return change(ns.moveOut(b.path, b.to, b.intent)) }
      case 'dir.move-part': { const b = body as MessageBody<'dir.move-part'>; return change(ns.movePart(b.path, b.intent, b.part, b.tree)) }
      case 'dir.move-in': { const b = body as MessageBody<'dir.move-in'>; return change(ns.moveIn(b.path, b.to, b.intent, b.tree, b.parts)) }
      case 'dir.move-done': return change(ns.moveDone((body as MessageBody<'dir.move-done'>).intent))
      case 'dir.intents': return { t: 'dir.intents.ok', body: ns.intents() }
      case 'dir.intent-tree': { const b = body as MessageBody<'dir.intent-tree'>; return { t: 'dir.intent-tree.ok', body: ns.intentTree(b.intent, b.from) } }
      case 'dir.removed': { const b = body as MessageBody<'dir.removed'>; return { t: 'dir.removed.ok', body: ns.removedFrom(b.seq, b.from) } }
      case 'dir.stat': {
        const b = body as MessageBody<'dir.stat'>
        const entry = b.optional === true ? ns.lookup(b.path) : ns.stat(b.path)
        return { t: 'dir.stat.ok', body: entry === undefined ? {} : { entry } }
      }
      case 'dir.list': { const b = body as MessageBody<'dir.list'>; return { t: 'dir.list.ok', body: ns.list(b.path, b.after, b.limit) } }
      case 'dir.apply': return { t: 'dir.apply.ok', body: { seq: ns.apply((body as MessageBody<'dir.apply'>).changes) } }
      case 'dir.changes': { const b = body as MessageBody<'dir.changes'>; return { t: 'dir.changes.ok', body: ns.changes(b.after, b.limit) } }
      case 'dir.reset':
        ns.reset()
        return { t: 'ok', body: {} }
      case 'dir.info':
        return { t: 'dir.info.ok', body: { id: this.id, role: 'directory', center: this.center, slot: this.slot, address: this.address, port: this.port, bootId: this.bootId, partition: this.partition, seq: ns.seq, entries: ns.entryCount, intents: ns.pendingMoves } }
      default:
        throw remoteError(DirectoryErrorCode.UNSUPPORTED, `a directory server does not serve ${t}`, this.name)
    }
  }

  protected startUpload (t: MessageType): UploadSink {
    throw remoteError(DirectoryErrorCode.UNSUPPORTED, `a directory server takes no upload of ${t}`, this.name)
  }

  protected startDownload (t: MessageType): DownloadSource {
    throw remoteError(DirectoryErrorCode.UNSUPPORTED, `a directory server streams no ${t}`, this.name)
  }
}

import { readFile } from 'node:fs/promises'
import { createLogger, type Logger } from '@mirrorcast/logger'
import { readClusterKeyFile } from '@mirrorcast/wire'
import { StorageNode } from '@mirrorcast/node'
import { DirectoryServer } from '@mirrorcast/directory'
import { Manager, type PeerConfig } from '@mirrorcast/manager'
import { CliError } from './errors.js'

interface Service {
  start: () => Promise<void>
  close: () => Promise<void>
}

export interface ServeOptions {
  data: string
  keyFile: string
  logLevel?: string
}

export interface MemberServeOptions extends ServeOptions {
  center: string
  slot: string
  address: string
  port: string
}

export interface ManagerServeOptions extends ServeOptions {
  peers: string
  host: string
  port: string
  maxFileBytes?: string
}

export async function serveNode (role: 'storage' | 'directory', opts: MemberServeOptions): Promise<void> {
  const key = await readClusterKeyFile(opts.keyFile)
  const logger = createLogger({ level: opts.logLevel, fields: { component: role === 'storage' ? 'node' : 'directory' } })
  const common = { dataDir: opts.data, key, center: opts.center, slot: parseInteger(opts.slot, 'slot'), address: opts.address, port: parseInteger(opts.port, 'port'), logger }
  const service = role === 'storage' ? new StorageNode(common) : new DirectoryServer(common)
  await run(service, logger, () => ({ role, id: service.id, address: service.address, port: service.port, center: opts.center, slot: common.slot }))
}

/** The peers file: `{ centers: [primary, backup], peers: [{ role, center, slot, address, port }] }`. */
export async function readPeersFile (path: string): Promise<{ centers: [string, string], peers: PeerConfig[] }> {
  let parsed: unknown
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'))
  } catch (err) {
    throw new CliError(`cannot read peers file ${path}: ${(err as Error).message}`)
  }
  const p = parsed as { centers?: unknown, peers?: unknown }
  if (!Array.isArray(p.centers) || p.centers.length !== 2 || !Array.isArray(p.peers)) {
    throw new CliError(`peers file ${path} must hold { "centers": [primary, backup], "peers": [...] }`)
  }
  return { centers: p.centers as [string, string], peers: p.peers as PeerConfig[] }
}

export async function serveManager (opts: ManagerServeOptions): Promise<void> {
  const key = await readClusterKeyFile(opts.keyFile)
  const logger = createLogger({ level: opts.logLevel, fields: { component: 'manager' } })
  const { centers, peers } = await readPeersFile(opts.peers)
  const manager = new Manager({
    key,
    peers,
    centers,
    dataDir: opts.data,
    host: opts.host,
    port: parseInteger(opts.port, 'port'),
    ...(opts.maxFileBytes === undefined ? {} : { maxFileBytes: parseInteger(opts.maxFileBytes, 'max-file-bytes') }),
    logger
  })
  await run(manager, logger, () => ({ role: 'manager', id: manager.id, url: manager.url, port: manager.port }))
}

/**
 * Starts a service, tells a parent `mirrorcast up` (over IPC) that it is
 * ready, and closes it cleanly on SIGINT/SIGTERM or when that parent goes away.
 */
async function run (service: Service, logger: Logger, ready: () => Record<string, unknown>): Promise<void> {
  await service.start()
  let stopping = false
  const stop = (why: string): void => {
    if (stopping) return
    stopping = true
    logger.info('stopping', { why })
    service.close().then(() => process.exit(0), (err: Error) => {
      logger.error('close failed', { error: err.message })
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  if (process.send !== undefined) {
    process.on('disconnect', () => stop('parent went away'))
    process.send({ type: 'ready', ...ready() })
  }
  logger.info('ready', ready())
}

export function parseInteger (value: string, name: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) throw new CliError(`--${name} must be a whole number, got ${JSON.stringify(value)}`)
  return n
}

import { readFile } from 'node:fs/promises'
import { isIP, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'

/** Where Linux lists every TCP connection of this network namespace, with the bytes its peer has not acknowledged. */
export const PROC_NET_TCP = ['/proc/net/tcp', '/proc/net/tcp6']

/**
 * The kernel's count of a connection's response bytes its peer has not yet
 * acknowledged (`tx_queue` of /proc/net/tcp). A client reading slowly frees
 * its receive buffer bit by bit, and each window it opens is sent and
 * acknowledged: this count moves. The socket's own counters move only when
 * the kernel takes more from the process, which it does once a third of the
 * send buffer is free: on loopback or a fast link, where buffers grow to
 * MiBs, a client reading 5 KB/s would show nothing for minutes.
 *
 * One read of the tables serves every connection asking within `maxAgeMs`,
 * so many slow clients cost one read, not one each. Where there is no such
 * table (not Linux), every answer is undefined.
 */
export class SendQueues {
  private snapshot: { at: number, table: Promise<Map<string, number> | undefined> } | undefined

  constructor (private readonly maxAgeMs: number, private readonly files: string[] = PROC_NET_TCP) {}

  async of (socket: Socket): Promise<number | undefined> {
    const key = connectionKey(socket.localAddress, socket.localPort, socket.remoteAddress, socket.remotePort)
    if (key === undefined) return undefined
    return (await this.table())?.get(key)
  }

  private async table (): Promise<Map<string, number> | undefined> {
    const now = performance.now()
    if (this.snapshot === undefined || now - this.snapshot.at > this.maxAgeMs) this.snapshot = { at: now, table: this.read() }
    return await this.snapshot.table
  }

  private async read (): Promise<Map<string, number> | undefined> {
    const texts = await Promise.all(this.files.map(async (file) => await readFile(file, 'latin1').catch(() => undefined)))
    if (texts.every((text) => text === undefined)) return undefined
    const table = new Map<string, number>()
    for (const text of texts) if (text !== undefined) for (const [key, queued] of parseProcNetTcp(text)) table.set(key, queued)
    return table
  }
}

/** `local remote` → tx_queue, from the text of /proc/net/tcp or tcp6. */
export function parseProcNetTcp (text: string): Map<string, number> {
  const table = new Map<string, number>()
  for (const line of text.split('\n').slice(1)) {
    // sl local_address rem_address st tx_queue:rx_queue ...
    const [, local, remote, , queues] = line.trim().split(/\s+/)
    const tx = queues?.split(':')[0]
    if (local === undefined || remote === undefined || tx === undefined || !/^[0-9A-F]+$/i.test(tx)) continue
    table.set(`${local.toUpperCase()} ${remote.toUpperCase()}`, parseInt(tx, 16))
  }
  return table
}

/** A connection's key as /proc/net/tcp writes it: each address in 32-bit words of host (little-endian) order, ports in hex. */
export function connectionKey (localAddress: string | undefined, localPort: number | undefined, remoteAddress: string | undefined, remotePort: number | undefined): string | undefined {
  if (localAddress === undefined || localPort === undefined || remoteAddress === undefined || remotePort === undefined) return undefined
  const local = procAddress(localAddress)
  const remote = procAddress(remoteAddress)
  if (local === undefined || remote === undefined) return undefined
  return `${local}:${procPort(localPort)} ${remote}:${procPort(remotePort)}`
}

function procPort (port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0')
}

function procAddress (address: string): string | undefined {
  const bytes = addressBytes(address)
  if (bytes === undefined) return undefined
  let out = ''
  for (let word = 0; word < bytes.length; word += 4) out += Buffer.from(bytes.subarray(word, word + 4)).reverse().toString('hex')
  return out.toUpperCase()
}

function addressBytes (scoped: string): Buffer | undefined {
  const address = scoped.split('%')[0] ?? ''
  if (isIP(address) === 4) return Buffer.from(address.split('.').map(Number))
  if (isIP(address) !== 6) return undefined
  // an IPv4 tail (::ffff:10.1.0.3) is two groups
  const tail = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(address)
  const text = tail === null ? address : address.slice(0, tail.index) + [Number(tail[1]) * 256 + Number(tail[2]), Number(tail[3]) * 256 + Number(tail[4])].map((g) => g.toString(16)).join(':')
  const [head = '', rest] = text.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = rest === undefined || rest === '' ? [] : rest.split(':')
  const groups = rest === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

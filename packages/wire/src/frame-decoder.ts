import { WireError, WireErrorCode } from './errors.js'
import { FRAME_LENGTH_BYTES } from './codec.js'

/**
 * Splits a byte stream into length-prefixed frames. A length above the limit is
 * refused before any of that frame is buffered.
 */
export class FrameDecoder {
  private maxFrameBytes: number
  private chunks: Buffer[] = []
  private buffered = 0

  constructor (maxFrameBytes: number) {
    this.maxFrameBytes = maxFrameBytes
  }

  /**
   * Changes the limit for the frames still to come: a session starts with a small
   * one (an unauthenticated peer may make it buffer only that) and raises it once
   * the handshake proved the peer holds the key.
   */
  setLimit (maxFrameBytes: number): void {
    this.maxFrameBytes = maxFrameBytes
  }

  /** Adds bytes and returns every frame they complete, each in one buffer. */
  push (data: Buffer): Buffer[] {
    return this.pushParts(data).map((parts) => parts.length === 1 ? parts[0] as Buffer : Buffer.concat(parts))
  }

  /**
   * Adds bytes and returns every frame they complete, each as the slices of
   * the reads it spans: a 1 MiB frame that came in sixteen reads is not
   * copied into one buffer.
   */
  pushParts (data: Buffer): Buffer[][] {
    this.chunks.push(data)
    this.buffered += data.length
    const frames: Buffer[][] = []
    for (;;) {
      if (this.buffered < FRAME_LENGTH_BYTES) break
      const length = this.peekLength()
      if (length > this.maxFrameBytes) {
        throw new WireError(WireErrorCode.OVERSIZE, `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`)
      }
      if (this.buffered < FRAME_LENGTH_BYTES + length) break
      this.take(FRAME_LENGTH_BYTES)
      frames.push(this.takeParts(length))
    }
    return frames
  }

  /** Bytes of an incomplete frame still held: non-zero at end of stream means truncation. */
  get pending (): number {
    return this.buffered
  }

  private peekLength (): number {
    const first = this.chunks[0] as Buffer
    if (first.length >= FRAME_LENGTH_BYTES) return first.readUInt32BE(0)
    return this.flatten().readUInt32BE(0)
  }

  private flatten (): Buffer {
    const all = Buffer.concat(this.chunks, this.buffered)
    this.chunks = [all]
    return all
  }

  /** The next `n` bytes as slices of the chunks held, none copied. */
  private takeParts (n: number): Buffer[] {
    if (n === 0) return [Buffer.alloc(0)]
    const parts: Buffer[] = []
    for (let left = n; left > 0;) {
      const first = this.chunks[0] as Buffer
      if (first.length <= left) {
        parts.push(first)
        this.chunks.shift()
        left -= first.length
      } else {
        parts.push(first.subarray(0, left))
        this.chunks[0] = first.subarray(left)
        left = 0
      }
    }
    this.buffered -= n
    return parts
  }

  private take (n: number): Buffer {
    // an empty frame (length 0) may be the last bytes buffered: there is no chunk to cut
    if (n === 0) return Buffer.alloc(0)
    let first = this.chunks[0] as Buffer
    if (first.length < n) first = this.flatten()
    const out = first.subarray(0, n)
    if (first.length === n) this.chunks.shift()
    else this.chunks[0] = first.subarray(n)
    this.buffered -= n
    return out
  }
}

/**
 * Gathers a body into pieces of exactly `size` bytes (the last one shorter),
 * each the list of the stream's own buffers it spans: one frame each, written
 * back to back, so no byte is copied to assemble it.
 */
export async function * blocks (source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer[]> {
  let parts: Buffer[] = []
  let held = 0
  for await (let chunk of source) {
    while (held + chunk.length >= size) {
      const take = size - held
      parts.push(chunk.subarray(0, take))
      yield parts
      chunk = chunk.subarray(take)
      parts = []
      held = 0
    }
    if (chunk.length > 0) {
      parts.push(chunk)
      held += chunk.length
    }
  }
  if (held > 0) yield parts
}

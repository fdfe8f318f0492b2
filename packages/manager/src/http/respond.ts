import type { IncomingMessage, ServerResponse } from 'node:http'
import { CommonErrorCode } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode, httpStatusFor } from '../errors.js'

export function sendJson (res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

export function sendError (res: ServerResponse, err: unknown): void {
  const code = (err as { code?: unknown } | null)?.code
  const status = httpStatusFor(typeof code === 'string' ? code : undefined)
  const message = status === 500 ? 'internal error' : (err as Error).message
  if (res.headersSent) {
    // Too late for a status: cutting the connection is the only honest signal.
    res.destroy(err as Error)
    return
  }
  sendJson(res, status, { error: { code: typeof code === 'string' ? code : CommonErrorCode.INTERNAL, message } })
}

// 64 KiB: the most written to a response at once. A write counts as taken by the client only
// once the kernel took all of it (see watchProgress), so with members' 1 MiB chunks written
// whole, a client reading a steady 2 KiB/s would show no progress for over 8 minutes.
// In slices, a client reading 1 KiB/s shows some every minute.
export const RESPONSE_SLICE_BYTES = 64 * 1024

/** Writes a stream of buffers to the response, waiting whenever the client is slower. */
export async function pipeBody (res: ServerResponse, body: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of body) {
    for (let at = 0; at < chunk.length; at += RESPONSE_SLICE_BYTES) {
      if (!res.write(chunk.subarray(at, at + RESPONSE_SLICE_BYTES))) await drainOrClose(res)
      if (res.destroyed) throw new ManagerError(ManagerErrorCode.BAD_REQUEST, 'client went away')
    }
  }
}

async function drainOrClose (res: ServerResponse): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

/** The request body as buffers, failing if the client hangs up before its end. */
export async function * requestBody (req: IncomingMessage): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of req) yield chunk as Buffer
  } catch (err) {
    throw new ManagerError(ManagerErrorCode.UPLOAD_INCOMPLETE, 'client disconnected during the upload', { cause: err })
  }
  if (!req.complete) throw new ManagerError(ManagerErrorCode.UPLOAD_INCOMPLETE, 'client disconnected during the upload')
}

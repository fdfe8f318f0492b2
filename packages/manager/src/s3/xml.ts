import type { IncomingMessage, ServerResponse } from 'node:http'
import { XMLBuilder, XMLParser } from 'fast-xml-parser'
import { S3Error } from './errors.js'

const NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/'
// 1 MiB: a DeleteObjects of 1,000 keys of 1,024 bytes fits; no S3 request body of XML is larger
export const MAX_XML_BYTES = 1024 * 1024

const builder = new XMLBuilder({ ignoreAttributes: false, suppressEmptyNode: false, processEntities: true })
// Values stay strings exactly as sent (a key's spaces are part of it); names that repeat are always arrays.
// Character references are decoded (Go's encoder, so rclone and restic, writes a quote as &#34;), each once.
const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, trimValues: false, processEntities: true, htmlEntities: true, isArray: (name) => REPEATED.has(name) })
const REPEATED = new Set(['Object', 'Part'])

export type XmlValue = string | number | boolean | XmlNode | XmlValue[] | undefined
export interface XmlNode { [name: string]: XmlValue }

/** An S3 answer's XML document: one root element, in S3's namespace except an Error, which AWS sends (and botocore parses) without one. */
export function toXml (root: string, body: XmlNode): string {
  const namespace = root === 'Error' ? {} : { '@_xmlns': NAMESPACE }
  return builder.build({ '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' }, [root]: { ...namespace, ...dropUndefined(body) } }) as string
}

function dropUndefined (node: XmlNode): XmlNode {
  return Object.fromEntries(Object.entries(node).filter(([, v]) => v !== undefined))
}

export function sendXml (res: ServerResponse, status: number, root: string, body: XmlNode, headers: Record<string, string> = {}): void {
  const text = toXml(root, body)
  res.writeHead(status, { ...headers, 'content-type': 'application/xml', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/** A request body of XML, read whole (at most MAX_XML_BYTES), its root element's content; MalformedXML otherwise. */
export function parseXml (text: string, root: string): XmlNode {
  // A DOCTYPE can declare entities that expand without bound; no S3 request has one
  if (/<!DOCTYPE/i.test(text)) throw new S3Error('MalformedXML', 'the XML you provided has a DOCTYPE, which S3 requests do not have')
  let doc: XmlNode
  try {
    doc = parser.parse(text, true) as XmlNode
  } catch (err) {
    throw new S3Error('MalformedXML', `the XML you provided was not well-formed: ${(err as Error).message.slice(0, 200)}`)
  }
  const node = doc[root]
  if (typeof node !== 'object' || node === null || Array.isArray(node)) throw new S3Error('MalformedXML', `the XML you provided has no ${root} element at its root`)
  return node
}

/** Reads a small body whole, refusing one above MAX_XML_BYTES. */
export async function readSmallBody (body: AsyncIterable<Buffer>, req: IncomingMessage): Promise<string> {
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > MAX_XML_BYTES) throw new S3Error('MalformedXML', `a request body of XML is at most ${MAX_XML_BYTES} bytes`)
  const chunks: Buffer[] = []
  let bytes = 0
  for await (const chunk of body) {
    bytes += chunk.length
    if (bytes > MAX_XML_BYTES) throw new S3Error('MalformedXML', `a request body of XML is at most ${MAX_XML_BYTES} bytes`)
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

/** A child element's text, or undefined. */
export function textOf (node: XmlNode, name: string): string | undefined {
  const value = node[name]
  if (value === undefined) return undefined
  if (typeof value === 'string') return value
  if (typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length === 0) return ''
  throw new S3Error('MalformedXML', `${name} must be text`)
}

/** The repeated child elements of a name, each an element. */
export function listOf (node: XmlNode, name: string): XmlNode[] {
  const value = node[name]
  if (value === undefined) return []
  const list = Array.isArray(value) ? value : [value]
  return list.map((v) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new S3Error('MalformedXML', `${name} must be an element`)
    return v
  })
}

import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { isLoopback } from '@mirrorcast/topology'
import { readSecretFile } from '@mirrorcast/wire'
import { ManagerError, ManagerErrorCode } from '../errors.js'

export type Access = 'read-only' | 'read-write'

export interface AccessToken {
  /** Names the token in logs; the token itself is never logged. */
  name: string
  access: Access
  token: string
}

// 32 characters: at least 128 bits even for a hex token
export const MIN_TOKEN_LENGTH = 32
const REALM = 'mirrorcast'

const ACCESS: readonly Access[] = ['read-only', 'read-write']
// a token's name: shorter than any token, so that a token pasted in its place can never be shown as a name
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,31}$/

/** An S3 access key pair of the tokens file: the id a client names and the secret it signs with. */
export interface S3Credential {
  name: string
  access: Access
  accessKeyId: string
  secretAccessKey: string
}

/** What a tokens file holds: bearer tokens of the native API, key pairs of the S3 front end. */
export interface Credentials {
  tokens: AccessToken[]
  s3Keys: S3Credential[]
}

// AWS's access key ids are 16 to 128 of these; shorter ones are allowed for hand-made keys, never shorter than 3
const ACCESS_KEY_ID_PATTERN = /^[A-Za-z0-9._-]{3,128}$/
// 16 characters at least: a secret is what signatures are keyed with
const MIN_SECRET_LENGTH = 16

/**
 * The tokens file: one credential a line, `#` comments. A bearer token of
 * the native API: `<access> <name> <token>`; a key pair of the S3 API:
 * `<access> <name> <access-key-id> <secret-access-key>`. `access` is
 * read-only or read-write; names are unique in the file.
 */
export function parseCredentials (text: string, file: string): Credentials {
  const found: Credentials = { tokens: [], s3Keys: [] }
  const names = new Map<string, number>()
  const keyIds = new Set<string>()
  text.split('\n').forEach((raw, i) => {
    // A comment starts a line or follows a blank: a # inside a token is part of the token.
    const line = raw.replace(/(^|\s)#.*$/, '').trim()
    if (line === '') return
    const where = `${file}:${i + 1}`
    const fields = line.split(/\s+/)
    const credential = fields.length === 4 ? s3KeyLine(fields, where) : tokenLine(fields, where)
    const first = names.get(credential.name)
    if (first !== undefined) throw badLine(where, `the name is already the name of the credential on line ${first}`)
    names.set(credential.name, i + 1)
    if ('token' in credential) found.tokens.push(credential)
    else {
      if (keyIds.has(credential.accessKeyId)) throw badLine(where, 'the access key id is already the id of another key pair')
      keyIds.add(credential.accessKeyId)
      found.s3Keys.push(credential)
    }
  })
  return found
}

/** The bearer tokens of a tokens file. */
export function parseTokens (text: string, file: string): AccessToken[] {
  return parseCredentials(text, file).tokens
}

/**
 * One line's fields. No field is ever quoted in a message: on a line that is
 * wrong, any of them may be the token (columns swapped, a role misspelt
 * before a pasted token), and the message goes to a terminal or a journal.
 */
function tokenLine (fields: string[], where: string): AccessToken {
  const [access, name, token] = fields
  if (fields.length !== 3 || access === undefined || name === undefined || token === undefined) {
    throw badLine(where, `has ${fields.length} field${fields.length === 1 ? '' : 's'}, a token line has 3: "<read-only|read-write> <name> <token>", an S3 key line 4: "<read-only|read-write> <name> <access-key-id> <secret-access-key>"`)
  }
  checkAccess(access, [name, token], where)
  if (token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token)) {
    const swapped = name.length >= MIN_TOKEN_LENGTH
    throw badLine(where, `the token (the third field) must be at least ${MIN_TOKEN_LENGTH} printable characters, e.g. openssl rand -hex 32${swapped ? '; the name and the token look swapped, the token comes last' : ''}`)
  }
  checkName(name, where)
  return { access: access as Access, name, token }
}

function s3KeyLine (fields: string[], where: string): S3Credential {
  const [access = '', name = '', accessKeyId = '', secretAccessKey = ''] = fields
  checkAccess(access, fields.slice(1), where)
  checkName(name, where)
  if (!ACCESS_KEY_ID_PATTERN.test(accessKeyId)) throw badLine(where, 'the access key id (the third field) must be 3 to 128 letters, digits, ".", "_" or "-"')
  if (secretAccessKey.length < MIN_SECRET_LENGTH || !/^[\x21-\x7e]+$/.test(secretAccessKey)) throw badLine(where, `the secret access key (the fourth field) must be at least ${MIN_SECRET_LENGTH} printable characters`)
  return { access: access as Access, name, accessKeyId, secretAccessKey }
}

function checkAccess (access: string, others: string[], where: string): void {
  if ((ACCESS as string[]).includes(access)) return
  const swapped = others.some((f) => (ACCESS as string[]).includes(f))
  throw badLine(where, `the first field must be read-only or read-write${swapped ? ': the columns look swapped, the access comes first' : ''}`)
}

function checkName (name: string, where: string): void {
  if (!NAME_PATTERN.test(name)) throw badLine(where, 'the name (the second field) must be 1 to 31 letters, digits, ".", "_" or "-"')
}

function badLine (where: string, reason: string): ManagerError {
  return new ManagerError(ManagerErrorCode.BAD_TOKENS, `${where}: ${reason} (the line is not shown: it may hold a token)`)
}

/** Reads the tokens file, refusing one the group or others can read, or one that holds nothing. */
export async function readTokensFile (file: string): Promise<Credentials> {
  const credentials = parseCredentials(await readSecretFile(file, 'tokens file'), file)
  if (credentials.tokens.length === 0 && credentials.s3Keys.length === 0) throw new ManagerError(ManagerErrorCode.BAD_TOKENS, `${file} holds no token`)
  return credentials
}

/**
 * Access control of the HTTP API: with tokens configured, every request needs
 * `Authorization: Bearer <token>`; reads (GET, HEAD) take any valid token,
 * everything else a read-write one. Without tokens the API may listen on
 * loopback only, where only this host's users reach it.
 */
export class Authorizer {
  private readonly tokens: Array<{ name: string, access: Access, digest: Buffer }>

  constructor (tokens: AccessToken[], host: string) {
    if (tokens.length === 0 && !isLoopback(host)) {
      throw new ManagerError(ManagerErrorCode.BAD_TOKENS, `the HTTP API would listen on ${host}, which is not loopback, without access tokens: configure a tokens file (--tokens-file) or listen on 127.0.0.1`)
    }
    this.tokens = tokens.map((t) => ({ name: t.name, access: t.access, digest: digest(t.token) }))
  }

  get enabled (): boolean {
    return this.tokens.length > 0
  }

  /** Throws the 401 or 403 to answer before anything of the request is done; returns the token's name. */
  check (req: IncomingMessage, res: ServerResponse): string | undefined {
    if (!this.enabled) return undefined
    const header = req.headers.authorization
    const presented = header === undefined ? undefined : /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1]
    if (presented === undefined) {
      res.setHeader('www-authenticate', `Bearer realm="${REALM}"`)
      throw new ManagerError(ManagerErrorCode.UNAUTHORIZED, 'this API needs an access token (Authorization: Bearer <token>; the CLI reads it from --token-file or MIRRORCAST_TOKEN_FILE)')
    }
    const match = this.find(presented)
    if (match === undefined) {
      res.setHeader('www-authenticate', `Bearer realm="${REALM}", error="invalid_token"`)
      throw new ManagerError(ManagerErrorCode.UNAUTHORIZED, 'the access token is not valid')
    }
    if (match.access === 'read-only' && req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('www-authenticate', `Bearer realm="${REALM}", error="insufficient_scope"`)
      throw new ManagerError(ManagerErrorCode.FORBIDDEN, `token "${match.name}" is read-only: ${String(req.method)} needs a read-write token`)
    }
    return match.name
  }

  /** Compares against every token, in constant time: neither which one matched nor how much of it leaks. */
  private find (presented: string): { name: string, access: Access } | undefined {
    const d = digest(presented)
    let found: { name: string, access: Access } | undefined
    for (const t of this.tokens) if (timingSafeEqual(t.digest, d) && found === undefined) found = t
    return found
  }
}

// Hashing first gives equal lengths for timingSafeEqual, so a token's length does not leak either.
function digest (token: string): Buffer {
  return createHash('sha256').update(token).digest()
}

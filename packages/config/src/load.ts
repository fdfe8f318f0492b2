import { readFileSync } from 'node:fs'
import { parse, TomlError } from 'smol-toml'
import type { z } from 'zod'
import { ConfigError, ConfigErrorCode } from './errors.js'
import { keysOf, ROLES, schemas, type HostConfig, type Role } from './schema.js'

/**
 * Reads a host's TOML config file and checks it against the keys of its role:
 * `role` in the file, or the one the command implies (`mirrorcast node`). Every
 * problem is named with the file and the key; nothing unknown is ignored, so a
 * misspelt key cannot silently leave a default in force.
 */
export function loadConfigFile (file: string, expectedRole?: Role): HostConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(ConfigErrorCode.UNREADABLE, `cannot read config file ${file}: ${(err as Error).message}`, { cause: err })
  }
  return parseConfig(text, file, expectedRole)
}

/** The same for config text; `file` only names it in errors. */
export function parseConfig (text: string, file: string, expectedRole?: Role): HostConfig {
  let raw: Record<string, unknown>
  try {
    raw = parse(text)
  } catch (err) {
    if (!(err instanceof TomlError)) throw err
    const reason = err.message.split('\n')[0]?.replace(/^Invalid TOML document: /, '') ?? 'syntax error'
    throw new ConfigError(ConfigErrorCode.SYNTAX, `${file}:${err.line}:${err.column}: ${reason}`, { cause: err })
  }
  const role = roleOf(raw, file, expectedRole)
  const result = schemas[role].safeParse(raw)
  if (!result.success) {
    throw new ConfigError(ConfigErrorCode.INVALID, result.error.issues.map((issue) => `${file}: ${describe(issue, role)}`).join('\n'))
  }
  return { ...result.data, role } as HostConfig
}

function roleOf (raw: Record<string, unknown>, file: string, expected: Role | undefined): Role {
  const given = raw.role
  if (given !== undefined && !ROLES.includes(given as Role)) {
    throw new ConfigError(ConfigErrorCode.INVALID, `${file}: role must be one of ${ROLES.join(', ')}, got ${JSON.stringify(given)}`)
  }
  if (expected !== undefined && given !== undefined && given !== expected) {
    throw new ConfigError(ConfigErrorCode.INVALID, `${file}: role = "${String(given)}", but this is \`mirrorcast ${expected}\``)
  }
  const role = (given ?? expected) as Role | undefined
  if (role === undefined) throw new ConfigError(ConfigErrorCode.INVALID, `${file}: say which process this file configures: role = "node", "directory" or "manager"`)
  return role
}

function describe (issue: z.core.$ZodIssue, role: Role): string {
  if (issue.code === 'unrecognized_keys') {
    const known = keysOf(role)
    return issue.keys.map((key) => {
      const dashed = key.replace(/_/g, '-')
      const hint = known.includes(dashed) ? ` (did you mean ${dashed}?)` : ''
      const elsewhere = ROLES.filter((r) => r !== role && keysOf(r).includes(key))
      return `unknown key "${key}" for a ${role}${hint}${elsewhere.length > 0 ? ` (it is a ${elsewhere.join('/')} setting)` : ''}; known keys: ${known.join(', ')}`
    }).join('\n')
  }
  const key = issue.path.map(String).join('.')
  return `${key === '' ? 'the file' : `key "${key}"`}: ${issue.message}`
}

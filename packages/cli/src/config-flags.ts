import type { Command } from 'commander'
import { loadConfigFile, type HostConfig, type Role } from '@mirrorcast/config'
import { CliError } from './errors.js'

/**
 * Adds `--config FILE`: every key of the host's config file sets the flag of
 * the same name, unless that flag was given on the command line (or by its
 * environment variable), which always wins wherever it stands.
 */
export function withConfig (cmd: Command, role: Role, root: Command): Command {
  cmd.option('--config <file>', 'TOML config file with every setting of this host; flags given here override it')
  cmd.on('option:config', (file: string) => { applyConfig(cmd, root, loadConfigFile(file, role)) })
  return cmd
}

function applyConfig (cmd: Command, root: Command, config: HostConfig): void {
  for (const [key, value] of Object.entries(config)) {
    if (key === 'role' || value === undefined) continue
    // The log level is the one setting of the whole program rather than of the command.
    const target = key === 'log-level' ? root : cmd
    const option = target.options.find((o) => o.long === `--${key}`) ?? target.options.find((o) => o.long === `--no-${key}`)
    if (option === undefined) throw new CliError(`config key ${key} has no command-line flag on \`mirrorcast ${cmd.name()}\``)
    const attribute = option.attributeName()
    const source = target.getOptionValueSource(attribute)
    if (source === 'cli' || source === 'env') continue
    target.setOptionValueWithSource(attribute, flagValue(value), 'config')
  }
}

/** The value as the flag would have given it: text, a comma list, or a boolean for --no-x flags. */
function flagValue (value: unknown): string | boolean {
  if (typeof value === 'boolean') return value
  if (Array.isArray(value)) return value.map(String).join(',')
  if (typeof value === 'object' && value !== null) return Object.entries(value).map(([k, v]) => `${k}=${String(v)}`).join(',')
  return String(value)
}

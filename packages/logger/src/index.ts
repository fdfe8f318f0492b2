import winston from 'winston'

export type Logger = winston.Logger
export type LogLevel = 'error' | 'warn' | 'info' | 'debug' | 'silent'

export const LOG_LEVELS: readonly LogLevel[] = ['error', 'warn', 'info', 'debug', 'silent']

// info: the level a long-running process logs at when nothing else is said
export const DEFAULT_LOG_LEVEL: LogLevel = 'info'

export interface LoggerOptions {
  level?: string
  /** Fields on every line, e.g. component and nodeId. */
  fields?: Record<string, unknown>
}

/** Resolves the level from an explicit value, then MIRRORCAST_LOG, then the default. */
export function resolveLogLevel (level?: string): LogLevel {
  const wanted = level ?? process.env.MIRRORCAST_LOG ?? DEFAULT_LOG_LEVEL
  if (!(LOG_LEVELS as readonly string[]).includes(wanted)) {
    throw new TypeError(`log level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(wanted)}`)
  }
  return wanted as LogLevel
}

/**
 * A JSON-lines logger on stderr: stdout stays free for what a command prints
 * for its user (the `up` URL, `get -` bodies).
 */
export function createLogger (options: LoggerOptions = {}): Logger {
  const level = resolveLogLevel(options.level)
  return winston.createLogger({
    level: level === 'silent' ? 'error' : level,
    silent: level === 'silent',
    defaultMeta: options.fields ?? {},
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })]
  })
}

/** A logger that drops everything: the default for library objects given none. */
export function silentLogger (): Logger {
  return winston.createLogger({ silent: true, transports: [new winston.transports.Console()] })
}

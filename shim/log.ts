/**
 * Structured logging with levels, for drivers only (the daemon, the resolver,
 * the CLI). The engine and the wire codecs never log: they return events.
 *
 * Output is one line per record: JSON when `format` is `json` (for journald and
 * log shippers), otherwise `LEVEL component: message key=value …`.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogSink {
  write(line: string): void;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'text' | 'json';
  sink?: LogSink;
  component?: string;
}

export class Logger {
  readonly level: LogLevel;
  readonly format: 'text' | 'json';
  private readonly sink: LogSink;
  readonly component: string;

  constructor(opts: LoggerOptions = {}) {
    this.level = opts.level ?? 'info';
    this.format = opts.format ?? 'text';
    this.sink = opts.sink ?? { write: (l) => process.stderr.write(l + '\n') };
    this.component = opts.component ?? 'shim6';
  }

  /** A logger for a sub-component sharing level, format and sink. */
  child(component: string): Logger {
    return new Logger({ level: this.level, format: this.format, sink: this.sink, component });
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= ORDER[this.level];
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.log('error', msg, fields); }

  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    if (this.format === 'json') {
      this.sink.write(JSON.stringify({ ts: new Date().toISOString(), level, component: this.component, msg, ...fields }));
      return;
    }
    let line = `${level.toUpperCase().padEnd(5)} ${this.component}: ${msg}`;
    if (fields) {
      for (const [k, v] of Object.entries(fields)) {
        line += ` ${k}=${typeof v === 'string' ? (/\s/.test(v) ? JSON.stringify(v) : v) : JSON.stringify(v)}`;
      }
    }
    this.sink.write(line);
  }
}

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

export function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s);
}

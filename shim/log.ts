/**
 * Structured logging with levels, for drivers only (the daemon, the resolver,
 * the CLI). The engine and the wire codecs never log: they return events.
 *
 * Output is one line per record: JSON when `format` is `json` (for log
 * shippers), otherwise `2026-12-03T07:39:14.123Z INFO  component: message
 * key=value …` (ISO 8601, UTC, milliseconds). Under journald (stderr is the
 * stream `$JOURNAL_STREAM` names) the timestamp gives way to a `<N>` syslog
 * priority prefix, which journald takes as the record's priority (journald
 * stamps records itself). An IPv6 address with a port is always written
 * `[addr]:port` (hostPort).
 */
import { fstatSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog priorities (sd-daemon(3): `<7>` debug … `<3>` err). */
const PRIORITY: Record<LogLevel, number> = { debug: 7, info: 6, warn: 4, error: 3 };

/** `addr:port`, or `[addr]:port` for an IPv6 address: the one way shim6 writes an address with a port. */
export function hostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * True when stderr goes to journald: `$JOURNAL_STREAM` (`dev:inode`, set by
 * systemd for StandardError=journal) names the stream fd 2 is (systemd.exec(5):
 * compare, since a child may inherit the variable with stderr elsewhere).
 */
export function stderrIsJournal(env: NodeJS.ProcessEnv = process.env): boolean {
  const m = /^(\d+):(\d+)$/.exec(env.JOURNAL_STREAM ?? '');
  if (!m) return false;
  try {
    const st = fstatSync(2, { bigint: true });
    return st.dev === BigInt(m[1]!) && st.ino === BigInt(m[2]!);
  } catch {
    return false;
  }
}

export interface LogSink {
  write(line: string): void;
}

/** Set once stderr failed (its reader gone): log lines are dropped from then on. */
let stderrLost = false;
let stderrWatched = false;

/**
 * The default sink: stderr. When its reader goes away (a `| head` or `| tee` that ended, a log
 * collector restarted) a write fails with EPIPE, which node emits as an `error` on
 * process.stderr: unheard, it ended the process as an uncaught exception, without the stop's
 * teardown (routes, rules, DNS hand-over and control socket left). The log is lost; the daemon
 * is not.
 */
function stderrSink(): LogSink {
  if (!stderrWatched) {
    stderrWatched = true;
    process.stderr.on('error', () => { stderrLost = true; });
  }
  return { write: (l) => { if (!stderrLost) process.stderr.write(l + '\n'); } };
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'text' | 'json';
  sink?: LogSink;
  component?: string;
  /** `<N>` priority prefixes instead of timestamps (default: stderrIsJournal() when writing to stderr). */
  journal?: boolean;
}

/** The level one logger and all its children share: set once, changed for all (a reload's `log.level`). */
interface SharedLevel { level: LogLevel; rank: number }

export class Logger {
  readonly format: 'text' | 'json';
  private readonly sink: LogSink;
  readonly component: string;
  readonly journal: boolean;
  private readonly shared: SharedLevel;

  constructor(opts: LoggerOptions = {}, shared?: SharedLevel) {
    const level = opts.level ?? 'info';
    this.shared = shared ?? { level, rank: ORDER[level] };
    this.format = opts.format ?? 'text';
    this.sink = opts.sink ?? stderrSink();
    this.component = opts.component ?? 'shim6';
    this.journal = opts.journal ?? (opts.sink === undefined && stderrIsJournal());
  }

  get level(): LogLevel { return this.shared.level; }

  /** Change the level of this logger, of its parent and of every child made from either (before or after). */
  setLevel(level: LogLevel): void {
    this.shared.level = level;
    this.shared.rank = ORDER[level];
  }

  /** A logger for a sub-component sharing level (live: see setLevel), format, sink and journal prefixes. */
  child(component: string): Logger {
    return new Logger({ format: this.format, sink: this.sink, component, journal: this.journal }, this.shared);
  }

  enabled(level: LogLevel): boolean {
    return ORDER[level] >= this.shared.rank;
  }

  debug(msg: string, fields?: Record<string, unknown>): void { this.log('debug', msg, fields); }
  info(msg: string, fields?: Record<string, unknown>): void { this.log('info', msg, fields); }
  warn(msg: string, fields?: Record<string, unknown>): void { this.log('warn', msg, fields); }
  error(msg: string, fields?: Record<string, unknown>): void { this.log('error', msg, fields); }

  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const prefix = this.journal ? `<${PRIORITY[level]}>` : '';
    if (this.format === 'json') {
      this.sink.write(prefix + JSON.stringify({ ts: new Date().toISOString(), level, component: this.component, msg, ...fields }));
      return;
    }
    let line = `${prefix || `${new Date().toISOString()} `}${level.toUpperCase().padEnd(5)} ${this.component}: ${msg}`;
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

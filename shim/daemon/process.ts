/**
 * The daemon as a foreground process, for both commands that run it
 * (`shim6 daemon`, and `shim6 resolver`: the same daemon with the data plane
 * off): signal handlers installed before the start, the start, then a wait
 * for SIGTERM or SIGINT and a clean stop. SIGHUP reloads (daemon.ts
 * `reload()`; one during the start, once the daemon is up). Owns the process's
 * signals; must not know what the daemon runs.
 */
import type { Logger } from '../log.ts';
import { Daemon, type DaemonOptions } from './daemon.ts';
import type { DaemonConfig } from './config.ts';

/** Exit status after an uncaught error (sysexits' EX_SOFTWARE): a failure, so systemd's Restart=on-failure starts it again. */
export const EXIT_FATAL = 70;

/** How long the stop after an uncaught error may take before the process exits without the rest of it (ms). */
export const FATAL_STOP_MS = 10_000;

/**
 * Start the daemon and run it until SIGTERM or SIGINT; resolves once it stopped. An uncaught error
 * (or unhandled rejection) while it runs is logged with its stack and stops it as a signal would —
 * the routes, rules, DNS hand-over and control socket go, which node's own exit on one skipped
 * (a `resolvConf: manage` host then pointed at a dead stub until the next start) — then the
 * process exits EXIT_FATAL; a second one while stopping, or a stop longer than FATAL_STOP_MS,
 * ends it at once.
 */
export async function runDaemon(config: DaemonConfig, opts: DaemonOptions & { log: Logger }): Promise<void> {
  // The handlers before start(), which logs the ready line: whoever reads that may signal at once,
  // and a signal that came before them met node's default action (exit without Close, routes,
  // TUN and control socket left). A stop asked for during the start waits for it; a second
  // signal ends the process at once, as one does while stopping.
  let daemon: Daemon | undefined;
  let asked: string | undefined;
  let stop: (signal: string) => void = (signal) => { asked = signal; unhook(); };
  const onTerm = (): void => stop('SIGTERM');
  const onInt = (): void => stop('SIGINT');
  const unhook = (): void => { process.off('SIGTERM', onTerm); process.off('SIGINT', onInt); };
  // A SIGHUP during the start (the file changed as it read it) is a reload once the daemon is up.
  let reloadAsked = false;
  const onHup = (): void => { if (daemon) void daemon.reload(); else reloadAsked = true; };
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  process.on('SIGHUP', onHup);
  // Installed once the daemon is up: an uncaught error during the start ends it as node does (exit 1).
  let fatal = false;
  let onUncaught: ((err: unknown) => void) | undefined;
  try {
    const running = await Daemon.start(config, opts);
    daemon = running;
    onUncaught = (err: unknown): void => {
      process.exitCode = EXIT_FATAL;
      running.log.error('fatal: an uncaught error; stopping', { error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      if (fatal) process.exit(EXIT_FATAL);
      fatal = true;
      setTimeout(() => process.exit(EXIT_FATAL), FATAL_STOP_MS).unref();
      stop('fatal');
    };
    process.on('uncaughtException', onUncaught);
    process.on('unhandledRejection', onUncaught);
    if (reloadAsked && asked === undefined) void running.reload();
    await new Promise<void>((resolve) => {
      let stopping = false;
      stop = (signal) => {
        if (stopping) return;
        stopping = true;
        unhook(); // a second SIGTERM or SIGINT while stopping ends the process at once
        running.log.info('stopping', { signal });
        running.stop().then(resolve, (err: unknown) => { running.log.error('stop failed', { error: (err as Error).message }); resolve(); });
      };
      if (asked !== undefined) stop(asked);
    });
  } finally {
    unhook();
    process.off('SIGHUP', onHup);
    if (onUncaught) {
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUncaught);
    }
  }
}

/**
 * `shim6 daemon [--config FILE]`: run the resolver, the engine and the data
 * plane in the foreground (shim/daemon/daemon.ts). SIGHUP reloads the
 * config; SIGTERM or SIGINT closes contexts (Close/Close Ack), removes routes
 * and the TUN device, and exits 0. Needs root (TUN, routes).
 */
import type { Command } from 'commander';
import { badValue } from '../errors.ts';
import { isLogLevel } from '../../shim/log.ts';

interface DaemonFlags { config?: string; logLevel?: string; logFormat?: string }

async function run(flags: DaemonFlags): Promise<void> {
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) badValue('--log-level', flags.logLevel, 'expected debug, info, warn or error');
  if (flags.logFormat !== undefined && flags.logFormat !== 'text' && flags.logFormat !== 'json') badValue('--log-format', flags.logFormat, 'expected text or json');
  const { loadConfig, defaultConfig } = await import('../../shim/daemon/config.ts');
  const config = flags.config ? loadConfig(flags.config) : defaultConfig();
  if (flags.logLevel && isLogLevel(flags.logLevel)) config.log.level = flags.logLevel;
  if (flags.logFormat === 'text' || flags.logFormat === 'json') config.log.format = flags.logFormat;
  const { Daemon } = await import('../../shim/daemon/daemon.ts');
  const daemon = await Daemon.start(config, flags.config ? { configFile: flags.config } : {});
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      daemon.log.info('stopping', { signal });
      daemon.stop().then(resolve, (err: unknown) => { daemon.log.error('stop failed', { error: (err as Error).message }); resolve(); });
    };
    process.on('SIGHUP', () => { void daemon.reload(); });
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  process.removeAllListeners('SIGHUP');
}

export function register(program: Command): void {
  program.command('daemon')
    .description('run shim6: stub resolver + engine + data plane (TUN, UDP 5533, routes); SIGHUP reloads, SIGTERM stops cleanly (needs root)')
    .option('--config <file>', 'YAML or JSON configuration file (docs/configuration.md)')
    .option('--log-level <level>', 'debug, info, warn or error (overrides the file)')
    .option('--log-format <format>', 'text or json (overrides the file)')
    .action((flags: DaemonFlags) => run(flags));
}

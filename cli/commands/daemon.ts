/**
 * `shim6 daemon [--config FILE]`: run the resolver, the engine and the data
 * plane in the foreground (shim/daemon/process.ts). SIGHUP reloads the
 * config; SIGTERM or SIGINT closes contexts (Close/Close Ack), removes routes
 * and the TUN device, and exits 0. Needs root (TUN, routes). Started by
 * systemd (shim6.service, `Type=notify`) it reports READY=1 once everything is
 * up, and reloading and stopping (shim/daemon/service-notify.ts).
 */
import type { Command } from 'commander';
import { badValue } from '../errors.ts';
import { isLogLevel, Logger } from '../../shim/log.ts';

interface DaemonFlags { config?: string; logLevel?: string; logFormat?: string }

async function run(flags: DaemonFlags): Promise<void> {
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) badValue('--log-level', flags.logLevel, 'expected debug, info, warn or error');
  if (flags.logFormat !== undefined && flags.logFormat !== 'text' && flags.logFormat !== 'json') badValue('--log-format', flags.logFormat, 'expected text or json');
  const { loadConfig, defaultConfig } = await import('../../shim/daemon/config.ts');
  const config = flags.config ? loadConfig(flags.config) : defaultConfig();
  if (flags.logLevel && isLogLevel(flags.logLevel)) config.log.level = flags.logLevel;
  if (flags.logFormat === 'text' || flags.logFormat === 'json') config.log.format = flags.logFormat;
  const { runDaemon } = await import('../../shim/daemon/process.ts');
  const { ServiceNotifier } = await import('../../shim/daemon/service-notify.ts');
  const log = new Logger({ level: config.log.level, format: config.log.format, component: 'shim6' });
  await runDaemon(config, { log, notify: ServiceNotifier.fromEnvironment(log), ...(flags.config ? { configFile: flags.config } : {}) });
}

export function register(program: Command): void {
  program.command('daemon')
    .description('run shim6: stub resolver + engine + data plane (TUN, UDP 5533, routes); SIGHUP reloads, SIGTERM stops cleanly (needs root)')
    .option('--config <file>', 'YAML or JSON configuration file (docs/configuration.md)')
    .option('--log-level <level>', 'debug, info, warn or error (overrides the file)')
    .option('--log-format <format>', 'text or json (overrides the file)')
    .action((flags: DaemonFlags) => run(flags));
}

/**
 * `shim6 daemon [--config FILE] [--check-config]`: run the resolver, the engine
 * and the data plane in the foreground (shim/daemon/process.ts); without
 * --config, /etc/shim6/shim6.yaml when it exists (the file `shim6 service
 * install` writes), else the defaults. `--check-config` validates and exits
 * (0, or the start's error: 2, or 1 for a cga or dnsUpdate key file it cannot read), starting nothing:
 * the file and flags, then what the start checks of the files the config names
 * and of its peers (shim/daemon/start-checks.ts). SIGHUP reloads the
 * config; SIGTERM or SIGINT closes contexts (Close/Close Ack), removes routes
 * and the TUN device, and exits 0. Needs root (TUN, routes). Started by
 * systemd (shim6.service, `Type=notify`) it reports READY=1 once everything is
 * up, and reloading and stopping (shim/daemon/service-notify.ts).
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { badValue, pathFlag } from '../errors.ts';
import { isLogLevel, Logger } from '../../shim/log.ts';
import type { ConfigOverrides } from '../../shim/daemon/config.ts';

interface DaemonFlags { config?: string; checkConfig?: boolean; logLevel?: string; logFormat?: string; manageResolvConf?: boolean; metrics?: string }

async function run(flags: DaemonFlags): Promise<void> {
  // A hand-over a killed shim6 left: the host's own DNS back first, before anything can refuse this
  // start (a config refused, exit 2, under Restart=on-failure would leave the dead stub named for
  // good). Only a hand-over whose process is gone is undone, never a running one's.
  if (!flags.checkConfig) {
    const { defaultStateDirectory, recover } = await import('../../shim/daemon/resolv-handover.ts');
    recover(defaultStateDirectory(), startLogger(flags.logLevel, flags.logFormat));
  }
  if (flags.logLevel !== undefined && !isLogLevel(flags.logLevel)) badValue('--log-level', flags.logLevel, 'expected debug, info, warn or error');
  if (flags.logFormat !== undefined && flags.logFormat !== 'text' && flags.logFormat !== 'json') badValue('--log-format', flags.logFormat, 'expected text or json');
  const { loadConfig, defaultConfig, withOverrides, DEFAULT_CONFIG_FILE } = await import('../../shim/daemon/config.ts');
  const file = flags.config ?? (existsSync(DEFAULT_CONFIG_FILE) ? DEFAULT_CONFIG_FILE : undefined);
  // The flags over the file, here and at every reload (the daemon applies them again).
  const overrides: ConfigOverrides = {};
  if (flags.logLevel !== undefined && isLogLevel(flags.logLevel)) overrides.logLevel = flags.logLevel;
  if (flags.logFormat === 'text' || flags.logFormat === 'json') overrides.logFormat = flags.logFormat;
  if (flags.metrics !== undefined) {
    const { parseMetricsEndpoint } = await import('../../shim/daemon/metrics/endpoint.ts');
    overrides.metrics = flags.metrics === 'off' ? 'off' : parseMetricsEndpoint('--metrics', flags.metrics);
  }
  if (flags.manageResolvConf) overrides.resolvConf = 'manage';
  const config = withOverrides(file ? loadConfig(file) : defaultConfig(), overrides);
  if (flags.manageResolvConf) {
    const { stubNameservers } = await import('../../shim/daemon/resolv-handover.ts');
    stubNameservers(config.listen.map((l) => ({ host: l.address, port: l.port })), '--manage-resolv-conf');
  }
  if (flags.checkConfig) {
    // What the start refuses in the files the config names (hba, cga.key, dnsUpdate.key) and in
    // its peers (an address of this host), refused here by the start's own checks.
    const { checkStartInputs } = await import('../../shim/daemon/start-checks.ts');
    checkStartInputs(config);
    process.stdout.write(`shim6: configuration OK: ${file ?? 'no file, the defaults'}\n`);
    return;
  }
  const { runDaemon } = await import('../../shim/daemon/process.ts');
  const { ServiceNotifier } = await import('../../shim/daemon/service-notify.ts');
  const log = new Logger({ level: config.log.level, format: config.log.format, component: 'shim6' });
  await runDaemon(config, { log, notify: ServiceNotifier.fromEnvironment(log), overrides, ...(file ? { configFile: file } : {}) });
}

/** The log of what happens before the config is read: the flags' level and format, else info and text. */
function startLogger(level: string | undefined, format: string | undefined): Logger {
  return new Logger({ level: level !== undefined && isLogLevel(level) ? level : 'info', format: format === 'json' ? 'json' : 'text', component: 'shim6' });
}

export function register(program: Command): void {
  program.command('daemon')
    .description('run shim6: stub resolver + engine + data plane (TUN, UDP 5533, routes); SIGHUP reloads, SIGTERM stops cleanly (needs root)')
    .option('--config <file>', 'YAML or JSON configuration file (docs/configuration.md); default /etc/shim6/shim6.yaml when it exists, else the built-in defaults', pathFlag('--config', 'the path of a configuration file'))
    .option('--check-config', 'validate the configuration (the file and these flags, the hba, cga and dnsUpdate key files it names, peers against this host\'s addresses, the stub\'s upstreams) and exit: 0 when the start would take it, else the start\'s error (2; 1 for a cga or dnsUpdate key file that cannot be read); starts nothing')
    .option('--log-level <level>', 'debug, info, warn or error (overrides the file)')
    .option('--log-format <format>', 'text or json (overrides the file)')
    .option('--metrics <addr:port>', 'serve Prometheus /metrics and the status page / on ADDR:PORT or [V6]:PORT, e.g. [::1]:9533 (overrides the file\'s metrics; off: none)')
    .option('--manage-resolv-conf', 'point the host\'s DNS at the stub while running (systemd-resolved per-link on the TUN, else /etc/resolv.conf) and restore it on stop; config key resolvConf: manage (docs/operations.md "DNS hand-over")')
    .action((flags: DaemonFlags) => run(flags));
}

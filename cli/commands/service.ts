/**
 * `shim6 service install` / `shim6 service unit`: run the daemon as a systemd
 * service (systemd/shim6.service: Type=notify, SIGHUP reloads, only
 * CAP_NET_ADMIN, CAP_NET_RAW and CAP_NET_BIND_SERVICE, the usual hardening).
 * Wiring only: the work is shim/daemon/service-unit.ts.
 */
import type { Command } from 'commander';
import path from 'node:path';
import { badValue } from '../errors.ts';
import { DEFAULT_UNIT_DIR, installedUnit, installService } from '../../shim/daemon/service-unit.ts';
import { DEFAULT_CONFIG_FILE } from '../../shim/daemon/config.ts';

function absolute(flag: string, p: string): string {
  if (!path.isAbsolute(p)) badValue(flag, p, 'expected an absolute path (the service manager has its own working directory)');
  return p;
}

export function register(program: Command): void {
  const service = program.command('service')
    .description('run the daemon as a systemd service (shim6.service: Type=notify, reload on SIGHUP, only the network capabilities)');

  service.command('install')
    .description('write shim6.service with this installation\'s node and package, a starter /etc/shim6/shim6.yaml if there is none (one already there is checked as --check-config does), then systemctl enable --now, or enable and restart when it replaced a unit (root)')
    .option('--unit-dir <dir>', 'where the unit goes', DEFAULT_UNIT_DIR)
    .option('--config <file>', 'the configuration file the daemon reads (created with the defaults if missing)', DEFAULT_CONFIG_FILE)
    .option('--no-start', 'only write the files; do not run systemctl')
    .action((o: { unitDir: string; config: string; start: boolean }) => {
      const report = installService({ unitDir: absolute('--unit-dir', o.unitDir), config: absolute('--config', o.config), start: o.start });
      process.stdout.write(report.map((l) => `shim6 service install: ${l}\n`).join(''));
    });

  service.command('unit')
    .description('print shim6.service as `service install` would write it (ExecStart with this installation\'s paths)')
    .option('--config <file>', 'the configuration file the daemon reads', DEFAULT_CONFIG_FILE)
    .action((o: { config: string }) => {
      process.stdout.write(installedUnit(absolute('--config', o.config)));
    });
}

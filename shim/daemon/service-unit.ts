/**
 * Installing the daemon as a systemd service (`shim6 service install`): the
 * unit shipped in systemd/shim6.service, written with the absolute paths of
 * this installation's node and package in ExecStart, a configuration file to
 * start from, and `systemctl enable --now`.
 *
 * Owns the unit's text as installed and the checks that it can work (the
 * package must be built and outside the directories ProtectHome hides). Must
 * not know what the daemon does; the hardening itself is the unit file's.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { EnvironmentError } from '../errors.ts';
import { packageRoot, SHIM6_V8_FLAGS } from '../runtime-paths.ts';
import { untrustedBelow, untrustedReason } from '../trusted-path.ts';
import { DEFAULT_CONFIG_FILE, loadConfig, type DaemonConfig } from './config.ts';
import { checkStartInputs } from './start-checks.ts';

export const UNIT_NAME = 'shim6.service';
/** The unit as shipped (its ExecStart finds `shim6` on systemd's search path). */
export const UNIT_TEMPLATE = path.join(packageRoot, 'systemd', UNIT_NAME);
export const DEFAULT_UNIT_DIR = '/etc/systemd/system';
/** ProtectHome=yes makes these empty for the service: node and the package must live elsewhere. */
/**
 * What ProtectHome=yes hides from the service. (PrivateTmp=yes gives it a /tmp of its own too;
 * a package or configuration there is not refused: tests install from there.)
 */
const HIDDEN = ['/home/', '/root/', '/run/user/'];

const STARTER_CONFIG = `# shim6 daemon configuration: every key is optional and this file, as written,
# gives the defaults (docs/configuration.md): the stub resolver on
# 127.0.0.153:53 forwarding to the servers of /etc/resolv.conf, the TUN device
# shim6, UDP port 5533, every global IPv6 address a locator, the control
# socket /run/shim6/control.sock, the caches in /var/lib/shim6/caches.json.
# After a change: systemctl reload shim6 (keys that need a restart are logged).
#
# upstreams: ["2001:db8::53"]
# interfaces: [eth0, wlan0]
# hba: /etc/shim6/hba.json
`;

/**
 * Where the unit lets the daemon write (ProtectSystem=strict): its RuntimeDirectory and
 * StateDirectory (systemd/shim6.service). Anywhere else is read-only, and its /tmp its own (PrivateTmp).
 */
const WRITABLE = ['/run/shim6/', '/var/lib/shim6/'];

/**
 * Why the daemon, run by the unit, could not use what `config` names, or undefined: a key or
 * parameters file (`hba`, `cga.key`, `dnsUpdate.key`) where ProtectHome hides it (the start
 * cannot read it: a restart every 5 s), a `controlSocket` or `cacheFile` outside the directories
 * it may write (the control socket is not bound: the same; the caches are never saved; or, in its
 * private /tmp, no `shim6 status` outside reaches it).
 */
export function serviceConfigProblem(config: DaemonConfig): string | undefined {
  const read: Array<[string, string | undefined]> = [['hba', config.hba], ['cga.key', config.cga?.key], ['dnsUpdate.key', config.dnsUpdate?.key]];
  for (const [key, file] of read) {
    const dir = file === undefined ? undefined : HIDDEN.find((d) => `${file}/`.startsWith(d));
    if (dir !== undefined) return `the configuration's ${key} ${file} is under ${dir}, which ProtectHome=yes hides from the service: keep it in /etc/shim6`;
  }
  for (const [key, file] of [['controlSocket', config.controlSocket], ['cacheFile', config.cacheFile]] as const) {
    if (!WRITABLE.some((d) => file.startsWith(d))) {
      return `the configuration's ${key} ${file} is outside ${WRITABLE.join(' and ')}, the only directories the service may write (ProtectSystem=strict, PrivateTmp=yes): keep it there (the default: ${key === 'controlSocket' ? '/run/shim6/control.sock' : '/var/lib/shim6/caches.json'})`;
    }
  }
  return undefined;
}

/** One ExecStart word, quoted for systemd when it needs it; `%` and `$` escaped (systemd.service "Command lines"). */
export function systemdWord(word: string): string {
  const escaped = word.replaceAll('%', '%%').replaceAll('$', '$$$$');
  return /^[\w@%+=:,./-]+$/.test(escaped) ? escaped : `"${escaped.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

export interface UnitPaths {
  /** The node binary (default this process's). */
  node: string;
  /** The package root: bin/shim6.js and dist/ are under it. */
  root: string;
  /** The configuration file the daemon reads. */
  config: string;
}

/** Why these paths cannot work as a service, or undefined when they can. */
export function unitPathProblem(p: UnitPaths): string | undefined {
  for (const [what, file] of [['node', p.node], ['the shim6 package', p.root], ['the configuration file', p.config]] as const) {
    const dir = HIDDEN.find((d) => `${file}/`.startsWith(d));
    if (!dir) continue;
    const fix = what === 'the configuration file' ? 'keep it in /etc/shim6 (--config)' : `install shim6 with \`npm install -g\` (and node outside ${dir})`;
    return `${what} is under ${dir} (${file}), which ProtectHome=yes hides from the service: ${fix}`;
  }
  if (!existsSync(path.join(p.root, 'dist/cli/entry.js'))) return `${p.root} is not built (dist/ is missing): run \`npm run build\` there`;
  return undefined;
}

/**
 * What the service runs or builds as root: the package's command, its compiled code, its
 * dependencies, the addon and the tc programs' source (clang builds it at the first start).
 */
const RUN_AS_ROOT = ['bin', 'dist', 'node_modules', 'native', 'systemd', 'package.json'];

/**
 * Why root should not run these paths, or undefined: node and the package (the files of
 * RUN_AS_ROOT in it, and every directory above them) must be changeable by no one but root
 * (shim/trusted-path.ts). A checkout a user owns, linked by `npm install -g .`, would let
 * that user change what root runs.
 */
export function unitOwnerProblem(p: Pick<UnitPaths, 'node' | 'root'>): string | undefined {
  const real = (file: string): string => { try { return realpathSync(file); } catch { return file; } };
  const node = real(p.node);
  const root = real(p.root);
  const problem = untrustedReason(node, { kind: 'file' }) ?? untrustedReason(root, { kind: 'directory' });
  if (problem) return problem;
  for (const part of RUN_AS_ROOT) {
    const file = path.join(root, part);
    const found = untrustedReason(file, { missingOk: true }) ?? (lstatSync(file, { throwIfNoEntry: false })?.isDirectory() ? untrustedBelow(file) : undefined);
    if (found) return found;
  }
  return undefined;
}

/** The shipped unit with ExecStart naming `paths` absolutely. */
export function renderUnit(template: string, p: UnitPaths): string {
  const exec = [p.node, ...SHIM6_V8_FLAGS, path.join(p.root, 'bin/shim6.js'), 'daemon', '--config', p.config].map(systemdWord).join(' ');
  if (!/^ExecStart=.*$/m.test(template)) throw new EnvironmentError('ESERVICE_TEMPLATE', `${UNIT_TEMPLATE} has no ExecStart line`, UNIT_TEMPLATE);
  return template.replace(/^ExecStart=.*$/m, `ExecStart=${exec}`);
}

/** The unit as `shim6 service install` writes it for this installation (`config`: an absolute path). */
export function installedUnit(config = DEFAULT_CONFIG_FILE): string {
  const paths = { node: process.execPath, root: packageRoot, config };
  const problem = unitPathProblem(paths);
  if (problem) throw new EnvironmentError('ESERVICE_PATH', problem);
  const owner = unitOwnerProblem(paths);
  if (owner) throw new EnvironmentError('ESERVICE_OWNER', `the service would run, as root, files another user can change: ${owner}. Install from a root-owned copy (npm pack, then npm install -g ./shim6-<version>.tgz as root)`);
  return renderUnit(readFileSync(UNIT_TEMPLATE, 'utf8'), paths);
}

export interface InstallOptions {
  unitDir: string;
  config: string;
  /** Run `systemctl daemon-reload` and `systemctl enable --now` (when systemd runs this host; `enable` and `restart` for a replaced unit). */
  start: boolean;
}

/** What `install` did, line by line, for the person who ran it. */
export type InstallReport = string[];

/**
 * Write `file` (mode 0644), creating its directory. Refused permission, as a user other than
 * root, is ENOTROOT (the service's files are root's); any other failure ESERVICE_PATH naming the file.
 */
function writeServiceFile(file: string, text: string): void {
  try {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, text, { mode: 0o644 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'EACCES' || code === 'EPERM') && process.getuid?.() !== 0) {
      throw new EnvironmentError('ENOTROOT', `service install needs root: cannot write ${file} (permission denied); run it as root`, file);
    }
    throw new EnvironmentError('ESERVICE_PATH', `cannot write ${file}: ${(err as Error).message.replace(/^[A-Z]+: /, '')}`, file);
  }
}

/**
 * Write the unit (and a starter configuration if there is none), then enable and start it. A
 * configuration already there is first checked as `shim6 daemon --check-config` checks it: one the
 * start refuses is its error, and nothing is written (the unit would restart every 5 s).
 */
export function installService(o: InstallOptions): InstallReport {
  const unit = installedUnit(o.config);
  if (existsSync(o.config)) {
    const config = loadConfig(o.config);
    const problem = serviceConfigProblem(config);
    if (problem !== undefined) throw new EnvironmentError('ESERVICE_PATH', `${o.config}: ${problem}`, o.config);
    checkStartInputs(config);
  }
  const report: InstallReport = [];
  const unitFile = path.join(o.unitDir, UNIT_NAME);
  const before = existsSync(unitFile) ? readFileSync(unitFile, 'utf8') : undefined;
  writeServiceFile(unitFile, unit);
  report.push(`${before === undefined ? 'wrote' : before === unit ? 'unchanged' : 'replaced'} ${unitFile}`);
  if (existsSync(o.config)) {
    report.push(`kept ${o.config}`);
  } else {
    writeServiceFile(o.config, STARTER_CONFIG);
    report.push(`wrote ${o.config} (the defaults: docs/configuration.md)`);
  }
  // `enable --now` starts a stopped service but leaves a running one on the unit it was started
  // with: a replaced unit (another node, the package moved) needs a restart to take effect.
  const replaced = before !== undefined && before !== unit;
  const commands = [['systemctl', 'daemon-reload'], replaced ? ['systemctl', 'enable', UNIT_NAME] : ['systemctl', 'enable', '--now', UNIT_NAME],
    ...(replaced ? [['systemctl', 'restart', UNIT_NAME]] : [])];
  if (!o.start) {
    report.push(`not started (--no-start); next: ${commands.map((c) => c.join(' ')).join(' && ')}`);
  } else if (!existsSync('/run/systemd/system')) {
    report.push(`systemd is not running this host (no /run/systemd/system): on one where it does, run ${commands.map((c) => c.join(' ')).join(' && ')}`);
  } else {
    for (const c of commands) {
      const r = spawnSync(c[0]!, c.slice(1), { encoding: 'utf8' });
      if (r.status !== 0) throw new EnvironmentError('ESERVICE_SYSTEMCTL', `${c.join(' ')} failed (exit ${r.status ?? r.signal}): ${(r.stderr || String(r.error ?? '')).trim()}`);
      report.push(`ran ${c.join(' ')}`);
    }
    report.push(`started: systemctl status ${UNIT_NAME}; journalctl -u ${UNIT_NAME}; shim6 status`);
  }
  return report;
}

// The systemd unit shipped in systemd/shim6.service, and `shim6 service
// install`: systemd-analyze accepts both the shipped unit and the one install
// writes; the unit is Type=notify, reloads with SIGHUP, has only the network
// and BPF capabilities and the usual hardening; its directories are where the
// daemon's defaults put the control socket, the caches and the configuration.
// Install refuses to make root run files another user can change.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { builtShim6, ROOT, shim6Bin, type CliResult } from '../helpers/cli.ts';
import { defaultConfig, loadConfig } from '../../shim/daemon/config.ts';
import { renderUnit, systemdWord, unitOwnerProblem, unitPathProblem, UNIT_TEMPLATE } from '../../shim/daemon/service-unit.ts';
import { SHIM6_V8_FLAGS } from '../../shim/runtime-paths.ts';
import { requireBuilt, tmpdir } from './built.ts';

const SHIPPED = path.join(ROOT, 'systemd/shim6.service');

/** `Key=value` settings of a unit, by section (comments and blank lines dropped). */
function settings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) { section = s[1]!; continue; }
    const eq = line.indexOf('=');
    const key = `${section}.${line.slice(0, eq)}`;
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

function verify(t: Parameters<typeof needs>[0], unit: string): void {
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 });
  t.diagnostic(`systemd-analyze verify ${path.basename(path.dirname(unit))}/${path.basename(unit)}: exit ${r.status}${r.stderr ? `, ${r.stderr.trim()}` : ''}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr.trim(), '', 'no warnings');
}

test('systemd-analyze verify accepts the shipped shim6.service', { timeout: 120_000 }, (t) => {
  if (!needs(t, { commands: ['systemd-analyze'] })) return;
  verify(t, SHIPPED);
});

test('shim6.service: Type=notify, SIGHUP reloads, only the network and BPF capabilities, hardened', () => {
  assert.equal(UNIT_TEMPLATE, SHIPPED);
  const u = settings(readFileSync(SHIPPED, 'utf8'));
  const one = (k: string): string | undefined => u.get(k)?.at(-1);
  assert.equal(one('Service.Type'), 'notify');
  assert.equal(one('Service.ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.match(one('Service.ExecStart') ?? '', / daemon --config \/etc\/shim6\/shim6\.yaml$/);
  const caps = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_NET_BIND_SERVICE', 'CAP_NET_RAW'];
  assert.deepEqual(one('Service.CapabilityBoundingSet')?.split(/\s+/).sort(), caps);
  assert.deepEqual(one('Service.AmbientCapabilities')?.split(/\s+/).sort(), caps);
  // ProtectKernelTunables makes /sys read-only; the encapsulation's pins go to the bpffs.
  assert.ok(u.get('Service.ProtectKernelTunables')?.includes('yes'));
  assert.ok(u.get('Service.ReadWritePaths')?.includes('-/sys/fs/bpf'), String(u.get('Service.ReadWritePaths')));
  for (const [k, v] of Object.entries({
    ProtectSystem: 'strict', ProtectHome: 'yes', PrivateTmp: 'yes', NoNewPrivileges: 'yes',
    RuntimeDirectory: 'shim6', StateDirectory: 'shim6', ConfigurationDirectory: 'shim6',
  })) assert.equal(one(`Service.${k}`), v, k);
  // Not there on purpose: V8 writes machine code; the daemon opens /dev/net/tun.
  assert.equal(u.get('Service.MemoryDenyWriteExecute'), undefined);
  assert.equal(u.get('Service.PrivateDevices'), undefined);
  assert.equal(one('Install.WantedBy'), 'multi-user.target');
  // The daemon's defaults live in the unit's directories (writable under ProtectSystem=strict).
  const d = defaultConfig();
  assert.ok(d.controlSocket.startsWith('/run/shim6/'), d.controlSocket);
  assert.ok(d.cacheFile.startsWith('/var/lib/shim6/'), d.cacheFile);
});

test('ExecStart words are quoted and escaped for systemd', () => {
  assert.equal(systemdWord('/usr/bin/node'), '/usr/bin/node');
  assert.equal(systemdWord('/opt/my shim6/bin/shim6.js'), '"/opt/my shim6/bin/shim6.js"');
  assert.equal(systemdWord('/opt/100%/a$b'), '"/opt/100%%/a$$b"');
  assert.equal(systemdWord('/opt/"q"\\'), '"/opt/\\"q\\"\\\\"');
  const unit = renderUnit('[Service]\nExecStart=/usr/bin/env shim6 daemon\nExecReload=x\n', { node: '/usr/bin/node', root: '/opt/s 6', config: '/etc/shim6/shim6.yaml' });
  assert.equal(unit, '[Service]\nExecStart=/usr/bin/node --no-memory-reducer "/opt/s 6/bin/shim6.js" daemon --config /etc/shim6/shim6.yaml\nExecReload=x\n');
});

test('install refuses paths that ProtectHome hides (node, the package, the configuration file), and an unbuilt package', () => {
  const built = { node: '/usr/bin/node', root: ROOT, config: '/etc/shim6/shim6.yaml' };
  assert.match(unitPathProblem({ ...built, node: '/root/.nvm/versions/node/v20/bin/node' }) ?? '', /node is under \/root\/.*ProtectHome/);
  assert.match(unitPathProblem({ ...built, root: '/home/op/shim6' }) ?? '', /package is under \/home\/.*ProtectHome/);
  assert.match(unitPathProblem({ ...built, config: '/root/shim6.yaml' }) ?? '', /configuration file is under \/root\/.*ProtectHome.*\/etc\/shim6/);
  assert.match(unitPathProblem({ ...built, root: '/opt/nothing-here' }) ?? '', /not built/);
});

/**
 * The built package as a service can run it: this checkout, or, when ProtectHome would hide the
 * checkout (a clone under /root or /home, where install rightly refuses: the test above), a copy
 * of its built files (bin/, dist/, systemd/, package.json) in a temporary directory.
 */
function servicePackage(t: TestContext): string {
  const hidden = unitPathProblem({ node: '/usr/bin/node', root: ROOT, config: '/etc/shim6/shim6.yaml' });
  if (hidden === undefined) return ROOT;
  assert.match(hidden, /ProtectHome/);
  const copy = path.join(tmpdir(t, 'service-package-'), 'shim6');
  for (const part of ['bin', 'dist', 'systemd', 'package.json']) cpSync(path.join(ROOT, part), path.join(copy, part), { recursive: true });
  t.diagnostic(`${ROOT} is hidden by ProtectHome: installing from a copy in ${copy}`);
  return copy;
}

test('shim6 service install (built): the unit with absolute paths, which systemd-analyze accepts, and a starter config that means the defaults', { timeout: 120_000 }, (t) => {
  requireBuilt();
  const pkg = servicePackage(t);
  const shim6 = (args: string[]): CliResult => shim6Bin(path.join(pkg, 'bin/shim6.js'), args);
  const dir = tmpdir(t, 'service-');
  const units = path.join(dir, 'units');
  const config = path.join(dir, 'etc/shim6/shim6.yaml');
  const args = ['service', 'install', '--unit-dir', units, '--config', config, '--no-start'];
  const first = shim6(args);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stdout, /wrote .*units\/shim6\.service/);
  assert.match(first.stdout, /wrote .*shim6\.yaml/);
  const unitFile = path.join(units, 'shim6.service');
  assert.equal(statSync(unitFile).mode & 0o777, 0o644);
  const unit = readFileSync(unitFile, 'utf8');
  // Each word as systemd reads it (a checkout's path may hold a space: systemd-analyze checks the quoting below).
  const words = [process.execPath, ...SHIM6_V8_FLAGS, path.join(pkg, 'bin/shim6.js'), 'daemon', '--config', config];
  assert.equal(settings(unit).get('Service.ExecStart')?.[0], words.map(systemdWord).join(' '));
  // Everything but ExecStart is the shipped unit.
  const strip = (s: string): string => s.replace(/^ExecStart=.*$/m, '');
  assert.equal(strip(unit), strip(readFileSync(SHIPPED, 'utf8')));
  assert.deepEqual(loadConfig(config), defaultConfig());
  const printed = shim6(['service', 'unit', '--config', config]);
  assert.equal(printed.status, 0, printed.stderr);
  assert.equal(printed.stdout, unit);

  const again = shim6(args);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stdout, /unchanged .*shim6\.service/);
  assert.match(again.stdout, /kept .*shim6\.yaml/);
  assert.match(again.stdout, /systemctl enable --now shim6\.service/);
  assert.doesNotMatch(again.stdout, /systemctl restart/, 'an unchanged unit: a running service is left running');
  // A unit written by another installation (another node, the package moved): a running service
  // must restart to run the new one, which `enable --now` alone would not do.
  writeFileSync(unitFile, unit.replace(/^ExecStart=/m, 'ExecStart=/old/node '));
  const moved = shim6(args);
  assert.equal(moved.status, 0, moved.stderr);
  assert.match(moved.stdout, /replaced .*shim6\.service/);
  assert.match(moved.stdout, /systemctl daemon-reload && systemctl enable shim6\.service && systemctl restart shim6\.service/);
  assert.equal(readFileSync(unitFile, 'utf8'), unit);
  if (needs(t, { commands: ['systemd-analyze'] })) verify(t, unitFile);
});

test('install refuses to make root run files another user can change (ESERVICE_OWNER)', { timeout: 120_000 }, (t) => {
  if (!needs(t, { root: true })) return;
  requireBuilt();
  const NOBODY = 65534;
  // The built package's files as a service runs them, in a directory of root's.
  const pkg = path.join(tmpdir(t, 'service-owner-'), 'shim6');
  for (const part of ['bin', 'dist', 'systemd', 'package.json']) cpSync(path.join(ROOT, part), path.join(pkg, part), { recursive: true });
  const node = process.execPath;
  assert.equal(unitOwnerProblem({ node, root: pkg }), undefined, 'root\'s own copy');
  const entry = path.join(pkg, 'dist/cli/entry.js');
  const each: Array<[string, () => void, () => void, RegExp]> = [
    ['a compiled file owned by nobody', () => chownSync(entry, NOBODY, NOBODY), () => chownSync(entry, 0, 0), /dist\/cli\/entry\.js belongs to uid 65534/],
    ['dist/ writable by its group', () => chmodSync(path.join(pkg, 'dist'), 0o775), () => chmodSync(path.join(pkg, 'dist'), 0o755), /dist is writable by group/],
    ['the package directory owned by nobody', () => chownSync(pkg, NOBODY, NOBODY), () => chownSync(pkg, 0, 0), /shim6 belongs to uid 65534/],
  ];
  for (const [what, spoil, mend, why] of each) {
    spoil();
    assert.match(unitOwnerProblem({ node, root: pkg }) ?? '', why, what);
    mend();
  }
  // A link in node_modules/.bin is root's, and so must be what it leads to.
  const theirs = path.join(tmpdir(t, 'service-owner-'), 'theirs.js');
  writeFileSync(theirs, '');
  chownSync(theirs, NOBODY, NOBODY);
  mkdirSync(path.join(pkg, 'node_modules/.bin'), { recursive: true });
  symlinkSync(theirs, path.join(pkg, 'node_modules/.bin/x'));
  assert.match(unitOwnerProblem({ node, root: pkg }) ?? '', /\.bin\/x leads to .*theirs\.js belongs to uid 65534/);
  // A node of another user's.
  assert.match(unitOwnerProblem({ node: theirs, root: ROOT }) ?? '', /theirs\.js belongs to uid 65534/);
  // The command itself, run from that package: exit 1, the code, nothing written.
  const units = path.join(tmpdir(t, 'service-owner-'), 'units');
  const r = shim6Bin(path.join(pkg, 'bin/shim6.js'), ['service', 'install', '--unit-dir', units, '--config', path.join(units, 'shim6.yaml'), '--no-start']);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stderr, /ESERVICE_OWNER: the service would run, as root, files another user can change: .*theirs\.js belongs to uid 65534/);
  assert.throws(() => statSync(path.join(units, 'shim6.service')), { code: 'ENOENT' });
});

test('shim6 service install with a configuration already there that the start refuses: its error, as --check-config says it, and nothing written', { timeout: 120_000 }, (t) => {
  requireBuilt();
  const pkg = servicePackage(t);
  const dir = tmpdir(t, 'service-bad-');
  const units = path.join(dir, 'units');
  const config = path.join(dir, 'etc/shim6/shim6.yaml');
  mkdirSync(path.dirname(config), { recursive: true });
  writeFileSync(config, 'timers: fast\nnoSuchKey: 1\n');
  const r = shim6Bin(path.join(pkg, 'bin/shim6.js'), ['service', 'install', '--unit-dir', units, '--config', config, '--no-start']);
  assert.equal(r.status, 2, r.stdout + r.stderr);
  assert.equal(r.stderr, builtShim6(['daemon', '--check-config', '--config', config]).stderr);
  assert.match(r.stderr, /ECONFIG/);
  assert.equal(existsSync(units), false, 'no unit written');
  assert.equal(readFileSync(config, 'utf8'), 'timers: fast\nnoSuchKey: 1\n');
});

// The unit hides /home, /root and /run/user (ProtectHome) and lets the daemon write only in its
// RuntimeDirectory and StateDirectory (ProtectSystem=strict; its /tmp is its own, PrivateTmp). A
// configuration naming a key there, or a control socket or cache file elsewhere, was installed and
// started: the daemon could not read the key (a restart every 5 s), could not bind its control
// socket (the same), or never saved its caches, or bound a socket no `shim6 status` outside sees.
test('shim6 service install with a configuration whose files the unit hides or makes read-only (keys under /root or /home, controlSocket or cacheFile outside /run/shim6 and /var/lib/shim6): ESERVICE_PATH naming the key, nothing written', { timeout: 120_000 }, (t) => {
  requireBuilt();
  const pkg = servicePackage(t);
  const dir = tmpdir(t, 'service-sandbox-');
  const units = path.join(dir, 'units');
  const config = path.join(dir, 'etc/shim6/shim6.yaml');
  mkdirSync(path.dirname(config), { recursive: true });
  const cases: Array<[string, RegExp]> = [
    ['cga:\n  key: /root/keys/rsa.pem\n', /cga\.key .*\/root\/keys\/rsa\.pem.* ProtectHome/],
    ['hba: /home/op/hba.json\n', /hba .*\/home\/op\/hba\.json.* ProtectHome/],
    ['dnsUpdate:\n  server: "[2001:db8::53]:53"\n  zone: example.\n  name: h.example.\n  key: /run/user/1000/tsig.key\n', /dnsUpdate\.key .*\/run\/user\/1000\/tsig\.key.* ProtectHome/],
    [`controlSocket: ${path.join(dir, 'c.sock')}\n`, /controlSocket .*c\.sock.*\/run\/shim6\//],
    ['cacheFile: /var/cache/shim6.json\n', /cacheFile .*\/var\/cache\/shim6\.json.*\/var\/lib\/shim6\//],
  ];
  for (const [text, why] of cases) {
    writeFileSync(config, text);
    const r = shim6Bin(path.join(pkg, 'bin/shim6.js'), ['service', 'install', '--unit-dir', units, '--config', config, '--no-start']);
    assert.equal(r.status, 1, `${text}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^shim6: error ESERVICE_PATH: /, text);
    assert.match(r.stderr, why, text);
    assert.equal(existsSync(units), false, `${text}: no unit written`);
  }
  // In the unit's own directories: installed.
  writeFileSync(config, 'controlSocket: /run/shim6/ctl.sock\ncacheFile: /var/lib/shim6/c.json\n');
  const ok = shim6Bin(path.join(pkg, 'bin/shim6.js'), ['service', 'install', '--unit-dir', units, '--config', config, '--no-start']);
  assert.equal(ok.status, 0, ok.stderr);
});

test('shim6 service install: a relative path is a usage error (exit 2)', () => {
  requireBuilt();
  const r = builtShim6(['service', 'install', '--config', 'shim6.yaml', '--no-start']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /EINVALID: --config/);
});

test('shim6 service install as a user other than root: ENOTROOT naming the unit file, nothing written (exit 1)', { timeout: 120_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['setpriv'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'service-user-');
  chmodSync(dir, 0o755);
  // The built files in a directory of root's (what install checks first: root's alone, not under ProtectHome).
  const pkg = path.join(dir, 'shim6');
  for (const part of ['bin', 'dist', 'systemd', 'package.json']) cpSync(path.join(ROOT, part), path.join(pkg, part), { recursive: true });
  const units = path.join(dir, 'units');
  mkdirSync(units, { mode: 0o755 });
  const args = ['service', 'install', '--unit-dir', units, '--config', path.join(dir, 'shim6.yaml'), '--no-start'];
  const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, path.join(pkg, 'bin/shim6.js'), ...args], { encoding: 'utf8', timeout: 60_000, cwd: dir });
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr, `shim6: error ENOTROOT: service install needs root: cannot write ${path.join(units, 'shim6.service')} (permission denied); run it as root\n`);
  assert.equal(r.stdout, '');
  assert.deepEqual(readdirSync(units), []);
});

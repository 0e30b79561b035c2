// The package an operator installs: `npm pack` holds the compiled tree, the
// addon's sources, the unit and the docs, and no tests or benchmarks; `npm
// install -g` of that tarball gives a working `shim6` on PATH (the addon built
// at install, tsx and TypeScript absent) that serves status from its own
// resolver threads and native sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { ROOT } from '../helpers/cli.ts';
import { requireBuilt, tmpdir, track, waitFor } from './built.ts';

/**
 * npm's environment: `npm test` sets the CA bundle of NODE_EXTRA_CA_CERTS aside (node reads it at
 * every start; only npm here talks to a registry), and npm gets it back.
 */
const NPM_ENV: NodeJS.ProcessEnv = process.env.SHIM6_TEST_NPM_CA_CERTS === undefined
  ? process.env
  : { ...process.env, NODE_EXTRA_CA_CERTS: process.env.SHIM6_TEST_NPM_CA_CERTS };

/**
 * npm without its lifecycle scripts: `prepare` would rebuild dist/ under the
 * feet of the other tests running the built command.
 */
function npm(args: string[], cwd = ROOT): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('npm', [...args, '--ignore-scripts', '--no-audit', '--no-fund'], { cwd, env: NPM_ENV, encoding: 'utf8', timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('npm pack: the compiled tree, the addon sources, the unit and the docs; no tests, benchmarks, scripts or TypeScript sources', () => {
  requireBuilt();
  const r = npm(['pack', '--dry-run', '--json']);
  assert.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  for (const f of ['package.json', 'README.md', 'bin/shim6.js', 'dist/cli/entry.js', 'dist/resolver/worker-boot.mjs', 'dist/lab/stream.js',
    'native/binding.gyp', 'native/tun.c', 'native/notify.c', 'native/udp.h', 'systemd/shim6.service', 'docs/operations.md']) assert.ok(files.includes(f), `${f} is in the package`);
  const unwanted = files.filter((f) => /^(test|bench|scripts|node_modules|native\/build)\//.test(f) || (f.endsWith('.ts') && !f.endsWith('.d.ts')));
  assert.deepEqual(unwanted, []);
});

test('npm install -g of the packed tarball: shim6 on PATH, the addon built, no tsx; --version, zone record, and resolver + status', { timeout: 600_000 }, async (t) => {
  if (!needs(t, { commands: ['npm', 'make', 'cc', 'python3'] })) return;
  requireBuilt();
  const dir = tmpdir(t, 'pkg-');
  const packed = npm(['pack', '--pack-destination', dir, '--json']);
  assert.equal(packed.status, 0, packed.stderr);
  const tarball = path.join(dir, (JSON.parse(packed.stdout) as Array<{ filename: string }>)[0]!.filename);
  // The install script (node-gyp) must run: it is the one thing --ignore-scripts would skip.
  const prefix = path.join(dir, 'prefix');
  mkdirSync(path.join(prefix, 'lib'), { recursive: true }); // as a global prefix is (npm's strict check reads it first)
  // As docs/operations.md installs it: the tarball's install script allowed by its absolute path, strictly (a
  // name that does not match it would then refuse the install instead of a warning).
  const inst = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--strict-allow-scripts', `--allow-scripts=${tarball}`, '--prefer-offline', '--no-audit', '--no-fund', tarball], { env: NPM_ENV, encoding: 'utf8', timeout: 600_000 });
  assert.equal(inst.status, 0, inst.stdout + inst.stderr);
  const pkg = path.join(prefix, 'lib/node_modules/shim6');
  assert.ok(existsSync(path.join(pkg, 'native/build/Release/shim6_tun.node')), 'the addon was built at install');
  const deps = readdirSync(path.join(pkg, 'node_modules'));
  assert.ok(!deps.includes('tsx') && !deps.includes('typescript'), `runtime dependencies only: ${deps.join(', ')}`);

  const bin = path.join(prefix, 'bin/shim6');
  const run = (args: string[]): { status: number | null; stdout: string; stderr: string } => spawnSync(bin, args, { encoding: 'utf8', timeout: 60_000 });
  const v = run(['--version']);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  const rec = run(['zone', 'record', '--name', 'host.example.org.', '--ulid', '2001:db8:1::10', '--locator', '2001:db8:1::10/0/10']);
  assert.equal(rec.status, 0, rec.stderr);
  assert.match(rec.stdout, /TYPE65300/);

  const sock = path.join(dir, 'control.sock');
  const p = track(t, spawn(bin, ['resolver', '--listen', '127.0.0.1:0', '--upstream', '127.0.0.1:9', '--no-engine', '--udp', 'native', '--workers', '2', '--socket', sock], { stdio: ['ignore', 'pipe', 'pipe'] }));
  await waitFor(() => {
    if (p.status() !== undefined) throw new Error(`installed shim6 resolver exited (${String(p.status())}): ${p.out()}`);
    return p.out().includes('resolver ready');
  }, 'the installed resolver to be ready');
  const st = run(['status', '--json', '--socket', sock]);
  assert.equal(st.status, 0, st.stderr);
  assert.ok((JSON.parse(st.stdout) as { resolver?: unknown }).resolver);
  // The unit as this installation would install it names the installed package.
  const unit = run(['service', 'unit']);
  assert.equal(unit.status, 0, unit.stderr);
  assert.ok(unit.stdout.includes(`ExecStart=${process.execPath} --no-memory-reducer ${path.join(pkg, 'bin/shim6.js')} daemon`), unit.stdout);
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.out());
});

// One shim6 daemon per network namespace (shim/daemon/instance-lock.ts): the lock in the runtime
// directory, the abstract name of earlier versions that any user may bind first, and the DNS
// hand-over of a killed daemon, undone even by a start the claim refuses.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { claimNamespace } from '../../shim/daemon/instance-lock.ts';
import { STATE_FILE } from '../../shim/daemon/resolv-handover.ts';
import { EnvironmentError } from '../../shim/errors.ts';
import { needs } from '../helpers/prereq.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { waitFor } from '../helpers/wait.ts';
import { BIN } from '../helpers/cli.ts';

const NOBODY = 65534;
const fromSources = import.meta.url.endsWith('.ts');
const moduleUrl = (m: string): string => fileURLToPath(new URL(`../../shim/daemon/${m}.${fromSources ? 'ts' : 'js'}`, import.meta.url));
const testName = (): string => `\0shim6-test-${randomBytes(6).toString('hex')}`;
const isRunning = (pid: number) => (e: unknown): boolean => e instanceof EnvironmentError && e.code === 'EDAEMON_RUNNING' && e.message.includes(`(pid ${pid})`);

/** A process binding the abstract `name` as `uid` (a stream socket that answers "1": a pid it makes up). */
async function nameHolder(t: TestContext, name: string, uid: number): Promise<number> {
  const code = `require('node:net').createServer((c) => c.end('1\\n')).listen({ path: ${JSON.stringify(name)} }, () => console.log('listening uid=' + process.getuid())); setInterval(() => {}, 1000);`;
  const p = spawn('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => { p.kill('SIGKILL'); });
  let out = '';
  p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  await waitFor(() => out.includes(`listening uid=${uid}`) || p.exitCode !== null, 'the name holder to listen');
  assert.ok(out.includes(`listening uid=${uid}`), `the name holder exited ${p.exitCode}`);
  return p.pid!;
}

test('the lock: a second claim in the namespace is refused with the holder\'s pid; released, the lock file is gone and the namespace can be claimed again', { timeout: 30_000 }, async (t) => {
  if (!needs(t, { commands: ['flock'] })) return;
  const lockDir = tmpdir(t, 'claim-');
  const first = await claimNamespace(testName(), { lockDir });
  // Another name: only the lock can refuse it.
  await assert.rejects(claimNamespace(testName(), { lockDir }), isRunning(process.pid));
  assert.equal(readdirSync(lockDir).length, 1, 'one lock file, named after the network namespace');
  first.release();
  first.release(); // idempotent
  assert.deepEqual(readdirSync(lockDir), [], 'the lock file goes with the claim');
  (await claimNamespace(testName(), { lockDir })).release();
});

test('the lock is kept only in a directory no other user can write: EDAEMON_LOCK, nothing claimed', { timeout: 30_000 }, async (t) => {
  if (!needs(t, { commands: ['flock'] })) return;
  const lockDir = path.join(tmpdir(t, 'claim-open-'), 'run');
  mkdirSync(lockDir);
  chmodSync(lockDir, 0o777);
  const name = testName();
  await assert.rejects(claimNamespace(name, { lockDir }), (e: unknown) => e instanceof EnvironmentError && e.code === 'EDAEMON_LOCK' && /writable by everyone/.test(e.message));
  assert.deepEqual(readdirSync(lockDir), []);
  chmodSync(lockDir, 0o700);
  (await claimNamespace(name, { lockDir })).release(); // the name was not taken either
});

test('user nobody binding the abstract name first does not keep root\'s daemon out: the squatter is logged (pid, uid), and the lock still refuses a second daemon', { timeout: 30_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['setpriv', 'flock'] })) return;
  const name = testName();
  const lockDir = tmpdir(t, 'claim-squat-');
  const squatter = await nameHolder(t, name, NOBODY);
  const warned: Array<[string, Record<string, unknown>]> = [];
  const log = { info() {}, debug() {}, error() {}, warn: (m: string, f: Record<string, unknown>) => { warned.push([m, f]); } } as never;
  const claim = await claimNamespace(name, { lockDir, log });
  t.after(() => claim.release());
  assert.equal(warned.length, 1, JSON.stringify(warned));
  assert.match(warned[0]![0], /held by a process of another user: ignored/);
  assert.deepEqual(warned[0]![1].pids, [squatter]);
  assert.deepEqual(warned[0]![1].uids, [NOBODY]);
  // One daemon per namespace still: the second is refused by the lock, with the first one's pid (not the squatter's "1").
  await assert.rejects(claimNamespace(name, { lockDir }), isRunning(process.pid));
});

test('root holding the abstract name (a daemon of an earlier version) is a daemon: refused, with its real pid, and the lock let go', { timeout: 30_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['setpriv', 'flock'] })) return;
  const name = testName();
  const lockDir = tmpdir(t, 'claim-old-');
  const holder = await nameHolder(t, name, 0);
  await assert.rejects(claimNamespace(name, { lockDir }), isRunning(holder));
  assert.deepEqual(readdirSync(lockDir), [], 'the lock is let go');
});

test('a daemon start the claim refuses (EDAEMON_RUNNING) still undoes a killed daemon\'s DNS hand-over, and never the running one\'s', { timeout: 120_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount', 'flock'] })) return;
  const dir = tmpdir(t, 'claim-handover-');
  const rc = path.join(dir, 'resolv.conf');
  const stateDir = path.join(dir, 'state');
  const runDir = path.join(dir, 'run');
  mkdirSync(stateDir);
  mkdirSync(runDir, { mode: 0o700 });
  writeFileSync(rc, ''); // the bind mount's source; the driver writes it
  const config = path.join(dir, 'shim6.json');
  writeFileSync(config, JSON.stringify({ controlSocket: path.join(dir, 'control.sock'), cacheFile: path.join(dir, 'caches.json') }));
  const original = 'search corp.example\nnameserver 192.0.2.53\n';
  const stub = '# Written by shim6 (resolvConf: manage)\nnameserver 127.0.0.153\n';
  // In a network namespace of its own (its own abstract names) and a mount namespace where
  // /etc/resolv.conf is the test's: the driver holds the claim as a running daemon would, writes
  // the state a killed one (round "dead") or itself (round "live") left, and starts shim6 daemon.
  const driver = `
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
const [LOCK, BIN, CONFIG, STATE, ORIGINAL, STUB] = process.argv.slice(-6);
const { claimNamespace } = await import(LOCK);
const claim = await claimNamespace();
const stat = readFileSync('/proc/self/stat', 'utf8');
const rounds = {};
for (const round of ['dead', 'live']) {
  const who = round === 'dead' ? { pid: spawnSync('true').pid, startTime: '1' } : { pid: process.pid, startTime: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] };
  writeFileSync('/etc/resolv.conf', STUB);
  writeFileSync(STATE + '/resolv-handover.json', JSON.stringify({ version: 1, how: 'file', ...who, path: '/etc/resolv.conf',
    original: { kind: 'file', content: Buffer.from(ORIGINAL).toString('base64'), mode: 0o644, uid: 0, gid: 0 }, written: Buffer.from(STUB).toString('base64') }));
  const r = spawnSync(process.execPath, [BIN, 'daemon', '--config', CONFIG], { encoding: 'utf8', timeout: 60000 });
  rounds[round] = { status: r.status, out: r.stdout + r.stderr, after: readFileSync('/etc/resolv.conf', 'utf8') };
}
claim.release();
console.log(JSON.stringify(rounds));
`;
  const r = spawnSync('unshare', ['-m', '-n', '--propagation', 'private', 'sh', '-ec', `mount --bind '${rc}' /etc/resolv.conf; exec "$@"`, 'sh',
    process.execPath, ...(fromSources ? ['--import', 'tsx'] : []), '--input-type=module', '-e', driver, moduleUrl('instance-lock'), BIN, config, stateDir, original, stub],
  { encoding: 'utf8', timeout: 110_000, env: { ...process.env, STATE_DIRECTORY: stateDir, RUNTIME_DIRECTORY: runDir } });
  assert.equal(r.status, 0, r.stderr);
  const rounds = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<'dead' | 'live', { status: number; out: string; after: string }>;
  t.diagnostic(JSON.stringify(rounds));
  for (const round of ['dead', 'live'] as const) {
    assert.equal(rounds[round].status, 1, `${round}: ${rounds[round].out}`);
    assert.match(rounds[round].out, /EDAEMON_RUNNING: another shim6 daemon runs in this network namespace \(pid \d+\)/, round);
  }
  assert.match(rounds.dead.out, /undoing the DNS hand-over of a shim6 that did not stop cleanly/);
  assert.equal(rounds.dead.after, original, 'a killed daemon\'s hand-over is undone');
  assert.equal(rounds.live.after, stub, 'the running daemon\'s hand-over is left');
  assert.ok(existsSync(path.join(stateDir, STATE_FILE)), 'and its state');
  assert.equal(readFileSync(rc, 'utf8'), stub);
});

// A full /run (journald, an application's files): writing the holder's pid into the lock file
// failed with a bare `ENOSPC: no space left on device, write`, the start with it, and the empty
// lock file was left behind. The pid only names the holder in a refusal: the lock is the claim.
test('a runtime directory with no space left: the claim is taken all the same (the pid is for the refusal\'s message only), a second claim refused, the file gone at the release', { timeout: 60_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount', 'flock'] })) return;
  const dir = path.join(tmpdir(t, 'claim-full-'), 'run');
  mkdirSync(dir);
  const driver = `
const { claimNamespace } = await import(process.argv[1]);
const dir = process.argv[2];
const out = {};
try {
  const first = await claimNamespace('\\0shim6-test-full-' + process.pid, { lockDir: dir });
  out.first = 'claimed';
  try { await claimNamespace('\\0shim6-test-full2-' + process.pid, { lockDir: dir }); out.second = 'claimed'; } catch (e) { out.second = e.code; }
  first.release();
  out.after = (await import('node:fs')).readdirSync(dir).filter((f) => f.endsWith('.lock'));
} catch (e) { out.first = String(e.code ?? '') + ' ' + e.message; }
console.log(JSON.stringify(out));
`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec',
    `mount -t tmpfs -o size=16k,mode=0755 tmpfs "$1"; dd if=/dev/zero of="$1/fill" bs=4k count=16 2>/dev/null || true; shift; exec "$@"`, 'sh', dir,
    process.execPath, ...(fromSources ? ['--import', 'tsx'] : []), '--input-type=module', '-e', driver, moduleUrl('instance-lock'), dir],
  { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { first: string; second?: string; after?: string[] };
  assert.equal(out.first, 'claimed', JSON.stringify(out));
  assert.equal(out.second, 'EDAEMON_RUNNING', 'the lock still keeps one daemon per namespace');
  assert.deepEqual(out.after, [], 'no lock file left');
});

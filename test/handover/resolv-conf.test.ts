// The DNS hand-over (resolvConf: manage, --manage-resolv-conf;
// shim/daemon/resolv-handover.ts), run for real: `shim6 resolver` and
// `shim6 daemon` in a network namespace of their own (port 53 and the TUN are
// private) and a private mount namespace (`unshare -m`) where /etc/resolv.conf
// is a bind mount of a file of the test's, or — for resolved's stub file — a
// symlink on an overlay of /etc. The machine's own /etc/resolv.conf is never
// touched: the test checks that too. The state directory is the test's
// ($STATE_DIRECTORY, as systemd sets it for StateDirectory=).
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { chmodSync, existsSync, readdirSync, lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { needs } from '../helpers/prereq.ts';
import { NetLab, type Netns } from '../helpers/netns.ts';
import { BIN } from '../helpers/cli.ts';
import { tmpdir, track, waitFor, type Proc } from '../install/built.ts';
import { parseState, recover, ResolvHandover, STATE_FILE, stubNameservers } from '../../shim/daemon/resolv-handover.ts';
import { EnvironmentError, UsageError } from '../../shim/errors.ts';
import { fuzzParams } from '../helpers/rng.ts';

const HOST_RESOLV_CONF = readFileSync('/etc/resolv.conf');
/** An original with what a byte-for-byte restore must keep: comments, odd spacing, no final newline. */
const ORIGINAL = '# written by hand\nsearch corp.example lab.example\nnameserver 192.0.2.53\n\toptions  ndots:2 timeout:1';
const PREREQ = { root: true, commands: ['ip', 'unshare', 'mount'] };

/** The mount set-up run in the private mount namespace before shim6 (`exec "$@"`). */
function bindScript(file: string): string {
  return `mount --bind '${file}' /etc/resolv.conf; exec "$@"`;
}
/** /etc as an overlay whose upper layer has resolv.conf -> resolved's stub file; that file on a private /run/systemd. */
function symlinkScript(dir: string): string {
  return [
    `mount -t overlay overlay -o lowerdir=/etc,upperdir='${dir}/up',workdir='${dir}/work' /etc`,
    'mount -t tmpfs tmpfs /run/systemd', 'mkdir -p /run/systemd/resolve',
    'printf "nameserver 127.0.0.53\\noptions edns0 trust-ad\\nsearch lab.example\\n" > /run/systemd/resolve/stub-resolv.conf',
    'exec "$@"',
  ].join('; ');
}
const STUB_TARGET = '../run/systemd/resolve/stub-resolv.conf';
function symlinkDir(t: TestContext): string {
  const dir = tmpdir(t, 'handover-');
  mkdirSync(path.join(dir, 'up'));
  mkdirSync(path.join(dir, 'work'));
  symlinkSync(STUB_TARGET, path.join(dir, 'up', 'resolv.conf'));
  return dir;
}

/** `shim6 …args` (from the sources) in `ns`, in a private mount namespace set up by `script`. */
function shim6In(t: TestContext, ns: Netns, script: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  return track(t, spawn('ip', ['netns', 'exec', ns.name, 'unshare', '-m', '--propagation', 'private', 'sh', '-ec', script, 'sh', process.execPath, BIN, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

async function waitLog(p: Proc, text: string): Promise<void> {
  await waitFor(() => p.out().includes(text) || p.status() !== undefined, `"${text}" in the log`)
    .catch((err: Error) => { throw new Error(`${err.message}; output so far:\n${p.out()}`); });
  assert.ok(p.out().includes(text), `expected "${text}"; exited ${String(p.status())}:\n${p.out()}`);
}

function assertHostUntouched(): void {
  assert.ok(readFileSync('/etc/resolv.conf').equals(HOST_RESOLV_CONF), 'the machine\'s own /etc/resolv.conf is untouched');
}

function setupFile(t: TestContext): { dir: string; rc: string; state: string } {
  const dir = tmpdir(t, 'handover-');
  const rc = path.join(dir, 'resolv.conf');
  writeFileSync(rc, ORIGINAL);
  chmodSync(rc, 0o640);
  return { dir, rc, state: path.join(dir, 'state') };
}

function resolverArgs(dir: string, listen = '127.0.0.153:53'): string[] {
  return ['resolver', '--listen', listen, '--upstream', '127.0.0.1:9', '--no-engine', '--socket', path.join(dir, 'control.sock'), '--manage-resolv-conf'];
}

test('shim6 resolver --manage-resolv-conf: resolv.conf names the stub while it runs; SIGTERM restores it byte for byte (bind mount)', { timeout: 120_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { dir, rc, state } = setupFile(t);
  const ns = new NetLab(t).ns('rcf');
  const p = shim6In(t, ns, bindScript(rc), resolverArgs(dir), { STATE_DIRECTORY: state });
  await waitLog(p, 'DNS handed over');
  const during = readFileSync(rc, 'utf8');
  assert.match(during, /^nameserver 127\.0\.0\.153$/m);
  assert.doesNotMatch(during, /192\.0\.2\.53/, 'only the stub is named');
  assert.match(during, /^search corp\.example lab\.example$/m, 'the search line is kept');
  assert.match(during, /^\toptions {2}ndots:2 timeout:1$/m, 'the options line is kept');
  assert.ok(existsSync(path.join(state, STATE_FILE)), 'the original is saved in the state directory');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.out());
  assert.equal(readFileSync(rc, 'utf8'), ORIGINAL, 'restored byte for byte');
  assert.equal(statSync(rc).mode & 0o7777, 0o640, 'mode kept');
  assert.ok(!existsSync(path.join(state, STATE_FILE)), 'the saved state is gone after the restore');
  assertHostUntouched();
});

test('a stub that cannot be named in resolv.conf (port 5353) is a command-line mistake (the flag) or a config mistake (the key): exit 2, nothing changed', { timeout: 120_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { dir, rc, state } = setupFile(t);
  const ns = new NetLab(t).ns('rcp');
  const p = shim6In(t, ns, bindScript(rc), resolverArgs(dir, '127.0.0.153:5353'), { STATE_DIRECTORY: state });
  assert.equal(await p.exited(), 2, p.out());
  assert.match(p.out(), /EINVALID: --manage-resolv-conf: manage cannot name the stub at 127\.0\.0\.153:5353/);
  assert.equal(readFileSync(rc, 'utf8'), ORIGINAL);
  assert.ok(!existsSync(path.join(state, STATE_FILE)));
  assertHostUntouched();
});

test('a stub that fails to start changes nothing', { timeout: 120_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { dir, rc, state } = setupFile(t);
  const ns = new NetLab(t).ns('rcs');
  // 192.0.2.1 is on no interface of the namespace: the stub cannot bind.
  const p = shim6In(t, ns, bindScript(rc), resolverArgs(dir, '192.0.2.1:53'), { STATE_DIRECTORY: state });
  assert.equal(await p.exited(), 1, p.out());
  assert.equal(readFileSync(rc, 'utf8'), ORIGINAL);
  assert.ok(!existsSync(path.join(state, STATE_FILE)));
  assertHostUntouched();
});

test('after kill -9 the next start gives the original back before it reads resolv.conf; a second manager is refused meanwhile', { timeout: 180_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { dir, rc, state } = setupFile(t);
  const ns = new NetLab(t).ns('rck');
  const first = shim6In(t, ns, bindScript(rc), resolverArgs(dir), { STATE_DIRECTORY: state });
  await waitLog(first, 'DNS handed over');
  // While it runs, another manager with the same state directory is refused and changes nothing.
  const ns2 = new NetLab(t).ns('rck');
  mkdirSync(path.join(dir, 'x'));
  const second = shim6In(t, ns2, bindScript(rc), resolverArgs(path.join(dir, 'x')), { STATE_DIRECTORY: state });
  assert.equal(await second.exited(), 1, second.out());
  assert.match(second.out(), /ERESOLVCONF_BUSY/);
  assert.match(readFileSync(rc, 'utf8'), /^nameserver 127\.0\.0\.153$/m, 'the running one is untouched');
  first.child.kill('SIGKILL');
  await first.exited();
  assert.match(readFileSync(rc, 'utf8'), /^nameserver 127\.0\.0\.153$/m, 'a killed process restores nothing');
  // The next start (here without the hand-over) restores the original first: its upstreams come from it.
  const next = shim6In(t, ns, bindScript(rc), ['resolver', '--listen', '127.0.0.153:53', '--no-engine', '--socket', path.join(dir, 'control.sock')], { STATE_DIRECTORY: state });
  await waitLog(next, 'resolver ready');
  assert.match(next.out(), /undoing the DNS hand-over of a shim6 that did not stop cleanly/);
  assert.equal(readFileSync(rc, 'utf8'), ORIGINAL, 'restored byte for byte at the next start');
  assert.match(next.out(), /upstreams=\["192\.0\.2\.53:53"\]/, 'upstreams read from the restored original');
  next.child.kill('SIGTERM');
  assert.equal(await next.exited(), 0, next.out());
  assertHostUntouched();
});

/** A namespace with a global IPv6 address on a veth, and a daemon config for it. */
function daemonSetup(t: TestContext, prefix: string, extra: Record<string, unknown> = {}): { ns: Netns; dir: string; config: string; tun: string } {
  const net = new NetLab(t);
  const ns = net.ns(prefix);
  net.run(ns, ['ip', 'link', 'add', `${prefix}0`, 'type', 'veth', 'peer', 'name', `${prefix}1`]);
  for (const dev of [`${prefix}0`, `${prefix}1`]) net.run(ns, ['ip', 'link', 'set', dev, 'up']);
  net.addr(ns, `${prefix}0`, '2001:db8:5533::1/64');
  const dir = tmpdir(t, 'handover-');
  const tun = `${prefix}tun`;
  const config = path.join(dir, 'shim6.json');
  writeFileSync(config, JSON.stringify({
    listen: ['127.0.0.153:53'], upstreams: ['127.0.0.1:9'], interfaces: [`${prefix}0`], tun: { name: tun },
    cacheFile: path.join(dir, 'caches.json'), controlSocket: path.join(dir, 'control.sock'), resolvConf: 'manage', ...extra,
  }));
  return { ns, dir, config, tun };
}

test('shim6 daemon, resolved\'s stub file as /etc/resolv.conf and resolved not running: a file while it runs, the same symlink after SIGTERM, and after kill -9 at the next start', { timeout: 240_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { ns, dir, config } = daemonSetup(t, 'rcd');
  const over = symlinkDir(t);
  const upper = path.join(over, 'up', 'resolv.conf');
  const env = { STATE_DIRECTORY: path.join(dir, 'state'), PATH: `${path.join(dir, 'nobin')}:/usr/sbin:/usr/bin:/sbin:/bin` };
  for (const round of ['SIGTERM', 'SIGKILL'] as const) {
    const p = shim6In(t, ns, symlinkScript(over), ['daemon', '--config', config], env);
    await waitLog(p, 'DNS handed over');
    assert.ok(lstatSync(upper).isFile(), 'the symlink is replaced by a file while the daemon runs');
    const during = readFileSync(upper, 'utf8');
    assert.match(during, /^nameserver 127\.0\.0\.153$/m);
    assert.match(during, /^search lab\.example$/m, 'the stub file\'s search line is kept');
    p.child.kill(round);
    const status = await p.exited();
    if (round === 'SIGTERM') {
      assert.equal(status, 0, p.out());
    } else {
      assert.ok(lstatSync(upper).isFile(), 'kill -9 leaves the file');
      const next = shim6In(t, ns, symlinkScript(over), ['daemon', '--config', config, '--log-format', 'text'], { ...env });
      await waitLog(next, 'daemon ready');
      assert.match(next.out(), /undoing the DNS hand-over of a shim6 that did not stop cleanly/);
      // It manages again (resolvConf: manage): the symlink came back first, then was replaced again.
      await waitLog(next, 'DNS handed over');
      next.child.kill('SIGTERM');
      assert.equal(await next.exited(), 0, next.out());
    }
    assert.ok(lstatSync(upper).isSymbolicLink(), `restored as a symlink after ${round}`);
    assert.equal(readlinkSync(upper), STUB_TARGET, 'the same target, relative as it was');
  }
  assertHostUntouched();
});

test('shim6 daemon with systemd-resolved running and in the lookup path: per-link DNS on the TUN with the ~. routing domain, reverted on stop; resolv.conf untouched', { timeout: 180_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { ns, dir, config, tun } = daemonSetup(t, 'rcr');
  // resolv.conf goes to resolved's stub (as its stub file says): resolved is in the host's lookup path.
  const rc = path.join(dir, 'resolv.conf');
  const viaResolved = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n';
  writeFileSync(rc, viaResolved);
  // resolvectl stands in for resolved (there is none on the test machine): it records what it was asked.
  const bin = path.join(dir, 'bin');
  mkdirSync(bin);
  const calls = path.join(dir, 'resolvectl.calls');
  writeFileSync(path.join(bin, 'resolvectl'), `#!/bin/sh\necho "$*" >> '${calls}'\nexit 0\n`, { mode: 0o755 });
  const p = shim6In(t, ns, bindScript(rc), ['daemon', '--config', config], { STATE_DIRECTORY: path.join(dir, 'state'), PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}` });
  await waitLog(p, 'DNS handed over to systemd-resolved');
  const asked = readFileSync(calls, 'utf8').trim().split('\n');
  assert.ok(asked.includes(`dns ${tun} 127.0.0.153`), asked.join(' | '));
  assert.ok(asked.includes(`domain ${tun} ~.`), asked.join(' | '));
  assert.equal(readFileSync(rc, 'utf8'), viaResolved, 'resolv.conf is left to resolved');
  p.child.kill('SIGTERM');
  assert.equal(await p.exited(), 0, p.out());
  assert.ok(readFileSync(calls, 'utf8').trim().split('\n').includes(`revert ${tun}`), 'the link\'s settings reverted');
  assert.ok(!existsSync(path.join(dir, 'state', STATE_FILE)));
  assertHostUntouched();
});

test('stubNameservers: port 53 only, wildcards become loopback, at most three', () => {
  assert.deepEqual(stubNameservers([{ host: '127.0.0.153', port: 53 }, { host: '::', port: 53 }, { host: '0.0.0.0', port: 53 }]), ['127.0.0.153', '::1', '127.0.0.1']);
  assert.throws(() => stubNameservers([{ host: '::1', port: 5353 }]), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && /\[::1\]:5353/.test(e.message));
  assert.throws(() => stubNameservers([]), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG');
});

test('parseState: any text is a valid state or undefined, never an exception (the state file is outside input)', (t) => {
  fc.assert(fc.property(fc.oneof(fc.string(), fc.json(), fc.record({
    version: fc.constantFrom(1, 2), how: fc.constantFrom('file', 'resolved', 'x'), pid: fc.oneof(fc.integer(), fc.string()), startTime: fc.string(),
    path: fc.string(), written: fc.string(), link: fc.string(),
    original: fc.oneof(fc.constant(null), fc.record({ kind: fc.constantFrom('file', 'symlink', 'absent', 'x'), target: fc.string(), content: fc.string(), mode: fc.integer(), uid: fc.integer(), gid: fc.integer() })),
  }).map((o) => JSON.stringify(o))), (text) => {
    const s = parseState(text);
    if (s === undefined) return;
    assert.ok(s.how === 'file' || s.how === 'resolved');
    assert.ok(Number.isInteger(s.pid) && s.pid > 0);
    if (s.how === 'file') assert.ok(path.isAbsolute(s.path));
  }), fuzzParams(t, { numRuns: 2000 }));
});

// Writes in place on a full disk. Under the shipped unit (ProtectSystem=strict,
// ReadWritePaths=-/etc/resolv.conf) /etc is read-only and resolv.conf a writable bind mount, so
// every write of it is in place (truncate, then write). Each case runs in a private mount namespace
// on a small tmpfs of its own; the machine's own /etc/resolv.conf is never touched.
const fromSources = import.meta.url.endsWith('.ts');
const MODULE = fileURLToPath(new URL(`../../shim/daemon/resolv-handover.${fromSources ? 'ts' : 'js'}`, import.meta.url));

/** The child, in its mount namespace: `size` of tmpfs, `original` as resolv.conf, then `steps` (a function body); prints one JSON line. */
function fullDiskChild(t: TestContext, size: string, original: string, steps: string): Record<string, unknown> {
  const dir = tmpdir(t, 'handover-full-');
  const child = `
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, readFileSync, existsSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
const [D, MODULE, SIZE, ORIGINAL] = process.argv.slice(-4);
const { ResolvHandover, recover } = await import(MODULE);
const sh = (c) => execFileSync('sh', ['-ec', c], { stdio: 'ignore' });
mkdirSync(D + '/fs'); mkdirSync(D + '/etc');
sh('mount -t tmpfs -o size=' + SIZE + ' tmpfs ' + D + '/fs');
writeFileSync(D + '/fs/resolv.conf', ORIGINAL);
writeFileSync(D + '/etc/resolv.conf', '');
// /etc read-only, resolv.conf a writable bind mount (ProtectSystem=strict + ReadWritePaths=-/etc/resolv.conf).
sh('mount --bind ' + D + '/etc ' + D + '/etc; mount -o remount,bind,ro ' + D + '/etc; mount --bind ' + D + '/fs/resolv.conf ' + D + '/etc/resolv.conf');
const logged = [];
const log = { info: (m) => logged.push(m), warn: (m) => logged.push(m), error: (m) => logged.push(m), debug() {} };
const rc = D + '/etc/resolv.conf';
const stateDir = D + '/state';
const stateLeft = () => existsSync(stateDir + '/resolv-handover.json');
const fillDisk = () => { const fd = openSync(D + '/fs/filler', 'w'); try { const b = Buffer.alloc(4096, 1); for (;;) writeSync(fd, b); } catch {} finally { closeSync(fd); } };
const freeDisk = () => rmSync(D + '/fs/filler');
const attempt = (f) => { try { f(); return undefined; } catch (e) { return e.code + ': ' + e.message; } };
const out = { logged };
${steps}
console.log(JSON.stringify(out));
`;
  const r = spawnSync('unshare', ['-m', '--propagation', 'private', process.execPath, ...(fromSources ? ['--import', 'tsx'] : []), '--input-type=module', '-e', child, dir, MODULE, size, original], { encoding: 'utf8', timeout: 50_000 });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
  t.diagnostic(JSON.stringify(out, (_k, v: unknown) => (typeof v === 'string' && v.length > 300 ? `<${v.length} octets>` : v)));
  return out;
}

test('a restore on a full disk that cannot write the whole original throws ERESOLVCONF and keeps the saved original; the next start restores it whole', { timeout: 60_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount'] })) return;
  // Three pages; a two-page original; the stub takes one, and the disk fills up while shim6 runs.
  const original = '# resolv.conf of this host\n# ' + 'x'.repeat(5990) + '\nsearch corp.example\nnameserver 192.0.2.53\n';
  const out = fullDiskChild(t, '12k', original, `
const h = ResolvHandover.apply({ nameservers: ['127.0.0.153'], stateDir, resolvConf: rc, log });
fillDisk();
out.threw = attempt(() => h.restore());
out.afterRestore = readFileSync(rc, 'utf8');
out.stateLeftAfterRestore = stateLeft();
out.loggedByRestore = [...logged];
freeDisk();
// The next start, once this process is gone: its pid in the state is then a dead one's.
const st = JSON.parse(readFileSync(stateDir + '/resolv-handover.json', 'utf8'));
writeFileSync(stateDir + '/resolv-handover.json', JSON.stringify({ ...st, pid: Number(execFileSync('sh', ['-c', 'echo $$'], { encoding: 'utf8' })), startTime: '1' }));
out.recovered = recover(stateDir, log);
out.afterRecover = readFileSync(rc, 'utf8');
out.stateLeftAfterRecover = stateLeft();
`);
  assert.match(String(out.threw), /^ERESOLVCONF: cannot restore .*the original stays saved in/);
  assert.notEqual(out.afterRestore, original, 'the disk was full: the original could not be written whole');
  assert.deepEqual(out.loggedByRestore, ['DNS handed over: resolv.conf names the stub'], 'no success logged');
  assert.equal(out.stateLeftAfterRestore, true, 'the saved original is kept');
  // The file holds the beginning of the original (truncated, then cut short): still ours to restore.
  assert.equal(out.recovered, true);
  assert.equal(out.afterRecover, original, 'the next start put the original back whole');
  assert.equal(out.stateLeftAfterRecover, false);
});

test('a hand-over whose stub cannot be written whole (full disk) throws ERESOLVCONF and leaves the original in place, no state', { timeout: 60_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount'] })) return;
  // Two pages; a one-page original with a long search line, which the stub keeps after its own
  // lines: the stub needs two pages, and the disk is full.
  const search = 'search ' + Array.from({ length: 360 }, (_, i) => `d${i}.example`).join(' ').slice(0, 3950);
  const original = `${search}\nnameserver 192.0.2.53\n`;
  const out = fullDiskChild(t, '8k', original, `
fillDisk();
out.threw = attempt(() => ResolvHandover.apply({ nameservers: ['127.0.0.153'], stateDir, resolvConf: rc, log }));
out.after = readFileSync(rc, 'utf8');
out.stateLeft = stateLeft();
`);
  assert.ok(original.length < 4096, 'the original fits in one page');
  assert.match(String(out.threw), /^ERESOLVCONF: cannot write /);
  assert.equal(out.after, original, 'the original is back');
  assert.equal(out.stateLeft, false);
});

/** The state a manager killed with SIGKILL leaves: `written` as the stub, `original` as the file before. */
function deadState(stateDir: string, rc: string, original: string, written: string): void {
  mkdirSync(stateDir, { recursive: true });
  const dead = spawnSync('true').pid!; // a pid that has exited; its start time cannot match anyway
  writeFileSync(path.join(stateDir, STATE_FILE), JSON.stringify({
    version: 1, how: 'file', pid: dead, startTime: '1', path: rc,
    original: { kind: 'file', content: Buffer.from(original).toString('base64'), mode: 0o644, uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    written: Buffer.from(written).toString('base64'),
  }) + '\n', { mode: 0o600 });
}

test('recover: a resolv.conf left empty or holding the beginning of the stub or of the original (an in-place write cut short) gets the original back; one someone else wrote is left', (t) => {
  const quiet = { info() {}, warn() {}, error() {}, debug() {} } as never;
  const stub = '# Written by shim6 (resolvConf: manage): the host\'s lookups go through its stub resolver.\nnameserver 127.0.0.153\nsearch corp.example lab.example\n';
  const cases: Array<[string, string, boolean]> = [
    ['empty (killed between the truncation and the write)', '', true],
    ['the beginning of the stub', stub.slice(0, 40), true],
    ['the whole stub', stub, true],
    ['the beginning of the original (a restore cut short)', ORIGINAL.slice(0, 30), true],
    ['the original already (a restore killed before it removed the state)', ORIGINAL, true],
    ['someone else\'s', 'nameserver 198.51.100.1\n', false],
  ];
  for (const [what, left, ours] of cases) {
    const dir = tmpdir(t, 'handover-cut-');
    const rc = path.join(dir, 'resolv.conf');
    const stateDir = path.join(dir, 'state');
    writeFileSync(rc, left);
    deadState(stateDir, rc, ORIGINAL, stub);
    assert.equal(recover(stateDir, quiet), true, what);
    assert.equal(readFileSync(rc, 'utf8'), ours ? ORIGINAL : left, what);
    assert.equal(existsSync(path.join(stateDir, STATE_FILE)), false, what);
    assert.equal(readdirSync(stateDir).filter((n) => n.startsWith('resolv.conf.before-shim6.')).length, ours ? 0 : 1, `${what}: the copy kept beside a file someone else wrote`);
  }
});

/** A state and resolv.conf as a shim6 killed with SIGKILL leaves them, for /etc/resolv.conf bind-mounted from `rc`. */
function crashedHandover(t: TestContext): { dir: string; rc: string; stateDir: string; stub: string } {
  const dir = tmpdir(t, 'handover-crashed-');
  const rc = path.join(dir, 'resolv.conf');
  const stateDir = path.join(dir, 'state');
  const stub = '# Written by shim6 (resolvConf: manage)\nnameserver 127.0.0.153\nsearch corp.example lab.example\n';
  writeFileSync(rc, stub);
  deadState(stateDir, '/etc/resolv.conf', ORIGINAL, stub);
  return { dir, rc, stateDir, stub };
}

test('a start whose configuration is refused (exit 2) still gives back the DNS a killed shim6 left handed over: shim6 daemon and shim6 resolver; --check-config restores nothing', { timeout: 120_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount'] })) return;
  // No network namespace: the refused start never gets that far.
  const startIn = (rc: string, stateDir: string, args: string[]): { status: number | null; out: string } => {
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', bindScript(rc), 'sh', process.execPath, BIN, ...args],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, STATE_DIRECTORY: stateDir } });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  for (const command of ['daemon', 'resolver', 'daemon --check-config'] as const) {
    const { dir, rc, stateDir, stub } = crashedHandover(t);
    const config = path.join(dir, 'shim6.yaml');
    writeFileSync(config, 'resolvConf: manage\nnoSuchKey: 1\n'); // e.g. a key of a newer version, after a downgrade
    const r = startIn(rc, stateDir, [...command.split(' '), '--config', config]);
    t.diagnostic(`${command}: exit ${r.status}: ${r.out.trim()}`);
    assert.equal(r.status, 2, `${command}: the configuration is refused`);
    assert.match(r.out, /ECONFIG/, command);
    if (command === 'daemon --check-config') {
      assert.equal(readFileSync(rc, 'utf8'), stub, 'a check changes nothing');
      assert.ok(existsSync(path.join(stateDir, STATE_FILE)));
      continue;
    }
    assert.match(r.out, /undoing the DNS hand-over of a shim6 that did not stop cleanly/, command);
    assert.equal(readFileSync(rc, 'utf8'), ORIGINAL, `${command}: the original is back`);
    assert.equal(existsSync(path.join(stateDir, STATE_FILE)), false, command);
  }
  assertHostUntouched();
});

test('--check-config takes the stub\'s upstreams from the original a hand-over saved, as the start does: resolv.conf naming the stub itself (a running daemon\'s, or a killed one\'s) is no ECONFIG', { timeout: 120_000 }, (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount'] })) return;
  const { dir, rc, stateDir, stub } = crashedHandover(t);
  const config = path.join(dir, 'shim6.yaml');
  writeFileSync(config, 'listen: ["127.0.0.153:53"]\nresolvConf: manage\n');
  const check = (): { status: number | null; out: string } => {
    const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-ec', bindScript(rc), 'sh', process.execPath, BIN, 'daemon', '--check-config', '--config', config],
      { encoding: 'utf8', timeout: 60_000, env: { ...process.env, STATE_DIRECTORY: stateDir } });
    return { status: r.status, out: `${r.stdout}${r.stderr}` };
  };
  // A killed daemon's hand-over: the start gives the original (nameserver 192.0.2.53) back first.
  const dead = check();
  assert.equal(dead.status, 0, dead.out);
  assert.match(dead.out, /configuration OK/);
  // A running daemon's: its stop gives the original back before a restart.
  const other = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.after(() => { other.kill('SIGKILL'); });
  const statePath = path.join(stateDir, STATE_FILE);
  const state = JSON.parse(readFileSync(statePath, 'utf8')) as Record<string, unknown>;
  writeFileSync(statePath, JSON.stringify({ ...state, pid: other.pid, startTime: startTimeOf(other.pid!) }) + '\n', { mode: 0o600 });
  const live = check();
  assert.equal(live.status, 0, live.out);
  assert.equal(readFileSync(rc, 'utf8'), stub, 'a check changes nothing');
  // Without a hand-over, a resolv.conf naming only the stub is still refused, as the start refuses it.
  rmSync(statePath);
  const none = check();
  assert.equal(none.status, 2, none.out);
  assert.match(none.out, /ECONFIG/);
  assertHostUntouched();
});

// Two managers (a daemon and a resolver, two resolvers on 127.0.0.153 and .154…) sharing the state
// directory. resolv.conf names resolved's stub, so that apply() asks `resolvectl status` between its
// check of the state and its save: the module's resolvectl option gives that moment to the test.
const VIA_RESOLVED = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n';
const quietLog = { info() {}, warn() {}, error() {}, debug() {} } as never;

/** Start time of `pid` (field 22 of /proc/<pid>/stat), as the state file records it. */
function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

test('another manager taking the hand-over between the check and the save: ERESOLVCONF_BUSY, its state and resolv.conf untouched', (t) => {
  const dir = tmpdir(t, 'handover-excl-');
  const rc = path.join(dir, 'resolv.conf');
  const stateDir = path.join(dir, 'state');
  mkdirSync(stateDir);
  writeFileSync(rc, VIA_RESOLVED);
  const other = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.after(() => { other.kill('SIGKILL'); });
  const theirs = JSON.stringify({ version: 1, how: 'resolved', pid: other.pid, startTime: startTimeOf(other.pid!), link: 'other0' }) + '\n';
  writeFileSync(path.join(dir, 'theirs.json'), theirs);
  // `resolvectl status` (is resolved running? no) is when the other manager saves its state.
  const resolvectl = path.join(dir, 'resolvectl');
  writeFileSync(resolvectl, `#!/bin/sh\n[ "$2" = status ] && cp '${path.join(dir, 'theirs.json')}' '${path.join(stateDir, STATE_FILE)}'\nexit 1\n`, { mode: 0o755 });
  assert.throws(() => ResolvHandover.apply({ nameservers: ['127.0.0.153'], link: 'shim6', stateDir, resolvConf: rc, resolvectl, log: quietLog }),
    (e: unknown) => e instanceof EnvironmentError && e.code === 'ERESOLVCONF_BUSY' && e.message.includes(`pid ${other.pid}`));
  assert.equal(readFileSync(path.join(stateDir, STATE_FILE), 'utf8'), theirs, 'the other manager\'s state is left');
  assert.equal(readFileSync(rc, 'utf8'), VIA_RESOLVED, 'resolv.conf is untouched');
  assert.deepEqual(readdirSync(stateDir), [STATE_FILE], 'no temp file left');
});

test('a resolv.conf shim6 wrote, with no state saying what was there before, is never saved as the original: ERESOLVCONF, left as it is', (t) => {
  const dir = tmpdir(t, 'handover-own-');
  const rc = path.join(dir, 'resolv.conf');
  const stateDir = path.join(dir, 'state');
  const stub = '# Written by shim6 (resolvConf: manage): the host\'s lookups go through its stub resolver.\nnameserver 127.0.0.153\n';
  writeFileSync(rc, stub);
  assert.throws(() => ResolvHandover.apply({ nameservers: ['127.0.0.154'], stateDir, resolvConf: rc, log: quietLog }),
    (e: unknown) => e instanceof EnvironmentError && e.code === 'ERESOLVCONF' && /is one shim6 wrote/.test(e.message));
  assert.equal(readFileSync(rc, 'utf8'), stub);
  assert.equal(existsSync(path.join(stateDir, STATE_FILE)), false);
});

test('two managers starting together: one takes the hand-over, the other is refused; the host gets its own resolv.conf back after the first is killed', { timeout: 60_000 }, async (t) => {
  const dir = tmpdir(t, 'handover-race-');
  const rc = path.join(dir, 'resolv.conf');
  const stateDir = path.join(dir, 'state');
  writeFileSync(rc, VIA_RESOLVED);
  // resolved is not running, and saying so takes a second (a busy D-Bus): both managers are past
  // their check of the state before either saves it.
  const resolvectl = path.join(dir, 'resolvectl');
  writeFileSync(resolvectl, '#!/bin/sh\n[ "$2" = status ] && { sleep 1; exit 1; }\nexit 1\n', { mode: 0o755 });
  const child = `
const [MODULE, rc, stateDir, resolvectl] = process.argv.slice(-4);
const { ResolvHandover } = await import(MODULE);
const log = { info() {}, warn() {}, error() {}, debug() {} };
try { ResolvHandover.apply({ nameservers: ['127.0.0.153'], link: 'shim6', stateDir, resolvConf: rc, resolvectl, log }); }
catch (e) { console.log('refused ' + e.code); process.exit(0); }
console.log('applied');
setInterval(() => {}, 1000);
`;
  const manager = () => {
    const p = spawn(process.execPath, [...(fromSources ? ['--import', 'tsx'] : []), '--input-type=module', '-e', child, MODULE, rc, stateDir, resolvectl], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => { p.kill('SIGKILL'); });
    let out = '';
    p.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
    return { p, line: () => out.trim() };
  };
  const a = manager();
  const b = manager();
  await waitFor(() => a.line() !== '' && b.line() !== '', 'both managers to say what they did');
  const said = [a.line(), b.line()].sort();
  t.diagnostic(said.join(', '));
  assert.equal(said[0], 'applied', 'one manager took the hand-over');
  assert.match(said[1]!, /^refused ERESOLVCONF(_BUSY)?$/, 'the other was refused');
  const holder = a.line() === 'applied' ? a : b;
  holder.p.kill('SIGKILL');
  await new Promise((r) => holder.p.once('exit', r));
  assert.equal(recover(stateDir, quietLog), true);
  assert.equal(readFileSync(rc, 'utf8'), VIA_RESOLVED, 'the host\'s own resolv.conf is back');
  assert.equal(existsSync(path.join(stateDir, STATE_FILE)), false);
});

// resolv.conf is written to `.resolv.conf.shim6-<pid>` beside it, flushed, and renamed: a daemon
// killed (or a power cut) before the rename left that file in /etc for good.
test('the temp file a killed hand-over left beside resolv.conf (another pid, gone) is removed by the next hand-over; a live process\'s is not', (t) => {
  const dir = tmpdir(t, 'handover-tmp-');
  const rc = path.join(dir, 'resolv.conf');
  const stateDir = path.join(dir, 'state');
  mkdirSync(stateDir);
  writeFileSync(rc, 'nameserver 192.0.2.53\n');
  const gone = Number(spawnSync(process.execPath, ['-e', 'console.log(process.pid)'], { encoding: 'utf8' }).stdout);
  const live = spawn('sleep', ['600'], { stdio: 'ignore' });
  t.after(() => { live.kill('SIGKILL'); });
  const deadTmp = path.join(dir, `.resolv.conf.shim6-${gone}`);
  const liveTmp = path.join(dir, `.resolv.conf.shim6-${live.pid}`);
  writeFileSync(deadTmp, '# Written by shim6\nnameserver 127.0.0.153\n');
  writeFileSync(liveTmp, '# Written by shim6\nnameserver 127.0.0.153\n');
  const h = ResolvHandover.apply({ nameservers: ['127.0.0.153'], stateDir, resolvConf: rc, log: quietLog });
  assert.equal(existsSync(deadTmp), false, 'the killed writer\'s temp file is gone');
  assert.equal(existsSync(liveTmp), true, 'a live process\'s is left');
  h.restore();
  assert.equal(readFileSync(rc, 'utf8'), 'nameserver 192.0.2.53\n');
});

test('two network namespaces with resolv.conf files of their own (ip netns exec binds /etc/netns/NAME/resolv.conf) and one state directory: each hands its own over and gets its own back', { timeout: 180_000 }, async (t) => {
  // Before, both kept the hand-over in the same resolv-handover.json: the second was refused
  // (ERESOLVCONF_BUSY) while the first ran; and after a kill -9 of the first, the second's start
  // took the first's state for its own resolv.conf ("changed by someone else": set aside), so the
  // first's file was left naming a dead stub, its original no longer where a restart looks. /etc here is an overlay with the namespace's
  // file under netns/NAME, bound on /etc/resolv.conf as `ip netns exec` does.
  if (!needs(t, { ...PREREQ, commands: [...PREREQ.commands, 'sh'] })) return;
  const base = tmpdir(t, 'handover-netns-');
  const state = path.join(base, 'state');
  const net = new NetLab(t);
  const hosts = ['a', 'b'].map((x) => {
    const ns = net.ns('rcn');
    const dir = path.join(base, x);
    const own = path.join(dir, 'up', 'netns', ns.name, 'resolv.conf');
    mkdirSync(path.dirname(own), { recursive: true });
    mkdirSync(path.join(dir, 'work'));
    const original = `${ORIGINAL}\n# of ${x}\n`;
    writeFileSync(own, original);
    const script = `mount -t overlay overlay -o lowerdir=/etc,upperdir='${dir}/up',workdir='${dir}/work' /etc; mount --bind '/etc/netns/${ns.name}/resolv.conf' /etc/resolv.conf; exec "$@"`;
    return { ns, dir, own, original, script };
  });
  const procs: Proc[] = [];
  for (const h of hosts) {
    const p = shim6In(t, h.ns, h.script, resolverArgs(h.dir), { STATE_DIRECTORY: state });
    procs.push(p);
    await waitLog(p, 'resolver ready');
    assert.match(readFileSync(h.own, 'utf8'), /^nameserver 127\.0\.0\.153$/m, `its own resolv.conf names its stub:\n${p.out()}`);
  }
  for (const [i, p] of procs.entries()) {
    p.child.kill('SIGTERM');
    assert.equal(await p.exited(), 0, p.out());
    assert.equal(readFileSync(hosts[i]!.own, 'utf8'), hosts[i]!.original, 'its own original back, byte for byte');
  }
  assertHostUntouched();
});

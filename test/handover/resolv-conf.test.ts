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
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { needs } from '../helpers/prereq.ts';
import { NetLab, type Netns } from '../helpers/netns.ts';
import { BIN } from '../helpers/cli.ts';
import { tmpdir, track, waitFor, type Proc } from '../install/built.ts';
import { parseState, STATE_FILE, stubNameservers } from '../../shim/daemon/resolv-handover.ts';
import { UsageError } from '../../shim/errors.ts';
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

test('a stub that cannot be named in resolv.conf (port 5353) is a config mistake: exit 2, nothing changed', { timeout: 120_000 }, async (t) => {
  if (!needs(t, PREREQ)) return;
  const { dir, rc, state } = setupFile(t);
  const ns = new NetLab(t).ns('rcp');
  const p = shim6In(t, ns, bindScript(rc), resolverArgs(dir, '127.0.0.153:5353'), { STATE_DIRECTORY: state });
  assert.equal(await p.exited(), 2, p.out());
  assert.match(p.out(), /ECONFIG: --manage-resolv-conf: manage cannot name the stub at 127\.0\.0\.153:5353/);
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

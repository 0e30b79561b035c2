// Upstreams from the host's resolver files when none are configured: /etc/resolv.conf, and
// systemd-resolved's servers file when resolv.conf names resolved's stub and resolved forwards to us.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { configFromObject, readSystemResolvers, resolveConfig, systemUpstreams, RESOLV_CONF, RESOLVED_SERVERS } from '../../resolver/config.ts';
import { UsageError } from '../../shim/errors.ts';
import { needs } from '../helpers/prereq.ts';
import { BIN } from '../helpers/cli.ts';
import { waitFor, within } from '../helpers/wait.ts';

const US = [{ host: '127.0.0.153', port: 53 }];
const RESOLVED_STUB = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n';
const hosts = (r: { upstreams: Array<{ host: string; port: number }> }): string[] => r.upstreams.map((u) => `${u.host}:${u.port}`);

test('upstreams from /etc/resolv.conf: its nameservers, port 53, minus the stub itself; zone ids and junk lines ignored', () => {
  const r = systemUpstreams({ resolvConf: '# comment\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver 127.0.0.153\nnameserver not-an-ip\nsearch example.\n' }, US);
  assert.deepEqual(hosts(r), ['192.0.2.1:53', 'fe80::1:53']);
  assert.equal(r.from, RESOLV_CONF);
});

test('resolv.conf names systemd-resolved, and resolved forwards to this stub: resolved\'s other servers instead (no loop)', () => {
  const r = systemUpstreams({ resolvConf: RESOLVED_STUB, resolvedServers: 'nameserver 127.0.0.153\nnameserver 192.0.2.53\nnameserver 2001:db8::53\nnameserver 192.0.2.53\n' }, US);
  assert.deepEqual(hosts(r), ['192.0.2.53:53', '2001:db8::53:53']);
  assert.match(r.from, /^\/run\/systemd\/resolve\/resolv\.conf \(systemd-resolved forwards to this stub, so not via 127\.0\.0\.53\)$/);
  // resolved forwarding to the stub on another port (DNS=127.0.0.153:5353) is the same loop.
  const other = systemUpstreams({ resolvConf: RESOLVED_STUB, resolvedServers: 'nameserver 127.0.0.153\nnameserver 192.0.2.53\n' }, [{ host: '127.0.0.153', port: 5353 }]);
  assert.deepEqual(hosts(other), ['192.0.2.53:53']);
});

test('resolv.conf names systemd-resolved, which does not forward to us: resolved stays the upstream (its per-link routing kept)', () => {
  const r = systemUpstreams({ resolvConf: RESOLVED_STUB, resolvedServers: 'nameserver 192.0.2.53\n' }, US);
  assert.deepEqual(hosts(r), ['127.0.0.53:53']);
  assert.equal(r.from, RESOLV_CONF);
  // No servers file (resolved not running): resolv.conf as it is.
  assert.deepEqual(hosts(systemUpstreams({ resolvConf: RESOLVED_STUB }, US)), ['127.0.0.53:53']);
});

test('resolved forwards only to us: no upstream left is a config error naming upstreams and the file', () => {
  const sys = { resolvConf: RESOLVED_STUB, resolvedServers: 'nameserver 127.0.0.153\n' };
  assert.deepEqual(hosts(systemUpstreams(sys, US)), []);
  assert.throws(() => resolveConfig(configFromObject({}), {}, sys), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.field, 'upstreams');
    assert.match(e.message, /none configured and none usable in \/run\/systemd\/resolve\/resolv\.conf/);
    return true;
  });
  // Configured upstreams win over the host's files, and say so.
  const cfg = resolveConfig(configFromObject({ upstreams: ['192.0.2.9'] }), {}, sys);
  assert.deepEqual(hosts(cfg), ['192.0.2.9:53']);
  assert.equal(cfg.upstreamsFrom, 'configured');
  const flagged = resolveConfig(configFromObject({}), { upstreams: [{ host: '192.0.2.8', port: 53 }] }, sys);
  assert.deepEqual(hosts(flagged), ['192.0.2.8:53']);
  assert.equal(flagged.upstreamsFrom, 'configured');
});

test('readSystemResolvers reads both files and reports a missing one as undefined', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sysres-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'resolv.conf'), RESOLVED_STUB);
  const sys = readSystemResolvers({ resolvConf: path.join(dir, 'resolv.conf'), resolvedServers: path.join(dir, 'missing') });
  assert.equal(sys.resolvConf, RESOLVED_STUB);
  assert.equal(sys.resolvedServers, undefined);
});

// The real files, as `shim6 resolver` reads them: a private mount namespace in which
// /etc/resolv.conf names resolved's stub and resolved's servers file names this stub.
test('shim6 resolver in a mount namespace where resolved forwards to it: takes resolved\'s servers, logs where from', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['unshare', 'mount'] })) return;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'sysres-ns-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'resolv.conf'), RESOLVED_STUB);
  writeFileSync(path.join(dir, 'resolved.conf'), 'nameserver 127.0.0.154\nnameserver 192.0.2.53\n');
  const runDir = path.dirname(RESOLVED_SERVERS);
  const script = [
    'set -e',
    'mount --make-rprivate /',
    `mount --bind ${dir}/resolv.conf ${RESOLV_CONF}`,
    // /run/systemd/resolve may not exist here: a tmpfs over /run (this namespace only) holds it.
    'mount -t tmpfs tmpfs /run',
    `mkdir -p ${runDir}`,
    `cp ${dir}/resolved.conf ${RESOLVED_SERVERS}`,
    `exec "$0" "$1" resolver --listen 127.0.0.154:0 --no-engine --socket ${dir}/ctl.sock`,
  ].join('\n');
  // node and the command as arguments, not in the script's text: a checkout's path may hold a space.
  const child = spawn('unshare', ['--mount', 'sh', '-c', script, process.execPath, BIN], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  t.after(() => { child.kill('SIGKILL'); });
  await waitFor(() => stderr.includes('resolver ready') || child.exitCode !== null, '"resolver ready"');
  assert.match(stderr, /resolver ready/, stderr);
  const ready = stderr.split('\n').find((l) => l.includes('resolver ready'))!;
  assert.match(ready, /192\.0\.2\.53:53/, ready);
  assert.doesNotMatch(ready, /127\.0\.0\.53:53/, ready);
  assert.match(ready, /systemd-resolved forwards to this stub/, ready);
  child.kill('SIGTERM');
  assert.equal(await within(exited, 'the resolver to exit on SIGTERM'), 0, stderr);
});

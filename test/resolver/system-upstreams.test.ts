// Upstreams from the host's resolver files when none are configured: /etc/resolv.conf, and
// systemd-resolved's servers file when resolv.conf names resolved's stub and resolved forwards to us.
// And the stub never forwards to itself: an upstream a listen address answers at (a wildcard
// listener answers at loopback and at every address of this host) is refused or skipped.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as dnsPacket from 'dns-packet';
import { configFromObject, parseHostPort, readSystemResolvers, resolveConfig, systemUpstreams, RESOLV_CONF, RESOLVED_SERVERS } from '../../resolver/config.ts';
import { validateConfig } from '../../shim/daemon/config.ts';
import { UsageError } from '../../shim/errors.ts';
import { hostPort } from '../../shim/log.ts';
import { answerFor, startFakeUpstream } from './fake-upstream.ts';
import { startStub, udpAsk } from './harness.ts';
import { needs } from '../helpers/prereq.ts';
import { BIN } from '../helpers/cli.ts';
import { waitFor, within } from '../helpers/wait.ts';

const US = [{ host: '127.0.0.153', port: 53 }];
const RESOLVED_STUB = 'nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n';
const hosts = (r: { upstreams: Array<{ host: string; port: number }> }): string[] => r.upstreams.map((u) => `${u.host}:${u.port}`);

test('upstreams from /etc/resolv.conf: its nameservers, port 53, minus the stub itself and link-local ones; junk lines ignored', () => {
  const r = systemUpstreams({ resolvConf: '# comment\nnameserver 192.0.2.1\nnameserver fe80::1%eth0\nnameserver 127.0.0.153\nnameserver not-an-ip\nnameserver 2001:db8::53%eth0\nsearch example.\n' }, US);
  assert.deepEqual(hosts(r), ['192.0.2.1:53', '2001:db8::53:53']);
  assert.equal(r.from, RESOLV_CONF);
  // A link-local nameserver alone (NetworkManager's `fe80::1%wlan0` from a router's RDNSS) leaves none: a clear ECONFIG.
  assert.throws(() => resolveConfig(configFromObject({}), {}, { resolvConf: 'nameserver fe80::1%wlan0\n' }), /upstreams: none configured and none usable in \/etc\/resolv\.conf/);
});

test('a link-local upstream is refused: the stub\'s sockets carry no zone, so every datagram to it would be lost', () => {
  const refused = (f: () => unknown, code: string, field: string, why: RegExp): void => {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.deepEqual([e.code, e.field], [code, field]);
      assert.match(e.message, why);
      return true;
    });
  };
  refused(() => resolveConfig(configFromObject({ upstreams: ['192.0.2.53', '[fe80::1]:53'] }), {}), 'ECONFIG', 'upstreams', /"\[fe80::1\]:53": is link-local/);
  refused(() => resolveConfig(configFromObject({}), { upstreams: [{ host: 'febf::53', port: 53 }] }), 'EINVALID', '--upstream', /is link-local/);
  refused(() => configFromObject({ upstreams: ['[fe80::1%eth0]:53'] }), 'ECONFIG', 'upstreams[0]', /a zone \(%…\) is not supported/);
  refused(() => parseHostPort('[fe80::1%eth0]:53', '--upstream', 53, 1), 'EINVALID', '--upstream', /a zone \(%…\) is not supported/);
  // fec0::/10 (deprecated site-local) and ULAs are routed as any other address.
  assert.deepEqual(hosts(resolveConfig(configFromObject({ upstreams: ['[fec0::53]:53', '[fd00::53]:53'] }), {})), ['fec0::53:53', 'fd00::53:53']);
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

/** resolveConfig refuses `upstream` with `listen` as the stub itself: ECONFIG naming `upstreams` (file), EINVALID naming `--upstream` (flag). `own` undefined: this host's addresses. */
function refusedAsItself(listen: string, upstream: string, own?: readonly string[]): void {
  const what = `listen ${listen}, upstream ${upstream}`;
  assert.throws(() => resolveConfig(configFromObject({ listen: [listen], upstreams: [upstream] }), {}, {}, own), (e: unknown) => {
    assert.ok(e instanceof UsageError, `${what}: ${String(e)}`);
    assert.equal(e.code, 'ECONFIG', what);
    assert.equal(e.field, 'upstreams', what);
    assert.match(e.message, /: is the stub itself$/, what);
    return true;
  }, `${what}: accepted`);
  const u = configFromObject({ upstreams: [upstream] }).upstreams![0]!;
  const l = configFromObject({ listen: [listen] }).listen!;
  assert.throws(() => resolveConfig(configFromObject({}), { listen: l, upstreams: [u] }, {}, own), (e: unknown) => {
    assert.ok(e instanceof UsageError, `${what}: ${String(e)}`);
    assert.equal(e.code, 'EINVALID', what);
    assert.equal(e.field, '--upstream', what);
    assert.match(e.message, /^--upstream: invalid value ".*": is the stub itself$/, what);
    return true;
  }, `${what} (flags): accepted`);
}

/** This host's addresses (zone ids dropped), read here independently of resolver/config.ts. */
const ownAddresses = (): string[] => Object.values(os.networkInterfaces()).flatMap((l) => l ?? []).map((a) => a.address.split('%')[0]!);

const accepted = (listen: string, upstream: string, own: readonly string[] = []): string[] =>
  hosts(resolveConfig(configFromObject({ listen: [listen], upstreams: [upstream] }), {}, {}, own));

test('a wildcard listener answers at loopback on its port: 0.0.0.0 at 127.0.0.0/8, [::] at ::1 and (dual-stack) 127.0.0.0/8; such an upstream is the stub itself', () => {
  refusedAsItself('0.0.0.0:5300', '127.0.0.1:5300');
  refusedAsItself('0.0.0.0:5300', '127.9.8.7:5300');
  refusedAsItself('0.0.0.0', '127.0.0.1'); // port 53 on both sides
  refusedAsItself('[::]:5300', '[::1]:5300');
  refusedAsItself('[::]:5300', '127.0.0.1:5300');
  refusedAsItself('[::]:5300', '[::ffff:127.0.0.1]:5300');
  // A datagram to 0.0.0.0 or :: goes to loopback (Linux): such an upstream is the stub too.
  refusedAsItself('0.0.0.0:5300', '0.0.0.0:5300');
  refusedAsItself('[::]:5300', '[::]:5300');
  refusedAsItself('127.0.0.1:5300', '0.0.0.0:5300');
  // Not the stub: another port, ::1 for an IPv4-only listener, another loopback address for a bound one.
  assert.deepEqual(accepted('0.0.0.0:5300', '127.0.0.1:53'), ['127.0.0.1:53']);
  assert.deepEqual(accepted('0.0.0.0:5300', '[::1]:5300'), ['::1:5300']);
  assert.deepEqual(accepted('127.0.0.153:53', '127.0.0.1:53'), ['127.0.0.1:53']);
});

test('a wildcard listener answers at every address of this host on its port: such an upstream is the stub itself', () => {
  const own = ['192.0.2.77', '2001:db8::77', 'fe80::77'];
  refusedAsItself('0.0.0.0:53', '192.0.2.77:53', own);
  refusedAsItself('[::]:53', '[2001:db8::77]:53', own);
  refusedAsItself('[::]:53', '[fe80::77]:53', own);
  refusedAsItself('[::]:53', '192.0.2.77:53', own);
  // Another host, another port, or an IPv6 address of ours for an IPv4-only listener: not the stub.
  assert.deepEqual(accepted('0.0.0.0:53', '192.0.2.78:53', own), ['192.0.2.78:53']);
  assert.deepEqual(accepted('[::]:53', '192.0.2.77:5353', own), ['192.0.2.77:5353']);
  assert.deepEqual(accepted('0.0.0.0:53', '[2001:db8::77]:53', own), ['2001:db8::77:53']);
  // Without `own`, resolveConfig reads this host's addresses itself.
  for (const a of ownAddresses()) {
    refusedAsItself(net.isIPv6(a) ? '[::]:5300' : '0.0.0.0:5300', hostPort(a, 5300));
  }
});

test('upstreams from resolv.conf: a nameserver a wildcard listener on port 53 answers at (loopback, this host\'s addresses) is skipped', () => {
  const conf = 'nameserver 127.0.0.1\nnameserver ::1\nnameserver 192.0.2.77\nnameserver 2001:db8::77\nnameserver 192.0.2.53\n';
  const own = ['192.0.2.77', '2001:db8::77'];
  assert.deepEqual(hosts(systemUpstreams({ resolvConf: conf }, [{ host: '0.0.0.0', port: 53 }], own)), ['::1:53', '2001:db8::77:53', '192.0.2.53:53']);
  assert.deepEqual(hosts(systemUpstreams({ resolvConf: conf }, [{ host: '::', port: 53 }], own)), ['192.0.2.53:53']);
  // Another port: the stub is not at 53, so resolv.conf's servers are upstreams.
  assert.deepEqual(hosts(systemUpstreams({ resolvConf: conf }, [{ host: '::', port: 5300 }], own)).length, 5);
  // A stub bound to 0.0.0.0:53 is what answers at 127.0.0.53:53 (resolved's stub cannot hold that port beside it).
  assert.deepEqual(hosts(systemUpstreams({ resolvConf: RESOLVED_STUB, resolvedServers: 'nameserver 192.0.2.53\n' }, [{ host: '0.0.0.0', port: 53 }], own)), []);
  // Nothing else left: the start fails as for any empty list, naming upstreams and the file.
  assert.throws(() => resolveConfig(configFromObject({ listen: ['0.0.0.0:53'] }), {}, { resolvConf: 'nameserver 127.0.0.1\n' }, own), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.field, 'upstreams');
    assert.match(e.message, /none configured and none usable in \/etc\/resolv\.conf/);
    return true;
  });
});

test('resolv.conf names systemd-resolved, and resolved forwards to an address a wildcard listener answers at: resolved\'s other servers instead (no loop)', () => {
  // On port 5353: a wildcard listener on 53 would hold 127.0.0.53:53 itself (below). resolv.conf has no ports, so any port is a loop.
  for (const [target, listen] of [['127.0.0.1', '0.0.0.0'], ['::1', '::'], ['192.0.2.77', '::']] as const) {
    const r = systemUpstreams({ resolvConf: RESOLVED_STUB, resolvedServers: `nameserver ${target}\nnameserver 192.0.2.53\n` }, [{ host: listen, port: 5353 }], ['192.0.2.77']);
    assert.deepEqual(hosts(r), ['192.0.2.53:53'], `resolved forwards to ${target}, stub on ${listen}`);
    assert.match(r.from, /systemd-resolved forwards to this stub/);
  }
});

test('a stub on 0.0.0.0 or [::] answers at loopback and at this host\'s addresses on its port: an upstream at any of them is refused as the stub itself', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q) }]);
  // Link-local addresses need a zone to be sent to; the check covers them without one (above).
  const own = ownAddresses().filter((a) => !/^fe[89ab]/i.test(a));
  const v4 = ['127.0.0.1', '127.0.0.2', ...own.filter((a) => net.isIPv4(a))];
  for (const [wild, heard] of [['0.0.0.0', v4], ['[::]', [...v4, '::1', ...own.filter((a) => net.isIPv6(a))]]] as const) {
    const stub = await startStub(t, [up.addr], { listen: [`${wild}:0`], allow: ['0.0.0.0/0', '::/0'] });
    for (const [i, host] of [...new Set(heard)].entries()) {
      const c = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
      t.after(() => c.close());
      await new Promise<void>((r) => c.bind(0, () => r()));
      const got = new Promise<dnsPacket.Packet>((r) => c.once('message', (m) => r(dnsPacket.decode(m))));
      c.send(dnsPacket.encode({ type: 'query', id: 100 + i, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'AAAA', name: 'self.example' }] }), stub.port, host);
      const ans = await within(got, `an answer from the stub on ${wild}:${stub.port} at ${host}`);
      assert.equal(ans.id, 100 + i);
      assert.equal(ans.type, 'response');
      refusedAsItself(`${wild}:${stub.port}`, hostPort(host, stub.port));
    }
  }
});

test('an upstream on port 0 is refused, naming the flag or the key (--upstream, upstreams[i] in either file); a listen address may have port 0', () => {
  const refused = (f: () => unknown, code: string, field: string): void => {
    assert.throws(f, (e: unknown) => {
      assert.ok(e instanceof UsageError, String(e));
      assert.equal(e.code, code);
      assert.equal(e.field, field);
      assert.match(e.message, /1\.\.65535/);
      return true;
    });
  };
  // shim6 resolver: --upstream (cli/commands/resolver-run.ts parses the flag so) and its file's upstreams.
  refused(() => parseHostPort('192.0.2.53:0', '--upstream', 53, 1), 'EINVALID', '--upstream');
  refused(() => configFromObject({ upstreams: ['192.0.2.53:53', '[2001:db8::53]:0'] }), 'ECONFIG', 'upstreams[1]');
  // The daemon's file.
  refused(() => validateConfig({ upstreams: ['192.0.2.53:0'] }), 'ECONFIG', 'upstreams[0]');
  // Port 0 to listen on still picks one; port 1 is an upstream's like any other.
  assert.deepEqual(configFromObject({ listen: ['127.0.0.1:0'], upstreams: ['192.0.2.53:1'] }).upstreams, [{ host: '192.0.2.53', port: 1 }]);
  assert.deepEqual(parseHostPort('127.0.0.1:0', '--listen', 53), { host: '127.0.0.1', port: 0 });
  assert.deepEqual(validateConfig({ listen: ['127.0.0.1:0'] }).listen, [{ address: '127.0.0.1', port: 0 }]);
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

test('an IPv4-mapped upstream (::ffff:a.b.c.d) is asked at its IPv4 address: the stub\'s IPv6 upstream sockets are IPv6-only', async (t) => {
  assert.deepEqual(hosts(resolveConfig(configFromObject({ upstreams: ['[::ffff:192.0.2.53]:53'] }), {})), ['192.0.2.53:53']);
  assert.deepEqual(hosts(resolveConfig(configFromObject({}), {}, { resolvConf: 'nameserver ::ffff:192.0.2.54\n' })), ['192.0.2.54:53']);
  assert.deepEqual(hosts(resolveConfig(configFromObject({}), { upstreams: [{ host: '::ffff:192.0.2.55', port: 53 }] })), ['192.0.2.55:53']);
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::4' }) }]);
  const stub = await startStub(t, [`[::ffff:127.0.0.1]:${up.port}`], { capability: { enabled: false }, queryTimeoutMs: 1000 });
  const r = await udpAsk(stub, dnsPacket.encode({ type: 'query', id: 4, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'AAAA', name: 'mapped.test' }] }), 30_000);
  assert.equal(r.raw[3]! & 0x0f, 0, 'NOERROR, not SERVFAIL at the deadline');
  assert.deepEqual(r.msg.answers?.map((a) => (a as { data?: unknown }).data), ['2001:db8::4']);
});

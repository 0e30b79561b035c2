// Who may ask the stub (config key `allow`): loopback always, others only from the listed
// prefixes. A stub listening on an address other networks reach must not be an open resolver.
// The real part: `shim6 resolver` on a veth address in a namespace of its own, real `dig` from
// an address there that is not loopback, over UDP and TCP.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ClientAcl, isLoopbackHost } from '../../resolver/client-acl.ts';
import { configFromObject } from '../../resolver/config.ts';
import { validateConfig } from '../../shim/daemon/config.ts';
import { UsageError } from '../../shim/errors.ts';
import { needs } from '../helpers/prereq.ts';
import { NetLab, type Netns } from '../helpers/netns.ts';
import { BIN } from '../helpers/cli.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { controlRequest } from '../../shim/daemon/control/client.ts';
import { digStatus } from './harness.ts';
import { waitFor } from './process.ts';
import { Endpoint } from '../../resolver/udp-socket.ts';

/** An address as the UDP socket hands it over. */
const words = (a: string): Endpoint => Endpoint.of(a, 0);

test('allow: loopback always; listed prefixes (IPv6, IPv4, a bare address); nothing else', () => {
  const none = ClientAcl.parse(undefined, 'allow');
  for (const a of ['::1', '127.0.0.1', '127.255.0.9']) assert.ok(none.allows(words(a)), a);
  for (const a of ['2001:db8::1', '192.0.2.1', '::', '::ffff:0.0.0.0', '128.0.0.1']) assert.ok(!none.allows(words(a)), a);
  const acl = ClientAcl.parse(['2001:db8:77::/48', '192.0.2.0/24', '2001:db8:99::5', '198.51.100.7'], 'allow');
  for (const a of ['2001:db8:77:ffff::1', '192.0.2.200', '2001:db8:99::5', '198.51.100.7', '::1']) assert.ok(acl.allows(words(a)), a);
  for (const a of ['2001:db8:78::1', '192.0.3.1', '2001:db8:99::6', '198.51.100.8']) assert.ok(!acl.allows(words(a)), a);
  assert.ok(acl.allowsAddress('::ffff:192.0.2.9'), 'an IPv4 client on a dual-stack socket');
  assert.ok(!acl.allowsAddress('not an address'));
  // A link-local TCP client's remoteAddress carries its zone: compared without it, never a throw.
  assert.ok(!acl.allowsAddress('fe80::2%eth0'));
  assert.ok(ClientAcl.parse(['fe80::/10'], 'allow').allowsAddress('fe80::2%eth0'));
  assert.ok(!acl.allowsAddress('fe80::2%'));
  assert.ok(ClientAcl.parse(['::/0'], 'allow').allows(words('2001:db8::1')), '::/0: everyone (an open resolver, on purpose)');
  for (const h of ['127.0.0.153', '::1', '127.0.0.1']) assert.ok(isLoopbackHost(h), h);
  for (const h of ['::', '0.0.0.0', '2001:db8::1', '192.0.2.1']) assert.ok(!isLoopbackHost(h), h);
});

test('allow: bad entries name the key and the index, in both configuration files', () => {
  for (const bad of [['2001:db8::/129'], ['192.0.2.0/33'], ['example.com'], ['2001:db8::/4/4'], ['10.0.0.0/-1'], [5], '2001:db8::/32', ['fe80::1%eth0'], ['fe80::%eth0/64']]) {
    assert.throws(() => configFromObject({ allow: bad }), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && /^allow/.test(e.field ?? ''), JSON.stringify(bad));
    assert.throws(() => validateConfig({ allow: bad }), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && /^allow/.test(e.field ?? ''), JSON.stringify(bad));
  }
  assert.deepEqual(configFromObject({ allow: ['2001:db8::/32'] }).listener.allow, ['2001:db8::/32']);
  assert.deepEqual(validateConfig({}).allow, []);
});

interface Lab { net: NetLab; ns: Netns; dir: string }

function lab(t: TestContext): Lab {
  const net = new NetLab(t);
  const ns = net.ns('acl');
  net.run(ns, ['ip', 'link', 'add', 'acl0', 'type', 'veth', 'peer', 'name', 'acl1']);
  for (const dev of ['acl0', 'acl1']) net.run(ns, ['ip', 'link', 'set', dev, 'up']);
  net.addr(ns, 'acl0', '2001:db8:77::1/64');
  net.addr(ns, 'acl0', '2001:db8:77::2/64');
  net.addr(ns, 'acl0', '2001:db8:77::3/64');
  return { net, ns, dir: tmpdir(t) };
}

/** `shim6 resolver` on `listen` ([2001:db8:77::1]:53) in the lab's namespace, with `allow` in its file. */
async function stub(t: TestContext, l: Lab, allow: string[] | undefined, listen = '[2001:db8:77::1]:53', udp = 'auto'): Promise<{ sock: string; stop: () => Promise<void> }> {
  const config = path.join(l.dir, `resolver-${allow ? 'allow' : 'none'}-${udp}.yaml`);
  writeFileSync(config, JSON.stringify({ listen: [listen], upstreams: ['[::1]:9'], udp, ...(allow ? { allow } : {}) }));
  const sock = path.join(l.dir, `control-${allow ? 'allow' : 'none'}-${udp}.sock`);
  const child = l.net.spawn(l.ns, [process.execPath, BIN, 'resolver', '--config', config, '--no-engine', '--socket', sock]);
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  t.after(() => { child.kill('SIGTERM'); });
  assert.ok(await waitFor(() => stderr.includes('resolver ready') || child.exitCode !== null), stderr);
  assert.match(stderr, /resolver ready/, stderr);
  const exited = new Promise<void>((r) => { if (child.exitCode !== null) r(); else child.once('exit', () => r()); });
  return { sock, stop: () => { child.kill('SIGTERM'); return exited; } };
}

/** dig in the lab from `source`: the status line's code, or the whole output when there is none. */
function ask(l: Lab, source: string, transport: '+notcp' | '+tcp'): string {
  // EDNS version 1: the stub answers BADVERS itself (RFC 6891 §6.1.3), so no upstream is needed.
  const r = l.net.tryRun(l.ns, ['dig', '@2001:db8:77::1', '-b', source, '+edns=1', '+noednsneg', '+tries=1', '+time=5', transport, 'peer.example.', 'AAAA'], { timeoutMs: 60_000 });
  return digStatus(r.stdout) ?? `no status: ${r.stdout}${r.stderr}`;
}

async function notAllowed(sock: string): Promise<number> {
  const s = (await controlRequest(sock, 'status')) as { resolver: { counters: Record<string, number> } };
  return s.resolver.counters.notAllowed ?? -1;
}

test('a stub on an address other networks reach answers loopback, refuses others (UDP: REFUSED, TCP: closed), and answers the prefixes of allow', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'dig'] })) return;
  const l = lab(t);
  const closed = await stub(t, l, undefined);
  assert.equal(ask(l, '::1', '+notcp'), 'BADVERS', 'loopback is always allowed');
  assert.equal(ask(l, '2001:db8:77::2', '+notcp'), 'REFUSED');
  assert.match(ask(l, '2001:db8:77::2', '+tcp'), /^no status/, 'the TCP connection is closed');
  assert.equal(await notAllowed(closed.sock), 2);
  await closed.stop();
  // The same stub with allow naming one host: that host is answered, its neighbour still refused.
  const open = await stub(t, l, ['2001:db8:77::2/128']);
  assert.equal(ask(l, '2001:db8:77::2', '+notcp'), 'BADVERS');
  assert.equal(ask(l, '2001:db8:77::2', '+tcp'), 'BADVERS');
  assert.equal(ask(l, '2001:db8:77::3', '+notcp'), 'REFUSED');
  assert.equal(await notAllowed(open.sock), 1);
});

test('a TCP client from a link-local address (its remoteAddress zoned, fe80::2%acl1) to a stub on [::]:53 is refused, and the stub lives on', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'dig', 'python3'] })) return;
  const l = lab(t);
  l.net.addr(l.ns, 'acl0', 'fe80::1/64');
  l.net.addr(l.ns, 'acl1', 'fe80::2/64');
  const s = await stub(t, l, undefined, '[::]:53');
  // One TCP connection from fe80::2 on acl1 to fe80::1 port 53, held open a moment; nothing sent.
  const py = 'import socket,time\n'
    + 'i=socket.if_nametoindex("acl1")\n'
    + 's=socket.socket(socket.AF_INET6)\n'
    + 's.bind(("fe80::2",0,0,i))\n'
    + 's.connect(("fe80::1",53,0,i))\n'
    + 'time.sleep(0.3)\n';
  const r = l.net.tryRun(l.ns, ['python3', '-c', py], { timeoutMs: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  const d = l.net.tryRun(l.ns, ['dig', '@::1', '+edns=1', '+noednsneg', '+tries=1', '+time=5', 'peer.example.', 'AAAA'], { timeoutMs: 60_000 });
  assert.equal(digStatus(d.stdout), 'BADVERS', `the stub still answers: ${d.stdout}${d.stderr}`);
  assert.equal(await notAllowed(s.sock), 1, 'the link-local client was refused and counted');
});

test('a UDP client from a link-local address (fe80::2%acl1) to a stub on [::]:53 is answered on its link (REFUSED when not allowed), and the stub lives on', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'dig', 'python3'] })) return;
  const l = lab(t);
  l.net.addr(l.ns, 'acl0', 'fe80::1/64');
  l.net.addr(l.ns, 'acl1', 'fe80::2/64');
  // One query from fe80::2 on acl1 (dig cannot bind a zoned source): EDNS version 1, which the stub
  // answers itself (BADVERS, RFC 6891 §6.1.3); the extended RCODE is printed, or "none" after 5 s.
  const py = 'import socket\n'
    + 'i=socket.if_nametoindex("acl1")\n'
    + 's=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\n'
    + 's.bind(("fe80::2",0,0,i))\n'
    + 's.settimeout(5)\n'
    + 'q=bytes.fromhex("1234010000010000000000010470656572076578616d706c6500001c00010000290000000100000000")\n'
    + 's.sendto(q,("fe80::1",53,0,i))\n'
    + 'try:\n'
    + '  a=s.recv(4096)\n'
    + '  print((a[-6]<<4)|(a[3]&15))\n'
    + 'except socket.timeout:\n'
    + '  print("none")\n';
  // Native only: a link-local client reaches a stub only on a wildcard address (a listen address
  // takes no zone), and dgram is refused there (below).
  for (const [udp, allow, rcode] of [['native', ['fe80::/10'], '16'], ['native', undefined, '5']] as const) {
    const s = await stub(t, l, allow && [...allow], '[::]:53', udp);
    const r = l.net.tryRun(l.ns, ['python3', '-c', py], { timeoutMs: 30_000 });
    assert.equal(r.stdout.trim(), rcode, `${udp}, allow ${String(allow)}: the link-local client gets ${rcode === '5' ? 'REFUSED' : 'BADVERS'}: ${r.stdout}${r.stderr}`);
    const d = l.net.tryRun(l.ns, ['dig', '@::1', '+edns=1', '+noednsneg', '+tries=1', '+time=5', 'peer.example.', 'AAAA'], { timeoutMs: 60_000 });
    assert.equal(digStatus(d.stdout), 'BADVERS', `${udp}: the stub still answers: ${d.stdout}${d.stderr}`);
    await s.stop();
  }
});

test('a stub on [::]:53 (native UDP) answers a client on another host over UDP from the address it was asked at, IPv6 and IPv4', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip', 'dig'] })) return;
  const l = lab(t);
  // The client is another host on the stub host's link. The stub's host has two addresses of each
  // family there; for a datagram to the client the kernel picks ::11 (::2 is deprecated, as after
  // a renumbering: RFC 6724 rule 3) and 192.0.2.11 (the primary) as its source.
  const client = l.net.ns('aclc');
  l.net.veth(l.ns, 'aclv0', client, 'aclv1');
  l.net.addr(l.ns, 'aclv0', '2001:db8:78::11/64');
  l.net.run(l.ns, ['ip', '-6', 'addr', 'add', '2001:db8:78::2/64', 'dev', 'aclv0', 'nodad', 'preferred_lft', '0']);
  l.net.run(l.ns, ['ip', '-4', 'addr', 'add', '192.0.2.11/24', 'dev', 'aclv0']);
  l.net.run(l.ns, ['ip', '-4', 'addr', 'add', '192.0.2.2/24', 'dev', 'aclv0']);
  l.net.addr(client, 'aclv1', '2001:db8:78::10/64');
  l.net.run(client, ['ip', '-4', 'addr', 'add', '192.0.2.10/24', 'dev', 'aclv1']);
  // dgram has no IPV6_PKTINFO: its answers leave from the kernel's pick (docs/resolver.md "Behaviour that differs").
  await stub(t, l, ['2001:db8:78::/64', '192.0.2.0/24'], '[::]:53', 'native');
  for (const server of ['2001:db8:78::2', '192.0.2.2', '2001:db8:78::11', '192.0.2.11']) {
    // EDNS version 1: answered by the stub itself (BADVERS); dig takes an answer only from the address it asked.
    const r = l.net.tryRun(client, ['dig', `@${server}`, '+edns=1', '+noednsneg', '+tries=1', '+time=5', 'peer.example.', 'AAAA'], { timeoutMs: 60_000 });
    assert.equal(digStatus(r.stdout), 'BADVERS', `asked at ${server}: ${r.stdout}${r.stderr}`);
  }
});

// dgram has no IPV6_PKTINFO: on a wildcard listener its answer left from the address the kernel
// picked for the client, and a client that had asked another address of the host (a second one on
// the link, 127.0.0.153 beside 127.0.0.1) dropped it: dig timed out. Refused at start instead.
test('a stub on a wildcard address ([::], 0.0.0.0) with the dgram UDP backend is refused at start (EUDPBACKEND naming the address)', { timeout: 180_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['ip'] })) return;
  const l = lab(t);
  const run = async (args: string[]): Promise<{ code: number | null; stderr: string }> => {
    const child = l.net.spawn(l.ns, [process.execPath, BIN, 'resolver', '--no-engine', '--upstream', '[::1]:9', '--socket', path.join(l.dir, 'dgram.sock'), ...args]);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
    await waitFor(() => stderr.includes('resolver ready') || child.exitCode !== null);
    child.kill('SIGTERM');
    await new Promise<void>((r) => { if (child.exitCode !== null || child.signalCode !== null) r(); else child.once('exit', () => r()); });
    return { code: child.exitCode, stderr };
  };
  const config = path.join(l.dir, 'dgram-wild.yaml');
  writeFileSync(config, JSON.stringify({ listen: ['[2001:db8:77::1]:53', '0.0.0.0:53'], udp: 'dgram' }));
  for (const [args, address] of [[['--udp', 'dgram', '--listen', '[::]:53'], '[::]:53'], [['--config', config], '0.0.0.0:53']] as const) {
    const r = await run([...args]);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^shim6: error EUDPBACKEND: listen ${address.replace(/[[\].]/g, '\\$&')}: a wildcard address needs the native UDP backend`, 'm'), r.stderr);
    assert.doesNotMatch(r.stderr, /resolver ready/);
  }
  // The addresses themselves, on dgram: served.
  const ok = await run(['--udp', 'dgram', '--listen', '[2001:db8:77::1]:53', '--listen', '[2001:db8:77::2]:53']);
  assert.match(ok.stderr, /resolver ready/, ok.stderr);
});

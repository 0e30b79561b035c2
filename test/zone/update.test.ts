// `zone update` against real Knot and BIND with a TSIG key: one signed RFC 2136
// update replaces the capability RR, the AAAA RRset and the TXT fallback (kdig
// sees the change); a wrong secret, an unknown key and a zone the server does
// not have are refused and reported by their code.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, startAuthDns, type AuthDnsKind } from '../helpers/authdns.ts';
import { shim6Async, shim6BadStdout, tempDir, writeZone, zoneHeader } from './zonefile.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { hostZoneLines } from '../../zone-tools/zone-lines.ts';
import { sendUpdate } from '../../zone-tools/update.ts';
import { TransportError } from '../../zone-tools/dns-transport.ts';
import { parseTsigKeyFile } from '../../zone-tools/tsig-key.ts';
import { encodeCapabilityRecord } from '../../shim/wire/capability-record.ts';
import { ProtocolError } from '../../shim/errors.ts';
import { DnsFormatError } from '../../zone-tools/dns-message.ts';

const Z = 'upd.test.';
const OLD = buildHostRecord({ name: 'h.upd.test.', ulid: '2001:db8:1::1', locators: ['2001:db8:1::1', '2001:db8:9::1'] });

function kdig(port: number, args: string[]): string[] {
  const r = spawnSync('kdig', ['@127.0.0.1', '-p', String(port), ...args, '+short', '+timeout=10', '+retry=1'], { encoding: 'utf8', timeout: 60_000 });
  return String(r.stdout).trim().split('\n').filter((l) => l !== '').sort();
}

function rdataOf(port: number, name: string): string {
  return (kdig(port, [name, 'TYPE65300'])[0] ?? '').replace(/^\\# \d+ /, '').replace(/ /g, '').toLowerCase();
}

/** Key files in the three accepted spellings. */
function keyFiles(dir: string, name: string, secret: string): { bind: string; knot: string; colon: string } {
  return {
    bind: writeZone(dir, 'bind.key', `// tsig-keygen ${name}\nkey "${name}" {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`),
    knot: writeZone(dir, 'knot.key', `# keymgr -t ${name}\nkey:\n  - id: ${name}\n    algorithm: hmac-sha256\n    secret: ${secret}\n`),
    colon: writeZone(dir, 'colon.key', `hmac-sha256:${name}:${secret}\n`),
  };
}

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`zone update against ${kind}: the record changes atomically; wrong keys are refused`, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const dir = tempDir(t);
    const secret = randomTsigSecret();
    const dns = await startAuthDns({ server: kind, zones: [{ name: Z, text: zoneHeader(Z) + hostZoneLines(OLD).join('\n') + '\n' }], tsig: { name: 'upd-key.', secret }, allowUpdate: true });
    t.after(() => dns.stop());
    const keys = keyFiles(dir, 'upd-key', secret);
    const wrong = writeZone(dir, 'wrong.key', `upd-key:${randomTsigSecret()}\n`);
    const unknown = writeZone(dir, 'unknown.key', `no-such-key:${secret}\n`);
    assert.deepEqual(kdig(dns.port, ['h.upd.test.', 'AAAA']), ['2001:db8:1::1', '2001:db8:9::1']);

    const server = `127.0.0.1:${dns.port}`;
    const rec = ['--name', 'h.upd.test.', '--ulid', '2001:db8:1::1', '--locator', '2001:db8:1::1/0/10', '--locator', '2001:db8:2::1/1/5'];
    const ok = await shim6Async(['zone', 'update', '--server', server, '--zone', Z, '--key', kind === 'knot' ? keys.knot : keys.bind, ...rec, '--txt', '--ttl', '120']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^updated h\.upd\.test\. in upd\.test\. at 127\.0\.0\.1:\d+: NOERROR \(answer signed by upd-key\., verified\)/);

    const NEW = buildHostRecord({ name: 'h.upd.test.', ulid: '2001:db8:1::1', locators: ['2001:db8:1::1/0/10', '2001:db8:2::1/1/5'] });
    assert.equal(rdataOf(dns.port, 'h.upd.test.'), Buffer.from(encodeCapabilityRecord(NEW.record)).toString('hex'));
    assert.deepEqual(kdig(dns.port, ['h.upd.test.', 'AAAA']), ['2001:db8:1::1', '2001:db8:2::1'], 'the old AAAA 2001:db8:9::1 is gone');
    assert.match(kdig(dns.port, ['_shim6.h.upd.test.', 'TXT'])[0] ?? '', /^"v=shim6cap1 b64=/);

    // Wrong secret, unknown key name, a zone the server does not serve: refused, nothing changes.
    const before = rdataOf(dns.port, 'h.upd.test.');
    const other = ['--name', 'h.upd.test.', '--ulid', '2001:db8:1::1', '--locator', '2001:db8:7::1'];
    const [badSig, badKey, notZone] = await Promise.all([
      shim6Async(['zone', 'update', '--server', server, '--zone', Z, '--key', wrong, ...other]),
      shim6Async(['zone', 'update', '--server', server, '--zone', Z, '--key', unknown, ...other]),
      shim6Async(['zone', 'update', '--server', server, '--zone', 'test.', '--key', keys.colon, ...other.map((a) => a.replace('h.upd.test.', 'h.test.'))]),
    ]);
    assert.equal(badSig.status, 1, badSig.stderr);
    assert.match(badSig.stderr, /^shim6: error ETSIG_BADSIG: update of h\.upd\.test\. refused by 127\.0\.0\.1:\d+: NOTAUTH, TSIG BADSIG/);
    assert.equal(badKey.status, 1, badKey.stderr);
    assert.match(badKey.stderr, /^shim6: error ETSIG_BADKEY: .*NOTAUTH, TSIG BADKEY/);
    assert.equal(notZone.status, 1, notZone.stderr);
    assert.match(notZone.stderr, /^shim6: error EDNS_NOTAUTH: /);
    assert.equal(rdataOf(dns.port, 'h.upd.test.'), before);

    // The in-process API reports the same by code.
    await assert.rejects(
      sendUpdate({ host: '::1', port: dns.port }, Z, NEW, parseTsigKeyFile(`upd-key:${randomTsigSecret()}`, 'inline')),
      (e: unknown) => e instanceof ProtocolError && e.code === 'ETSIG_BADSIG',
    );
    const res = await sendUpdate({ host: '::1', port: dns.port }, Z, OLD, parseTsigKeyFile(`upd-key:${secret}`, 'inline'), { tcp: true });
    assert.deepEqual(res, { rcode: 0, rcodeName: 'NOERROR', verified: true });
    assert.deepEqual(kdig(dns.port, ['h.upd.test.', 'AAAA']), ['2001:db8:1::1', '2001:db8:9::1']);
    assert.deepEqual(kdig(dns.port, ['_shim6.h.upd.test.', 'TXT']), [], 'no --txt: the stale TXT fallback is removed');
  });
}

test('zone update --from-host publishes the addresses of a real interface', async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig', 'ip'] })) return;
  const ifname = 'zone-v0';
  const ip = (...args: string[]): void => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    assert.equal(r.status, 0, `ip ${args.join(' ')}: ${r.stderr}`);
  };
  spawnSync('ip', ['link', 'del', ifname], { stdio: 'ignore' });
  ip('link', 'add', ifname, 'type', 'veth', 'peer', 'name', 'zone-v1');
  t.after(() => { spawnSync('ip', ['link', 'del', ifname], { stdio: 'ignore' }); });
  ip('link', 'set', ifname, 'up');
  ip('link', 'set', 'zone-v1', 'up'); // libuv lists only running interfaces: the peer must be up too
  ip('-6', 'addr', 'add', '2001:db8:77::5/64', 'dev', ifname, 'nodad');
  ip('-6', 'addr', 'add', '2001:db8:78::5/64', 'dev', ifname, 'nodad');
  const secret = randomTsigSecret();
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: Z, text: zoneHeader(Z) }], tsig: { name: 'k.', secret }, allowUpdate: true });
  t.after(() => dns.stop());
  const key = writeZone(tempDir(t), 'k.key', `k:${secret}\n`);
  const r = await shim6Async(['zone', 'update', '--server', `127.0.0.1:${dns.port}`, '--zone', Z, '--key', key, '--name', 'me.upd.test.', '--from-host', '--interface', ifname]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(kdig(dns.port, ['me.upd.test.', 'AAAA']), ['2001:db8:77::5', '2001:db8:78::5']);
  const show = await shim6Async(['zone', 'show', 'me.upd.test.', '--server', `127.0.0.1:${dns.port}`, '--expect-locator', '2001:db8:78::5', '--expect-locator', '2001:db8:77::5']);
  assert.equal(show.status, 0, show.stderr);
  assert.match(show.stdout, /ulid=2001:db8:7[78]::5/);
  assert.ok(path.isAbsolute(key));
});

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`zone update against ${kind}: a CNAME owner or a name below a delegation is refused, nothing sent`, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const secret = randomTsigSecret();
    const text = zoneHeader(Z) + hostZoneLines(OLD).join('\n') + '\nalias IN CNAME h\nsub IN NS ns.sub\nns.sub IN AAAA 2001:db8::54\n';
    const dns = await startAuthDns({ server: kind, zones: [{ name: Z, text }], tsig: { name: 'k.', secret }, allowUpdate: true });
    t.after(() => dns.stop());
    const key = writeZone(tempDir(t), 'k.key', `k:${secret}\n`);
    const upd = (name: string): Promise<{ status: number | null; stdout: string; stderr: string }> => shim6Async(['zone', 'update', '--server', `127.0.0.1:${dns.port}`, '--zone', Z,
      '--key', key, '--name', name, '--ulid', '2001:db8:1::5', '--locator', '2001:db8:1::5', '--txt']);
    const [alias, below, at] = await Promise.all([upd('alias.upd.test.'), upd('h.sub.upd.test.'), upd('sub.upd.test.')]);
    assert.equal(alias.status, 1, alias.stderr);
    assert.match(alias.stderr, /^shim6: error EDNS_CNAME: alias\.upd\.test\. is an alias \(CNAME\) at 127\.0\.0\.1:\d+: .*nothing sent\n$/);
    assert.equal(alias.stdout, '');
    for (const r of [below, at]) {
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, /^shim6: error EDNS_DELEGATED: (h\.)?sub\.upd\.test\. is at or below the delegation sub\.upd\.test\. \(NS\) in zone upd\.test\. .*nothing sent\n$/);
    }
    // Nothing reached the zone: the old code's update added the TXT (the one thing a server keeps there).
    assert.deepEqual(kdig(dns.port, ['_shim6.alias.upd.test.', 'TXT']), []);
    assert.deepEqual(kdig(dns.port, ['_shim6.h.sub.upd.test.', 'TXT', '+norecurse']).filter((l) => l.startsWith('"')), []);
    // An ordinary name still updates.
    const ok = await upd('h.upd.test.');
    assert.equal(ok.status, 0, ok.stderr);
    // Applied, then stdout fails: one line that says the update was applied.
    const full = await shim6BadStdout(['zone', 'update', '--server', `127.0.0.1:${dns.port}`, '--zone', Z, '--key', key, '--name', 'h.upd.test.', '--ulid', '2001:db8:1::6', '--locator', '2001:db8:1::6'], 'full');
    assert.equal(full.status, 1, full.stderr);
    assert.match(full.stderr, /^shim6: error ENOSPC: cannot write to stdout .*; the update of h\.upd\.test\. in upd\.test\. was applied \(NOERROR, verified\)\n$/);
    assert.deepEqual(kdig(dns.port, ['h.upd.test.', 'AAAA']), ['2001:db8:1::6']);
  });
}

test('an update with no answer (UDP timeout) says it may or may not have been applied', async (t) => {
  // A server that takes every datagram and never answers.
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  t.after(() => sock.close());
  let got = 0;
  sock.on('message', () => { got++; });
  const port = sock.address().port;
  await assert.rejects(
    sendUpdate({ host: '127.0.0.1', port }, Z, OLD, parseTsigKeyFile(`k:${randomTsigSecret()}`, 'inline'), { timeoutMs: 100, tries: 2 }),
    (e: unknown) => e instanceof TransportError && e.code === 'ETIMEOUT'
      && new RegExp(`^no answer from 127\\.0\\.0\\.1:${port} after 2 tries of 100 ms: the update of h\\.upd\\.test\\. may or may not have been applied: check with \`shim6 zone show h\\.upd\\.test\\. --server 127\\.0\\.0\\.1:${port}\`$`).test(e.message),
  );
  assert.equal(got, 2, 'both tries reached the server: either could have been applied');
});

/** A UDP server on 127.0.0.1 that answers every datagram with `answer(query)`; counts what it got. */
async function udpServer(t: TestContext, answer: (q: Buffer) => Buffer): Promise<{ port: number; got: () => number }> {
  const sock = createSocket('udp4');
  let got = 0;
  sock.on('message', (m, r) => { got++; sock.send(answer(m), r.port, r.address); });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  t.after(() => sock.close());
  return { port: sock.address().port, got: () => got };
}

test('an update that reached the server is never "nothing was sent": a TC answer then no TCP, a malformed answer, are in doubt', async (t) => {
  const key = parseTsigKeyFile(`k:${randomTsigSecret()}`, 'inline');
  const inDoubt = (port: number): RegExp => new RegExp(`: the update of h\\.upd\\.test\\. may or may not have been applied: check with \`shim6 zone show h\\.upd\\.test\\. --server 127\\.0\\.0\\.1:${port}\`$`);
  // TC set, and nothing listens on that TCP port: the old code said ECONNECT, which the docs call "nothing was sent".
  const tc = await udpServer(t, (q) => { const a = Buffer.from(q.subarray(0, 12)); a[2] = a[2]! | 0x82; a.fill(0, 4, 12); return a; });
  await assert.rejects(sendUpdate({ host: '127.0.0.1', port: tc.port }, Z, OLD, key, { timeoutMs: 2000 }),
    (e: unknown) => e instanceof TransportError && e.code === 'ECONNECT' && e.mayHaveArrived && /after a truncated UDP answer/.test(e.message) && inDoubt(tc.port).test(e.message));
  assert.equal(tc.got(), 1, 'the server received the update');
  // Our ID, then an answer count with no answer: DnsFormatError (it was thrown as it was, saying nothing of the update).
  const bad = await udpServer(t, (q) => { const a = Buffer.from(q.subarray(0, 12)); a[2] = 0xa8; a[3] = 0; a.fill(0, 4, 12); a[7] = 1; return a; });
  await assert.rejects(sendUpdate({ host: '127.0.0.1', port: bad.port }, Z, OLD, key, { timeoutMs: 2000 }),
    (e: unknown) => e instanceof DnsFormatError && /answered the update with a malformed message/.test(e.message) && inDoubt(bad.port).test(e.message));
  // A TSIG RR whose RDATA is cut short: decodeTsigRdata's DnsFormatError, likewise.
  const badTsig = await udpServer(t, (q) => {
    const a = Buffer.concat([q.subarray(0, 12), Buffer.from([1, 0x6b, 0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 2, 0, 0])]);
    a[2] = 0xa8; a[3] = 0; a.fill(0, 4, 12); a[11] = 1;
    return a;
  });
  await assert.rejects(sendUpdate({ host: '127.0.0.1', port: badTsig.port }, Z, OLD, key, { timeoutMs: 2000 }),
    (e: unknown) => e instanceof DnsFormatError && /TSIG/.test(e.message) && inDoubt(badTsig.port).test(e.message));
  // Nothing can have arrived: no TCP connection (--tcp) is still "nothing was sent", without the warning.
  await assert.rejects(sendUpdate({ host: '127.0.0.1', port: tc.port }, Z, OLD, key, { tcp: true, timeoutMs: 2000 }),
    (e: unknown) => e instanceof TransportError && e.code === 'ECONNECT' && !e.mayHaveArrived && !/may or may not/.test(e.message));
});

test('zone update against knot: a key that no ACL of the zone grants is BADKEY, and the message says so', async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  const secret = randomTsigSecret();
  // The key is known to the server (tsig) but no ACL allows it to update (allowUpdate off).
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: Z, text: zoneHeader(Z) }], tsig: { name: 'k.', secret } });
  t.after(() => dns.stop());
  const key = writeZone(tempDir(t), 'k.key', `k:${secret}\n`);
  const r = await shim6Async(['zone', 'update', '--server', `127.0.0.1:${dns.port}`, '--zone', Z, '--key', key, '--name', 'h.upd.test.', '--ulid', '2001:db8:1::1', '--locator', '2001:db8:1::1']);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /^shim6: error ETSIG_BADKEY: .*NOTAUTH, TSIG BADKEY: the server does not know this key name or algorithm, or no ACL of this zone allows updates with this key \(key k\.\)\n$/);
});

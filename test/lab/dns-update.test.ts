// The daemon's dnsUpdate (issue 18) against real Knot and BIND with a TSIG key:
// a locator set change is published in one signed RFC 2136 update (capability
// record and, when asked, the AAAA RRset; kdig sees it); a server that stops
// answering for a while (SIGSTOP) is retried with back-off and gets the newest
// set when it answers again (SIGCONT); the failures are in the status and the
// log; a refusal is reported with the server's RCODE; updates never start
// closer together than minInterval.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { randomTsigSecret, startAuthDns, type AuthDnsKind, kdigShort, recordLocators } from '../helpers/authdns.ts';
import { tempDir, writeZone, zoneHeader } from '../zone/zonefile.ts';
import { waitFor } from '../helpers/wait.ts';
import { Logger } from '../../shim/log.ts';
import { DnsPublisher, type DnsUpdateConfig } from '../../shim/daemon/dns-update.ts';
import { decodeCapabilityRecord } from '../../shim/wire/capability-record.ts';
import { LAB_HBA } from '../../lab/hba.ts';

const Z = 'dyn.test.';
const NAME = 'a.dyn.test.';
const ULID = LAB_HBA.a.members[0]!.address;
const Q = LAB_HBA.a.members[1]!.address;
const R = '2001:db8:3::a';
const T = '2001:db8:2::77';

/** The locators of the capability record kdig sees now ([] when none). */
const published = (port: number): string[] => recordLocators(kdigShort(port, [NAME, 'TYPE65300'])[0]);

function logger(): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  return { log: new Logger({ format: 'json', sink: { write: (l) => lines.push(JSON.parse(l) as Record<string, unknown>) } }), lines };
}

async function server(t: TestContext, kind: AuthDnsKind) {
  const dir = tempDir(t);
  const secret = randomTsigSecret();
  const dns = await startAuthDns({ server: kind, zones: [{ name: Z, text: zoneHeader(Z) }], tsig: { name: 'dyn-key.', secret }, allowUpdate: true });
  t.after(() => dns.stop());
  const key = writeZone(dir, 'dyn.key', `key "dyn-key." {\n\talgorithm hmac-sha256;\n\tsecret "${secret}";\n};\n`);
  const wrong = writeZone(dir, 'wrong.key', `key "dyn-key." {\n\talgorithm hmac-sha256;\n\tsecret "${randomTsigSecret()}";\n};\n`);
  const cfg = (extra: Partial<DnsUpdateConfig> = {}): DnsUpdateConfig => ({ server: `127.0.0.1:${dns.port}`, zone: Z, name: NAME, key, keyName: undefined, minInterval: 1, aaaa: true, ttl: 60, ...extra });
  return { dns, cfg, wrong };
}

for (const kind of ['knot', 'bind'] as AuthDnsKind[]) {
  test(`dnsUpdate against ${kind}: a new locator set is published in one signed update; a server down for a while gets the newest set when it is back`, { timeout: 180_000 }, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const { dns, cfg } = await server(t, kind);
    const { log, lines } = logger();
    const p = new DnsPublisher(cfg(), { ulid: ULID, hba: LAB_HBA.a, cgaUlid: true }, log);
    t.after(() => p.stop());

    let t0 = Date.now();
    p.update([ULID, Q]);
    await waitFor(() => published(dns.port).join() === [ULID, Q].join(), 'the first set in DNS');
    t.diagnostic(`first set visible after ${Date.now() - t0} ms`);
    assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), [ULID, Q].sort());
    const rec = decodeCapabilityRecord(new Uint8Array(Buffer.from(kdigShort(dns.port, [NAME, 'TYPE65300'])[0]!.replace(/^\\# \d+ /, '').replace(/ /g, ''), 'hex')));
    assert.equal(rec.ulid, ULID);
    assert.equal(rec.hbaSet, true);
    assert.equal(rec.cgaUlid, true);

    // A new prefix appears: the record (and AAAA) follow.
    t0 = Date.now();
    p.update([ULID, Q, R]);
    await waitFor(() => published(dns.port).join() === [ULID, Q, R].join(), 'the new prefix in DNS');
    t.diagnostic(`new prefix visible after ${Date.now() - t0} ms`);
    assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), [ULID, Q, R].sort());
    await waitFor(() => p.status().state === 'idle', 'the publisher settles');

    // The server stops answering; two changes meanwhile; then it answers again.
    assert.ok(dns.pid !== undefined);
    process.kill(dns.pid, 'SIGSTOP');
    let paused = true;
    t.after(() => { if (paused) process.kill(dns.pid!, 'SIGCONT'); });
    p.update([Q, R]);
    await waitFor(() => p.status().failures >= 2, 'two failed attempts while the server is down');
    p.update([Q, R, T]);
    const down = p.status();
    assert.equal(down.state, 'failing');
    assert.equal(down.lastError?.code, 'ETIMEOUT');
    assert.deepEqual(down.published, [ULID, Q, R], 'DNS still has the last set that got through');
    assert.ok(lines.some((l) => l.msg === 'dns update failed' && l.code === 'ETIMEOUT'), 'the failure is logged');
    process.kill(dns.pid, 'SIGCONT');
    paused = false;
    await waitFor(() => published(dns.port).join() === [Q, R, T].join(), 'the newest set once the server is back');
    await waitFor(() => p.status().state === 'idle', 'the publisher settles');
    const up = p.status();
    assert.equal(up.lastError, null);
    assert.deepEqual(up.published, [Q, R, T]);
    t.diagnostic(`updates ${up.updates}, failures ${up.failures}`);
    // Back-off: the retries while down were spaced out, never faster than minInterval.
    const failed = lines.filter((l) => l.msg === 'dns update failed');
    t.diagnostic(`failures: ${failed.map((l) => `${String(l.code)} retry ${String(l.retryInMs)} ms`).join(', ')}`);
    const tries = failed.map((l) => Number(l.retryInMs));
    assert.ok(tries.every((x, i) => x >= 1000 && (i === 0 || x >= tries[i - 1]!)), `retries back off: ${tries.join(', ')}`);
  });

  test(`dnsUpdate against ${kind}: a refused update is reported with the RCODE and retried; minInterval spaces updates`, { timeout: 120_000 }, async (t) => {
    if (!needs(t, { root: true, commands: [kind === 'knot' ? 'knotd' : 'named', 'kdig'] })) return;
    const { dns, cfg, wrong } = await server(t, kind);
    const bad = logger();
    const refused = new DnsPublisher(cfg({ key: wrong }), { ulid: ULID, hba: LAB_HBA.a, cgaUlid: true }, bad.log);
    t.after(() => refused.stop());
    refused.update([ULID, Q]);
    await waitFor(() => refused.status().failures >= 1, 'the refusal');
    const e = refused.status().lastError!;
    assert.equal(e.rcode, 'NOTAUTH');
    assert.equal(e.code, 'ETSIG_BADSIG');
    assert.ok(bad.lines.some((l) => l.msg === 'dns update failed' && l.rcode === 'NOTAUTH'), 'logged with the RCODE');
    assert.deepEqual(published(dns.port), []);
    refused.stop();

    const good = logger();
    const p = new DnsPublisher(cfg({ minInterval: 2, aaaa: false }), { ulid: ULID, hba: undefined, cgaUlid: false }, good.log);
    t.after(() => p.stop());
    p.update([ULID]);
    await waitFor(() => good.lines.filter((l) => l.msg === 'dns updated').length >= 1, 'the first update');
    p.update([ULID, Q]);
    p.update([ULID, Q, R]); // merged with the one before: only the newest set is sent
    await waitFor(() => published(dns.port).join() === [ULID, Q, R].join(), 'the newest set');
    await waitFor(() => p.status().state === 'idle', 'the publisher settles');
    const done = good.lines.filter((l) => l.msg === 'dns updated');
    assert.equal(done.length, 2, 'two changes in a burst went as one update');
    // minInterval spaces the updates' starts (each line: its end, and `ms` it took).
    const startOf = (l: Record<string, unknown>): number => Date.parse(String(l.ts)) - Number(l.ms);
    assert.ok(startOf(done[1]!) - startOf(done[0]!) >= 2000 - 5, `not sooner than minInterval after the first: ${startOf(done[1]!) - startOf(done[0]!)} ms`);
    assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), [], 'aaaa: false leaves the AAAA RRset alone');
  });
}

test('dnsUpdate against knot: a host with more usable addresses than a record holds publishes the first 32, and says so', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  const { dns, cfg } = await server(t, 'knot');
  const { log, lines } = logger();
  const p = new DnsPublisher(cfg(), { ulid: ULID, hba: undefined, cgaUlid: false }, log);
  t.after(() => p.stop());
  const many = [ULID, ...Array.from({ length: 39 }, (_, i) => `2001:db8:40:${(i + 1).toString(16)}::1`)];
  p.update(many);
  await waitFor(() => p.status().state === 'idle' || p.status().failures > 0, 'the update settles');
  assert.equal(p.status().failures, 0, JSON.stringify(p.status().lastError));
  assert.deepEqual(published(dns.port), many.slice(0, 32));
  assert.deepEqual(kdigShort(dns.port, [NAME, 'AAAA']), many.slice(0, 32).sort());
  const warned = lines.find((l) => l.msg === 'dns record: more usable addresses than a record holds, publishing the first');
  assert.deepEqual([warned?.addresses, warned?.published, warned?.left], [40, 32, many.slice(32)]);
});

test('dnsUpdate: minInterval is measured on the monotonic clock: after the wall clock is stepped back, a change is published as soon as before', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  const { dns, cfg } = await server(t, 'knot');
  // The wall clock, which NTP may step: here back by 250 s, within the TSIG fudge (300 s), so the
  // server still takes what we sign; minInterval measured on it would wait those 250 s.
  const wall = Date.now;
  let step = 0;
  Date.now = () => wall() + step;
  t.after(() => { Date.now = wall; });
  const { log } = logger();
  const p = new DnsPublisher(cfg({ minInterval: 1 }), { ulid: ULID, hba: undefined, cgaUlid: false }, log);
  t.after(() => p.stop());
  p.update([ULID]);
  await waitFor(() => published(dns.port).join() === ULID, 'the first set in DNS');
  await waitFor(() => p.status().state === 'idle', 'the publisher settles');
  step = -250_000;
  p.update([ULID, Q]);
  await waitFor(() => published(dns.port).join() === [ULID, Q].join(), 'the new set in DNS, a minInterval after the first at most');
});

// An address that flaps (a link losing carrier every few hundred ms, a DHCPv6 fight) changes the
// set faster than the 200 ms batching delay. Each change must not push the publication back: a new
// address added meanwhile (R) is published while the flapping goes on.
test('dnsUpdate against knot: a set that changes every 50 ms (an address flapping) is still published, the newest set at least every minInterval', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['knotd', 'kdig'] })) return;
  const { dns, cfg } = await server(t, 'knot');
  const { log } = logger();
  const p = new DnsPublisher(cfg(), { ulid: ULID, hba: LAB_HBA.a, cgaUlid: true }, log);
  t.after(() => p.stop());
  p.update([ULID, Q]);
  await waitFor(() => published(dns.port).join() === [ULID, Q].join(), 'the first set in DNS');
  let up = false;
  const flap = setInterval(() => { up = !up; p.update(up ? [ULID, Q, R] : [ULID, R]); }, 50);
  t.after(() => clearInterval(flap));
  await waitFor(() => published(dns.port).includes(R), 'the new address in DNS while Q flaps');
  clearInterval(flap);
  p.update([ULID, Q, R]);
  await waitFor(() => published(dns.port).join() === [ULID, Q, R].join(), 'the final set in DNS');
});

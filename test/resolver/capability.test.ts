// Capability pickup with a real Knot serving RFC 3597 TYPE65300 records and dig as the application.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../helpers/wait.ts';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { dig, digAnswers, digStatus, startStub, until } from './harness.ts';
import { PEER, zoneText, ZONE } from './zone.ts';
import * as dnsPacket from 'dns-packet';
import { capabilityOutcome } from '../../resolver/capability-fetch.ts';
import { scanResponse } from '../../resolver/answer-scan.ts';
import { textToNameKey } from '../../resolver/message.ts';
import { DEFAULT_CAPABILITY_OPTIONS } from '../../resolver/stages/capability.ts';

async function setup(t: import('node:test').TestContext, config: Record<string, unknown> = {}) {
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const stub = await startStub(t, [`127.0.0.1:${auth.port}`], config);
  return { auth, stub };
}

test('a valid record primes the sink before the AAAA answer is sent, once per record lifetime', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  // The default budget (a quarter of the AAAA round trip, ≥ 0.2 ms) can be overrun when the test machine is
  // busy; a 5 s floor makes the ordering deterministic even on a loaded one (the answer goes as soon as the
  // record is handled, so a passing run never waits it out). The cost of the default is measured in bench/resolver.ts.
  const { stub } = await setup(t, { capability: { waitMinMs: 5000, waitMaxMs: 5000 } });
  const r = await dig(stub, 'peer.example.', 'AAAA');
  assert.equal(digStatus(r.stdout), 'NOERROR');
  const primes = stub.sink.calls.filter((c) => c.kind === 'prime');
  assert.equal(primes.length, 1, JSON.stringify(stub.sink.calls, (_k, v) => (typeof v === 'bigint' ? String(v) : v)));
  const p = primes[0]!;
  assert.equal(p.name, PEER.name);
  assert.equal(p.ulid, PEER.ulid);
  assert.deepEqual(p.record?.locators.map((l) => l.address), PEER.locators);
  assert.ok(p.ttl > 0 && p.ttl <= 120, `ttl ${p.ttl} from the record's TTL (120)`);
  const answer = stub.sent.find((s) => s.name === 'peer.example.' && s.qtype === 28)!;
  assert.ok(p.at < answer.at, `prime at ${p.at} must precede the answer at ${answer.at}`);

  // More lookups (AAAA, A, via the CNAME chain) within the lifetime: no second prime.
  await dig(stub, 'peer.example.', 'AAAA');
  await dig(stub, 'peer.example.', 'A');
  await dig(stub, 'alias.example.', 'AAAA');
  assert.equal(stub.sink.calls.filter((c) => c.kind === 'prime').length, 1);
  assert.equal(stub.resolver.counters.primes, 1);
  // Once primed, the entry keeps only what status shows (not the decoded records): ULID and locators.
  const st = stub.resolver.status() as { capability: { positive: Array<{ name: string; ulid: string; locators: string[]; primed: boolean }> } };
  const shown = st.capability.positive.find((e) => e.name === PEER.name);
  assert.deepEqual(shown && { ulid: shown.ulid, locators: shown.locators, primed: shown.primed }, { ulid: PEER.ulid, locators: PEER.locators, primed: true });

  // After the record's TTL (120 s, injected clock) it is fetched and primed again.
  // (On a loaded machine the refetch can outlast the 100 ms capability wait: the prime may follow the answer.)
  stub.advance(121_000);
  await dig(stub, 'peer.example.', 'AAAA');
  await waitFor(() => stub.sink.calls.filter((c) => c.kind === 'prime').length === 2, 'the second prime, after the record\'s lifetime');
});

test('an A lookup through a CNAME chain primes the final name (ULID checked against its AAAA set)', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const { stub } = await setup(t);
  const r = await dig(stub, 'alias.example.', 'A');
  assert.deepEqual(digAnswers(r.stdout).map((x) => x[3]), ['CNAME', 'CNAME', 'A']);
  // The final-name lookup starts only when the chain is seen, so it may settle just after the answer.
  await until(() => stub.resolver.counters.primes > 0);
  const primes = stub.sink.calls.filter((c) => c.kind === 'prime');
  assert.equal(primes.length, 1);
  assert.equal(primes[0]!.name, 'peer.example.');
});

test('no record → absent() with the answered addresses; invalid records → ignored and counted', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const { stub } = await setup(t);
  await dig(stub, 'plain.example.', 'AAAA');
  // Outcomes, not ordering, are under test here: a record that misses the wait budget on a busy machine settles just after.
  await until(() => stub.sink.calls.some((c) => c.kind === 'absent'));
  const absent = stub.sink.calls.filter((c) => c.kind === 'absent');
  assert.equal(absent.length, 1);
  assert.deepEqual(absent[0]!.addresses, ['2001:db8:3::1']);
  assert.ok(absent[0]!.ttl <= 60, 'negative TTL from the SOA (RFC 2308)');
  await dig(stub, 'plain.example.', 'AAAA');
  assert.equal(stub.sink.calls.filter((c) => c.kind === 'absent').length, 1, 'reported once per negative lifetime');

  await dig(stub, 'bad.example.', 'AAAA'); // ULID not in AAAA set
  await dig(stub, 'badver.example.', 'AAAA'); // version 2
  await until(() => stub.resolver.counters.capabilityInvalid >= 2);
  assert.equal(stub.sink.calls.filter((c) => c.kind === 'prime').length, 0);
  assert.equal(stub.resolver.counters.capabilityInvalid, 2);
  assert.ok(stub.logs.some((l) => l.includes('bad.example.')), 'the ignored record is logged');

  // NXDOMAIN: no addresses, nothing to prime, nothing reported.
  const nx = await dig(stub, 'nothere.example.', 'AAAA');
  assert.equal(digStatus(nx.stdout), 'NXDOMAIN');
  const st = stub.resolver.status() as { capability: { positive: unknown[]; negative: Array<{ name: string; source: string; ttl: number }> } };
  assert.ok(st.capability.negative.some((e) => e.name === 'plain.example.' && e.source === 'nodata' && e.ttl <= 60));
  assert.ok(st.capability.negative.some((e) => e.name === 'bad.example.' || e.name === 'badver.example.'));
});

test('a record with large parameters primes with all of them; status shows its ULID and locators (the 660-octet bound of what the entry keeps: test/record/binary.test.ts)', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const { stub } = await setup(t, { capability: { waitMinMs: 5000, waitMaxMs: 5000 } });
  await dig(stub, 'params.example.', 'AAAA');
  await until(() => stub.resolver.counters.primes > 0);
  const p = stub.sink.calls.find((c) => c.kind === 'prime')!;
  assert.equal(p.record?.port, 6000);
  assert.equal(p.record?.unknownParams[0]?.value.length, 900);
  const st = stub.resolver.status() as { capability: { positive: Array<{ name: string; ulid: string; locators: string[] }> } };
  const shown = st.capability.positive.find((e) => e.name === 'params.example.');
  assert.deepEqual(shown && { ulid: shown.ulid, locators: shown.locators }, { ulid: '2001:db8:a::1', locators: ['2001:db8:a::1', '2001:db8:b::1'] });
});

test('TXT fallback only when configured, and only after a TYPE65300 NODATA', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const off = await setup(t);
  await dig(off.stub, 'txtpeer.example.', 'AAAA');
  await until(() => off.stub.sink.calls.length > 0);
  assert.equal(off.stub.sink.calls.filter((c) => c.kind === 'prime').length, 0);
  assert.equal(off.stub.sink.calls.filter((c) => c.kind === 'absent').length, 1);

  const on = await setup(t, { capability: { txtFallback: true, waitMinMs: 5000, waitMaxMs: 5000 } });
  await dig(on.stub, 'txtpeer.example.', 'AAAA');
  await until(() => on.stub.resolver.counters.primes > 0);
  const primes = on.stub.sink.calls.filter((c) => c.kind === 'prime');
  assert.equal(primes.length, 1);
  assert.equal(primes[0]!.ulid, '2001:db8:5::1');
  const st = on.stub.resolver.status() as { capability: { positive: Array<{ name: string; source: string }> } };
  assert.ok(st.capability.positive.some((e) => e.name === 'txtpeer.example.' && e.source === 'txt'));
  // A host with a TYPE65300 record never triggers a TXT query.
  assert.equal(on.stub.resolver.counters.capabilityTxtQueries, 1);
  const c0 = { ...on.stub.resolver.counters };
  await dig(on.stub, 'peer.example.', 'AAAA');
  assert.equal(on.stub.resolver.counters.capabilityQueries - c0.capabilityQueries, 1, 'TYPE65300 asked');
  assert.equal(on.stub.resolver.counters.capabilityTxtQueries, 1, 'no _shim6 TXT for a host with a TYPE65300 record');
});

test('pickup off: no capability queries at all', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const { stub } = await setup(t, { capability: { enabled: false } });
  await dig(stub, 'peer.example.', 'AAAA');
  assert.equal(stub.sink.calls.length, 0);
  assert.equal(stub.resolver.counters.misses, 1);
  assert.equal(stub.resolver.counters.internalLookups + stub.resolver.counters.capabilityQueries, 0, 'no capability lookups');
});

test('the negative lifetime of a capability NODATA or NXDOMAIN is RFC 2308\'s min(SOA TTL, MINIMUM), 0 included; the default only without an SOA', () => {
  const answer = (rcode: 'NOERROR' | 'NXDOMAIN', minimum: number | undefined): Buffer => {
    const bytes = dnsPacket.encode({
      id: 1, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : 0),
      questions: [{ name: 'peer.example', type: 'TXT', class: 'IN' }],
      authorities: minimum === undefined ? [] : [{ name: 'example', type: 'SOA', class: 'IN', ttl: 300, data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum } } as dnsPacket.Answer],
    } as dnsPacket.Packet);
    bytes.writeUInt16BE(65300, 12 + 'peer.example'.length + 2); // QTYPE TYPE65300 (dns-packet has no name for it)
    return bytes;
  };
  const ttl = (bytes: Buffer): number => {
    const out = capabilityOutcome(undefined, { bytes, scan: scanResponse(bytes), upstream: { host: '127.0.0.1', port: 53 }, tcp: false }, textToNameKey('peer.example'), DEFAULT_CAPABILITY_OPTIONS);
    assert.equal(out.kind, 'absent');
    return (out as { ttl: number }).ttl;
  };
  for (const rcode of ['NOERROR', 'NXDOMAIN'] as const) {
    assert.equal(ttl(answer(rcode, 0)), 0, `${rcode}, SOA MINIMUM 0: not kept`);
    assert.equal(ttl(answer(rcode, 0x80000001)), 0, `${rcode}, MINIMUM with its top bit set: 0 (RFC 2181 §8)`);
    assert.equal(ttl(answer(rcode, 120)), 120, `${rcode}, MINIMUM 120 under the SOA's TTL 300`);
    assert.equal(ttl(answer(rcode, undefined)), DEFAULT_CAPABILITY_OPTIONS.defaultNegativeTtl, `${rcode} without an SOA`);
  }
});

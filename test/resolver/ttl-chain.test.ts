// TTL limits and CNAME chains, through the in-process stub in front of a real Knot (and, for a chain
// longer than any authoritative server sends, the programmable upstream), with real dig as the client:
// RFC 2181 §8 top-bit TTLs, capability lifetimes capped like the answer cache's, and no capability
// record fetched for a name in the middle of a chain.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { capLine, capRdataHex, dig, digAnswers, digStatus, startStub, until, type Stub } from './harness.ts';
import { startFakeUpstream, type Query } from './fake-upstream.ts';

const TOP_BIT_TTL = 4294967295; // 2^32 − 1: the top bit set, so 0 (RFC 2181 §8)
const MAX_TTL = 2147483647; // 2^31 − 1: a valid TTL of 68 years
const CHAIN = 20; // links from c0 to `forever`: Knot itself puts only the first few in an answer

/** Zone limits.test.: top-bit TTLs (an AAAA, the SOA MINIMUM), 68-year TTLs on a peer and its record, a long CNAME chain. */
function limitsZone(): string {
  const lines = [
    '$ORIGIN limits.test.',
    `@ 300 IN SOA ns.limits.test. admin.limits.test. 1 3600 600 86400 ${TOP_BIT_TTL}`,
    '@ 300 IN NS ns.limits.test.',
    'ns 300 IN A 127.0.0.1',
    `hb ${TOP_BIT_TTL} IN AAAA 2001:db8:10::1`,
    `forever ${MAX_TTL} IN AAAA 2001:db8:10::2`,
    capLine('forever', MAX_TTL, capRdataHex('2001:db8:10::2', ['2001:db8:10::2'])),
    'short 300 IN CNAME forever',
  ];
  for (let i = 0; i < CHAIN; i++) lines.push(`c${i} 300 IN CNAME ${i === CHAIN - 1 ? 'forever' : `c${i + 1}`}`);
  return lines.join('\n') + '\n';
}

/** Zone huge.test.: SOA TTL and MINIMUM of 68 years, so a NODATA's negative TTL is 2^31 − 1 (a forged one looks the same). */
function hugeZone(): string {
  return [
    '$ORIGIN huge.test.',
    `@ ${MAX_TTL} IN SOA ns.huge.test. admin.huge.test. 1 3600 600 86400 ${MAX_TTL}`,
    '@ 300 IN NS ns.huge.test.',
    'ns 300 IN A 127.0.0.1',
    'host 300 IN AAAA 2001:db8:11::1',
  ].join('\n') + '\n';
}

async function startKnot(t: import('node:test').TestContext): Promise<string> {
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: 'limits.test.', text: limitsZone() }, { name: 'huge.test.', text: hugeZone() }] });
  t.after(() => auth.stop());
  return `127.0.0.1:${auth.port}`;
}

async function ask(stub: Stub, name: string, ...more: string[]): Promise<string> {
  const r = await dig(stub, name, 'AAAA', ...more);
  assert.ok(digStatus(r.stdout), `${name}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

interface CapStatus { positive: Array<{ name: string; ttl: number }>; negative: Array<{ name: string; ttl: number }> }
const calls = (stub: Stub): string => stub.sink.calls.map((c) => `${c.kind} ${c.name} ttl=${c.ttl}`).join('; ');
const capStatus = (stub: Stub): CapStatus => stub.resolver.status().capability as CapStatus;

test('a TTL with the top bit set reaches the client as 0 (UDP and TCP) and is not cached; so is a negative answer whose SOA MINIMUM has it', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const stub = await startStub(t, [await startKnot(t)], { capability: { enabled: false } });
  for (const transport of ['+notcp', '+tcp', '+notcp']) {
    const out = await ask(stub, 'hb.limits.test.', transport);
    const rr = digAnswers(out)[0];
    assert.equal(rr?.[1], '0', `${transport}: ${out}`);
    assert.equal(rr?.[4], '2001:db8:10::1');
  }
  assert.equal(stub.resolver.counters.hits, 0, 'never answered from the cache');
  assert.equal(stub.resolver.cache.size, 0);
  // NXDOMAIN in a zone whose SOA MINIMUM is 2^32 − 1: min(SOA TTL 300, MINIMUM 0) = 0, so not cached.
  for (let i = 0; i < 2; i++) assert.equal(digStatus(await ask(stub, 'nx.limits.test.')), 'NXDOMAIN');
  assert.equal(stub.resolver.counters.hits, 0);
  assert.equal(stub.resolver.cache.size, 0);
  // The same names are cacheable once their TTLs are sane: a 68-year TTL is (capped at a day).
  await ask(stub, 'forever.limits.test.');
  await ask(stub, 'forever.limits.test.');
  assert.equal(stub.resolver.counters.hits, 1);
});

test('capability lifetimes are capped: a record with TTL 2^31−1 and a NODATA with a 68-year SOA last capability.maxTtlSeconds / maxNegativeTtlSeconds (defaults 1 day / 1 h)', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const upstream = await startKnot(t);
  for (const [config, maxPos, maxNeg] of [[{ maxTtlSeconds: 600, maxNegativeTtlSeconds: 120 }, 600, 120], [{}, 86_400, 3_600]] as const) {
    const stub = await startStub(t, [upstream], { capability: config });
    await ask(stub, 'forever.limits.test.');
    await ask(stub, 'host.huge.test.');
    // A record that comes back after the wait budget settles just after the answer: wait for both outcomes.
    await until(() => stub.sink.calls.length >= 2, 30_000);
    const prime = stub.sink.calls.find((c) => c.kind === 'prime');
    const absent = stub.sink.calls.find((c) => c.kind === 'absent');
    assert.equal(prime?.name, 'forever.limits.test.', calls(stub));
    assert.ok(prime.ttl > maxPos - 5 && prime.ttl <= maxPos, `prime ttl ${prime.ttl}, cap ${maxPos}`);
    assert.equal(absent?.name, 'host.huge.test.');
    assert.ok(absent.ttl > maxNeg - 5 && absent.ttl <= maxNeg, `absent ttl ${absent.ttl}, cap ${maxNeg}`);
    const st = capStatus(stub);
    assert.ok(st.positive.every((e) => e.ttl <= maxPos) && st.positive.length === 1, JSON.stringify(st));
    assert.ok(st.negative.every((e) => e.ttl <= maxNeg) && st.negative.length === 1, JSON.stringify(st));
    // The cap is the lifetime, not only what status shows: past it the record is fetched and primed again.
    const queries = stub.resolver.counters.capabilityQueries;
    stub.advance((maxPos + 1) * 1000);
    await ask(stub, 'forever.limits.test.');
    assert.equal(stub.resolver.counters.capabilityQueries, queries + 1, 'fetched again after the cap');
    // The AAAA is a cache hit now, so the answer may leave before the record is back: the prime may follow it.
    const primes = (): number => stub.sink.calls.filter((c) => c.kind === 'prime').length;
    await until(() => primes() === 2, 30_000);
    assert.equal(primes(), 2, calls(stub));
  }
});

test('an answer that stops in the middle of a CNAME chain fetches no capability record for its last name (Knot sends the first links of a 20-link chain)', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const stub = await startStub(t, [await startKnot(t)]);
  const out = await ask(stub, 'c0.limits.test.');
  const links = digAnswers(out).filter((rr) => rr[3] === 'CNAME');
  assert.ok(links.length > 0 && links.length < CHAIN && !digAnswers(out).some((rr) => rr[3] === 'AAAA'), `Knot cut the chain: ${out}`);
  const last = links[links.length - 1]![4]!;
  assert.equal(stub.resolver.counters.capabilityQueries, 1, 'only the question name\'s own record was asked for');
  assert.equal(stub.resolver.counters.capabilityChainCut, 1);
  const st = capStatus(stub);
  assert.ok(![...st.positive, ...st.negative].some((e) => e.name === last), `no entry for ${last}: ${JSON.stringify(st)}`);
  assert.equal(stub.sink.calls.length, 0, calls(stub));
  // A chain the answer holds to its end is followed, and the final name's record primes the peer.
  await ask(stub, 'short.limits.test.');
  assert.equal(stub.resolver.counters.capabilityQueries, 3, 'short, then forever');
  await until(() => stub.sink.calls.length > 0, 30_000);
  assert.deepEqual(stub.sink.calls.map((c) => [c.kind, c.name]), [['prime', 'forever.limits.test.']]);
});

/** An upstream that answers `n0.chain.test. AAAA` with `links` CNAMEs in one answer, then the AAAA; other questions NXDOMAIN. */
function chainAnswer(q: Query, links: number): Buffer {
  if (q.type !== 'AAAA') {
    // NXDOMAIN echoing the question (the query's OPT, its last 11 octets, dropped).
    const b = Buffer.from(q.raw.subarray(0, q.raw.length - 11));
    b[2] = 0x81; b[3] = 0x83; b.writeUInt16BE(0, 10);
    return b;
  }
  const name = (i: number): string => `n${i}.chain.test`;
  const answers: dnsPacket.Answer[] = Array.from({ length: links }, (_, i) => ({ name: name(i), type: 'CNAME', ttl: 300, data: name(i + 1) }) as dnsPacket.Answer);
  answers.push({ name: name(links), type: 'AAAA', ttl: 300, data: '2001:db8:12::1' });
  return dnsPacket.encode({ id: q.id, type: 'response', flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE, questions: [{ name: q.name, type: 'AAAA' }], answers });
}

test('a CNAME chain longer than the stub follows (16 links): no capability query for any name in it but the question\'s', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  for (const [links, final] of [[17, undefined], [16, 'n16.chain.test']] as const) {
    const up = await startFakeUpstream(t, (q) => [{ bytes: chainAnswer(q, links) }]);
    const stub = await startStub(t, [up.addr]);
    const out = await ask(stub, 'n0.chain.test.');
    assert.equal(digAnswers(out).length, links + 1, out);
    const asked = up.queries.filter((q) => q.type === 'UNKNOWN_65300').map((q) => q.name);
    if (final === undefined) {
      assert.deepEqual(asked, ['n0.chain.test'], `${links} links`);
      assert.equal(stub.resolver.counters.capabilityChainCut, 1);
    } else {
      assert.deepEqual(asked.sort(), ['n0.chain.test', final], `${links} links: followed to its end`);
      assert.equal(stub.resolver.counters.capabilityChainCut, 0);
    }
  }
});

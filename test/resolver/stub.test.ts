// The stub as a forwarding, caching resolver: real Knot upstream, real dig client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { dig, digAnswers, digStatus, run, startStub } from './harness.ts';
import { zoneText, ZONE } from './zone.ts';

test('forwards, caches and counts down TTLs; NODATA, NXDOMAIN, CNAME chains, unknown types, TCP', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig', 'kdig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const stub = await startStub(t, [`127.0.0.1:${auth.port}`], { capability: { enabled: false } });

  const a1 = await dig(stub, 'plain.example.', 'AAAA');
  assert.equal(digStatus(a1.stdout), 'NOERROR', a1.stdout + a1.stderr);
  assert.deepEqual(digAnswers(a1.stdout).map((r) => r[4]), ['2001:db8:3::1']);
  assert.equal(stub.resolver.counters.misses, 1);

  // Second lookup 42 s later (injected clock): a cache hit with the TTL counted down.
  stub.advance(42_000);
  const a2 = await dig(stub, 'PLAIN.example.', 'AAAA');
  const rows = digAnswers(a2.stdout);
  assert.equal(rows[0]?.[0], 'PLAIN.example.', 'question case of the client is kept (0x20)');
  assert.equal(rows[0]?.[1], '258');
  assert.equal(stub.resolver.counters.hits, 1);

  // TTL expiry: past 300 s the entry is gone and the upstream is asked again.
  stub.advance(300_000);
  await dig(stub, 'plain.example.', 'AAAA');
  assert.equal(stub.resolver.counters.misses, 2);

  // NODATA and NXDOMAIN are answered, with the SOA, and negatively cached (RFC 2308: min(SOA TTL, MINIMUM) = 60 s).
  const nodata = await dig(stub, 'plain.example.', 'MX');
  assert.equal(digStatus(nodata.stdout), 'NOERROR');
  assert.match(nodata.stdout, /AUTHORITY: 1/);
  const nx = await dig(stub, 'nope.example.', 'AAAA');
  assert.equal(digStatus(nx.stdout), 'NXDOMAIN');
  const before = stub.resolver.counters.hits;
  stub.advance(30_000);
  const nx2 = await dig(stub, 'nope.example.', 'AAAA');
  assert.equal(digStatus(nx2.stdout), 'NXDOMAIN');
  assert.equal(stub.resolver.counters.hits, before + 1, 'NXDOMAIN came from the negative cache');
  assert.match(nx2.stdout, /example\.\s+30\s+IN\s+SOA/, 'SOA TTL counted down from 60');
  stub.advance(31_000);
  await dig(stub, 'nope.example.', 'AAAA');
  assert.equal(stub.resolver.counters.hits, before + 1, 'negative entry expired after 60 s');

  // CNAME chain passes through whole.
  const chain = await dig(stub, 'alias.example.', 'AAAA');
  assert.deepEqual(digAnswers(chain.stdout).map((r) => r[3]), ['CNAME', 'CNAME', 'AAAA', 'AAAA']);

  // Unknown RR type passes unharmed (RFC 3597).
  const unk = await dig(stub, 'unknown.example.', 'TYPE65432');
  assert.match(unk.stdout, /\\# 4 DEADBEEF/i);

  // TCP listener (RFC 7766) with kdig.
  const tcp = await run('kdig', [`@${stub.host}`, '-p', String(stub.port), '+tcp', 'peer.example.', 'A']);
  assert.match(tcp.stdout, /192\.0\.2\.10/);
  assert.ok(stub.resolver.counters.tcpQueries >= 1);
});

test('an answer too big for UDP: upstream TC → TCP fallback, and TC to a small-buffer client', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const stub = await startStub(t, [`127.0.0.1:${auth.port}`], { capability: { enabled: false } });
  // The stub asks upstream with EDNS 1232, gets TC, retries over TCP.
  const viaTcp = await dig(stub, 'big.example.', 'TXT', '+tcp');
  assert.equal(digAnswers(viaTcp.stdout).length, 12);
  assert.equal(stub.resolver.counters.upstreamTcpFallbacks, 1);
  // A UDP client with a 1232 buffer gets TC (answer is ~2.3 kB) and dig retries over TCP by itself.
  const udp = await dig(stub, 'big.example.', 'TXT', '+bufsize=1232');
  assert.match(udp.stdout, /Truncated, retrying in TCP mode/);
  assert.equal(digAnswers(udp.stdout).length, 12);
  assert.ok(stub.resolver.counters.truncated >= 1);
  // Without EDNS (512 octets) a small answer fits and carries no OPT record.
  const noEdns = await dig(stub, 'peer.example.', 'A', '+noedns');
  assert.equal(digStatus(noEdns.stdout), 'NOERROR');
  assert.doesNotMatch(noEdns.stdout, /OPT PSEUDOSECTION/);
});

test('DO bit: queried and cached apart; AD only for clients that ask', async (t) => {
  if (!needs(t, { commands: ['knotd', 'dig'] })) return;
  const auth = await startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zoneText() }] });
  t.after(() => auth.stop());
  const stub = await startStub(t, [`127.0.0.1:${auth.port}`], { capability: { enabled: false } });
  const plain = await dig(stub, 'peer.example.', 'A');
  const withDo = await dig(stub, 'peer.example.', 'A', '+dnssec');
  assert.match(withDo.stdout, /flags: do;/);
  assert.doesNotMatch(plain.stdout, /flags: do;/);
  assert.equal(stub.resolver.counters.misses, 2, 'DO and non-DO are separate cache entries');
});

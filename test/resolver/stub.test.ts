// The stub as a forwarding, caching resolver: real Knot upstream (a programmable one where Knot cannot show it), real dig client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { needs } from '../helpers/prereq.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { dig, digAnswers, digStatus, run, startStub } from './harness.ts';
import { zoneText, ZONE } from './zone.ts';
import { answerFor, startFakeUpstream } from './fake-upstream.ts';

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

test('a TCP client that half-closes after its queries still gets every answer, then the stub closes', async (t) => {
  // Slow answers: none is ready when the client's FIN arrives (before, the FIN closed the stub's side
  // at once and the answers still due were dropped).
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::7' }), delayMs: 200 }]);
  const stub = await startStub(t, [up.addr], { capability: { enabled: false } });
  const c = net.connect(stub.port, stub.host);
  t.after(() => c.destroy());
  await new Promise<void>((r) => c.once('connect', () => r()));
  const frames = [1, 2, 3].map((id) => {
    const q = dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: `half${id}.test`, type: 'AAAA' }] });
    return Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]);
  });
  c.end(Buffer.concat(frames));
  let got = Buffer.alloc(0);
  c.on('data', (d: Buffer) => { got = Buffer.concat([got, d]); });
  await new Promise<void>((r) => c.once('end', () => r())); // the stub's FIN: it closes once it has answered
  const ids: number[] = [];
  for (let o = 0; o + 2 <= got.length;) {
    const len = got.readUInt16BE(o);
    const frame = got.subarray(o + 2, o + 2 + len);
    assert.equal(frame[3]! & 0xf, 0, 'NOERROR');
    const a = dnsPacket.decode(frame);
    assert.deepEqual(a.answers?.map((x) => (x as { data?: unknown }).data), ['2001:db8::7']);
    ids.push(a.id!);
    o += 2 + len;
  }
  assert.deepEqual(ids.sort(), [1, 2, 3]);
});

test('CD bit: passed upstream and cached apart, so an answer fetched with checking disabled never answers a client that wants it checked (RFC 4035 §3.2.2)', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::cd' }) }]);
  const stub = await startStub(t, [up.addr], { capability: { enabled: false } });
  const cdOf = (raw: Buffer): boolean => (raw[3]! & 0x10) !== 0;
  const unchecked = await dig(stub, 'cd.test.', 'AAAA', '+cdflag');
  assert.match(unchecked.stdout, /flags: [^;]*\bcd\b/, 'the CD client\'s answer has CD');
  const checked = await dig(stub, 'cd.test.', 'AAAA');
  assert.doesNotMatch(checked.stdout, /flags: [^;]*\bcd\b/);
  assert.deepEqual(up.queries.map((q) => cdOf(q.raw)), [true, false], 'each asked upstream, with the client\'s CD');
  assert.equal(stub.resolver.counters.misses, 2, 'CD and non-CD are separate cache entries');
  await dig(stub, 'cd.test.', 'AAAA', '+cdflag');
  await dig(stub, 'cd.test.', 'AAAA');
  assert.equal(up.queries.length, 2, 'and each is a hit for its own kind');
});

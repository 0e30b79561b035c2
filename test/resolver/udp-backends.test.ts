// The resolver's two UDP backends (resolver/udp-socket.ts), each run for real: `native` (the addon's
// recvmmsg/sendmmsg batches) and `dgram`. Real Knot upstream (IPv4 and IPv6), real dig, a programmable
// upstream for forgeries, and a Node client for bursts whose every answer is checked against its question.
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { readdirSync } from 'node:fs';
import * as dnsPacket from 'dns-packet';
import { needs, skipOrFail } from '../helpers/prereq.ts';
import { startAuthDns, type AuthDns } from '../helpers/authdns.ts';
import { dig, digAnswers, digStatus, run, startStub, until, type DigResult, type Stub } from './harness.ts';
import { answerFor, startFakeUpstream } from './fake-upstream.ts';
import { DEADLINE_MS } from '../helpers/wait.ts';
import { configFromObject } from '../../resolver/config.ts';
import { nativeUdpStatus, openDnsUdp, type UdpBackend } from '../../resolver/udp-socket.ts';

const ZONE = 'udpb.example.';
/** TXT strings in the big RRset: ~263 octets per RR, ~42 KB in all (over TCP from Knot, then UDP to the client). */
const HUGE_RRS = 160;

function zone(): string {
  const lines = [
    `$ORIGIN ${ZONE}`, '$TTL 300',
    '@ IN SOA ns admin 1 3600 600 86400 60', '@ IN NS ns', 'ns IN A 127.0.0.1',
    'www IN A 192.0.2.80', 'www IN AAAA 2001:db8:80::1',
    '*.burst IN AAAA 2001:db8:b::1',
  ];
  for (let i = 0; i < HUGE_RRS; i++) lines.push(`huge IN TXT "${String(i).padStart(3, '0')}${'h'.repeat(246)}"`);
  return lines.join('\n') + '\n';
}

// One Knot for the whole file (started by the first test that needs it).
let knot: Promise<AuthDns> | undefined;
const authDns = (): Promise<AuthDns> => (knot ??= startAuthDns({ server: 'knot', zones: [{ name: ZONE, text: zone() }] }));
after(async () => { if (knot) await (await knot).stop(); });

const noCap = { capability: { enabled: false } };

/** A stub on `backend`; with `udp: native` on a host without the addon, start must fail with EUDPBACKEND. */
async function stubOn(t: TestContext, backend: UdpBackend, upstreams: string[], config: Record<string, unknown> = {}): Promise<Stub | undefined> {
  if (backend === 'native' && !(await nativeUdpStatus()).available) {
    await assert.rejects(startStub(t, upstreams, { ...noCap, ...config, udp: 'native' }), (e: unknown) => (e as { code?: string }).code === 'EUDPBACKEND');
    skipOrFail(t, 'native addon not built (checked that udp: native fails with EUDPBACKEND)');
    return undefined;
  }
  const stub = await startStub(t, upstreams, { ...noCap, ...config, udp: backend });
  assert.equal(stub.resolver.status().udp, backend);
  return stub;
}

/** An A query for `name` (ID `id`), padded with an EDNS padding option (RFC 7830) to exactly `size` octets. */
function paddedQuery(id: number, name: string, size: number): Buffer {
  const labels = name.replace(/\.$/, '').split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const header = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
  const question = Buffer.concat([...labels, Buffer.from([0, 0, 1, 0, 1])]);
  const fixed = header.length + question.length + 11 + 4; // OPT RR header + padding option header
  const pad = size - fixed;
  assert.ok(pad >= 0 && pad <= 65535);
  const opt = Buffer.alloc(11 + 4 + pad);
  opt.writeUInt16BE(41, 1); opt.writeUInt16BE(4096, 3); opt.writeUInt16BE(4 + pad, 9);
  opt.writeUInt16BE(12, 11); opt.writeUInt16BE(pad, 13);
  return Buffer.concat([header, question, opt]);
}

/** A loopback UDP client with big buffers; `ask` sends datagrams and collects answers by query ID. */
async function client(t: TestContext, family: 4 | 6 = 4): Promise<{ sock: dgram.Socket; answers: Map<number, Buffer> }> {
  const sock = dgram.createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((r) => sock.bind(0, family === 6 ? '::1' : '127.0.0.1', () => r()));
  sock.setRecvBufferSize(4 * 1024 * 1024);
  sock.setSendBufferSize(4 * 1024 * 1024);
  const answers = new Map<number, Buffer>();
  sock.on('message', (m) => { if (m.length >= 2) answers.set(m.readUInt16BE(0), m); });
  t.after(() => { try { sock.close(); } catch { /* closed by the test */ } });
  return { sock, answers };
}

/** The RDATA dns-packet decoded for an answer RR (the union type also covers OPT, which has none). */
const rdata = (rr: dnsPacket.Answer): unknown => (rr as { data?: unknown }).data;

test('udp key: auto is native when the addon loads; an unknown backend is ECONFIG naming udp; native needs a literal address (EUDPBACKEND)', async (t) => {
  const auto = await startStub(t, ['127.0.0.1:9'], noCap);
  assert.equal(auto.resolver.status().udp, (await nativeUdpStatus()).available ? 'native' : 'dgram');
  assert.throws(() => configFromObject({ udp: 'quic' }), (e: unknown) => (e as { code?: string; field?: string }).code === 'ECONFIG' && (e as { field?: string }).field === 'udp');
  assert.equal(configFromObject({}).udp, 'auto');
  await assert.rejects(openDnsUdp({ host: 'localhost', port: 0, bufferSize: 65536, maxDatagram: 512, batch: 4 }, 'native'),
    (e: unknown) => (e as { code?: string }).code === 'EUDPBACKEND');
});

test('a port that is taken is EUDPBIND naming the address, on either backend (dgram\'s was node\'s raw EADDRINUSE)', async (t) => {
  const holder = dgram.createSocket('udp4');
  t.after(() => holder.close());
  await new Promise<void>((r) => holder.bind(0, '127.0.0.1', () => r()));
  const port = holder.address().port;
  const backends: UdpBackend[] = (await nativeUdpStatus()).available ? ['native', 'dgram'] : ['dgram'];
  for (const backend of backends) {
    await assert.rejects(openDnsUdp({ host: '127.0.0.1', port, bufferSize: 65536, maxDatagram: 512, batch: 4 }, backend), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'EUDPBIND', `${backend}: ${String(e)}`);
      assert.match((e as Error).message, new RegExp(`^cannot bind UDP 127\\.0\\.0\\.1:${port}: .*(in use|EADDRINUSE)`), backend);
      return true;
    });
  }
});

for (const backend of ['native', 'dgram'] as const) {
  test(`${backend}: status().udp, IPv4 and IPv6 listeners answer dig, through an IPv6 upstream`, async (t) => {
    if (!needs(t, { commands: ['knotd', 'dig'] })) return;
    const auth = await authDns();
    // Only the IPv6 upstream: every answer crosses the pool's udp6 sockets.
    const stub = await stubOn(t, backend, [`[::1]:${auth.port}`], { listen: ['127.0.0.1:0', '[::1]:0'] });
    if (!stub) return;
    const [v4, v6] = stub.resolver.addresses;
    assert.equal(v4?.host, '127.0.0.1');
    assert.equal(v6?.host, '::1');
    const r4 = await dig(v4!, 'www.udpb.example.', 'AAAA');
    assert.equal(digStatus(r4.stdout), 'NOERROR', r4.stdout + r4.stderr);
    assert.deepEqual(digAnswers(r4.stdout).map((x) => x[4]), ['2001:db8:80::1']);
    const r6 = await dig(v6!, 'www.udpb.example.', 'A');
    assert.deepEqual(digAnswers(r6.stdout).map((x) => x[4]), ['192.0.2.80'], r6.stdout + r6.stderr);
    const hit = await dig(v6!, 'www.udpb.example.', 'AAAA');
    assert.deepEqual(digAnswers(hit.stdout).map((x) => x[4]), ['2001:db8:80::1']);
    const c = stub.resolver.counters;
    assert.equal(c.udpQueries, 3);
    assert.equal(c.misses, 2);
    assert.equal(c.hits, 1);
    // Both misses answered by the one upstream (a retry after a timeout is timing, not the backend: not checked).
    const ups = stub.resolver.status().upstreams as Array<{ host: string; answered: number }>;
    assert.deepEqual(ups.map((u) => [u.host, u.answered]), [['::1', 2]]);
  });

  // TCP on [::] is dual-stack; the native listener on :: asks for a dual-stack socket too. dgram is
  // refused there: it cannot answer from the address a client asked (client-acl.test.ts).
  test(`${backend}: a listener on [::] answers IPv4 and IPv6 clients over UDP and TCP${backend === 'dgram' ? ' (dgram: refused, EUDPBACKEND)' : ''}`, async (t) => {
    if (backend === 'dgram') {
      await assert.rejects(startStub(t, ['127.0.0.1:9'], { ...noCap, listen: ['[::]:0'], udp: 'dgram' }), (e: unknown) => (e as { code?: string }).code === 'EUDPBACKEND');
      return;
    }
    if (!needs(t, { commands: ['knotd', 'dig'] })) return;
    const auth = await authDns();
    const stub = await stubOn(t, backend, [`127.0.0.1:${auth.port}`], { listen: ['[::]:0'] });
    if (!stub) return;
    const port = stub.port;
    for (const host of ['::1', '127.0.0.1']) {
      for (const transport of ['+notcp', '+tcp']) {
        const r = await dig({ host, port }, 'www.udpb.example.', 'A', transport);
        assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['192.0.2.80'], `${host} ${transport}: ${r.stdout}`);
      }
    }
  });

  test(`${backend}: one upstream, its first answer lost: the question is asked again within the deadline, not SERVFAIL`, async (t) => {
    if (!needs(t, { commands: ['dig'] })) return;
    const seen = new Map<string, number>();
    const up = await startFakeUpstream(t, (q) => {
      const n = (seen.get(q.name) ?? 0) + 1;
      seen.set(q.name, n);
      return n === 1 ? undefined : [{ bytes: answerFor(q) }]; // the first datagram of each question is "lost"
    });
    // 1 s tries: the retry's answer comes within its try also on a busy machine (a third try would be a failure here).
    const stub = await stubOn(t, backend, [up.addr], { upstream: { attemptTimeoutMs: 1000, minAttemptTimeoutMs: 1000 }, capability: { enabled: false } });
    if (!stub) return;
    const r = await dig(stub, 'lost.test.', 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout);
    assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8::1']);
    assert.equal(seen.get('lost.test'), 2, 'asked twice');
    assert.equal(stub.resolver.counters.upstreamTimeouts, 1);
  });

  test(`${backend}: once the upstream's round trip is known, a lost datagram is retried after the RTO (≥ 50 ms), not the attempt limit`, async (t) => {
    if (!needs(t, { commands: ['dig'] })) return;
    const seen = new Map<string, number>();
    const up = await startFakeUpstream(t, (q) => {
      const n = (seen.get(q.name) ?? 0) + 1;
      seen.set(q.name, n);
      return q.name.startsWith('lost') && n === 1 ? undefined : [{ bytes: answerFor(q) }];
    });
    // The attempt limit (30 s) is past dig's 15 s: an answer at all means the retry went on the RTO.
    const stub = await stubOn(t, backend, [up.addr], { queryTimeoutMs: 60_000, upstream: { attemptTimeoutMs: 30_000, minAttemptTimeoutMs: 50 }, capability: { enabled: false } });
    if (!stub) return;
    for (const name of ['warm1.test.', 'warm2.test.', 'warm3.test.']) assert.equal(digStatus((await dig(stub, name, 'AAAA')).stdout), 'NOERROR');
    const [h] = stub.resolver.status().upstreams as Array<{ rttMs: number; rttVarMs: number }>;
    assert.ok(h!.rttMs > 0, `round trip measured: ${JSON.stringify(h)}`);
    const t0 = performance.now();
    const r = await dig(stub, 'lost.test.', 'AAAA');
    const took = performance.now() - t0;
    t.diagnostic(`answered after ${took.toFixed(0)} ms (round trip ${JSON.stringify(h)})`);
    assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout);
    assert.equal(seen.get('lost.test'), 2);
    assert.ok(took >= 50, `retried after ${took.toFixed(0)} ms, before the 50 ms minimum`);
  });

  test(`${backend}: an upstream UDP answer of 7 KB (more than the 1232 asked for) is read whole`, async (t) => {
    if (!needs(t, { commands: ['dig'] })) return;
    const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { many: 200 }) }]);
    const stub = await stubOn(t, backend, [up.addr], { capability: { enabled: false } });
    if (!stub) return;
    const r = await dig(stub, 'big.test.', 'AAAA', '+tcp');
    assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout);
    assert.equal(digAnswers(r.stdout).length, 200);
    assert.equal(stub.resolver.counters.upstreamTimeouts, 0);
  });

  test(`${backend}: forged upstream answers from another port and another address are dropped and counted`, async (t) => {
    if (!needs(t, { commands: ['dig'] })) return;
    // A second forger on another loopback address (127.0.0.2), aimed at the stub's upstream port.
    const forger = dgram.createSocket('udp4');
    await new Promise<void>((r) => forger.bind(0, '127.0.0.2', () => r()));
    t.after(() => forger.close());
    const up = await startFakeUpstream(t, (q) => {
      const forged = answerFor(q, { address: '2001:db8::bad' });
      if (q.from) forger.send(forged, q.from.port, q.from.address);
      return [{ bytes: forged, fromOtherPort: true }, { bytes: answerFor(q, { address: '2001:db8::900d' }), delayMs: 60 }];
    });
    const stub = await stubOn(t, backend, [up.addr]);
    if (!stub) return;
    for (const name of ['f1.test.', 'f2.test.']) {
      const r = await dig(stub, name, 'AAAA');
      assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8::900d'], r.stdout);
    }
    assert.equal(stub.resolver.counters.upstreamMismatched, 4, 'two forgeries per query');
    assert.equal(stub.resolver.counters.misses, 2);
  });

  test(`${backend}: query datagrams over 4096 octets${backend === 'native' ? ' are dropped' : ' are read'}; the listener keeps answering`, async (t) => {
    if (!needs(t, { commands: ['knotd', 'dig'] })) return;
    const auth = await authDns();
    const stub = await stubOn(t, backend, [`127.0.0.1:${auth.port}`]);
    if (!stub) return;
    const { sock, answers } = await client(t);
    const sizes = [4096, 4097, 9000, 65507];
    sizes.forEach((size, i) => sock.send(paddedQuery(i + 1, 'www.udpb.example.', size), stub.port, stub.host));
    // The 4096-octet query is answered on both.
    await until(() => answers.has(1));
    assert.ok(answers.has(1), '4096 octets is the largest query the native backend reads');
    if (backend === 'native') {
      // A query sent after the first answer is read after the three big ones: once it is answered
      // (a cache hit, at once), the big ones were read or dropped.
      sock.send(paddedQuery(99, 'www.udpb.example.', 64), stub.port, stub.host);
      await until(() => answers.has(99));
      assert.ok(answers.delete(99), 'the query after the big ones was answered');
      assert.deepEqual([...answers.keys()], [1]);
      assert.equal(stub.resolver.counters.udpQueries, 2, 'oversize datagrams never reach the chain');
    } else {
      await until(() => answers.size === sizes.length);
      assert.deepEqual([...answers.keys()].sort((a, b) => a - b), [1, 2, 3, 4]);
      assert.equal(stub.resolver.counters.udpQueries, 4);
    }
    for (const a of answers.values()) assert.deepEqual((dnsPacket.decode(a).answers ?? []).map(rdata), ['192.0.2.80']);
    const r = await dig(stub, 'www.udpb.example.', 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR', 'still answering');
  });

  test(`${backend}: a ~42 KB answer (upstream TC → TCP) goes out whole over UDP, alone and 8 at once`, async (t) => {
    if (!needs(t, { commands: ['knotd', 'kdig'] })) return;
    const auth = await authDns();
    const stub = await stubOn(t, backend, [`127.0.0.1:${auth.port}`]);
    if (!stub) return;
    // kdig, not dig: dig 9.18 advertises 1232 for any +bufsize above 32767.
    const kdig = (): Promise<DigResult> => run('kdig', [`@${stub.host}`, '-p', String(stub.port), '+retry=0', '+timeout=15', '+bufsize=65535', '+ignore', 'huge.udpb.example.', 'TXT']);
    const first = await kdig();
    assert.match(first.stdout, /ANSWER: 160;/, first.stdout.slice(0, 600) + first.stderr);
    assert.equal(stub.resolver.counters.upstreamTcpFallbacks, 1, 'Knot sent TC to the 1232-octet upstream query');
    const hit = await kdig();
    assert.match(hit.stdout, /\(UDP\)/);
    assert.match(hit.stdout, /;; Flags: qr[a-z ]*; QUERY: 1; ANSWER: 160;/);
    assert.doesNotMatch(hit.stdout, /;; Flags:[a-z ]* tc/);
    assert.equal(hit.stdout.split('\n').filter((l) => /^huge\.udpb\.example\.\s+\d+\s+IN\s+TXT\s+"\d{3}h{246}"$/.test(l)).length, HUGE_RRS);
    const size = Number(/;; Received (\d+) B/.exec(hit.stdout)?.[1]);
    assert.ok(size > 40_000 && size <= 65_507, `answer of ${size} octets over UDP`);
    assert.equal(stub.resolver.counters.truncated, 0);
    assert.equal(stub.resolver.counters.hits, 1);
    // Eight cache hits read in one batch: 8 × 42 KB overflows the native send arena (128 KB) mid-batch.
    const { sock, answers } = await client(t);
    const q = (id: number): Buffer => dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'TXT', name: 'huge.udpb.example' }],
      additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 65535 } as dnsPacket.Answer] });
    for (let id = 1; id <= 8; id++) sock.send(q(id), stub.port, stub.host);
    await until(() => answers.size === 8);
    assert.equal(answers.size, 8);
    for (const [id, a] of answers) {
      assert.equal(a.length, size, `answer ${id} whole`);
      const p = dnsPacket.decode(a);
      assert.equal(p.flags! & dnsPacket.TRUNCATED_RESPONSE, 0);
      assert.equal(p.answers?.length, HUGE_RRS);
    }
  });

  test(`${backend}: a burst of 2,000 distinct names, then the same 2,000 from cache (IPv4 and IPv6 clients), each answered for its own question`, async (t) => {
    if (!needs(t, { commands: ['knotd', 'dig'] })) return;
    const auth = await authDns();
    // Both of Knot's addresses: a query Knot drops in the burst (its socket buffer is the kernel default) is retried on the other.
    const stub = await stubOn(t, backend, [`127.0.0.1:${auth.port}`, `[::1]:${auth.port}`], { listen: ['127.0.0.1:0', '[::1]:0'] });
    if (!stub) return;
    const N = 2000;
    // Equal-length names: equal-length answers to one client, the case the native send path coalesces (UDP GSO).
    const names = Array.from({ length: N }, (_, i) => `n${String(i).padStart(4, '0')}.burst.udpb.example`);
    const c = stub.resolver.counters;
    const pass = async (label: string, family: 4 | 6): Promise<void> => {
      const { sock, answers } = await client(t, family);
      const to = stub.resolver.addresses[family === 4 ? 0 : 1]!;
      names.forEach((name, i) => sock.send(dnsPacket.encode({ type: 'query', id: i + 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'AAAA', name }] }), to.port, to.host));
      await until(() => answers.size === N, 2 * DEADLINE_MS);
      let good = 0;
      const bad: string[] = [];
      for (const [id, a] of answers) {
        const p = dnsPacket.decode(a);
        assert.equal(p.questions?.[0]?.name, names[id - 1], `${label}: answer ${id} carries its own question`);
        const rcode = (p.flags ?? 0) & 0xf;
        if (rcode === 0 && p.answers?.length === 1 && rdata(p.answers[0]!) === '2001:db8:b::1') good++;
        else bad.push(`${id}:rcode ${rcode}`);
      }
      assert.ok(good >= N * 0.99, `${label}: ${good} of ${N} answered right; wrong: ${bad.slice(0, 10).join(' ')}; upstream timeouts ${c.upstreamTimeouts}`);
    };
    await pass('misses over IPv4', 4);
    const hitsBefore = c.hits;
    await pass('hits over IPv4', 4);
    await pass('hits over IPv6', 6);
    assert.ok(c.hits - hitsBefore >= 2 * N * 0.99, 'second and third passes served from the cache');
  });

  test(`${backend}: upstream sockets used once each (socketUses 1): 500 misses answered, every socket closed again`, async (t) => {
    if (!needs(t, { commands: ['knotd'] })) return;
    const auth = await authDns();
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    // Each socket is retired at once and closed when its one answer arrives: from inside its own receive callback.
    const stub = await stubOn(t, backend, [`127.0.0.1:${auth.port}`], { upstream: { socketUses: 1, socketCount: 4 } });
    if (!stub) return;
    const N = 500;
    const { sock, answers } = await client(t);
    for (let i = 0; i < N; i++) sock.send(dnsPacket.encode({ type: 'query', id: i + 1, questions: [{ type: 'AAAA', name: `s${i}.burst.udpb.example` }] }), stub.port, stub.host);
    await until(() => answers.size === N);
    const good = [...answers.values()].filter((a) => ((a[3]! & 0xf) === 0) && dnsPacket.decode(a).answers?.length === 1).length;
    assert.ok(good >= N * 0.99, `${good} of ${N}`);
    await stub.resolver.close();
    sock.close();
    await until(() => fds() <= before); // dgram closes asynchronously
    assert.ok(fds() <= before, `file descriptors: ${before} before, ${fds()} after`);
  });
}

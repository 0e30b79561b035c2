// Malformed client traffic, TCP framing and limits, and floods against the bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { needs } from '../helpers/prereq.ts';
import { dig, digStatus, startStub, type Stub } from './harness.ts';
import { answerFor, startBlackHole, startFakeUpstream } from './fake-upstream.ts';
import { DEADLINE_MS, waitFor, within } from '../helpers/wait.ts';
import { resolverStatus, startCli, waitFor as pollFor } from './process.ts';

const SENTINEL_ID = 0xfeed;

/**
 * Send datagrams from one socket, then a real query (ID 0xfeed) that goes upstream; return the replies
 * that came before its answer. The listener handles one socket's datagrams in order and answers the
 * others without going upstream, so once the sentinel is answered no other reply is still to come.
 */
async function udpExchange(stub: Stub, msgs: Uint8Array[]): Promise<Buffer[]> {
  const s = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  s.on('message', (m) => got.push(m));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  for (const m of [...msgs, query('sentinel.test', SENTINEL_ID)]) s.send(m, stub.port, stub.host);
  try {
    await waitFor(() => got.some((m) => m.readUInt16BE(0) === SENTINEL_ID), 'the answer to the sentinel query');
  } finally {
    s.close();
  }
  return got.filter((m) => m.readUInt16BE(0) !== SENTINEL_ID);
}

/** Send datagrams from one socket and close it; replies are not awaited. */
async function udpSpray(stub: Stub, msgs: Uint8Array[]): Promise<void> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  await Promise.all(msgs.map((m) => new Promise<void>((r) => s.send(m, stub.port, stub.host, () => r()))));
  s.close();
}

const query = (name: string, id = 0x4242, extra: Partial<dnsPacket.Packet> = {}): Buffer =>
  dnsPacket.encode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'AAAA' }], ...extra });

test('malformed queries: FORMERR / NOTIMP / BADVERS, silent drop for non-queries; the listener keeps serving', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q) }]);
  const stub = await startStub(t, [up.addr], { capability: { enabled: false } });
  const good = query('ok.test', 1);
  const twoQ = Buffer.from(good); twoQ.writeUInt16BE(2, 4); twoQ.writeUInt16BE(0x1002, 0);
  const longLabel = Buffer.concat([Buffer.from([0x10, 0x03, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 28, 0, 1])]);
  const truncQ = Buffer.from(good.subarray(0, good.length - 3)); truncQ.writeUInt16BE(0x1004, 0);
  const status = Buffer.from(good); status.writeUInt16BE(0x1005, 0); status[2] = 0x10; // opcode 2
  const ednsV1 = query('v1.test', 0x1006, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer] });
  ednsV1[ednsV1.length - 5] = 1; // OPT version 1 (name 1, type 2, class 2, ext-rcode 1, then version)
  const response = Buffer.from(good); response[2] = response[2]! | 0x80;
  const statusEdns = query('status.test', 0x1007, { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as unknown as dnsPacket.Answer] });
  statusEdns[2] = 0x10; // opcode 2
  const replies = await udpExchange(stub, [Buffer.from([1, 2, 3, 4, 5]), response, twoQ, longLabel, truncQ, status, ednsV1, statusEdns]);
  const byId = new Map(replies.map((m) => [m.readUInt16BE(0), m]));
  assert.equal(replies.length, 6, 'the 5-octet datagram and the response got no answer');
  for (const id of [0x1002, 0x1003, 0x1004]) {
    assert.equal((byId.get(id)![3]! & 0xf), 1, `FORMERR for ${id.toString(16)}`);
    assert.ok(byId.get(id)![2]! & 0x80, 'QR set');
  }
  assert.equal(byId.get(0x1005)![3]! & 0xf, 4, 'NOTIMP for opcode STATUS');
  // RFC 6891 §7: the NOTIMP to a query with an OPT has one too, after the question it echoes.
  const notImp = dnsPacket.decode(byId.get(0x1007)!);
  assert.equal(byId.get(0x1007)![2]! & 0x78, 0x10, 'the opcode echoed');
  assert.deepEqual([byId.get(0x1007)![3]! & 0xf, notImp.questions?.map((q) => q.name), notImp.additionals?.map((r) => r.type)], [4, ['status.test'], ['OPT']]);
  const badvers = byId.get(0x1006)!;
  assert.equal(badvers.readUInt16BE(10), 1, 'one OPT in the additional section');
  // RFC 6891 §6.1.3: RCODE 16 = header 0 + OPT extended RCODE 1 (TTL field's first octet).
  assert.equal(badvers[3]! & 0xf, 0);
  assert.equal(badvers[badvers.length - 11 + 5], 1);
  assert.equal(stub.resolver.counters.formerr, 3);
  // 20,000 datagrams of noise, then a real query still works.
  const noise: Uint8Array[] = [];
  let x = 12345;
  for (let i = 0; i < 20_000; i++) {
    const len = (x = (x * 1103515245 + 12345) >>> 0) % 60;
    noise.push(Uint8Array.from({ length: len }, (_, j) => (x >>> (j % 24)) & 0xff));
  }
  await udpSpray(stub, noise);
  await waitFor(() => stub.resolver.counters.formerr > 1000, 'FORMERR answers to the noise');
  // The kernel may still hold queued noise, and a full socket queue drops any datagram, dig's too:
  // a few tries, each answered at once by a listener that keeps serving.
  const ok = await dig(stub, 'after.test.', 'AAAA', '+tries=5', '+time=5');
  assert.equal(digStatus(ok.stdout), 'NOERROR', ok.stdout + ok.stderr);
});

test('TCP: pipelined queries on one connection, a garbage frame gets FORMERR, idle connections close, connection limit holds', async (t) => {
  // The slow answer waits 1 s upstream: the other three come back long before it, also on a loaded
  // machine; and the connection outlives its 300 ms idle time with a query in flight.
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q), delayMs: q.name.startsWith('slow') ? 1000 : 0 }]);
  const stub = await startStub(t, [up.addr], { capability: { enabled: false }, tcp: { idleMs: 300, maxConnections: 3 } });
  const c = net.connect(stub.port, stub.host);
  t.after(() => c.destroy());
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  await new Promise<void>((r) => c.once('connect', () => r()));
  const frames = [query('slow.test', 1), query('fast.test', 2), Buffer.from([0xab, 0xcd, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 99]), query('third.test', 3)];
  c.write(Buffer.concat(frames.map((f) => Buffer.concat([Buffer.from([f.length >> 8, f.length & 0xff]), f]))));
  const got = tcpReplies(c);
  await waitFor(() => got.length >= 4, 'four answers on the connection');
  const ids = got.map((m) => m.readUInt16BE(0));
  assert.deepEqual([...ids].sort((a, b) => a - b), [1, 2, 3, 0xabcd]);
  assert.equal(ids[ids.length - 1], 1, 'the slow answer came last: out-of-order pipelining (RFC 7766 §6.2.1.1)');
  assert.equal(got.find((m) => m.readUInt16BE(0) === 0xabcd)![3]! & 0xf, 1);
  // Idle timeout (300 ms) closes the connection, counted from the last answer.
  await within(closed, 'the idle connection to be closed');
});

test('TCP: a connection that pipelines queries toward a silent upstream has at most tcp.maxInflight of them in flight; the stub stops reading it meanwhile', async (t) => {
  const hole = await startBlackHole(t);
  const stub = await startStub(t, [hole.addr], {
    capability: { enabled: false }, tcp: { maxInflight: 8 }, queryTimeoutMs: 30_000,
    upstream: { attemptTimeoutMs: 30_000, minAttemptTimeoutMs: 30_000 },
  });
  const c = net.connect(stub.port, stub.host);
  t.after(() => c.destroy());
  await new Promise<void>((r) => c.once('connect', () => r()));
  // 40 queries in one write: read at once, all 40 would go upstream in this turn.
  const frames = Array.from({ length: 40 }, (_, i) => query(`p${i}.test`, i + 1));
  c.write(Buffer.concat(frames.map((f) => Buffer.concat([Buffer.from([f.length >> 8, f.length & 0xff]), f]))));
  const piped = (): number => hole.queries.filter((q) => /^p\d+\.test$/.test(q.name)).length;
  await waitFor(() => piped() >= 8, 'the first queries upstream');
  // A query from another client, after them: once it is upstream, the connection's were read or not.
  await udpSpray(stub, [query('sentinel.test', SENTINEL_ID)]);
  await waitFor(() => hole.queries.some((q) => q.name === 'sentinel.test'), 'the other client\'s query upstream');
  assert.equal(piped(), 8, 'tcp.maxInflight (8) of the connection\'s 40 queries in flight');
});

test('TCP connection limit: 3 accepted and served, the others dropped', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q) }]);
  // No idle timeout within the test: a connection that closes here was dropped by the limit.
  const stub = await startStub(t, [up.addr], { capability: { enabled: false }, tcp: { idleMs: 3_600_000, maxConnections: 3 } });
  const socks = Array.from({ length: 6 }, () => net.connect(stub.port, stub.host));
  t.after(() => socks.forEach((s) => s.destroy()));
  const ended = new Set<net.Socket>();
  for (const s of socks) { s.once('close', () => ended.add(s)); s.once('error', () => ended.add(s)); }
  await waitFor(() => ended.size >= 3, 'three connections over the limit to be dropped');
  const open = socks.filter((s) => !ended.has(s));
  assert.equal(open.length, 3);
  // The three left are real, served connections (so the three dropped were the ones over the limit).
  await Promise.all(open.map(async (s, i) => {
    const got = tcpReplies(s);
    const f = query(`limit${i}.test`, 0x100 + i);
    s.write(Buffer.concat([Buffer.from([f.length >> 8, f.length & 0xff]), f]));
    await waitFor(() => got.length === 1, `an answer on accepted connection ${i}`);
    assert.equal(got[0]!.readUInt16BE(0), 0x100 + i);
  }));
  assert.equal(ended.size, 3, 'no accepted connection was dropped');
});

/** Framed DNS messages arriving on a TCP connection, collected as they come. */
function tcpReplies(c: net.Socket): Buffer[] {
  const got: Buffer[] = [];
  let buf = Buffer.alloc(0);
  c.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) { got.push(buf.subarray(2, 2 + buf.readUInt16BE(0))); buf = buf.subarray(2 + buf.readUInt16BE(0)); }
  });
  return got;
}

test('flood of random names: cache and capability entries stay within their bounds', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q) }]);
  const stub = await startStub(t, [up.addr], { cache: { maxEntries: 200, maxBytes: 40_000 }, capability: { maxEntries: 100 } });
  const s = dgram.createSocket('udp4');
  let answered = 0;
  s.on('message', () => answered++);
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  s.setRecvBufferSize(4 * 1024 * 1024);
  t.after(() => s.close());
  const N = 2000;
  for (let i = 0; i < N; i++) {
    s.send(query(`n${i}-${(i * 2654435761) >>> 0}.flood.test`, i & 0xffff), stub.port, stub.host);
    // Keep at most ~200 outstanding: the test measures bounds, not kernel buffer overflow.
    if (i - answered > 200) await waitFor(() => i - answered <= 200, `answers to catch up (${answered}/${i} answered)`, DEADLINE_MS, 5);
  }
  await waitFor(() => answered >= N * 0.95, `answers to ${N * 0.95} of the ${N} queries`);
  const st = stub.resolver.status() as { cache: { entries: number; bytes: number }; capability: { positive: unknown[]; negative: unknown[] } };
  assert.ok(st.cache.entries <= 200, `entries ${st.cache.entries}`);
  assert.ok(st.cache.bytes <= 40_000, `bytes ${st.cache.bytes}`);
  assert.ok(st.capability.positive.length + st.capability.negative.length <= 100);
});

test('flood towards a black-hole upstream: outstanding upstream queries are capped, the excess fails fast', async (t) => {
  const hole = await startBlackHole(t);
  // Attempt timeout 30 s, query deadline 60 s, and the test waits at most 20 s: every SERVFAIL it
  // sees came from the cap, not from a timeout.
  const stub = await startStub(t, [hole.addr], { capability: { enabled: false }, queryTimeoutMs: 60_000, upstream: { maxInflight: 50, attemptTimeoutMs: 30_000 } });
  const s = dgram.createSocket('udp4');
  const rcodes: number[] = [];
  s.on('message', (m) => rcodes.push(m[3]! & 0xf));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  s.setRecvBufferSize(4 * 1024 * 1024);
  t.after(() => s.close());
  for (let i = 0; i < 500; i++) s.send(query(`h${i}.test`, i), stub.port, stub.host);
  await waitFor(() => rcodes.length >= 440, `SERVFAILs for the queries over the cap (${rcodes.length} so far)`, 20_000);
  assert.ok(hole.queries.length <= 50, `upstream saw ${hole.queries.length}`);
  assert.ok(rcodes.every((r) => r === 2), `fast SERVFAILs: ${rcodes.join(',')}`);
});

test('TCP per-address limit: the address\'s oldest idle connection makes room; with none idle the newcomer is refused, other addresses are not', async (t) => {
  // `slow…` names are never answered: their queries stay in flight for the whole test (deadlines of a minute).
  const up = await startFakeUpstream(t, (q) => (q.name.startsWith('slow') ? undefined : [{ bytes: answerFor(q) }]));
  const stub = await startStub(t, [up.addr], { capability: { enabled: false }, tcp: { maxConnectionsPerClient: 2 }, queryTimeoutMs: 60_000, upstream: { attemptTimeoutMs: 30_000 } });
  const open = async (localAddress: string): Promise<{ c: net.Socket; closed: Promise<void> }> => {
    const c = net.connect({ port: stub.port, host: stub.host, localAddress });
    t.after(() => c.destroy());
    c.on('error', () => undefined);
    const closed = new Promise<void>((r) => c.once('close', () => r()));
    await new Promise<void>((r) => c.once('connect', () => r()));
    return { c, closed };
  };
  const frame = (name: string): Buffer => { const q = query(name, 7); return Buffer.concat([Buffer.from([q.length >> 8, q.length & 0xff]), q]); };
  const idle = await open('127.0.0.1');
  const busy = await open('127.0.0.1');
  busy.c.write(frame('slow1.test'));
  await waitFor(() => up.queries.length === 1, 'the first query upstream');
  assert.equal(up.queries.length, 1);
  await open('127.0.0.1'); // the idle one gives way
  await idle.closed;
  assert.equal(stub.resolver.counters.tcpEvicted, 1);
  const third = await open('127.0.0.1'); // makes room by closing the newcomer above, idle too
  assert.equal(stub.resolver.counters.tcpEvicted, 2);
  third.c.write(frame('slow2.test'));
  await waitFor(() => up.queries.length === 2, 'the second query upstream');
  assert.equal(up.queries.length, 2, 'both slow queries are in flight upstream');
  const refused = await open('127.0.0.1'); // both of this address's connections have a query in flight
  await refused.closed;
  assert.equal(stub.resolver.counters.tcpRefused, 1);
  const other = await open('127.0.0.2');
  other.c.write(frame('fast.test'));
  const answer = await new Promise<Buffer>((r) => other.c.once('data', (d: Buffer) => r(d)));
  assert.equal(answer.readUInt16BE(2), 7, 'another address is served');
  assert.equal(stub.resolver.status().tcp.connections, 3);
});

test('a query from UDP source port 0 (nowhere to answer, RFC 768) is dropped and counted, on both UDP backends; the stub lives on', { timeout: 120_000 }, async (t) => {
  if (!needs(t, { root: true, commands: ['python3', 'dig'] })) return;
  for (const udp of ['dgram', 'native']) {
    const cli = await startCli(t, ['--udp', udp, '--upstream', '127.0.0.1:9']);
    // A raw UDP socket writes the UDP header itself: source port 0 (checksum 0: none, for IPv4).
    const q = query('port-zero.test');
    const py = 'import socket,struct,sys\n'
      + 'q=bytes.fromhex(sys.argv[2])\n'
      + 's=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_UDP)\n'
      + 's.sendto(struct.pack("!HHHH",0,int(sys.argv[1]),8+len(q),0)+q,("127.0.0.1",0))\n';
    const sent = spawnSync('python3', ['-c', py, String(cli.port), q.toString('hex')], { encoding: 'utf8' });
    assert.equal(sent.status, 0, sent.stderr);
    assert.ok(await pollFor(async () => (await resolverStatus(cli)).counters.dropped === 1), `${udp}: the datagram from port 0 dropped and counted`);
    // EDNS version 1: answered by the stub itself (BADVERS), no upstream needed.
    const r = await dig({ host: '127.0.0.1', port: cli.port }, '+edns=1', '+noednsneg', 'alive.test.', 'AAAA');
    assert.equal(digStatus(r.stdout), 'BADVERS', `${udp}: the stub still answers: ${r.stdout}${r.stderr}\n${cli.stderr()}`);
    assert.equal(await cli.stop(), 0, cli.stderr());
  }
});

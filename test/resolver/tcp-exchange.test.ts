// shim/dns-tcp.ts: one framed DNS exchange over TCP (RFC 7766 §8) against real loopback
// servers that misbehave on purpose, and against a real Knot. Each case also checks that
// the client released its socket (the server sees the connection close) and its timer.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { DnsTcpError, tcpExchange } from '../../shim/dns-tcp.ts';
import { exchange, TransportError } from '../../zone-tools/dns-transport.ts';
import { buildQuery } from '../../resolver/answer-build.ts';
import { scanResponse } from '../../resolver/answer-scan.ts';
import { textToNameKey } from '../../resolver/message.ts';
import { startAuthDns } from '../helpers/authdns.ts';
import { needs } from '../helpers/prereq.ts';
import { DEADLINE_MS, within } from '../helpers/wait.ts';

const QUERY = buildQuery(0x1234, textToNameKey('tcp.test.'), 28, 1);
const LONG_MS = DEADLINE_MS; // cases that must end without their timeout: an ETIMEOUT there is the failure

interface Server {
  port: number;
  /** Resolves with the first connection's query (its frame body) once it has arrived whole. */
  query: Promise<Uint8Array>;
  /** Resolves when the first connection has closed; rejects after DEADLINE_MS. */
  closed(): Promise<void>;
}

/** A loopback TCP server that hands its first connection to `serve` once the framed query is in. */
async function startServer(t: TestContext, serve: (sock: Socket, query: Uint8Array) => void): Promise<Server> {
  let onQuery!: (q: Uint8Array) => void;
  let onClose!: () => void;
  const query = new Promise<Uint8Array>((resolve) => { onQuery = resolve; });
  const closed = new Promise<void>((resolve) => { onClose = resolve; });
  const open = new Set<Socket>();
  const srv = createServer((sock) => {
    open.add(sock);
    sock.on('error', () => undefined); // a reset from the client is expected in some cases
    sock.on('close', () => { open.delete(sock); onClose(); });
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length === 2 + buf.readUInt16BE(0)) {
        const q = new Uint8Array(buf.subarray(2));
        onQuery(q);
        serve(sock, q);
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.after(() => { for (const s of open) s.destroy(); srv.close(); });
  const port = (srv.address() as { port: number }).port;
  return {
    port,
    query,
    closed: () => within(closed, 'the client to close its connection'),
  };
}

function frame(body: Uint8Array, length = body.length): Buffer {
  const b = Buffer.alloc(2 + body.length);
  b.writeUInt16BE(length, 0);
  b.set(body, 2);
  return b;
}

const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => e instanceof DnsTcpError && e.code === code);
}

test('answer split across chunks, even inside the length, with octets after the frame', async (t) => {
  const answer = new Uint8Array(300).map((_, i) => i & 0xff);
  let writer: Promise<void> | undefined;
  const server = await startServer(t, (sock) => {
    sock.setNoDelay(true);
    const wire = Buffer.concat([frame(answer), Buffer.from([0xde, 0xad, 0xbe, 0xef])]);
    // Pieces far apart in time so the client sees them as separate reads.
    writer = (async () => {
      for (const [from, to] of [[0, 1], [1, 2], [2, 50], [50, wire.length]] as const) {
        if (from > 0) await pause(30);
        sock.write(wire.subarray(from, to));
      }
    })();
  });
  const got = await tcpExchange('127.0.0.1', server.port, QUERY, LONG_MS);
  assert.deepEqual(got, answer);
  assert.deepEqual(await server.query, QUERY, 'the query arrived with its 2-octet length');
  await server.closed();
  await writer; // no pause timer left running into the next case's timer count
});

test('two frames in one chunk: only the first is the answer', async (t) => {
  const first = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  const server = await startServer(t, (sock) => sock.write(Buffer.concat([frame(first), frame(new Uint8Array(20).fill(7))])));
  const before = timers();
  assert.deepEqual(await tcpExchange('127.0.0.1', server.port, QUERY, LONG_MS), first);
  assert.equal(timers(), before, 'the timeout timer was cleared');
  await server.closed();
});

test('server closes in the middle of the answer → ECLOSED at once', async (t) => {
  const server = await startServer(t, (sock) => sock.end(frame(new Uint8Array(10), 100)));
  const before = timers();
  // ECLOSED, not ETIMEOUT: it did not wait for the timeout.
  await rejectsWith(tcpExchange('127.0.0.1', server.port, QUERY, LONG_MS), 'ECLOSED');
  assert.equal(timers(), before, 'the timeout timer was cleared');
  await server.closed();
});

test('server closes without a single octet, or resets → ECLOSED', async (t) => {
  const quiet = await startServer(t, (sock) => sock.end());
  await rejectsWith(tcpExchange('127.0.0.1', quiet.port, QUERY, LONG_MS), 'ECLOSED');
  const reset = await startServer(t, (sock) => sock.resetAndDestroy());
  await rejectsWith(tcpExchange('127.0.0.1', reset.port, QUERY, LONG_MS), 'ECLOSED');
});

test('garbage length: 65535 announced, 5 sent, then silence → ETIMEOUT; 0 announced → an empty message for the caller to judge', async (t) => {
  const big = await startServer(t, (sock) => sock.write(frame(new Uint8Array(5), 0xffff)));
  await rejectsWith(tcpExchange('127.0.0.1', big.port, QUERY, 200), 'ETIMEOUT');
  await big.closed();
  const zero = await startServer(t, (sock) => sock.write(Buffer.from([0, 0, 0x81, 0x80])));
  assert.equal((await tcpExchange('127.0.0.1', zero.port, QUERY, LONG_MS)).length, 0);
  await zero.closed();
});

test('silent server → ETIMEOUT after the timeout, socket closed', async (t) => {
  const server = await startServer(t, () => undefined);
  const before = timers();
  const t0 = Date.now();
  await rejectsWith(tcpExchange('127.0.0.1', server.port, QUERY, 250), 'ETIMEOUT');
  const took = Date.now() - t0;
  t.diagnostic(`ETIMEOUT after ${took} ms (timeout 250 ms)`);
  assert.ok(took >= 240, `gave up after ${took} ms, before its 250 ms timeout`);
  assert.equal(timers(), before);
  await server.closed();
});

test('nobody listening → ECONNECT; port out of range → ECONNECT; oversized query → ETOOLARGE', async () => {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  const before = timers();
  await rejectsWith(tcpExchange('127.0.0.1', port, QUERY, LONG_MS), 'ECONNECT');
  await rejectsWith(tcpExchange('127.0.0.1', 70000, QUERY, LONG_MS), 'ECONNECT');
  await rejectsWith(tcpExchange('127.0.0.1', port, new Uint8Array(65536), LONG_MS), 'ETOOLARGE');
  assert.equal(timers(), before);
});

test('zone tools keep their TransportError codes over the shared exchange', async (t) => {
  const server = await startServer(t, () => undefined);
  await assert.rejects(exchange({ host: '127.0.0.1', port: server.port }, QUERY, { tcp: true, timeoutMs: 150 }),
    (e: unknown) => e instanceof TransportError && e.code === 'ETIMEOUT');
  const early = await startServer(t, (sock) => sock.end());
  await assert.rejects(exchange({ host: '127.0.0.1', port: early.port }, QUERY, { tcp: true, timeoutMs: LONG_MS }),
    (e: unknown) => e instanceof TransportError && e.code === 'ECLOSED');
});

test('a real Knot answers over TCP on 127.0.0.1 and ::1', async (t) => {
  if (!needs(t, { commands: ['knotd', 'kdig'] })) return;
  const zone = 'tcpx.test.';
  const text = `$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns AAAA 2001:db8::53\nhost AAAA 2001:db8::10\n`;
  const dns = await startAuthDns({ server: 'knot', zones: [{ name: zone, text }] });
  t.after(() => dns.stop());
  for (const host of dns.addresses) {
    const q = buildQuery(0xbeef, textToNameKey(`host.${zone}`), 28, 1);
    const answer = await tcpExchange(host, dns.port, q, LONG_MS);
    const scan = scanResponse(answer);
    assert.equal(scan.id, 0xbeef);
    assert.equal(scan.qnameKey, textToNameKey(`host.${zone}`));
    assert.equal(scan.rcode, 0);
    const rdata = Buffer.from([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]);
    assert.ok(Buffer.from(answer).includes(rdata), 'the AAAA rdata 2001:db8::10 is in the answer');
  }
});

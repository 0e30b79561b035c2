// The metrics port on its own (no daemon): /metrics read by two real parsers
// (parse-prometheus-text-format, and Prometheus' own promtool, which also lints
// the names), values that follow the status snapshot, the page and its JSON,
// and the HTTP bounds (GET/HEAD only, no body, short URLs, unknown paths; idle clients, and
// clients that ask and never read, neither keep the scraper out nor pile responses up).
// test/e2e/observability.test.ts does the same on a live daemon with traffic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import parse, { type ParsedFamily } from 'parse-prometheus-text-format';
import { MAX_CONNECTIONS, MAX_PIPELINED, startMetricsServer, type MetricsServer } from '../../shim/daemon/metrics/server.ts';
import { parseMetricsEndpoint } from '../../shim/daemon/metrics/endpoint.ts';
import { ThroughputHistory } from '../../shim/daemon/metrics/history.ts';
import type { StatusReply } from '../../shim/daemon/status-view.ts';
import type { ContextStatus } from '../../shim/engine/index.ts';
import { UsageError } from '../../shim/errors.ts';
import { Logger } from '../../shim/log.ts';
import { startCli } from '../resolver/process.ts';
import { shim6 } from '../helpers/cli.ts';
import { DEADLINE_MS, waitFor, within } from '../helpers/wait.ts';
import { tmpdir } from '../helpers/tmp.ts';
import { fuzzParams } from '../helpers/rng.ts';

const PEER = '2001:db8:b::1';

function context(bytesIn: number, rehome: boolean): ContextStatus {
  return {
    state: 'ESTABLISHED', localUlid: '2001:db8:a::1', peerUlid: PEER, ulidProof: 'hba', contextTag: 77, peerContextTag: 88,
    pair: { local: '2001:db8:a::1', peer: PEER }, reap: 'Operational',
    peerLocators: [{ address: PEER, verified: true, probed: true, flags: 0 }, { address: '2001:db8:c::1', verified: true, probed: false, flags: 0 }],
    timers: {}, traffic: { packetsIn: bytesIn / 100, bytesIn, packetsOut: 3, bytesOut: 300 }, lastReceivedAgoMs: 1500, rehomings: rehome ? 1 : 0,
    ...(rehome ? { lastRehome: { agoMs: 2000, cause: 'send-timeout' as const, old: { local: '2001:db8:a::1', peer: PEER }, new: { local: '2001:db8:a::1', peer: '2001:db8:c::1' } } } : {}),
  };
}

/** A status reply as the daemon gives it, with `n` as the amount of everything. */
function reply(n: number): StatusReply {
  return {
    schemaVersion: 1,
    daemon: { pid: 1, uptimeSeconds: 5, tun: 'shim6', tunPersistent: false, port: 5533, profile: 'fast', routed: [PEER], locators: [{ address: '2001:db8:a::1', up: true, ifname: 'p' }],
      stats: { udpIn: n, udpOut: n, tunIn: n, tunOut: n, noContext: 0, notIpv6: 0, drops: { 'no-context': n }, prompts: 0 }, peers: [{ name: 'b.example.', ulid: PEER }] },
    engine: {
      contexts: [context(n * 100, n > 1)], caches: { positive: 1, negative: 0 },
      guard: { ulidUnproven: 0, ulidIsLocal: 0, contextLimit: 0, replies: { R1: { sent: n, limited: n, oversize: 0 }, R1bis: { sent: 0, limited: 0, oversize: 0 }, Error: { sent: 0, limited: 0, oversize: 0 }, R2: { sent: 0, limited: 0, oversize: 0 } }, probeReplies: { sent: n, limited: 2 * n, trimmed: 0, portPinned: n }, cga: { verified: 0, cached: 0, limited: 0, badSignature: 0, keyNotRsa: 0, keyTooShort: 0, keyTooLong: 0, keyBadExponent: 0 },
        knownPeers: { peers: n, asked: n, updates: n, replies: 3 * n, verifications: 0, probeReplies: n, primed: 0 } },
      messages: { sent: { I1: 1, Probe: n }, received: { R1: 1, UpdateRequest: n } }, rehomings: n > 1 ? { 'send-timeout': 1 } : {},
    },
    resolver: {
      listen: [{ host: '::1', port: 53 }], counters: { queries: 2 * n, udpQueries: 2 * n, tcpQueries: 0, hits: n, misses: n, servfail: 0, servfailUpstream: 0, servfailNoAnswer: 0, servfailInternal: 0 },
      cache: { entries: n, bytes: 100 * n, maxEntries: 10, maxBytes: 1000, inflight: 0 },
      upstreams: [{ host: '::1', port: 5300, sent: n, answered: n, timeouts: 0, failures: 0, rttMs: 1, rttVarMs: 0.5, rttBuckets: [n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], rttSumMs: n, down: false, caseFallback: false }],
      tcp: { connections: 0, maxConnections: 10 }, capability: { enabled: true, positive: [{ name: 'b.example.', ulid: PEER }], negative: [] },
    },
  };
}

async function get(port: number, path: string, init: RequestInit = {}): Promise<{ status: number; type: string; body: string }> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, init);
  return { status: r.status, type: r.headers.get('content-type') ?? '', body: await r.text() };
}

function family(fams: ParsedFamily[], name: string): ParsedFamily {
  const f = fams.find((x) => x.name === name);
  assert.ok(f, `${name} is exported`);
  return f;
}

function value(fams: ParsedFamily[], name: string, labels: Record<string, string> = {}): number {
  const m = family(fams, name).metrics.find((s) => Object.entries(labels).every(([k, v]) => s.labels?.[k] === v));
  assert.ok(m, `${name}${JSON.stringify(labels)} has a sample`);
  return Number(m.value);
}

async function server(t: { after: (fn: () => Promise<void>) => void }, status: () => StatusReply): Promise<MetricsServer> {
  const s = await startMetricsServer({ address: '127.0.0.1', port: 0 }, { status, traffic: () => [] });
  t.after(() => s.close());
  return s;
}

test('/metrics: both parsers read it, names follow the conventions, values follow the snapshot', async (t) => {
  let n = 1;
  const s = await server(t, () => reply(n));
  const first = await get(s.port, '/metrics');
  assert.equal(first.status, 200);
  assert.match(first.type, /^text\/plain; version=0\.0\.4/);
  const a = parse(first.body);
  for (const f of a.filter((x) => x.name.startsWith('shim6_'))) {
    if (f.type === 'COUNTER') assert.match(f.name, /_total$/, `counter ${f.name} ends in _total`);
    else assert.doesNotMatch(f.name, /_total$/, `${f.type} ${f.name} does not end in _total`);
  }
  assert.equal(value(a, 'shim6_resolver_queries_total', { transport: 'udp' }), 2);
  assert.equal(value(a, 'shim6_contexts', { state: 'ESTABLISHED' }), 1);
  assert.equal(value(a, 'shim6_contexts', { state: 'I1-SENT' }), 0);
  assert.equal(value(a, 'shim6_context_received_bytes_total', { peer: PEER, name: 'b.example.' }), 100);
  assert.equal(value(a, 'shim6_rehomings_total', { cause: 'send-timeout' }), 0);
  const hist = family(a, 'shim6_resolver_upstream_rtt_seconds');
  assert.equal(hist.type, 'HISTOGRAM');
  assert.equal(hist.metrics[0]?.buckets?.['0.005'], '1');
  assert.ok(family(a, 'process_cpu_user_seconds_total'), 'the process metrics of prom-client are there too');

  n = 7;
  const b = parse((await get(s.port, '/metrics')).body);
  assert.equal(value(b, 'shim6_resolver_queries_total', { transport: 'udp' }), 14);
  assert.equal(value(b, 'shim6_resolver_cache_hits_total'), 7);
  assert.equal(value(b, 'shim6_resolver_cache_bytes'), 700);
  assert.equal(value(b, 'shim6_context_received_bytes_total', { peer: PEER }), 700);
  assert.equal(value(b, 'shim6_rehomings_total', { cause: 'send-timeout' }), 1);
  assert.equal(value(b, 'shim6_control_messages_sent_total', { type: 'Probe' }), 7);
  assert.equal(value(b, 'shim6_control_messages_received_total', { type: 'UpdateRequest' }), 7);
  assert.equal(value(b, 'shim6_stateless_replies_total', { kind: 'R1', outcome: 'limited' }), 7);
  assert.equal(value(b, 'shim6_probe_replies_total', { outcome: 'limited' }), 14);
  assert.equal(value(b, 'shim6_probe_replies_total', { outcome: 'port-pinned' }), 7);
  assert.equal(value(b, 'shim6_known_peers'), 7);
  assert.equal(value(b, 'shim6_known_peer_reserve_total', { use: 'reply' }), 21);
  assert.equal(value(b, 'shim6_known_peer_reserve_total', { use: 'probe-reply' }), 7);
  assert.equal(value(b, 'shim6_dataplane_drops_total', { reason: 'no-context' }), 7);
  assert.equal(family(b, 'shim6_resolver_upstream_rtt_seconds').metrics[0]?.buckets?.['+Inf'], '7');
});

test('/metrics follows the Prometheus naming conventions (shim6_ prefix, counters end in _total, base units)', async (t) => {
  const s = await server(t, () => reply(3));
  const fams = parse((await get(s.port, '/metrics')).body).filter((f) => f.name.startsWith('shim6_'));
  assert.ok(fams.length > 20, `the shim6 families (${fams.length})`);
  const bad: string[] = [];
  for (const f of fams) {
    if (!/^shim6_[a-z0-9_]+$/.test(f.name)) bad.push(`${f.name}: not snake_case`);
    if (f.type === 'COUNTER' && !f.name.endsWith('_total')) bad.push(`${f.name}: a counter without _total`);
    if (f.type !== 'COUNTER' && f.name.endsWith('_total')) bad.push(`${f.name}: _total on a ${f.type}`);
    if (/_(ms|milliseconds|kb|kib|mb|octets)(_|$)/.test(f.name)) bad.push(`${f.name}: not a base unit (seconds, bytes)`);
    if (!f.help) bad.push(`${f.name}: no HELP`);
  }
  assert.deepEqual(bad, []);
});

test('the page and its JSON: cards per peer, caches and upstreams; self-contained', async (t) => {
  const s = await server(t, () => reply(2));
  const page = await get(s.port, '/');
  assert.equal(page.status, 200);
  assert.match(page.type, /^text\/html/);
  assert.doesNotMatch(page.body, /<(?:link|img|script)[^>]+(?:src|href)=/i, 'no external assets');
  assert.match(page.body, /fetch\("status\.json"/);
  const j = JSON.parse((await get(s.port, '/status.json')).body) as { peers: Array<{ name: string; ulid: string; lastRehome: { cause: string } }>; resolver: { upstreams: Array<{ upstream: string }> } };
  assert.equal(j.peers.length, 1);
  assert.equal(j.peers[0]?.name, 'b.example.');
  assert.equal(j.peers[0]?.lastRehome.cause, 'send-timeout');
  assert.equal(j.resolver.upstreams[0]?.upstream, '[::1]:5300');
  assert.equal((await get(s.port, '/', { method: 'HEAD' })).body, '');
});

test('bounded: GET and HEAD only, no body, no long URL, Host required in HTTP/1.1, no expectation met, unknown paths 404, a failing snapshot is a 500', async (t) => {
  let fail = false;
  const s = await server(t, () => { if (fail) throw new Error('boom'); return reply(1); });
  assert.equal((await get(s.port, '/metrics', { method: 'POST', body: 'x' })).status, 405);
  assert.equal((await get(s.port, '/metrics', { method: 'PUT' })).status, 405);
  assert.equal((await get(s.port, '/metrics?' + 'a'.repeat(600))).status, 414);
  assert.equal((await get(s.port, '/nope')).status, 404);
  const withBody = await rawRequest(s.port, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc');
  assert.match(withBody, /^HTTP\/1\.1 413/);
  assert.match(await rawRequest(s.port, 'GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400/, 'HTTP/1.1 without Host');
  assert.match(await rawRequest(s.port, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: something\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 417/);
  assert.match(await rawRequest(s.port, 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 200/, 'no 100 Continue: no body is read');
  const hugeHeader = await rawRequest(s.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`);
  assert.match(hugeHeader, /^HTTP\/1\.1 431|^HTTP\/1\.1 400|^$/);
  fail = true;
  assert.equal((await get(s.port, '/metrics')).status, 500);
  fail = false;
  assert.equal((await get(s.port, '/metrics')).status, 200, 'still serving');
});

test('on loopback, a request must name the server by address or as localhost (DNS rebinding)', async (t) => {
  const s = await server(t, () => reply(1));
  const asked = async (host: string): Promise<string> => (await rawRequest(s.port, `GET /status.json HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).split('\r\n')[0]!;
  for (const ok of [`127.0.0.1:${s.port}`, '127.0.0.1', `localhost:${s.port}`, 'LOCALHOST', `shim6.localhost:${s.port}`, `[::1]:${s.port}`]) assert.equal(await asked(ok), 'HTTP/1.1 200 OK', ok);
  for (const bad of [`rebind.example:${s.port}`, 'rebind.example', `127.0.0.1.nip.example:${s.port}`, 'localhost.example', '[::1', '']) assert.equal(await asked(bad), 'HTTP/1.1 403 Forbidden', bad);
  assert.match(await rawRequest(s.port, 'GET /status.json HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200/, 'no Host at all (HTTP/1.0): not a browser');
});

test('bound to a wildcard address ([::], 0.0.0.0), a request that arrives over loopback must name the server too (DNS rebinding)', async (t) => {
  for (const [listen, loopback] of [['[::]:9533', '::1'], ['0.0.0.0:9533', '127.0.0.1']] as const) {
    const s = await startMetricsServer({ ...parseMetricsEndpoint('metrics', listen), port: 0 }, { status: () => reply(1) });
    t.after(() => s.close());
    const asked = async (host: string): Promise<string> => (await rawRequest(s.port, `GET /status.json HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`, loopback)).split('\r\n')[0]!;
    assert.equal(await asked(`rebind.example:${s.port}`), 'HTTP/1.1 403 Forbidden', `${listen}, reached on ${loopback}`);
    assert.equal(await asked(`localhost:${s.port}`), 'HTTP/1.1 200 OK', `${listen}, reached on ${loopback}`);
  }
});

test('clients that connect and send nothing cannot keep the scraper out: the connection idle the longest makes room', async (t) => {
  const s = await server(t, () => reply(1));
  const idle: net.Socket[] = [];
  t.after(() => { for (const c of idle) c.destroy(); });
  for (let i = 0; i < 3 * MAX_CONNECTIONS; i++) {
    const c = net.connect(s.port, '127.0.0.1');
    c.on('error', () => {});
    await new Promise((resolve) => c.once('connect', resolve));
    idle.push(c);
  }
  const r = await get(s.port, '/metrics', { signal: AbortSignal.timeout(DEADLINE_MS) });
  assert.equal(r.status, 200, 'served while the idle connections were there');
  await waitFor(() => idle.filter((c) => !c.destroyed && !c.readableEnded).length <= MAX_CONNECTIONS, 'the oldest idle connections closed');
});

/** A status reply with `n` established contexts: /metrics is then about 440 octets per context. */
function manyContexts(n: number): StatusReply {
  const contexts = Array.from({ length: n }, (_, i) => {
    const peer = `2001:db8:b::${(i + 1).toString(16)}`;
    return { ...context(100, false), peerUlid: peer, contextTag: 1000 + i, pair: { local: '2001:db8:a::1', peer }, peerLocators: [{ address: peer, verified: true, probed: true, flags: 0 }] };
  });
  return { schemaVersion: 1, engine: { contexts, caches: { positive: 1, negative: 0 } } } as unknown as StatusReply;
}

const OK = 'HTTP/1.1 200 OK';

/**
 * A client that sends `count` pipelined `GET path` in one write and reads nothing after the first
 * octets of the answer (`started` resolves then: the server has parsed the requests and is
 * answering). It keeps only the number of responses begun in what it read.
 */
function nonReader(port: number, count: number, path = '/metrics'): { sock: net.Socket; started: Promise<void>; drain: () => Promise<number> } {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let responses = 0;
  let carry = '';
  const read = (d: Buffer): void => {
    const text = carry + d.toString('latin1');
    responses += text.split(OK).length - 1;
    carry = text.slice(-(OK.length - 1));
  };
  const started = new Promise<void>((resolve) => sock.once('data', (d: Buffer) => { sock.pause(); read(d); resolve(); }));
  sock.once('connect', () => sock.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`.repeat(count)));
  /** Read the rest until the server closes the connection: the responses it began in all. */
  const drain = (): Promise<number> => new Promise((resolve) => {
    if (sock.destroyed) return resolve(responses);
    sock.on('data', read);
    sock.once('close', () => resolve(responses));
    sock.resume();
  });
  return { sock, started, drain };
}

/** Retained memory: heap and buffers after a full collection. */
function retained(): number {
  v8.setFlagsFromString('--expose-gc');
  (vm.runInNewContext('gc') as () => void)();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('clients that pipeline requests and never read cannot keep the scraper out, and the port holds one response per connection at most', async (t) => {
  // Two connections allowed (MAX_CONNECTIONS in production): two such clients fill the port. Each
  // asks for as many /metrics (~440 KB here) as a connection may have waiting, ~7.5 MB: more
  // than loopback's socket buffers take (~4 MB), so each is left with responses it never reads.
  const maxConnections = 2;
  const count = MAX_PIPELINED + 1;
  const status = manyContexts(1000);
  const s = await startMetricsServer({ address: '127.0.0.1', port: 0 }, { status: () => status }, { maxConnections });
  t.after(() => s.close());
  const body = (await get(s.port, '/metrics')).body.length;
  const before = retained();
  const hostile = Array.from({ length: maxConnections }, () => nonReader(s.port, count));
  t.after(() => { for (const h of hostile) h.sock.destroy(); });
  await within(Promise.all(hostile.map((h) => h.started)), 'the server answering the clients that do not read');
  const grown = retained() - before;
  t.diagnostic(`retained ${(grown / 2 ** 20).toFixed(1)} MiB while ${maxConnections} clients left ${count} responses of ${(body / 1024).toFixed(0)} KiB unread`);
  // The server makes a response only once the one ahead has gone to the kernel: one per
  // connection in memory, and 1 MiB per connection for the rest (its socket and parsed
  // requests, and this measurement's noise: the fetch client's state, the registry). Making a
  // response for every request, as it did, held about 5 MiB per connection here.
  const bound = maxConnections * (body + 2 ** 20);
  assert.ok(grown < bound, `${(grown / 2 ** 20).toFixed(1)} MiB retained, more than one response (${(body / 1024).toFixed(0)} KiB) and 1 MiB per connection`);

  const r = await get(s.port, '/metrics', { signal: AbortSignal.timeout(DEADLINE_MS) });
  assert.equal(r.status, 200, 'the scraper is served while the clients that do not read hold every connection');
  // What the closed one had been sent: not all it asked for (it was stuck on a response, not idle).
  const evicted = hostile.find((h) => h.sock.readableEnded || h.sock.destroyed) ?? hostile[0]!;
  const sent = await within(evicted.drain(), 'the rest of what the closed client was sent');
  assert.ok(sent < count, `the client closed for the scraper had all ${count} responses sent (socket buffers larger than expected: the test did not fill them)`);
});

test('a connection whose client takes nothing of its response for the stall time is closed', async (t) => {
  const lines: string[] = [];
  const log = new Logger({ level: 'debug', format: 'json', component: 'metrics', sink: { write: (l) => lines.push(l) } });
  const status = manyContexts(1000);
  const s = await startMetricsServer({ address: '127.0.0.1', port: 0 }, { status: () => status }, { log, stallMs: 300 });
  t.after(() => s.close());
  const stuck = nonReader(s.port, MAX_PIPELINED + 1);
  t.after(() => stuck.sock.destroy());
  await waitFor(() => lines.some((l) => l.includes('it took nothing of its response')), 'the server closing the connection that does not read');
  const sent = await within(stuck.drain(), 'the rest of what it was sent');
  assert.ok(sent < MAX_PIPELINED + 1, `all ${sent} responses were sent: the client was not stuck`);
});

test('a client gone while its status snapshot is being taken leaves no stall timer behind (no "took nothing" line afterwards)', async (t) => {
  const lines: string[] = [];
  const log = new Logger({ level: 'debug', format: 'json', component: 'metrics', sink: { write: (l) => lines.push(l) } });
  let release!: () => void;
  let asked = false;
  const ready = new Promise<void>((r) => { release = r; });
  const status = async (): Promise<StatusReply> => { asked = true; await ready; return reply(1); };
  const s = await startMetricsServer({ address: '127.0.0.1', port: 0 }, { status }, { log, stallMs: 200 });
  t.after(() => s.close());
  const c = net.connect(s.port, '127.0.0.1');
  c.on('error', () => {});
  await new Promise<void>((r) => c.once('connect', () => r()));
  c.write('GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  await waitFor(() => asked, 'the snapshot asked for');
  c.destroy();
  // The server sees the close in a turn of its own loop; then the snapshot comes.
  await new Promise((r) => setTimeout(r, 100));
  release();
  // A stall timer armed for that response would say so 200 ms later; waited for well past it.
  await new Promise((r) => setTimeout(r, 1000));
  assert.deepEqual(lines.filter((l) => l.includes('it took nothing of its response')), []);
});

test('pipelined requests: as many as MAX_PIPELINED behind the one being answered are all answered; one more closes the connection', async (t) => {
  const s = await server(t, () => reply(1));
  const pipeline = (count: number): { sock: net.Socket; got: () => string; closed: () => boolean } => {
    const sock = net.connect(s.port, '127.0.0.1');
    t.after(() => sock.destroy());
    sock.on('error', () => {});
    let got = '';
    let closed = false;
    sock.on('data', (d: Buffer) => { got += d.toString('latin1'); });
    sock.on('close', () => { closed = true; });
    // In one write: the server reads them together, while the first is being answered.
    sock.once('connect', () => sock.write(Array.from({ length: count }, (_, i) => `GET /nope${i} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`).join('')));
    return { sock, got: () => got, closed: () => closed };
  };
  const answered = (text: string): number => text.split('HTTP/1.1 404 Not Found').length - 1;
  const ok = pipeline(MAX_PIPELINED + 1);
  const past = pipeline(MAX_PIPELINED + 2);
  await waitFor(() => answered(ok.got()) === MAX_PIPELINED + 1, `${MAX_PIPELINED + 1} answers`);
  await waitFor(() => past.closed(), 'the connection pipelining one more closed');
  assert.equal(ok.closed(), false, 'kept open');
  assert.ok(answered(past.got()) <= 1, `${answered(past.got())} answers past the bound`);
});

function rawRequest(port: number, text: string, host = '127.0.0.1'): Promise<string> {
  return new Promise((resolve) => {
    const c = net.connect(port, host, () => c.write(text));
    let out = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => { out += d; });
    c.on('error', () => resolve(out));
    c.on('close', () => resolve(out));
  });
}

test('metrics address: ADDR:PORT or [V6]:PORT, both required; anything else is ECONFIG in the file, EINVALID on the command line', (t) => {
  assert.deepEqual(parseMetricsEndpoint('metrics', '[::1]:9533'), { address: '::1', port: 9533 });
  assert.deepEqual(parseMetricsEndpoint('metrics', '127.0.0.1:9533'), { address: '127.0.0.1', port: 9533 });
  for (const bad of ['::1:9533', '9533', ':9533', '[::1]', 'localhost:9533', '[::1]:0', '[::1]:70000', '1.2.3.4', '[fe80::1%eth0]:1', '', 5]) {
    assert.throws(() => parseMetricsEndpoint('metrics', bad), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && e.field === 'metrics', String(bad));
    assert.throws(() => parseMetricsEndpoint('--metrics', bad), (e: unknown) => e instanceof UsageError && e.code === 'EINVALID' && e.field === '--metrics', String(bad));
  }
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => {
    try { parseMetricsEndpoint('metrics', s); } catch (e) { if (!(e instanceof UsageError)) throw e; }
  }), fuzzParams(t, { numRuns: 2000 }));
});

test('throughput history: rates per peer from cumulative octets, bounded in peers and points', () => {
  let now = 0;
  let bytes = 0;
  const peers = Array.from({ length: 5 }, (_, i) => `2001:db8::${i + 1}`);
  const h = new ThroughputHistory(() => peers.map((p, i) => ({ peerUlid: p, contextTag: i, bytesIn: bytes * (i + 1), bytesOut: 0 })), { intervalMs: 1000, points: 3, maxPeers: 3, clock: () => now });
  h.sample();
  for (let i = 0; i < 5; i++) { now += 1000; bytes += 1000; h.sample(); }
  const kept = peers.filter((p) => h.of(p).length > 0);
  assert.equal(kept.length, 3, 'at most maxPeers peers');
  for (const p of kept) assert.ok(h.of(p).length <= 3, 'at most `points` samples');
  const last = h.of(kept.at(-1)!).at(-1)!;
  assert.ok(last.inBps > 0 && last.outBps === 0, JSON.stringify(last));
});

test('throughput history: contexts that carried nothing (discovery\'s I1s and hold-downs of peers without shim6, one per new destination) take no place, so a peer that carries traffic is still tracked after hundreds of them', () => {
  let now = 0;
  const readings: Array<{ peerUlid: string; contextTag: number; bytesIn: number; bytesOut: number }> = [];
  const h = new ThroughputHistory(() => readings, { intervalMs: 1000, points: 3, maxPeers: 3, clock: () => now });
  h.sample();
  // A browsing host: each new destination's flow starts an I1 (integrated discovery), held down
  // for up to 10 min when it fails; none carries an octet.
  for (let i = 0; i < 300; i++) readings.push({ peerUlid: `2001:db8:1::${(i + 1).toString(16)}`, contextTag: i, bytesIn: 0, bytesOut: 0 });
  now += 1000;
  h.sample();
  readings.push({ peerUlid: PEER, contextTag: 999, bytesIn: 5000, bytesOut: 1000 });
  now += 1000;
  h.sample();
  assert.deepEqual(h.of(PEER), [{ t: 2000, inBps: 5000, outBps: 1000 }]);
});

test('throughput history: a context made between two samples counts all its octets in the next one', () => {
  let now = 0;
  const readings: Array<{ peerUlid: string; contextTag: number; bytesIn: number; bytesOut: number }> = [];
  const h = new ThroughputHistory(() => readings, { intervalMs: 1000, clock: () => now });
  h.sample(); // the history's start: no context yet
  readings.push({ peerUlid: '2001:db8::1', contextTag: 7, bytesIn: 1000, bytesOut: 4000 });
  now += 2000;
  h.sample();
  assert.deepEqual(h.of('2001:db8::1'), [{ t: 2000, inBps: 500, outBps: 2000 }]);
  readings[0]!.bytesOut += 1000;
  now += 1000;
  h.sample();
  assert.deepEqual(h.of('2001:db8::1').at(-1), { t: 3000, inBps: 0, outBps: 1000 });
});

test('throughput history: a step of the wall clock (NTP, `date`) between two samples neither drops the sample nor spreads its octets over the step: the interval is elapsed time, the point\'s time wall-clock', () => {
  let wall = 1_800_000_000_000;
  let elapsed = 0;
  const readings = [{ peerUlid: PEER, contextTag: 1, bytesIn: 0, bytesOut: 0 }];
  // Passed as a variable: the elapsed clock is an option of its own.
  const opts = { intervalMs: 1000, clock: () => wall, elapsed: () => elapsed };
  const h = new ThroughputHistory(() => readings, opts);
  h.sample();
  readings[0]!.bytesIn += 5000;
  elapsed += 1000;
  wall -= 3_600_000 - 1000; // a second later, the wall clock an hour back
  h.sample();
  assert.deepEqual(h.of(PEER), [{ t: wall, inBps: 5000, outBps: 0 }], 'stepped back: the sample is kept');
  readings[0]!.bytesIn += 5000;
  elapsed += 1000;
  wall += 3_600_000 + 1000; // a second later, an hour forward
  h.sample();
  assert.deepEqual(h.of(PEER).at(-1), { t: wall, inBps: 5000, outBps: 0 }, 'stepped forward: the rate of that second');
});

/** A TCP port free on 127.0.0.1 just now. */
async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('shim6 resolver --metrics: a question without an answer moves queries and servfail{no-answer}', async (t) => {
  const mport = await freePort();
  // Upstream: a UDP port with nobody behind it, so the question ends in SERVFAIL (no answer).
  const conf = path.join(tmpdir(t, 'metrics-cli-'), 'resolver.yaml');
  writeFileSync(conf, 'queryTimeoutMs: 300\n');
  const cli = await startCli(t, ['--config', conf, '--upstream', '127.0.0.1:9', '--metrics', `127.0.0.1:${mport}`]);
  t.after(async () => { await cli.stop(); });
  assert.match(cli.stderr(), new RegExp(`metrics listening url=http://127\\.0\\.0\\.1:${mport}/`));
  const before = parse((await get(mport, '/metrics')).body);
  assert.equal(value(before, 'shim6_resolver_queries_total', { transport: 'udp' }), 0);
  const sock = dgram.createSocket('udp4');
  t.after(() => sock.close());
  const answered = new Promise<Buffer>((resolve) => sock.once('message', resolve));
  sock.send(dnsPacket.encode({ type: 'query', id: 7, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', name: 'example.org' }] }), cli.port, '127.0.0.1');
  const a = dnsPacket.decode(await within(answered, 'the SERVFAIL'));
  assert.equal((a.flags ?? 0) & 0x0f, 2, 'SERVFAIL');
  const after = parse((await get(mport, '/metrics')).body);
  assert.equal(value(after, 'shim6_resolver_queries_total', { transport: 'udp' }), 1);
  assert.equal(value(after, 'shim6_resolver_servfail_total', { reason: 'no-answer' }), 1);
  assert.equal(value(after, 'shim6_resolver_upstream_up', { upstream: '127.0.0.1:9' }) >= 0, true);
  assert.equal(family(after, 'shim6_contexts').metrics.length, 0, 'no engine: no context series');
});

test('--metrics needs ADDR:PORT: a bad value is a usage error (exit 2) naming the flag', () => {
  for (const args of [['daemon', '--metrics', '9533'], ['resolver', '--no-engine', '--metrics', '[::1]'], ['daemon', '--metrics', 'localhost:9533']]) {
    const r = shim6(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /EINVALID: --metrics: invalid value/);
  }
});

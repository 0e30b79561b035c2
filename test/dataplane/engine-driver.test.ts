// The engine driver, two hosts in one process over the in-memory twins (wireguard-go device_test style).
// Until the engine lands, the control plane is a tiny fake endpoint defined here (hello / hello-ack with
// a retransmission timer), and the data path runs through StaticContextEngine (real RFC 5533 payload headers).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EngineDriver, type EngineLike } from '../../shim/dataplane/engine-driver.ts';
import type { EngineEvent, Transmit } from '../../shim/engine/index.ts';
import { StaticContextEngine } from '../../lab/static-context.ts';
import { MemoryNetwork } from '../../shim/dataplane/udp.ts';
import { NativeUdpTransport } from '../../shim/dataplane/udp-native.ts';
import { MemoryTun } from '../../shim/dataplane/tun.ts';
import { buildPacket, buildUdpPacket, splitPacket, ulpChecksum, IPPROTO_TCP } from '../../shim/dataplane/ip6-packet.ts';
import type { Millis } from '../../shim/time.ts';
import { bootClock } from '../../shim/clock.ts';
import type { Logger } from '../../shim/log.ts';
import type { TcpFlow } from '../../shim/dataplane/tcp-prompt.ts';
import type { EncapHook } from '../../shim/dataplane/bpf-encap.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';
import { bootTimers } from '../helpers/boot-timers.ts';
import { decodeMessage, encodeMessage } from '../../shim/wire/index.ts';

type FakeEvent = EngineEvent;
const established = (localUlid: string, peerUlid: string, ulidProof: 'initiated' | 'locator'): EngineEvent =>
  ({ kind: 'context-established', localUlid, peerUlid, ulidProof, contextTag: 0, peerContextTag: 0, pair: { local: localUlid, peer: peerUlid }, recovered: false });

/** A fake control plane: prime → "hello" every `everyMs` (50 ms) until "hello-ack"; both sides then report a context. */
class FakeEndpoint implements EngineLike {
  tx: Transmit[] = [];
  ev: FakeEvent[] = [];
  timeouts: Millis[] = [];
  private pending: { peer: string; at: Millis; tries: number } | undefined;
  private readonly established = new Set<string>();
  /** `maxTries`: hellos sent before the context fails (Infinity: until answered). */
  constructor(readonly me: string, readonly maxTries = 4, readonly everyMs = 50) {}
  prime(now: Millis, peer: string): void {
    this.pending = { peer, at: (now + this.everyMs) as Millis, tries: 1 };
    this.tx.push({ src: this.me, dst: peer, bytes: new TextEncoder().encode('hello') });
  }
  handleDatagram(_now: Millis, d: { src: string; dst: string; bytes: Uint8Array }) {
    const msg = new TextDecoder().decode(d.bytes);
    if (msg === 'hello') {
      this.tx.push({ src: d.dst, dst: d.src, bytes: new TextEncoder().encode('hello-ack') });
      // A retransmitted hello (timer fired before the ack arrived) is answered but is no news.
      if (!this.established.has(d.src)) this.ev.push(established(d.dst, d.src, 'locator'));
      this.established.add(d.src);
      return { kind: 'consumed' as const };
    }
    if (msg === 'hello-ack' && this.pending?.peer === d.src) {
      this.pending = undefined;
      this.ev.push(established(d.dst, d.src, 'initiated'));
      return { kind: 'consumed' as const };
    }
    return { kind: 'drop' as const, reason: 'unexpected' };
  }
  encapsulate() { return { kind: 'no-context' as const }; }
  handleTimeout(now: Millis): void {
    this.timeouts.push(now);
    const p = this.pending;
    if (!p || now < p.at) return;
    if (p.tries >= this.maxTries) { this.pending = undefined; this.ev.push({ kind: 'context-failed', localUlid: this.me, peerUlid: p.peer, reason: 'no-answer' }); return; }
    p.tries++; p.at = (now + this.everyMs) as Millis;
    this.tx.push({ src: this.me, dst: p.peer, bytes: new TextEncoder().encode('hello') });
  }
  pollTransmit() { return this.tx.shift(); }
  pollTimeout() { return this.pending?.at; }
  pollEvent() { return this.ev.shift(); }
}


test('control-plane-only driver: prime, exchange, events, routes hook, no TUN', async (t) => {
  const net = new MemoryNetwork();
  const ups: string[] = [];
  const evA: FakeEvent[] = [], evB: FakeEvent[] = [];
  const a = new EngineDriver({ engine: new FakeEndpoint('fd00::a'), transport: net.transport(5533), onEvent: (e) => evA.push(e), routes: { contextUp: (l, p) => { ups.push(`${l}>${p}`); }, contextDown: () => {} } });
  const b = new EngineDriver({ engine: new FakeEndpoint('fd00::b'), transport: net.transport(5533), onEvent: (e) => evB.push(e) });
  t.after(async () => { await a.close(); await b.close(); });
  await a.bindLocator('fd00::a'); await b.bindLocator('fd00::b');
  a.command((e, now) => e.prime(now, 'fd00::b'));
  await waitFor(() => evA.length > 0 && evB.length > 0, 'both contexts', DEADLINE_MS);
  assert.deepEqual(evA, [established('fd00::a', 'fd00::b', 'initiated')]);
  assert.deepEqual(evB, [established('fd00::b', 'fd00::a', 'locator')]);
  assert.deepEqual(ups, ['fd00::a>fd00::b']);
  assert.ok(a.stats.udpOut >= 1 && b.stats.udpIn === a.stats.udpOut, 'every hello sent arrived');
});

test('the driver arms the engine timer: retransmissions through a black hole, then success after repair', async (t) => {
  const net = new MemoryNetwork();
  // Hellos until answered: on a busy CI machine (run 162) the test's turn came back after the
  // fourth 50 ms timer, and a fake that gave up after four failed the context before the repair.
  const fa = new FakeEndpoint('fd00::a', Infinity);
  const evA: FakeEvent[] = [];
  const a = new EngineDriver({ engine: fa, transport: net.transport(5533), onEvent: (e) => evA.push(e) });
  const b = new EngineDriver({ engine: new FakeEndpoint('fd00::b'), transport: net.transport(5533) });
  t.after(async () => { await a.close(); await b.close(); });
  await a.bindLocator('fd00::a'); await b.bindLocator('fd00::b');
  net.blackhole('fd00::a', 'fd00::b');
  const t0 = Date.now();
  a.command((e, now) => e.prime(now, 'fd00::b'));
  await waitFor(() => a.stats.udpOut >= 3, 'two retransmissions', DEADLINE_MS);
  assert.ok(Date.now() - t0 >= 90, 'retransmissions wait for the timer (50 ms each)');
  net.repair('fd00::a', 'fd00::b');
  await waitFor(() => evA.length > 0, 'established after repair', DEADLINE_MS);
  assert.equal(evA[0]!.kind, 'context-established');
  assert.ok(fa.timeouts.length >= 2);
});

test('close stops the timer and all traffic', async () => {
  const net = new MemoryNetwork();
  const fa = new FakeEndpoint('fd00::a');
  const a = new EngineDriver({ engine: fa, transport: net.transport(5533) });
  await a.bindLocator('fd00::a');
  a.command((e, now) => e.prime(now, 'fd00::dead'));
  await a.close();
  const n = fa.timeouts.length;
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(fa.timeouts.length, n);
});

test('an engine deadline beyond what a Node timer holds (2^31-1 ms, 24.8 days) is waited for, not spun on', async (t) => {
  // Node fires a longer timer after 1 ms (TimeoutOverflowWarning): the driver ran the engine's timers
  // and re-armed in a loop. An I1 back-off reaches such a deadline after ~19 retries (i1RetriesMax).
  const warnings: string[] = [];
  const onWarning = (w: Error): void => { warnings.push(w.name); };
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  const net = new MemoryNetwork();
  const fa = new FakeEndpoint('fd00::a', Infinity, 30 * 86_400_000);
  const a = new EngineDriver({ engine: fa, transport: net.transport(5533) });
  t.after(() => a.close());
  await a.bindLocator('fd00::a');
  a.command((e, now) => e.prime(now, 'fd00::b'));
  await new Promise((r) => setTimeout(r, 200));
  assert.deepEqual(warnings.filter((w) => w === 'TimeoutOverflowWarning'), []);
  assert.ok(fa.timeouts.length <= 1, `the engine's timers ran ${fa.timeouts.length} times with nothing due`);
});

// A suspend: the driver's clock (CLOCK_BOOTTIME, shim/clock.ts) moves on by the hours the machine
// slept, but Node's timers run on CLOCK_MONOTONIC, which stood still: the timer armed for an engine
// deadline fires only after the rest of its delay has passed awake. The first input after the
// resume finds the deadline long past: the engine's timers run then, not an hour later.
test('after a suspend (the clock hours past an armed deadline whose Node timer has not fired) the next input runs the engine\'s due timers at once', async (t) => {
  const net = new MemoryNetwork();
  let now = 5_000_000;
  const HOUR = 3_600_000;
  // The hello is retransmitted every hour: the timer armed at the prime holds for an hour.
  const fa = new FakeEndpoint('fd00::a', Infinity, HOUR);
  const a = new EngineDriver({ engine: fa, transport: net.transport(5533), clock: () => now as Millis });
  t.after(() => a.close());
  const peer = net.transport(5533);
  await a.bindLocator('fd00::a');
  await peer.bind('fd00::c');
  a.command((e, n) => e.prime(n, 'fd00::b'));
  assert.equal(a.stats.udpOut, 1, 'the first hello');
  const ran = fa.timeouts.length;
  now += 10 * HOUR; // ten hours asleep
  peer.send('fd00::c', 'fd00::a', 5533, new TextEncoder().encode('noise')); // the first input after the resume
  await waitFor(() => fa.timeouts.length > ran, 'the engine\'s overdue timer runs', DEADLINE_MS);
  assert.equal(fa.timeouts.at(-1), now, 'at the resumed clock');
  await waitFor(() => a.stats.udpOut === 2, 'the hello that fell due during the suspend is sent', DEADLINE_MS);
});

// Without any input after the resume the Node timer would still wait out the rest of its delay
// awake. The driver's timer is a CLOCK_BOOTTIME timerfd instead, which the kernel fires at the
// resume once its time has passed (this VM cannot be suspended: the test checks the kind of timer,
// armed at the engine's deadline, and that it fires like one).
test('the driver\'s timer is a CLOCK_BOOTTIME timer (fired by the kernel at a resume), armed at the engine\'s deadline', async (t) => {
  const net = new MemoryNetwork();
  const HOUR = 3_600_000;
  const fa = new FakeEndpoint('fd00::a', Infinity, HOUR);
  const before = new Set(bootTimers().map((x) => x.fd));
  const a = new EngineDriver({ engine: fa, transport: net.transport(5533) });
  t.after(() => a.close());
  await a.bindLocator('fd00::a');
  a.command((e, n) => e.prime(n, 'fd00::b'));
  // The kernel path's clock has one too, disarmed without a context on it (it_value 0).
  const mine = bootTimers().filter((x) => !before.has(x.fd) && x.armed > 0);
  assert.equal(mine.length, 1, 'one armed CLOCK_BOOTTIME timer (clockid 7) for the driver');
  // it_value: the time left, about the hour to the engine's deadline.
  assert.ok(mine[0]!.armed > HOUR - 60_000 && mine[0]!.armed <= HOUR, `armed ${mine[0]!.armed} ms ahead`);
  // And it fires: the deadline moved to now, the engine's timers run.
  const ran = fa.timeouts.length;
  a.command((e, n) => e.prime(n, 'fd00::c'));
  (fa as unknown as { pending: { at: number } }).pending.at = a.now();
  a.flush();
  await waitFor(() => fa.timeouts.length > ran, 'the timer fires', DEADLINE_MS);
});

// On a busy host the daemon's process gets the CPU back with a timer due and the peer's datagrams
// already in its socket. Node runs due timers before it polls for I/O, so REAP's Send Timer expired
// on a silence that had ended: a false exploration (the fast profile's 150 ms Send Timeout). The
// driver now runs the engine's timers after the loop's poll for I/O: inputs before timeouts.
test('inputs before timeouts: a datagram that arrived while the event loop was stalled reaches the engine before its timer that fell due meanwhile (real sockets on loopback)', async (t) => {
  const a = new NativeUdpTransport({ port: 0 }), b = new NativeUdpTransport({ port: 0 });
  const order: string[] = [];
  let due: Millis | undefined;
  const engine: EngineLike = {
    handleDatagram: () => { order.push('datagram'); return { kind: 'consumed' as const }; },
    encapsulate: () => ({ kind: 'no-context' as const }),
    handleTimeout: (now) => { if (due !== undefined && now >= due) { order.push('timeout'); due = undefined; } },
    pollTransmit: () => undefined, pollTimeout: () => due, pollEvent: () => undefined,
  };
  const d = new EngineDriver({ engine, transport: a });
  t.after(async () => { await d.close(); await b.close(); });
  const port = await d.bindLocator('::1');
  await b.bind('::1');
  due = (d.now() + 20) as Millis;
  d.flush(); // arms the timer
  assert.ok(b.send('::1', '::1', port, new Uint8Array([1, 2, 3])));
  b.flush();
  for (const until = Date.now() + 80; Date.now() < until;); // the event loop stalled past the deadline
  await waitFor(() => order.length === 2, 'the datagram and the timeout', DEADLINE_MS);
  assert.deepEqual(order, ['datagram', 'timeout']);
});

const ULID_A = 'fd00:a::1', ULID_B = 'fd00:b::1';

/** A TCP segment from A's ULID to B's, port `sport` → 8080, sequence number `seq` (its low octet), flags, data. */
function tcpSegment(sport: number, seq: number, flags: number, data: number[]): Uint8Array {
  const h = new Uint8Array(20 + data.length);
  h[0] = sport >> 8; h[1] = sport & 0xff; h[2] = 0x1f; h[3] = 0x90;
  h[7] = seq; h[12] = 5 << 4; h[13] = flags; h.set(data, 20);
  return buildPacket(ULID_A, ULID_B, IPPROTO_TCP, h);
}

async function dataPair(t: import('node:test').TestContext) {
  const net = new MemoryNetwork();
  const tunA = new MemoryTun('dpa', 1400), tunB = new MemoryTun('dpb', 1400);
  const ea = new StaticContextEngine({ localUlid: ULID_A, peerUlid: ULID_B, localTag: 0x1111, peerTag: 0x2222, local: 'fd00:1::a', peer: 'fd00:1::b' });
  const eb = new StaticContextEngine({ localUlid: ULID_B, peerUlid: ULID_A, localTag: 0x2222, peerTag: 0x1111, local: 'fd00:1::b', peer: 'fd00:1::a', peerLocators: ['fd00:1::a', 'fd00:2::a'] });
  const a = new EngineDriver({ engine: ea, transport: net.transport(5533), tun: tunA });
  const b = new EngineDriver({ engine: eb, transport: net.transport(5533), tun: tunB });
  t.after(async () => { await a.close(); await b.close(); });
  for (const [d, addrs] of [[a, ['fd00:1::a', 'fd00:2::a']], [b, ['fd00:1::b', 'fd00:2::b']]] as const) {
    for (const x of addrs) await d.bindLocator(x);
  }
  return { net, tunA, tunB, ea, eb, a, b };
}

/**
 * A and B on one pair, A's engine wrapped so that a test can hand A's driver an event (`events`,
 * read before the engine's own), A's `tcp prompted` log lines in `logged`.
 */
async function promptPair(t: import('node:test').TestContext, nameA: string, nameB: string, inPersistTimer?: (flows: readonly TcpFlow[]) => boolean[]) {
  const net = new MemoryNetwork();
  const tunA = new MemoryTun(nameA, 1400), tunB = new MemoryTun(nameB, 1400);
  const pair = { local: 'fd00:1::a', peer: 'fd00:1::b' };
  const inner = new StaticContextEngine({ localUlid: ULID_A, peerUlid: ULID_B, localTag: 0x1111, peerTag: 0x2222, ...pair });
  const events: EngineEvent[] = [];
  const ea: EngineLike = {
    handleDatagram: (n, d) => inner.handleDatagram(n, d), encapsulate: (n, p) => inner.encapsulate(n, p), handleTimeout: (n) => inner.handleTimeout(n),
    pollTransmit: () => inner.pollTransmit(), pollTimeout: () => inner.pollTimeout(), pollEvent: () => events.shift() ?? inner.pollEvent(),
  };
  const eb = new StaticContextEngine({ localUlid: ULID_B, peerUlid: ULID_A, localTag: 0x2222, peerTag: 0x1111, local: 'fd00:1::b', peer: 'fd00:1::a' });
  const logged: Array<Record<string, unknown>> = [];
  const logger = { info: (msg: string, f?: Record<string, unknown>) => { if (/^tcp (prompted|kicked)/.test(msg)) logged.push({ msg, ...f }); }, warn: () => {}, error: () => {}, debug: () => {}, enabled: () => true } as unknown as Logger;
  const a = new EngineDriver({ engine: ea, transport: net.transport(5533), tun: tunA, logger, ...(inPersistTimer ? { inPersistTimer } : {}) });
  const b = new EngineDriver({ engine: eb, transport: net.transport(5533), tun: tunB });
  t.after(async () => { await a.close(); await b.close(); });
  await a.bindLocator('fd00:1::a');
  await b.bindLocator('fd00:1::b');
  return { net, tunA, tunB, a, b, pair, events, logged };
}

test('data path: a packet into A\'s TUN leaves B\'s TUN with the header rebuilt from the ULIDs', async (t) => {
  const { tunA, tunB, a, b } = await dataPair(t);
  const pkt = buildUdpPacket(ULID_A, ULID_B, 1000, 2000, new TextEncoder().encode('payload'));
  tunA.inject(pkt);
  tunA.inject(buildUdpPacket(ULID_A, 'fd00:c::1', 1, 2, new Uint8Array(4)));
  tunA.inject(new Uint8Array([0x45, 0, 0, 20]));
  await waitFor(() => tunB.written.length === 1, 'delivery', DEADLINE_MS);
  assert.deepEqual(tunB.written[0], pkt, 'rebuilt packet equals the original (hop limit 64, tc/flow 0)');
  assert.equal(a.stats.noContext, 1);
  assert.equal(a.stats.notIpv6, 1);
  assert.equal(b.stats.tunOut, 1);
});

test('TCP prompt: on locator-pair-changed the last data segment and 3 duplicate ACKs go out on the new pair', async (t) => {
  const { net, tunA, tunB, a } = await dataPair(t);
  const tcp = (seq: number, flags: number, data: number[]) => tcpSegment(5000, seq, flags, data);
  const data1 = tcp(1, 0x18, [1, 2, 3]), data2 = tcp(2, 0x18, [4, 5, 6]), ack = tcp(3, 0x10, []);
  for (const p of [data1, data2, ack]) tunA.inject(p);
  await waitFor(() => tunB.written.length === 3, 'first delivery', DEADLINE_MS);
  net.blackhole('fd00:1::a', 'fd00:1::b');
  a.command((e) => e.rehome('fd00:2::a', 'fd00:2::b'));
  await waitFor(() => tunB.written.length >= 7, 'prompt delivery', DEADLINE_MS);
  assert.deepEqual(tunB.written.slice(3, 7).map((p) => splitPacket(p)!.payload[7]), [2, 3, 3, 3]);
  // The flow stands still here, so later rounds (promptAgain) replay the same four.
  assert.ok(a.stats.prompts >= 4 && a.stats.prompts % 4 === 0, `prompts ${a.stats.prompts}`);
});

// After a re-homing the peer may still send on the old pair until its own REAP moves it: the ACK
// that answers the first prompt is lost there (a busy CI run: a restarted daemon prompted once, 7 ms
// before its peer left the black-holed link, and TCP waited 6.7 s for its RTO). So the flows that
// sent nothing new since are prompted again, as after a context established again.
test('TCP prompt: after a re-homing the flows that sent nothing new since the first prompt are prompted again (the peer may still be on the old pair)', async (t) => {
  const { net, tunA, tunB, a } = await dataPair(t);
  // Flow 5000 will stall; flow 5001 sends new data after the first prompt.
  for (const p of [tcpSegment(5000, 1, 0x18, [1]), tcpSegment(5000, 2, 0x10, []), tcpSegment(5001, 1, 0x18, [9])]) tunA.inject(p);
  await waitFor(() => tunB.written.length === 3, 'first delivery', DEADLINE_MS);
  net.blackhole('fd00:1::a', 'fd00:1::b');
  // The first prompt on the new pair is lost too (here: the new pair drops it; in the lab, the peer's answer on the old one).
  net.blackhole('fd00:2::a', 'fd00:2::b');
  a.command((e) => e.rehome('fd00:2::a', 'fd00:2::b'));
  await waitFor(() => a.stats.prompts >= 5, 'the first prompt: flow 5000\'s data and 3 ACKs, flow 5001\'s data', DEADLINE_MS);
  tunA.inject(tcpSegment(5001, 3, 0x18, [10])); // flow 5001 moves on (lost too)
  await waitFor(() => a.stats.tunIn === 4, 'flow 5001\'s new data read', DEADLINE_MS);
  assert.equal(tunB.written.length, 3, 'nothing of the first prompt reached B');
  net.repair('fd00:2::a', 'fd00:2::b');
  await waitFor(() => tunB.written.length >= 7, 'a later round of the prompt at B', DEADLINE_MS);
  const port = (p: Uint8Array) => (splitPacket(p)!.payload[0]! << 8) | splitPacket(p)!.payload[1]!;
  assert.deepEqual(tunB.written.slice(3, 7).map((p) => [port(p), splitPacket(p)!.payload[7]]), [[5000, 1], [5000, 2], [5000, 2], [5000, 2]], 'flow 5000 prompted again: its data, then its ACK 3 times');
  assert.ok(tunB.written.every((p) => port(p) !== 5001 || splitPacket(p)!.payload[7] === 1) && tunB.written.filter((p) => port(p) === 5001).length === 1, 'flow 5001 moved on: not prompted again');
});

// A daemon that restarted has nothing of its own to replay, and its TCP, backed off while no daemon
// carried the connection, sends nothing until its next RTO (CI run 112: 7.7 s).
// The peer prompts its side when the context comes up: its last ACK, three times. That ACK tells us
// where our stack stands, so our own stack gets a Packet Too Big quoting it and retransmits at once.
test('TCP prompt: after a context comes up, the peer\'s repeated ACK on a flow of ours that sent nothing since prompts our own stack (a Packet Too Big quoting it), once per flow', async (t) => {
  const { tunA, tunB, a, pair, events, logged } = await promptPair(t, 'dpsa', 'dpsb');
  /** A pure ACK from B's port 8080 to A's `port`, acknowledging `ack`. */
  const ackFromB = (port: number, ack: number): Uint8Array => {
    const h = new Uint8Array(20);
    h[0] = 0x1f; h[1] = 0x90; h[2] = port >> 8; h[3] = port & 0xff;
    new DataView(h.buffer).setUint32(8, ack);
    h[12] = 5 << 4; h[13] = 0x10;
    return buildPacket(ULID_B, ULID_A, IPPROTO_TCP, h);
  };
  // A's daemon (just started: its prompter is empty) sets the context up.
  events.push({ kind: 'context-established', localUlid: ULID_A, peerUlid: ULID_B, ulidProof: 'initiated', contextTag: 0x1111, peerContextTag: 0x2222, pair, recovered: false });
  a.flush();
  // Flow 5001 of A sends new data after the context came up: not stalled.
  tunA.inject(tcpSegment(5001, 7, 0x18, [1]));
  await waitFor(() => tunB.written.length === 1, 'flow 5001\'s data at B', DEADLINE_MS);
  // B's prompt of its side: its last ACK on each flow, three times.
  for (const p of [5000, 5001]) for (let i = 0; i < 3; i++) tunB.inject(ackFromB(p, 0x01020304 + p));
  await waitFor(() => tunA.written.length >= 7, 'B\'s ACKs and the prompt at A', DEADLINE_MS);
  const icmp = tunA.written.filter((p) => p[6] === 58);
  assert.equal(icmp.length, 1, 'one Packet Too Big: flow 5000 once, flow 5001 (it sent since) not at all');
  const ptb = icmp[0]!;
  const view = new DataView(ptb.buffer, ptb.byteOffset);
  assert.deepEqual([splitPacket(ptb)!.srcUlid, splitPacket(ptb)!.dstUlid], [ULID_B, ULID_A], 'from the peer\'s ULID to ours');
  assert.equal(ptb[40], 2, 'ICMPv6 Packet Too Big');
  assert.equal(view.getUint32(44), 1400 - 8, 'a little under the TUN\'s MTU');
  assert.deepEqual([view.getUint16(88), view.getUint16(90), view.getUint32(92)], [5000, 8080, 0x01020304 + 5000], 'quoting our segment of flow 5000 at the peer\'s acknowledgment');
  assert.equal(tunA.written.indexOf(ptb), 2, 'after the second of the peer\'s identical ACKs');
  assert.deepEqual(logged, [{ msg: 'tcp prompted: our own stack, at the peer\'s prompt', peer: ULID_B, port: 5000 }]);
  assert.equal(a.stats.prompts, 1);
});

// After our own daemon's restart the peer may have nothing to prompt us with (our stop's Close
// ended its context), and our TCP, backed off while no daemon carried it, waits for its RTO (CI
// run 120: 2.5 s after the restarted daemon was ready). The daemon found the open flows with
// octets in flight; as each flow's context comes up our stack gets a SYN from the peer, answers
// with a challenge ACK carrying its snd_nxt, and gets a Packet Too Big quoting that.
test('TCP prompt after a restart: each open flow with octets in flight gets a SYN from the peer as its context comes up; our stack\'s ACK on it draws a Packet Too Big quoting that ACK\'s sequence number, once per flow', async (t) => {
  const { tunA, tunB, a, pair, events, logged } = await promptPair(t, 'dpca', 'dpcb');
  const flow = (localPort: number, peer = ULID_B) => ({ local: ULID_A, localPort, peer, peerPort: 8080, persist: false });
  a.promptAfterRestart([flow(5000), flow(5001), flow(6000, 'fd00:c::1')]);
  assert.equal(tunA.written.length, 0, 'nothing before the context is up');
  events.push({ kind: 'context-established', localUlid: ULID_A, peerUlid: ULID_B, ulidProof: 'initiated', contextTag: 0x1111, peerContextTag: 0x2222, pair, recovered: false });
  a.flush();
  await waitFor(() => tunA.written.length >= 2, 'the SYNs to A\'s stack', DEADLINE_MS);
  const syns = tunA.written.map((p) => splitPacket(p)!);
  assert.deepEqual(syns.map((s) => [s.srcUlid, s.dstUlid, (s.payload[0]! << 8) | s.payload[1]!, (s.payload[2]! << 8) | s.payload[3]!, s.payload[13]]),
    [[ULID_B, ULID_A, 8080, 5000, 0x02], [ULID_B, ULID_A, 8080, 5001, 0x02]], 'a SYN (no ACK) from the peer\'s port to ours, per flow of this context');
  assert.ok(syns.every((s) => ulpChecksum(s.srcUlid, s.dstUlid, IPPROTO_TCP, s.payload) === 0), 'checksums right');
  /** A segment of A's flow `port` (A → B) with sequence number `seq`. */
  const fromA = (port: number, seq: number, flags: number, data: number[]): Uint8Array => {
    const p = tcpSegment(port, 0, flags, data);
    new DataView(p.buffer).setUint32(40 + 4, seq);
    return p;
  };
  tunA.inject(fromA(5001, 0x0a000001, 0x18, [1])); // data on 5001: no answer to the challenge
  tunA.inject(fromA(5000, 0x0a0b0c0d, 0x10, [])); // the challenge ACK on 5000
  tunA.inject(fromA(5000, 0x0a0b0c0d, 0x10, [])); // again: once per flow
  await waitFor(() => tunB.written.length === 3 && tunA.written.some((p) => p[6] === 58), 'A\'s segments carried to B too, the prompt written', DEADLINE_MS);
  const icmp = tunA.written.filter((p) => p[6] === 58);
  assert.equal(icmp.length, 1, 'one Packet Too Big');
  const view = new DataView(icmp[0]!.buffer, icmp[0]!.byteOffset);
  assert.deepEqual([splitPacket(icmp[0]!)!.srcUlid, splitPacket(icmp[0]!)!.dstUlid, icmp[0]![40], view.getUint32(44)], [ULID_B, ULID_A, 2, 1400 - 8], 'a Packet Too Big from the peer\'s ULID, a little under the TUN\'s MTU');
  assert.deepEqual([view.getUint16(88), view.getUint16(90), view.getUint32(92)], [5000, 8080, 0x0a0b0c0d], 'quoting flow 5000 at its ACK\'s sequence number');
  assert.deepEqual(logged, [{ msg: 'tcp prompted: our own stack, after the restart', peer: ULID_B, port: 5000 }]);
  // A flow found once the context is up already is challenged at once; its prompt is logged at
  // debug (one info line per peer, not per flow: a restart may find thousands of flows).
  a.promptAfterRestart([flow(5002)]);
  await waitFor(() => tunA.written.filter((p) => p[6] === IPPROTO_TCP).length === 3, 'the SYN of flow 5002', DEADLINE_MS);
  tunA.inject(fromA(5002, 0x0b000000, 0x10, []));
  // Counted when it is made, written to the TUN at the batch's flush: wait for the packet.
  await waitFor(() => tunA.written.filter((p) => p[6] === 58).length === 2, 'flow 5002 prompted', DEADLINE_MS);
  assert.equal(a.stats.prompts, 2);
  assert.equal(logged.length, 1, 'one info line for the peer');
});

// A flow in TCP's persist timer at the restart has nothing in flight, so a Packet Too Big would
// make it retransmit nothing: once its challenge is answered, and if the socket table still shows
// it in the persist timer (so that the answer's seq was its snd_una), our stack gets an ACK from
// the peer one octet older, which acknowledges nothing and makes TCP send at once.
test('TCP kick after a restart: a flow in its persist timer gets, after its challenge ACK, an ACK from the peer at the ACK\'s acknowledgment number acknowledging one octet less than its sequence number, and no Packet Too Big; not when the table no longer shows it in the timer', async (t) => {
  const asked: number[][] = [];
  const { tunA, tunB, a, pair, events, logged } = await promptPair(t, 'dpka', 'dpkb', (flows) => { asked.push(flows.map((f) => f.localPort)); return flows.map((f) => f.localPort === 5000); });
  const flow = (localPort: number) => ({ local: ULID_A, localPort, peer: ULID_B, peerPort: 8080, persist: true });
  a.promptAfterRestart([flow(5000), flow(5001)]);
  events.push({ kind: 'context-established', localUlid: ULID_A, peerUlid: ULID_B, ulidProof: 'initiated', contextTag: 0x1111, peerContextTag: 0x2222, pair, recovered: false });
  a.flush();
  await waitFor(() => tunA.written.length >= 2, 'the SYNs to A\'s stack', DEADLINE_MS);
  assert.deepEqual(asked, [], 'the table is read only once a challenge is answered');
  /** A's challenge ACK on flow `port` (A → B): its snd_nxt `seq`, its rcv_nxt `ack`. */
  const challengeAck = (port: number, seq: number, ack: number): Uint8Array => {
    const p = tcpSegment(port, 0, 0x10, []);
    const v = new DataView(p.buffer);
    v.setUint32(40 + 4, seq);
    v.setUint32(40 + 8, ack);
    return p;
  };
  // One batch (injected in one turn): 5000's snd_nxt 0 (the kick's ACK wraps to 0xffffffff); 5001 left its persist timer meanwhile.
  tunA.inject(challengeAck(5000, 0, 0x01020304));
  tunA.inject(challengeAck(5001, 0x0a0b0c0d, 0x01020304));
  await waitFor(() => tunB.written.length === 2 && asked.length === 1, 'the answers carried to B', DEADLINE_MS);
  assert.deepEqual(asked, [[5000, 5001]], 'the table read once for the batch\'s answers');
  await waitFor(() => tunA.written.length === 3, 'the kick', DEADLINE_MS);
  assert.equal(tunA.written.filter((p) => p[6] === 58).length, 0, 'no Packet Too Big');
  const kick = splitPacket(tunA.written[2]!)!;
  const v = new DataView(kick.payload.buffer, kick.payload.byteOffset);
  assert.deepEqual([kick.srcUlid, kick.dstUlid, kick.nextHeader, kick.payload.length, v.getUint16(0), v.getUint16(2), v.getUint32(4), v.getUint32(8), kick.payload[12], kick.payload[13]],
    [ULID_B, ULID_A, IPPROTO_TCP, 20, 8080, 5000, 0x01020304, 0xffffffff, 5 << 4, 0x10], 'a pure ACK from the peer: at our rcv_nxt, acknowledging snd_una − 1');
  assert.equal(ulpChecksum(kick.srcUlid, kick.dstUlid, IPPROTO_TCP, kick.payload), 0, 'checksum right');
  assert.deepEqual(logged, [{ msg: 'tcp kicked: a flow in its persist timer, after the restart', peer: ULID_B, port: 5000 }]);
  assert.equal(a.stats.prompts, 1);
});

// A context established again (the peer restarted and set it up: we answered its I2) is the peer's
// only once our R2 reaches it; on a loaded host it handled that R2 130 ms after our first prompt,
// which it had dropped, and TCP waited for its backed-off RTO (test/e2e/restart-tcp-prompt.test.ts,
// a CI run with both CPUs taken). So the flows that sent nothing new since are prompted again.
test('TCP prompt: a context established again is prompted again, for the flows that sent nothing new since the first prompt (the peer may not have the context yet)', async (t) => {
  const { net, tunA, tunB, a, pair, events, logged } = await promptPair(t, 'dpra', 'dprb');
  // Flow 5000 will stall; flow 5001 sends new data after the first prompt.
  for (const p of [tcpSegment(5000, 1, 0x18, [1]), tcpSegment(5000, 2, 0x10, []), tcpSegment(5001, 1, 0x18, [9])]) tunA.inject(p);
  await waitFor(() => tunB.written.length === 3, 'first delivery', DEADLINE_MS);
  // B restarted: until it has the context again, what A sends it is lost.
  net.blackhole('fd00:1::a', 'fd00:1::b');
  events.push({ kind: 'context-established', localUlid: ULID_A, peerUlid: ULID_B, ulidProof: 'initiated', contextTag: 0x1111, peerContextTag: 0x2222, pair, recovered: true });
  a.flush();
  assert.deepEqual(logged[0], { msg: 'tcp prompted: context established again', peer: ULID_B, segments: 5 }, 'flow 5000: data and 3 ACKs; flow 5001: its data');
  tunA.inject(tcpSegment(5001, 3, 0x18, [10])); // flow 5001 moves on (lost too)
  await waitFor(() => a.stats.tunIn === 4, 'flow 5001\'s new data read', DEADLINE_MS);
  net.repair('fd00:1::a', 'fd00:1::b'); // B has the context now
  await waitFor(() => tunB.written.length >= 7, 'a later round of the prompt at B', DEADLINE_MS);
  const port = (p: Uint8Array) => (splitPacket(p)!.payload[0]! << 8) | splitPacket(p)!.payload[1]!;
  assert.deepEqual(tunB.written.slice(3, 7).map((p) => [port(p), splitPacket(p)!.payload[7]]), [[5000, 1], [5000, 2], [5000, 2], [5000, 2]], 'flow 5000 prompted again: its data, then its ACK 3 times');
  assert.ok(logged.length >= 2 && logged.slice(1).every((l) => l.segments === 4 && Number(l.round) >= 2), JSON.stringify(logged));
  assert.ok(tunB.written.every((p) => port(p) !== 5001 || splitPacket(p)!.payload[7] === 1) && tunB.written.filter((p) => port(p) === 5001).length === 1, 'flow 5001 moved on: not prompted again');
});

test('no route without evidence: a context-established without ulidProof routes nothing; ulid-refused is logged once per source', async (t) => {
  const net = new MemoryNetwork();
  const ups: string[] = [];
  const events = [
    { kind: 'context-established', localUlid: 'fd00::a', peerUlid: 'fd00::99' } as unknown as EngineEvent, // no ulidProof: a careless EngineLike
    { kind: 'ulid-refused', claimedUlid: 'fd00::53', source: 'fd00::66', reason: 'ulid-unproven' },
    { kind: 'ulid-refused', claimedUlid: 'fd00::54', source: 'fd00::66', reason: 'ulid-unproven' },
    established('fd00::a', 'fd00::b', 'locator'),
  ] satisfies EngineEvent[];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), encapsulate: () => ({ kind: 'no-context' as const }), handleTimeout: () => {},
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
  };
  const warnings: unknown[] = [];
  const logger = { info: () => {}, warn: (msg: string, f: unknown) => { warnings.push([msg, f]); } } as unknown as Logger;
  const d = new EngineDriver({ engine, transport: net.transport(5533), logger, routes: { contextUp: (l, p) => { ups.push(`${l}>${p}`); }, contextDown: () => {} } });
  t.after(() => d.close());
  d.flush();
  assert.deepEqual(ups, ['fd00::a>fd00::b'], 'only the proven context is routed');
  assert.equal(warnings.length, 1, 'two refusals from one source: one warning');
});

test('a resumable close keeps the route; a packet that makes the engine initiate is held, then sent when the context is up', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dpr', 1400);
  const routes: string[] = [];
  const events: EngineEvent[] = [{ kind: 'context-closed', localUlid: 'fd00::a', peerUlid: 'fd00::b', contextTag: 1, reason: 'idle', resumable: true }];
  let up = false;
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {},
    encapsulate: (_now, p) => {
      if (up) return { kind: 'send' as const, src: 'fd00::a', dst: 'fd00::b', header: new Uint8Array(8) };
      if (!events.some((e) => e.kind === 'context-initiated')) events.push({ kind: 'context-initiated', localUlid: p.srcUlid, peerUlid: p.dstUlid });
      return { kind: 'no-context' as const };
    },
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
  };
  const d = new EngineDriver({ engine, transport: net.transport(5533), tun, holdMs: 60_000, routes: { contextUp: (_l, p) => { routes.push(`up ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); } } });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  d.flush();
  assert.deepEqual(routes, [], 'idle close of a known peer: the route stays');
  tun.inject(buildUdpPacket('fd00::a', 'fd00::b', 1, 2, new Uint8Array(4)));
  await waitFor(() => routes.length > 0, 'the engine initiated and the driver held', DEADLINE_MS);
  assert.equal(d.stats.noContext, 0, 'the packet that started it is held, not dropped');
  up = true;
  events.push({ kind: 'context-established', localUlid: 'fd00::a', peerUlid: 'fd00::b', ulidProof: 'initiated', contextTag: 2, peerContextTag: 3, pair: { local: 'fd00::a', peer: 'fd00::b' }, recovered: false });
  d.flush();
  assert.equal(d.stats.udpOut, 1, 'the held packet went out once the context was up');
});

test('a resumable close that is dropped (resumable-dropped: the engine\'s pins are bounded) takes the kept route back; a peer with a context keeps its route', async (t) => {
  const net = new MemoryNetwork();
  const routes: string[] = [];
  const events: EngineEvent[] = [
    established('fd00::a', 'fd00::b', 'initiated'),
    { kind: 'context-closed', localUlid: 'fd00::a', peerUlid: 'fd00::b', contextTag: 1, reason: 'idle', resumable: true },
  ];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {}, encapsulate: () => ({ kind: 'no-context' as const }),
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
  };
  const d = new EngineDriver({ engine, transport: net.transport(5533), routes: { contextUp: (_l, p) => { routes.push(`up ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); } } });
  t.after(() => d.close());
  d.flush();
  assert.deepEqual(routes, ['up fd00::b'], 'idle close of a known peer: the route stays');
  events.push({ kind: 'resumable-dropped', peerUlid: 'fd00::b' } as EngineEvent);
  d.flush();
  assert.deepEqual(routes, ['up fd00::b', 'down fd00::b'], 'no longer resumable: the route goes');
  // A peer whose context is up: its route is the context's.
  events.push(established('fd00::a', 'fd00::c', 'initiated'), { kind: 'resumable-dropped', peerUlid: 'fd00::c' } as EngineEvent);
  d.flush();
  assert.deepEqual(routes, ['up fd00::b', 'down fd00::b', 'up fd00::c']);
});

test('handshake hold: the peer\'s answer (context-answered) replaces the hold\'s end with answeredHoldMs from then, once; then the packets leave plain and the route goes', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dph', 1400);
  const routes: string[] = [];
  const events: EngineEvent[] = [];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {},
    encapsulate: (_now, p) => {
      if (!events.some((e) => e.kind === 'context-initiated')) events.push({ kind: 'context-initiated', localUlid: p.srcUlid, peerUlid: p.dstUlid });
      return { kind: 'no-context' as const };
    },
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
  };
  // The first hold would outlast the test; the answered one is 1 ms: only the answer can end it.
  const d = new EngineDriver({ engine, transport: net.transport(5533), tun, holdMs: 600_000, answeredHoldMs: 1, sendPlain: (ps) => ps.length,
    routes: { contextUp: (_l, p) => { routes.push(`up ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); } } });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  tun.inject(buildUdpPacket('fd00::a', 'fd00::b', 1, 2, new Uint8Array(4)));
  await waitFor(() => routes.length === 1, 'the engine initiated and the driver held', DEADLINE_MS);
  assert.equal(d.stats.plain, 0);
  events.push({ kind: 'context-answered', localUlid: 'fd00::a', peerUlid: 'fd00::b' });
  d.flush();
  await waitFor(() => d.stats.plain === 1, 'the answered hold ended: the held packet left plain', DEADLINE_MS);
  assert.deepEqual(routes, ['up fd00::b', 'down fd00::b']);
  // An answer for a peer no longer held changes nothing.
  events.push({ kind: 'context-answered', localUlid: 'fd00::a', peerUlid: 'fd00::b' });
  d.flush();
  assert.deepEqual(routes, ['up fd00::b', 'down fd00::b']);
});

test('a second context with a routed peer (another local ULID, as after our first address was removed) leaves the route alone: held, not routed, and its failure removes nothing', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dps', 1400);
  const routes: string[] = [];
  const events: EngineEvent[] = [established('fd00::a', 'fd00::b', 'initiated')];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {},
    encapsulate: (_now, p) => {
      if (p.srcUlid === 'fd00::a') return { kind: 'send' as const, src: 'fd00::a', dst: 'fd00::b', header: new Uint8Array(8) };
      if (!events.some((e) => e.kind === 'context-initiated')) events.push({ kind: 'context-initiated', localUlid: p.srcUlid, peerUlid: p.dstUlid });
      return { kind: 'no-context' as const };
    },
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
  };
  const d = new EngineDriver({ engine, transport: net.transport(5533), tun, holdMs: 50, sendPlain: (ps) => ps.length,
    routes: { contextUp: (l, p) => { routes.push(`up ${l} ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); } } });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  d.flush();
  await waitFor(() => routes.length === 1, 'the first context routed', DEADLINE_MS);
  assert.deepEqual(routes, ['up fd00::a fd00::b']);
  tun.inject(buildUdpPacket('fd00::c', 'fd00::b', 1, 2, new Uint8Array(4)));
  await waitFor(() => d.stats.plain === 1, 'the second context\'s packet held, then sent plain when it did not come up in time', DEADLINE_MS);
  assert.deepEqual(routes, ['up fd00::a fd00::b'], 'the route stays the first context\'s: neither replaced nor removed');
  events.push({ kind: 'context-failed', localUlid: 'fd00::c', peerUlid: 'fd00::b', reason: 'no-answer' });
  d.flush();
  assert.deepEqual(routes, ['up fd00::a fd00::b'], 'its failure removes nothing');
  tun.inject(buildUdpPacket('fd00::a', 'fd00::b', 1, 2, new Uint8Array(4)));
  await waitFor(() => d.stats.udpOut === 1, 'the first context still carries its packets', DEADLINE_MS);
});

test('a second context with the peer that is up when the first one goes takes its route over', async (t) => {
  const net = new MemoryNetwork();
  const routes: string[] = [];
  const events: EngineEvent[] = [established('fd00::a', 'fd00::b', 'initiated'), established('fd00::c', 'fd00::b', 'initiated')];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {}, encapsulate: () => ({ kind: 'no-context' as const }),
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
  };
  const d = new EngineDriver({ engine, transport: net.transport(5533), routes: { contextUp: (l, p) => { routes.push(`up ${l} ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); } } });
  t.after(() => d.close());
  d.flush();
  assert.deepEqual(routes, ['up fd00::a fd00::b'], 'the second context leaves the first one\'s route alone');
  events.push({ kind: 'context-closed', localUlid: 'fd00::a', peerUlid: 'fd00::b', contextTag: 1, reason: 'peer-close', resumable: false });
  d.flush();
  assert.deepEqual(routes, ['up fd00::a fd00::b', 'up fd00::c fd00::b'], 'the first goes: the second takes the route over (not removed)');
  events.push({ kind: 'context-closed', localUlid: 'fd00::c', peerUlid: 'fd00::b', contextTag: 2, reason: 'peer-close', resumable: false });
  d.flush();
  assert.deepEqual(routes.at(-1), 'down fd00::b', 'the last one goes: so does the route');
});

test('kernel path: a context on its ULID pair is not routed into the TUN; counters feed the engine; exploring and re-homing route it into the TUN, a return to Operational on the ULID pair takes it out', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dpk', 1400);
  const routes: string[] = [];
  let seen = 0;
  /** Route changes since the last call (made after the loop turn that decided them). */
  const newRoutes = async () => { await new Promise((r) => setImmediate(r)); const r = routes.slice(seen); seen = routes.length; return r; };
  const events: EngineEvent[] = [];
  const fed: Array<{ sent: boolean; received: boolean }> = [];
  const counted: Array<boolean | undefined> = [];
  const engine: EngineLike = {
    // Every datagram a payload of the context, as the engine hands over what it decapsulated.
    handleDatagram: () => ({ kind: 'payload' as const, srcUlid: 'fd00::b', dstUlid: 'fd00::a', nextHeader: 59, payload: new Uint8Array(8) }), handleTimeout: () => {},
    encapsulate: (_now, p) => { counted.push(p.counted); return { kind: 'send' as const, src: 'fd00::a', dst: 'fd00::b', header: new Uint8Array(8) }; },
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
    kernelTraffic: (_now, l, p, seen) => { assert.deepEqual([l, p], ['fd00::a', 'fd00::b']); fed.push(seen); return true; },
  };
  const counters = new Map<string, { outPackets: number; inPackets: number }>();
  const kernel = {
    refresh: () => Promise.resolve(),
    watch: (l: string, p: string) => { counters.set(`${l} ${p}`, { outPackets: 0, inPackets: 0 }); return true; },
    unwatch: (l: string, p: string) => { counters.delete(`${l} ${p}`); },
    read: (l: string, p: string) => counters.get(`${l} ${p}`),
  };
  const d = new EngineDriver({
    engine, transport: net.transport(5533), tun, kernel, kernelPollMs: 5,
    routes: { contextUp: (_l, p) => { routes.push(`up ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); }, flushRouteCache: () => { routes.push('flush'); } },
  });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  events.push(established('fd00::a', 'fd00::b', 'initiated'));
  d.flush();
  assert.deepEqual(await newRoutes(), ['down fd00::b'], 'on the ULID pair: no route into the TUN (a hold\'s route goes)');
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel']);
  assert.ok(counters.has('fd00::a fd00::b'), 'the kernel counts its packets');
  counters.get('fd00::a fd00::b')!.outPackets = 3;
  await waitFor(() => fed.length === 1, 'a reading with packets sent', DEADLINE_MS);
  assert.deepEqual(fed[0], { sent: true, received: false });
  counters.get('fd00::a fd00::b')!.inPackets = 2;
  await waitFor(() => fed.length === 2, 'a reading with packets received', DEADLINE_MS);
  assert.deepEqual(fed[1], { sent: false, received: true }, 'only what moved since the last reading');
  counters.get('fd00::a fd00::b')!.outPackets = 5;
  counters.get('fd00::a fd00::b')!.inPackets = 4;
  await waitFor(() => fed.length === 3, 'a reading with packets both ways', DEADLINE_MS);
  // Which came last is unknown: one input with both, so the engine can keep REAP ready for either
  // order (split into received-then-sent, both ends of a paused stream took their own packet for the last).
  assert.deepEqual(fed.slice(2), [{ sent: true, received: true }], 'both ways: one input, order unknown');
  assert.deepEqual(d.paths()[0]!.kernel, { packetsIn: 4, bytesIn: 0, packetsOut: 5, bytesOut: 0 }, 'what the kernel carried, for status (the engine saw none of it)');
  // A payload the daemon decapsulated (a datagram the tc ingress program passed to its socket) goes
  // into the TUN, out of which the kernel's inbound counter counts it again (as prerouting does): the
  // engine counted it, so the kernel's share leaves it out; REAP hears it was received all the same.
  tun.onWrite(() => { counters.get('fd00::a fd00::b')!.inPackets++; });
  const peer = net.transport(5533);
  t.after(() => peer.close());
  await peer.bind('fd00::b');
  const written = tun.written.length;
  peer.send('fd00::b', 'fd00::a', 5533, new Uint8Array(16));
  await waitFor(() => fed.length === 4, 'a reading after the daemon delivered a payload', DEADLINE_MS);
  assert.equal(tun.written.length, written + 1, 'the payload went into the TUN');
  assert.deepEqual(fed[3], { sent: false, received: true });
  assert.deepEqual(d.paths()[0]!.kernel, { packetsIn: 4, bytesIn: 0, packetsOut: 5, bytesOut: 0 }, 'not in the kernel\'s share: the engine counted it');
  // A packet that reaches the TUN off the TUN path (the kernel encapsulation's GSO segment) was
  // counted by the kernel already: the engine must not count it for status again.
  tun.inject(buildUdpPacket('fd00::a', 'fd00::b', 1, 2, new Uint8Array(4)));
  await waitFor(() => counted.length === 1, 'the packet read from the TUN', DEADLINE_MS);
  const pair = { local: 'fd00::a', peer: 'fd00::b' }, q = { local: 'fd00::1a', peer: 'fd00::1b' };
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair });
  d.flush();
  assert.deepEqual(await newRoutes(), ['up fd00::b', 'flush'], 'exploring: into the TUN (so the TCP prompt sees the retransmissions)');
  tun.inject(buildUdpPacket('fd00::a', 'fd00::b', 1, 2, new Uint8Array(4)));
  await waitFor(() => counted.length === 2, 'the packet read from the TUN', DEADLINE_MS);
  assert.deepEqual(counted, [true, undefined], 'counted by the kernel off the TUN path only; on it the engine counts');
  // Still counted until the context ends: no nft process while REAP re-homes it.
  assert.ok(counters.has('fd00::a fd00::b'), 'still counted by the kernel');
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair });
  d.flush();
  assert.deepEqual(await newRoutes(), ['down fd00::b'], 'a false exploration: back on the kernel path');
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair });
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: pair, new: q, cause: 'send-timeout' });
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair: q });
  d.flush();
  assert.deepEqual(d.paths().map((p) => [p.path, p.pair.local]), [['tun', 'fd00::1a']], 're-homed: the TUN path carries it');
  assert.deepEqual(await newRoutes(), ['up fd00::b', 'flush']);
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: q, new: pair, cause: 'send-timeout' });
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel'], 'back on the ULID pair: the kernel path again');
  assert.deepEqual(await newRoutes(), ['down fd00::b']);
  events.push({ kind: 'context-closed', localUlid: 'fd00::a', peerUlid: 'fd00::b', contextTag: 1, reason: 'idle', resumable: true });
  d.flush();
  assert.deepEqual(await newRoutes(), ['up fd00::b', 'flush'], 'a resumable close routes the ULID into the TUN, so the next packet brings the context back');
  assert.deepEqual(d.paths(), []);
  assert.equal(counters.size, 0);
});

test('kernel path: one clock reads the counters and runs the engine\'s timers (a reading right before each timeout, never before the deadline); while the context sends, every 30 readings the engine\'s Keepalive goes out, so a peer that lost the context answers R1bis; an idle context gets none', async (t) => {
  const net = new MemoryNetwork();
  const events: EngineEvent[] = [];
  const log: string[] = [];
  let deadline: number | undefined;
  const tx: Transmit[] = [];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }),
    handleTimeout: (now) => { log.push(deadline !== undefined && now >= deadline ? 'timeout-due' : 'timeout-early'); deadline = undefined; },
    encapsulate: () => ({ kind: 'send' as const, src: 'fd00::a', dst: 'fd00::b', header: new Uint8Array(8) }),
    // The engine's Keepalive (test/engine/rehome.test.ts "liveness"), which the driver sends at once.
    liveness: (l, p) => { tx.push({ src: l, dst: p, bytes: encodeMessage({ type: 'Keepalive', contextTag: 0x2222, options: [] }), port: 5533 }); return true; },
    pollTransmit: () => tx.shift(), pollTimeout: () => deadline as Millis | undefined, pollEvent: () => events.shift(),
    kernelTraffic: () => true,
    status: () => ({
      contexts: [{
        state: 'ESTABLISHED', localUlid: 'fd00::a', peerUlid: 'fd00::b', ulidProof: 'initiated', contextTag: 0x1111, peerContextTag: 0x2222, pair: { local: 'fd00::a', peer: 'fd00::b' }, reap: 'Operational',
        peerLocators: [{ address: 'fd00::b', verified: true, probed: true, flags: 0 }], timers: {}, traffic: { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 }, rehomings: 0,
      }],
    } as unknown as ReturnType<NonNullable<EngineLike['status']>>),
  };
  // What the context sent, as the kernel counted it: nothing until `sending`, then a packet per reading.
  let sending = false, out = 0;
  const kernel = {
    refresh: () => { log.push('read'); if (sending) out++; return Promise.resolve(); },
    watch: () => true, unwatch: () => {}, read: () => ({ outPackets: out, inPackets: 0 }),
  };
  const d = new EngineDriver({ engine, transport: net.transport(5533), kernel, kernelPollMs: 20, routes: { contextUp: () => {}, contextDown: () => {} } });
  t.after(() => d.close());
  const peer = net.transport(5533);
  const got: Uint8Array[] = [];
  peer.onDatagram((x) => got.push(x.bytes));
  await d.bindLocator('fd00::a');
  await peer.bind('fd00::b');
  events.push(established('fd00::a', 'fd00::b', 'initiated'));
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel']);
  // An engine deadline between two readings: the clock wakes at it, reads, then runs the timer.
  for (let i = 0; i < 3; i++) {
    deadline = bootClock() + 7;
    d.flush();
    const at = log.length;
    await waitFor(() => log.slice(at).some((x) => x.startsWith('timeout')), 'the engine timer', DEADLINE_MS);
    const k = log.indexOf('timeout-due', at);
    assert.ok(k > at && log[k - 1] === 'read', `a reading right before the timeout: ${log.slice(at).join(' ')}`);
  }
  assert.ok(!log.includes('timeout-early'), 'never woken before the deadline');
  assert.equal(log.filter((x) => x.startsWith('timeout')).length, 3, 'the engine timer ran only when due');
  // Idle (the counters never moved): 80 readings (more than two liveness intervals of 30), no Keepalive.
  const idleFrom = log.filter((x) => x === 'read').length;
  await waitFor(() => log.filter((x) => x === 'read').length >= idleFrom + 80, '80 readings', DEADLINE_MS);
  assert.equal(got.length, 0, 'no Keepalive for a context that sent nothing');
  assert.equal(d.stats.liveness, 0);
  // The liveness Keepalive once the context sends (30 readings of 20 ms: every second).
  sending = true;
  await waitFor(() => got.length > 0, 'a Keepalive to the peer', DEADLINE_MS);
  const m = decodeMessage(got[0]!);
  assert.equal(m.type, 'Keepalive');
  assert.equal((m as { contextTag: number }).contextTag, 0x2222, 'with the peer\'s context tag');
  assert.ok(d.stats.liveness >= 1);
});

test('kernel path: after a suspend (the clock hours past the engine\'s deadline, whose Node timer has not fired) the next input reads the counters and runs the engine\'s due timers at once', async (t) => {
  const net = new MemoryNetwork();
  const HOUR = 3_600_000;
  let now = 5_000_000;
  let deadline: number | undefined;
  const log: string[] = [];
  const events: EngineEvent[] = [];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }),
    handleTimeout: (n) => { log.push(deadline !== undefined && n >= deadline ? 'timeout-due' : 'timeout-early'); if (deadline !== undefined && n >= deadline) deadline = undefined; },
    encapsulate: () => ({ kind: 'no-context' as const }),
    pollTransmit: () => undefined, pollTimeout: () => deadline as Millis | undefined, pollEvent: () => events.shift(),
    kernelTraffic: () => true,
  };
  const kernel = { refresh: () => { log.push('read'); return Promise.resolve(); }, watch: () => true, unwatch: () => {}, read: () => ({ outPackets: 0, inPackets: 0 }) };
  // Readings every two hours: only the engine's deadline (half an hour away) wakes the clock before.
  const d = new EngineDriver({ engine, transport: net.transport(5533), kernel, kernelPollMs: 2 * HOUR, clock: () => now as Millis, routes: { contextUp: () => {}, contextDown: () => {} } });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  events.push(established('fd00::a', 'fd00::b', 'initiated'));
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel']);
  deadline = now + HOUR / 2;
  d.flush();
  await new Promise((r) => setImmediate(r));
  const at = log.length;
  now += 10 * HOUR; // ten hours asleep
  d.flush(); // the first input after the resume
  await waitFor(() => log.slice(at).includes('timeout-due'), 'the engine\'s overdue timer runs', DEADLINE_MS);
  const k = log.indexOf('timeout-due', at);
  assert.equal(log[k - 1], 'read', `a reading right before the timeout: ${log.slice(at).join(' ')}`);
});

test('kernel path: counters that cannot be read (three readings in a row) put every context on the TUN path, for good', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dpf', 1400);
  const routes: string[] = [];
  const events: EngineEvent[] = [established('fd00::a', 'fd00::b', 'initiated')];
  const engine: EngineLike = {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {},
    encapsulate: () => ({ kind: 'send' as const, src: 'fd00::a', dst: 'fd00::b', header: new Uint8Array(8) }),
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
    kernelTraffic: () => true,
  };
  let reads = 0;
  const kernel = { refresh: () => { reads++; return Promise.reject(new Error('nft gone')); }, watch: () => true, unwatch: () => {}, read: () => undefined };
  const d = new EngineDriver({ engine, transport: net.transport(5533), tun, kernel, kernelPollMs: 5, routes: { contextUp: (_l, p) => { routes.push(`up ${p}`); }, contextDown: (p) => { routes.push(`down ${p}`); } } });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel']);
  await waitFor(() => d.paths()[0]?.path === 'tun', 'the fallback to the TUN', DEADLINE_MS);
  assert.ok(reads >= 3, `${reads} readings`);
  assert.ok((d.stats.drops['kernel-read'] ?? 0) >= 3);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(routes, ['down fd00::b', 'up fd00::b'], 'routed into the TUN again');
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair: { local: 'fd00::a', peer: 'fd00::b' } });
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['tun'], 'and stays there');
});

/**
 * An engine stub of one established context fd00::a → fd00::b on the pair `pair()`, events from
 * `events`, the peer's locators fd00::b and fd00::1b verified (and fd00::2b not, with `unverified`).
 */
function reHomingEngine(events: EngineEvent[], pair: () => { local: string; peer: string }, unverified: boolean): EngineLike {
  const peerLocators = [{ address: 'fd00::b', verified: true, probed: true, flags: 0 }, { address: 'fd00::1b', verified: true, probed: true, flags: 0 }];
  if (unverified) peerLocators.push({ address: 'fd00::2b', verified: false, probed: false, flags: 0 });
  return {
    handleDatagram: () => ({ kind: 'consumed' as const }), handleTimeout: () => {},
    encapsulate: () => ({ kind: 'send' as const, src: 'fd00::a', dst: 'fd00::b', header: new Uint8Array(8) }),
    pollTransmit: () => undefined, pollTimeout: () => undefined, pollEvent: () => events.shift(),
    kernelTraffic: () => true,
    status: () => ({
      contexts: [{
        state: 'ESTABLISHED', localUlid: 'fd00::a', peerUlid: 'fd00::b', ulidProof: 'initiated', contextTag: 0x1111, peerContextTag: 0x2222, pair: pair(), reap: 'Operational',
        peerLocators, timers: {}, traffic: { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 }, rehomings: 0,
      }],
    } as unknown as ReturnType<NonNullable<EngineLike['status']>>),
  };
}

test('kernel encapsulation: a re-homed context goes on the tc programs (tags, port and verified locators from the engine, ULID routed where the pair goes, still counted), its TCP flows are prompted with a Packet Too Big quoting the peer\'s last acknowledgment; refused maps keep it on the TUN; back on the ULID pair or closed, its entries go', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dpe', 1400);
  const switches: string[] = [];
  const events: EngineEvent[] = [];
  const pair = { local: 'fd00::a', peer: 'fd00::b' }, q = { local: 'fd00::1a', peer: 'fd00::1b' };
  let current = pair;
  const engine = reHomingEngine(events, () => current, true);
  const watched = new Set<string>();
  const kernel = {
    refresh: () => Promise.resolve(),
    watch: (l: string, p: string) => { watched.add(`${l} ${p}`); return true; },
    unwatch: (l: string, p: string) => { watched.delete(`${l} ${p}`); },
    read: () => ({ outPackets: 0, inPackets: 0 }),
  };
  const sets: unknown[] = [], unsets: string[] = [], flowWatch: string[] = [];
  let refuse = false;
  const encap = {
    set: (c: unknown) => { if (refuse) return false; sets.push(c); return true; },
    unset: (l: string, p: string, tag: number) => { unsets.push(`${l} ${p} ${tag}`); },
    watch: (l: string, p: string) => { flowWatch.push(`watch ${l} ${p}`); },
    unwatch: (l: string, p: string) => { flowWatch.push(`unwatch ${l} ${p}`); },
    // The peer's last segment as a pure ACK (ports 7000 → 40000, seq 0x01020304, ack 0xdeadbeef, ACK), as the ingress program keeps it.
    flows: () => [{ srcPort: 40000, dstPort: 7000, ack: 0xdeadbeef, lastAck: Uint8Array.of(0x1b, 0x58, 0x9c, 0x40, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef, 5 << 4, 0x10, 0x01, 0x00, 0, 0, 0, 0) }],
  };
  const d = new EngineDriver({
    engine, transport: net.transport(5533), tun, kernel, kernelPollMs: 5, encap, encapMtu: 1444,
    routes: {
      contextUp: () => {}, contextDown: () => {}, flushRouteCache: () => {},
      switchPath: (_l, p, path, to) => { switches.push(`${path} ${p}${to ? ` ${to.local}>${to.peer}` : ''}`); return Promise.resolve(); },
    },
  });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  events.push(established('fd00::a', 'fd00::b', 'initiated'));
  d.flush();
  assert.deepEqual(flowWatch, ['watch fd00::a fd00::b'], 'its TCP flows are remembered from the start');
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel']);
  // Re-homed: exploring (TUN), the new pair, Operational again.
  current = q;
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair });
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: pair, new: q, cause: 'send-timeout' });
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair: q });
  d.flush();
  assert.deepEqual(d.paths().map((p) => [p.path, p.pair.local]), [['encap', 'fd00::1a']], 're-homed: the kernel encapsulation');
  assert.deepEqual(sets, [{ localUlid: 'fd00::a', peerUlid: 'fd00::b', localLocator: 'fd00::1a', peerLocator: 'fd00::1b', localTag: 0x1111, peerTag: 0x2222, peerPort: 5533, peerLocators: ['fd00::b', 'fd00::1b'] }], 'only verified locators may send');
  assert.ok(watched.has('fd00::a fd00::b'), 'the kernel still counts its packets (REAP)');
  await waitFor(() => tun.written.length > 0, 'the kernel flows\' prompt', DEADLINE_MS);
  assert.deepEqual(switches.slice(-1), ['encap fd00::b fd00::1a>fd00::1b'], 'the ULID routed where the new pair goes');
  // The prompt: an ICMPv6 Packet Too Big (type 2) from the peer's ULID to ours, MTU under the encapsulated path's, quoting the flow at the peer's last ACK.
  const icmp = splitPacket(tun.written[0]!)!;
  assert.deepEqual([icmp.srcUlid, icmp.dstUlid, icmp.nextHeader, icmp.payload[0]], ['fd00::b', 'fd00::a', 58, 2]);
  const v = new DataView(icmp.payload.buffer, icmp.payload.byteOffset);
  assert.ok(v.getUint32(4) < 1444, `MTU ${v.getUint32(4)}`);
  const quoted = splitPacket(icmp.payload.subarray(8))!;
  assert.deepEqual([quoted.srcUlid, quoted.dstUlid, quoted.nextHeader], ['fd00::a', 'fd00::b', IPPROTO_TCP]);
  const qv = new DataView(quoted.payload.buffer, quoted.payload.byteOffset);
  assert.deepEqual([qv.getUint16(0), qv.getUint16(2), qv.getUint32(4)], [40000, 7000, 0xdeadbeef]);
  // Then the peer's last ACK again, to our own stack (a sender with nothing in flight sends at once), its checksum valid.
  await waitFor(() => tun.written.length > 1, 'the peer\'s last ACK after the Packet Too Big', DEADLINE_MS);
  const ack = splitPacket(tun.written[1]!)!;
  assert.deepEqual([ack.srcUlid, ack.dstUlid, ack.nextHeader, ack.payload.length], ['fd00::b', 'fd00::a', IPPROTO_TCP, 20]);
  const av = new DataView(ack.payload.buffer, ack.payload.byteOffset);
  assert.deepEqual([av.getUint16(0), av.getUint16(2), av.getUint32(4), av.getUint32(8), ack.payload[13]], [7000, 40000, 0x01020304, 0xdeadbeef, 0x10]);
  const zeroed = ack.payload.slice();
  zeroed[16] = 0; zeroed[17] = 0;
  assert.equal(av.getUint16(16), ulpChecksum('fd00::b', 'fd00::a', IPPROTO_TCP, zeroed), 'TCP checksum over the ULIDs');
  // Back on the ULID pair: entries go, kernel path.
  current = pair;
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: q, new: pair, cause: 'send-timeout' });
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['kernel']);
  assert.deepEqual(unsets, ['fd00::a fd00::b 4369']);
  // Maps refused: the TUN carries it (counted).
  refuse = true;
  current = q;
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: pair, new: q, cause: 'send-timeout' });
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['tun']);
  assert.equal(d.stats.drops['encap-set'], 1);
  events.push({ kind: 'context-closed', localUlid: 'fd00::a', peerUlid: 'fd00::b', contextTag: 0x1111, reason: 'idle', resumable: false });
  d.flush();
  assert.deepEqual(flowWatch.slice(-1), ['unwatch fd00::a fd00::b']);
  assert.equal(watched.size, 0);
});

// Review of the kernel path, F1: whatever the kernel's table returns for a context (before the
// fix, thousands of flows forged with the peer's ULID), one re-homing prompts at most 256 of them
// per round (a Packet Too Big and an ACK each into our own stack), not all.
/**
 * The parts of a driver whose context re-homes: a network, a TUN, the engine's events, the ULID
 * pair and pair q, and an engine (reHomingEngine, every locator verified) on pair `at.current`.
 */
function reHomingParts(tunName: string) {
  const pair = { local: 'fd00::a', peer: 'fd00::b' }, q = { local: 'fd00::1a', peer: 'fd00::1b' };
  const events: EngineEvent[] = [];
  const at = { current: pair };
  const net = new MemoryNetwork(), tun = new MemoryTun(tunName, 1400);
  const engine = reHomingEngine(events, () => at.current, false);
  /** A driver on these parts (kernel path, `encap`, its counters never moving), its context with fd00::b established. */
  const start = async (t: import('node:test').TestContext, o: { encap: EncapHook; logger: Logger; engine?: EngineLike; clock?: () => Millis }): Promise<EngineDriver> => {
    const kernel = { refresh: () => Promise.resolve(), watch: () => true, unwatch: () => {}, read: () => ({ outPackets: 0, inPackets: 0 }) };
    const d = new EngineDriver({
      engine: o.engine ?? engine, transport: net.transport(5533), tun, kernel, kernelPollMs: 5, encap: o.encap, encapMtu: 1444, logger: o.logger, ...(o.clock ? { clock: o.clock } : {}),
      routes: { contextUp: () => {}, contextDown: () => {}, flushRouteCache: () => {}, switchPath: () => Promise.resolve() },
    });
    t.after(() => d.close());
    await d.bindLocator('fd00::a');
    events.push(established('fd00::a', 'fd00::b', 'initiated'));
    d.flush();
    return d;
  };
  return { tun, events, pair, q, at, engine, start };
}

test('kernel encapsulation: a re-homing prompts at most 256 of a context\'s kernel flows per round, however many the kernel returns', async (t) => {
  const { events, pair, q, at, start } = reHomingParts('dpf');
  const lastAck = Uint8Array.of(0x1b, 0x58, 0x9c, 0x40, 1, 2, 3, 4, 0xde, 0xad, 0xbe, 0xef, 5 << 4, 0x10, 0x01, 0x00, 0, 0, 0, 0);
  const encap = {
    set: () => true, unset: () => {}, watch: () => {}, unwatch: () => {},
    flows: () => Array.from({ length: 5000 }, (_, i) => ({ srcPort: 80, dstPort: 1000 + i, ack: 0xdeadbeef, lastAck })),
  };
  const logged: number[] = [];
  const logger = { info: (msg: string, f?: Record<string, unknown>) => { if (msg === 'tcp prompted after re-homing (kernel flows)') logged.push(f!.flows as number); }, warn: () => {}, error: () => {}, debug: () => {} } as unknown as Logger;
  const d = await start(t, { encap, logger });
  at.current = q;
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair });
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: pair, new: q, cause: 'send-timeout' });
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair: q });
  d.flush();
  // The acknowledgments never move here, so every round prompts again: wait for the last one.
  await waitFor(() => logged.length >= 3, 'the prompt\'s rounds', DEADLINE_MS);
  assert.ok(logged.every((n) => n === 256), `each round prompted 256 flows: ${JSON.stringify(logged)}`);
  assert.equal(d.stats.prompts % 256, 0);
  assert.ok(d.stats.prompts <= 256 * 6, `at most 256 per round (3 rounds at each of the re-homing's 2 steps): ${d.stats.prompts}`);
});

// CI run 149: a flow the kernel remembered, closed while its context's packets crossed the TUN
// (REAP explored), kept its place: the egress program, which forgets a flow at our FIN or RST,
// never saw them. The driver forgets it then.
test('kernel encapsulation: our stack\'s FIN or RST through the TUN makes the kernel forget the flow (a watched context only; other segments and other contexts do not)', async (t) => {
  const net = new MemoryNetwork();
  const tun = new MemoryTun('dpg', 1400);
  const events: EngineEvent[] = [];
  const pair = { local: 'fd00::a', peer: 'fd00::b' };
  const engine = reHomingEngine(events, () => pair, false);
  let watching = true;
  const kernel = { refresh: () => Promise.resolve(), watch: () => watching, unwatch: () => {}, read: () => ({ outPackets: 0, inPackets: 0 }) };
  const forgot: string[] = [];
  const encap = {
    set: () => true, unset: () => {}, watch: () => {}, unwatch: () => {}, flows: () => [],
    forget: (l: string, p: string, ours: number, theirs: number) => { forgot.push(`${l} ${p} ${ours} ${theirs}`); },
  };
  const d = new EngineDriver({
    engine, transport: net.transport(5533), tun, kernel, kernelPollMs: 5, encap, encapMtu: 1444,
    routes: { contextUp: () => {}, contextDown: () => {}, flushRouteCache: () => {}, switchPath: () => Promise.resolve() },
  });
  t.after(() => d.close());
  await d.bindLocator('fd00::a');
  events.push(established('fd00::a', 'fd00::b', 'initiated'));
  d.flush();
  // Exploring: what our stack sends to the peer's ULID crosses the TUN.
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair });
  d.flush();
  assert.deepEqual(d.paths().map((p) => p.path), ['tun']);
  const segment = (from: string, to: string, ours: number, flags: number): Uint8Array => {
    const h = new Uint8Array(20);
    h[0] = ours >> 8; h[1] = ours & 0xff; h[2] = 0x1b; h[3] = 0x58; h[12] = 5 << 4; h[13] = flags;
    return buildPacket(from, to, IPPROTO_TCP, h);
  };
  tun.inject(segment('fd00::a', 'fd00::b', 40000, 0x10)); // ACK: the flow goes on
  tun.inject(segment('fd00::a', 'fd00::b', 40001, 0x11)); // FIN+ACK
  tun.inject(segment('fd00::a', 'fd00::b', 40002, 0x04)); // RST
  tun.inject(segment('fd00::c', 'fd00::b', 40003, 0x11)); // a FIN from another of our ULIDs: not this context's
  await waitFor(() => d.stats.tunIn >= 4, 'the four segments read from the TUN', DEADLINE_MS);
  assert.deepEqual(forgot, ['fd00::a fd00::b 40001 7000', 'fd00::a fd00::b 40002 7000']);
  // A context whose flows the kernel does not remember (its counters refused): nothing to forget.
  events.push({ kind: 'context-closed', localUlid: 'fd00::a', peerUlid: 'fd00::b', contextTag: 0x1111, reason: 'idle', resumable: false });
  d.flush();
  watching = false;
  events.push(established('fd00::a', 'fd00::b', 'initiated'));
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair });
  d.flush();
  tun.inject(segment('fd00::a', 'fd00::b', 40004, 0x11));
  await waitFor(() => d.stats.tunIn >= 5, 'the fifth segment read from the TUN', DEADLINE_MS);
  assert.equal(forgot.length, 2, 'no flow forgotten for an unwatched context');
});

// CI run 146's stall (a suspected cause, not reproduced): after a restart the kernel's flow table is new. A
// context whose REAP explored and settled on the encapsulation with its pair unchanged had nothing
// prompted: no kernel flow, no change of pair. Now what our stack last sent through the TUN is
// replayed then; after a change of pair, whose own replay came just before, it is not replayed twice.
test('kernel encapsulation: a re-homing onto the encapsulation whose kernel flow table is empty replays what our stack last sent through the TUN, once per re-homing', async (t) => {
  const { tun, events, pair, q, at, engine: inner, start } = reHomingParts('dph');
  const sent: number[] = []; // the first data octet of each TCP segment the engine was handed
  const engine: EngineLike = { ...inner, encapsulate: (now, p) => { if (p.nextHeader === IPPROTO_TCP && p.payload.length > 20) sent.push(p.payload[20]!); return inner.encapsulate(now, p); } };
  const encap = { set: () => true, unset: () => {}, watch: () => {}, unwatch: () => {}, flows: () => [] };
  const replays: number[] = [];
  const logger = { info: (msg: string, f?: Record<string, unknown>) => { if (msg === 'tcp prompted after re-homing' && f!.round === undefined) replays.push(f!.segments as number); }, warn: () => {}, error: () => {}, debug: () => {} } as unknown as Logger;
  let now = 1_000_000;
  const d = await start(t, { encap, logger, engine, clock: () => now as Millis });
  at.current = q;
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: pair, new: q, cause: 'send-timeout' });
  d.flush();
  // Exploring on pair q: our stack's segment (data octet 0x42) crosses the TUN.
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair: q });
  d.flush();
  const h = new Uint8Array(21);
  h[0] = 0x9c; h[1] = 0x40; h[2] = 0x1b; h[3] = 0x58; h[7] = 1; h[12] = 5 << 4; h[13] = 0x18; h[20] = 0x42;
  tun.inject(buildPacket('fd00::a', 'fd00::b', IPPROTO_TCP, h));
  await waitFor(() => sent.length === 1, 'our stack\'s segment through the TUN', DEADLINE_MS);
  // REAP settles on the same pair, well after the change of pair: onto the encapsulation, nothing in the kernel's table.
  now += 5000;
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair: q });
  d.flush();
  // (The change of pair before had nothing to replay yet: no line.)
  await waitFor(() => replays.length === 1, 'the replay at the re-homing onto the encapsulation', DEADLINE_MS);
  assert.deepEqual(d.paths().map((p) => p.path), ['encap']);
  assert.deepEqual(replays, [1], 'the flow\'s last data segment (it sent no pure ACK)');
  assert.equal(sent.filter((x) => x === 0x42).length, 2, 'the segment sent again');
  // Explores and settles again, right after a change of pair: that change's replay is this re-homing's.
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'exploring', pair: q });
  d.flush();
  at.current = pair;
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: q, new: pair, cause: 'send-timeout' });
  at.current = q;
  events.push({ kind: 'locator-pair-changed', localUlid: 'fd00::a', peerUlid: 'fd00::b', old: pair, new: q, cause: 'send-timeout' });
  events.push({ kind: 'reap-state', localUlid: 'fd00::a', peerUlid: 'fd00::b', state: 'operational', pair: q });
  d.flush();
  await waitFor(() => d.paths()[0]?.path === 'encap' && replays.length >= 3, 'the two changes\' replays', DEADLINE_MS);
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); // the route's promise (resolved) and its callback have run
  assert.equal(replays.length, 3, `one replay per change of pair, none more: ${JSON.stringify(replays)}`);
});

// ICMPv6 errors about our datagrams (RFC 5533 §7.8, §8; shim/engine/icmp.ts): an I1 refused goes to the
// negative cache at once; errors about application packets come back translated to the ULIDs; Packet Too
// Big lowers the context's path MTU; and nothing changes unless the quoted datagram is ours (fuzzed).
// On the simulator (test/sim/): the errors are crafted from what the engine really sent, and handed to
// `handleIcmp` directly, as the driver would after the kernel's error queue reported them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Sim } from '../sim/sim.ts';
import { configuredPair, engineEvents, pairWithContextIn, sendShim, shimAlone, shimPair, type ShimHost } from '../sim/shim-hosts.ts';
import { sent } from '../sim/trace.ts';
import { State, PMTU_EXPIRES_MS, type IcmpInput } from '../../shim/engine/index.ts';
import { ms } from '../../shim/time.ts';
import { fuzzParams } from '../helpers/rng.ts';
import { shim6Checksum, writeU16 } from '../../shim/wire/header.ts';
import { decodePayloadHeader, tryDecodeMessage } from '../../shim/wire/index.ts';

const LEGACY = '2001:db8:1e9::1';

/** A primes a peer without shim6 (configured, no locators but its ULID) and sends the I1. */
function pendingI1(seed: number, locators: string[] = [], port?: number): { sim: Sim; a: ShimHost; i1: { src: string; dst: string; bytes: Uint8Array } } {
  const { sim, a } = shimAlone(seed);
  a.engine.prime(sim.now, { ulid: LEGACY, locators: locators.map((address, i) => ({ address, flags: 0, priority: i, weight: 0 })), ttl: 300, source: 'dns', ...(port === undefined ? {} : { port }) });
  sim.flush();
  const out = sent(sim, 'a');
  assert.deepEqual(out.map((l) => l.type), ['I1']);
  const l = out[0]!;
  return { sim, a, i1: { src: l.src, dst: l.dst, bytes: l.bytes } };
}

const portUnreachable = (i1: { src: string; dst: string; bytes: Uint8Array }, extra: Partial<IcmpInput> = {}): IcmpInput =>
  ({ type: 1, code: 4, info: 0, offender: i1.dst, src: i1.src, dst: i1.dst, port: 5533, invoking: i1.bytes, ...extra });

/** The state an ICMP error must not change: every context, the caches, the events so far, what was sent, the next timer. */
function snapshot(h: ShimHost, sim: Sim): string {
  sim.flush();
  return JSON.stringify({ st: h.engine.status(sim.now), caches: h.engine.exportCaches(sim.now), events: engineEvents(h).length, sent: sim.adversary.captured.length, tx: h.engine.pollTimeout() });
}

test('I1 answered by Port Unreachable from its destination: NO-SUPPORT and the negative cache at once', () => {
  const { sim, a, i1 } = pendingI1(1);
  assert.deepEqual(a.engine.handleIcmp(sim.now, portUnreachable(i1)), { kind: 'consumed' });
  sim.flush();
  assert.equal(a.engine.status().contexts[0]!.state, State.NO_SUPPORT);
  const neg = a.engine.status(sim.now).capability!.negative;
  assert.deepEqual(neg.map((n) => [n.address, n.reason]), [[LEGACY, 'refused']]);
  assert.ok(engineEvents(a).some((e) => e.kind === 'peer-unsupported' && e.reason === 'refused'));
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-failed' && e.reason === 'refused'));
  assert.equal(sent(sim, 'a').length, 1, 'no I1 retry');
  sim.runFor(5_000); // well past the I1 retransmissions (fast profile)
  assert.equal(sent(sim, 'a').length, 1, 'no I1 retry once its timer would have fired');
});

test('I1: Address Unreachable fails at once only when the peer has no other locator; otherwise the retries try them', () => {
  const lone = pendingI1(2);
  assert.deepEqual(lone.a.engine.handleIcmp(lone.sim.now, { ...portUnreachable(lone.i1), code: 3, offender: '2001:db8:ff::1' }), { kind: 'consumed' });
  assert.equal(lone.a.engine.status().contexts[0]!.state, State.E_FAILED);
  assert.equal(lone.a.engine.status(lone.sim.now).capability!.negative[0]!.reason, 'no-answer');

  const multi = pendingI1(3, [LEGACY, '2001:db8:1ea::1']);
  const before = snapshot(multi.a, multi.sim);
  assert.deepEqual(multi.a.engine.handleIcmp(multi.sim.now, { ...portUnreachable(multi.i1), code: 3 }), { kind: 'drop', reason: 'icmp-other-locators' });
  assert.equal(snapshot(multi.a, multi.sim), before);
});

test('I1 refused (Port Unreachable) by a DNS locator that is not the peer\'s ULID while others are left (a stale address, no daemon there): the retries try them, no NO-SUPPORT, no negative entry for 10 minutes', () => {
  const STALE = '2001:db8:5ea::1';
  const { sim, a } = pendingI1(5, [LEGACY, STALE, '2001:db8:1ea::1']);
  sim.driveUntil(() => sent(sim, 'a').some((l) => l.type === 'I1' && l.dst === STALE), { within: 10_000 });
  const toStale = sent(sim, 'a').find((l) => l.type === 'I1' && l.dst === STALE)!;
  const before = snapshot(a, sim);
  assert.deepEqual(a.engine.handleIcmp(sim.now, portUnreachable(toStale)), { kind: 'drop', reason: 'icmp-other-locators' });
  assert.equal(snapshot(a, sim), before);
  assert.equal(a.engine.status().contexts[0]!.state, State.I1_SENT);
  // From the ULID itself it is the peer that refuses: NO-SUPPORT at once, as before.
  const first = sent(sim, 'a').find((l) => l.type === 'I1' && l.dst === LEGACY)!;
  assert.deepEqual(a.engine.handleIcmp(sim.now, portUnreachable(first)), { kind: 'consumed' });
  assert.equal(a.engine.status().contexts[0]!.state, State.NO_SUPPORT);
});

test('hostile errors about an I1 change nothing: wrong nonce or tag, other locators, a router claiming the port, truncation', () => {
  const { sim, a, i1 } = pendingI1(4);
  const before = snapshot(a, sim);
  // One bit of the I1 changed, its checksum made right again: a forger writes a valid I1, so only the
  // nonce or tag check (not the checksum) can tell the quote from ours.
  const flip = (i: number) => {
    const b = i1.bytes.slice();
    b[i]! ^= 0x01;
    writeU16(b, 4, 0);
    writeU16(b, 4, shim6Checksum(b, (b[1]! + 1) * 8));
    assert.ok(tryDecodeMessage(b).ok, `octet ${i} changed: still a well-formed I1`);
    return b;
  };
  const initiatorNonceAt = 12; // RFC 5533 §5.7: after the 8-octet header's context tag, 2 reserved octets
  const cases: [string, IcmpInput][] = [
    ['nonce', portUnreachable(i1, { invoking: flip(initiatorNonceAt + 3) })],
    ['tag', portUnreachable(i1, { invoking: flip(11) })],
    ['destination', portUnreachable(i1, { dst: '2001:db8:99::1', offender: '2001:db8:99::1' })],
    ['source', portUnreachable(i1, { src: '2001:db8:99::2' })],
    ['router', portUnreachable(i1, { offender: '2001:db8:99::3' })],
    ['truncated', portUnreachable(i1, { invoking: i1.bytes.subarray(0, 6) })],
    ['time exceeded', portUnreachable(i1, { type: 3, code: 0 })],
  ];
  for (const [what, e] of cases) {
    const r = a.engine.handleIcmp(sim.now, e);
    assert.equal(r.kind, 'drop', `${what}: ${JSON.stringify(r)}`);
    assert.equal(snapshot(a, sim), before, what);
  }
  // An I1 to the UDP port DNS gave (40000): an error quoting a datagram to another port is not about it.
  const atPort = pendingI1(6, [], 40_000);
  const beforePort = snapshot(atPort.a, atPort.sim);
  assert.deepEqual(atPort.a.engine.handleIcmp(atPort.sim.now, portUnreachable(atPort.i1, { port: 5533 })), { kind: 'drop', reason: 'icmp-unmatched' }, 'another port');
  assert.equal(snapshot(atPort.a, atPort.sim), beforePort, 'another port');
  assert.deepEqual(atPort.a.engine.handleIcmp(atPort.sim.now, portUnreachable(atPort.i1, { port: 40_000 })), { kind: 'consumed' }, 'its own port');
});

/** A's payload to B through the established context, as the error would quote it. */
function sentPayload(sim: Sim, a: ShimHost, b: ShimHost, payload: Uint8Array): { src: string; dst: string; bytes: Uint8Array } {
  const r = a.engine.encapsulate(sim.now, { srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: 6, payload });
  assert.equal(r.kind, 'send');
  if (r.kind !== 'send') throw new Error('unreachable');
  const bytes = new Uint8Array(r.header.length + payload.length);
  bytes.set(r.header); bytes.set(payload, r.header.length);
  return { src: r.src, dst: r.dst, bytes };
}

/** Payload both ways through the context every 10 s until `until` (virtual time), so it is neither idle nor exploring; each must go through it. */
function keepBusy(sim: Sim, a: ShimHost, b: ShimHost, until: number): void {
  while (sim.now < until) {
    assert.ok(sendShim(sim, a, b), 'A → B through the context');
    assert.ok(sendShim(sim, b, a), 'B → A through the context');
    sim.runUntil(ms(Math.min(sim.now + 10_000, until)));
  }
}

test('Packet Too Big about a payload: translated to the ULIDs with the MTU the application may use; the context keeps the limit', () => {
  const { sim, a, b } = configuredPair(11);
  const ulp = new Uint8Array(1400).map((_, i) => i);
  const sent = sentPayload(sim, a, b, ulp);
  const r = a.engine.handleIcmp(sim.now, { type: 2, code: 0, info: 1400, offender: '2001:db8:77::1', src: sent.src, dst: sent.dst, port: 5533, invoking: sent.bytes });
  assert.equal(r.kind, 'deliver');
  if (r.kind !== 'deliver') return;
  assert.deepEqual({ type: r.type, code: r.code, info: r.info, srcUlid: r.srcUlid, dstUlid: r.dstUlid, nextHeader: r.nextHeader }, { type: 2, code: 0, info: 1384, srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: 6 });
  assert.deepEqual(r.payload, ulp, 'the application\'s ULP, payload header gone');
  assert.equal(a.engine.status().contexts[0]!.pathMtu, 1384);
  const out = (n: number) => a.engine.encapsulate(sim.now, { srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: 6, payload: new Uint8Array(n) });
  assert.deepEqual(out(1384 - 40 + 1), { kind: 'too-big', mtu: 1384 });
  assert.equal(out(1384 - 40).kind, 'send');
  // Only ever lower; never below what IPv6 promises applications (the UDP datagram is then fragmented).
  const again = a.engine.handleIcmp(sim.now, { type: 2, code: 0, info: 1480, src: sent.src, dst: sent.dst, invoking: sent.bytes });
  assert.equal(again.kind === 'deliver' && again.info, 1384);
  const tiny = a.engine.handleIcmp(sim.now, { type: 2, code: 0, info: 600, src: sent.src, dst: sent.dst, invoking: sent.bytes });
  assert.equal(tiny.kind === 'deliver' && tiny.info, 1280);
  assert.equal(out(1240).kind, 'send');
  assert.deepEqual(out(1241), { kind: 'too-big', mtu: 1280 });
  // The lesson expires (as the kernel's PMTU does), and larger packets are tried again. The clock runs
  // on with small payload both ways (the context stays on its pair, neither idle nor exploring).
  const pair = a.engine.status().contexts[0]!.pair;
  const expires = sim.now + PMTU_EXPIRES_MS;
  keepBusy(sim, a, b, expires - 1);
  assert.deepEqual(out(1241), { kind: 'too-big', mtu: 1280 }, 'not before it expires');
  assert.equal(a.engine.status().contexts[0]!.pathMtu, 1280);
  sim.runFor(1);
  assert.equal(out(1300).kind, 'send');
  assert.equal(a.engine.status().contexts[0]!.pathMtu, undefined);
  assert.deepEqual(a.engine.status().contexts[0]!.pair, pair, 'expired, not forgotten with an old pair');
});

test('errors about payloads: a Parameter Problem in the application\'s part goes to it; Port Unreachable (no daemon at the peer) does not; unreachables on a multihomed path make REAP explore', () => {
  const { sim, a, b } = configuredPair(13);
  const sent = sentPayload(sim, a, b, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  const base = { src: sent.src, dst: sent.dst, invoking: sent.bytes, offender: sent.dst };
  // Port Unreachable quoting our UDP datagram is about port 5533 at B (its daemon is gone or restarting), not the application's
  // port: Shim6 counts it (a daemon gone for good ends the context: peer-gone.test.ts), the application hears nothing.
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 1, code: 4, info: 0 }), { kind: 'consumed' });
  assert.equal(a.engine.status(sim.now).contexts[0]!.peerGone?.errors, 1);
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 1, code: 4, info: 0, offender: '2001:db8:77::1' }), { kind: 'drop', reason: 'icmp-not-from-peer' }, 'a router has no say about the port');
  const pp = a.engine.handleIcmp(sim.now, { ...base, type: 4, code: 0, info: 40 + 16 + 2 });
  assert.equal(pp.kind === 'deliver' && pp.info, 42, 'the pointer, as into the application\'s packet');
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 4, code: 0, info: 50 }), { kind: 'drop', reason: 'icmp-shim-parameter' });
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 1, code: 0, info: 0, offender: '2001:db8:77::1' }), { kind: 'consumed' });
  assert.equal(a.engine.status().contexts[0]!.reap, 'Exploring');
});

test('icmpDeliverAll: an unreachable Shim6 acts on reaches the application too', () => {
  const { sim, a, b } = configuredPair(23, { a: { icmpDeliverAll: true } });
  const sent = sentPayload(sim, a, b, new Uint8Array(20));
  const r = a.engine.handleIcmp(sim.now, { type: 3, code: 0, info: 0, src: sent.src, dst: sent.dst, invoking: sent.bytes });
  assert.equal(r.kind, 'deliver');
  assert.equal(a.engine.status().contexts[0]!.reap, 'Exploring', 'and REAP explores all the same');
});

test('errors about payloads on a single-homed path: an unreachable goes to the application (nothing for Shim6 to act on)', () => {
  const { sim, a, b } = configuredPair(15, { aPrefixes: ['2001:db8:a1::/64'], bPrefixes: ['2001:db8:b1::/64'] });
  assert.deepEqual([a.locators.length, b.locators.length], [1, 1], 'one locator each');
  const sent = sentPayload(sim, a, b, new Uint8Array(20));
  const r = a.engine.handleIcmp(sim.now, { type: 1, code: 1, info: 0, src: sent.src, dst: sent.dst, invoking: sent.bytes });
  assert.equal(r.kind, 'deliver');
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
});

test('hostile errors about payloads change nothing: a wrong tag, another peer\'s locator, an old pair for PTB', () => {
  const { sim, a, b } = configuredPair(17);
  const sent = sentPayload(sim, a, b, new Uint8Array(1400));
  const before = snapshot(a, sim);
  const wrongTag = sent.bytes.slice(); wrongTag[7]! ^= 0x40;
  const ptb = { type: 2, code: 0, info: 1300, src: sent.src, dst: sent.dst, invoking: sent.bytes };
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...ptb, invoking: wrongTag }), { kind: 'drop', reason: 'icmp-unmatched' });
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...ptb, dst: '2001:db8:99::1' }), { kind: 'drop', reason: 'icmp-unmatched' });
  const other = b.locators.find((l) => l !== sent.dst)!;
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...ptb, dst: other }), { kind: 'drop', reason: 'icmp-stale-pair' });
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...ptb, type: 1, code: 0, dst: other }), { kind: 'drop', reason: 'icmp-stale-pair' });
  assert.equal(snapshot(a, sim), before);
});

test('fuzz: random errors and mutated quotes never throw, and change nothing unless they quote our datagram exactly', (t) => {
  const { sim, a, b } = configuredPair(19);
  const sent = sentPayload(sim, a, b, new Uint8Array(64).fill(7));
  const { i1 } = pendingI1(21);
  const addresses = [sent.src, sent.dst, ...a.locators, ...b.locators, '2001:db8:99::1', i1.src, i1.dst];
  const quotes = [sent.bytes, i1.bytes];
  const input = fc.record({
    type: fc.integer({ min: 0, max: 255 }), code: fc.integer({ min: 0, max: 255 }), info: fc.integer({ min: 0, max: 0xffffffff }),
    src: fc.constantFrom(...addresses), dst: fc.constantFrom(...addresses), offender: fc.option(fc.constantFrom(...addresses), { nil: undefined }),
    quote: fc.oneof(
      fc.uint8Array({ maxLength: 1400 }),
      // Our own datagrams with one octet changed (tag, nonce, checksum, ULP), or cut short.
      fc.tuple(fc.constantFrom(...quotes), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([q, i, x]) => { const c = q.slice(); c[i % c.length]! ^= x; return c; }),
      fc.tuple(fc.constantFrom(...quotes), fc.nat()).map(([q, n]) => q.subarray(0, n % q.length)),
    ),
  });
  fc.assert(fc.property(input, (e) => {
    const before = snapshot(a, sim);
    const r = a.engine.handleIcmp(sim.now, { type: e.type, code: e.code, info: e.info, src: e.src, dst: e.dst, invoking: e.quote, ...(e.offender !== undefined ? { offender: e.offender } : {}) });
    // Ours = our payload header's Hdr Ext Len, P bit and CT(peer) (octets 1–7; octet 0, the Next Header, is the application's), between one of our locators and one of B's (RFC 5533 §8: the triple).
    const ours = e.quote.length >= 8 && sent.bytes.subarray(1, 8).every((x, i) => e.quote[i + 1] === x) && a.locators.includes(e.src) && b.locators.includes(e.dst);
    if (!ours) assert.equal(r.kind, 'drop', JSON.stringify(r));
    if (r.kind === 'drop') assert.equal(snapshot(a, sim), before, JSON.stringify(r));
  }), fuzzParams(t, { seed: 5533, numRuns: 3000 }));
});

test('an error quoting a payload to another UDP port than the context\'s (DNS gave 40000) is not about it; one to its port is', () => {
  const { sim, a, b } = shimPair(25);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured', port: 40_000 });
  sim.runFor(200);
  assert.deepEqual([a.engine.status().contexts[0]?.state, a.engine.status().contexts[0]?.port], [State.ESTABLISHED, 40_000]);
  const out = sentPayload(sim, a, b, new Uint8Array(1400));
  const ptb = { type: 2, code: 0, info: 1300, src: out.src, dst: out.dst, invoking: out.bytes };
  const before = snapshot(a, sim);
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...ptb, port: 5533 }), { kind: 'drop', reason: 'icmp-unmatched' });
  assert.equal(snapshot(a, sim), before);
  assert.equal(a.engine.status().contexts[0]!.pathMtu, undefined);
  assert.equal(a.engine.handleIcmp(sim.now, { ...ptb, port: 40_000 }).kind, 'deliver', 'its own port');
  assert.equal(a.engine.status().contexts[0]!.pathMtu, 1284);
});

test('an error about a payload of a context in CLOSING (sent before the close) is dropped: the context is going, nothing to lower or deliver', () => {
  const { sim, a, b } = configuredPair(27);
  const out = sentPayload(sim, a, b, new Uint8Array(1400));
  sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward'); // B's Close Ack lost: A stays in CLOSING
  a.engine.close(sim.now, b.ulid);
  sim.flush();
  assert.equal(a.engine.status().contexts[0]!.state, State.CLOSING);
  const before = snapshot(a, sim);
  const base = { src: out.src, dst: out.dst, port: 5533, invoking: out.bytes };
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 2, code: 0, info: 1300 }), { kind: 'drop', reason: 'icmp-unmatched' }, 'Packet Too Big');
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 1, code: 0, info: 0 }), { kind: 'drop', reason: 'icmp-unmatched' }, 'unreachable');
  assert.equal(snapshot(a, sim), before);
  assert.equal(a.engine.status().contexts[0]!.pathMtu, undefined);
});

test('an error about a payload of a context that fell back to I1 (its I2bis unanswered, §7.19) is dropped: it still holds the old CT(peer), but no peer instance to speak for', () => {
  const { sim, a, b } = pairWithContextIn(State.I2BIS_SENT, 29);
  const quote = sent(sim, 'a').filter((l) => l.type === 'payload').at(-1)!;
  for (const lb of b.locators) for (const la of a.locators) sim.setLink(lb, la, { blackhole: true }, 'forward'); // B's R2s lost
  sim.driveUntil(() => a.engine.status().contexts[0]?.state === State.I1_SENT, { within: 60_000 });
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(decodePayloadHeader(quote.bytes).contextTag, ctx.peerContextTag, 'the old CT(peer), the one quoted, is still the context\'s');
  const before = snapshot(a, sim);
  const base = { src: quote.src, dst: quote.dst, port: 5533, invoking: quote.bytes };
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 2, code: 0, info: 1300 }), { kind: 'drop', reason: 'icmp-unmatched' }, 'Packet Too Big');
  assert.deepEqual(a.engine.handleIcmp(sim.now, { ...base, type: 4, code: 0, info: 100 }), { kind: 'drop', reason: 'icmp-unmatched' }, 'Parameter Problem');
  assert.equal(snapshot(a, sim), before);
});

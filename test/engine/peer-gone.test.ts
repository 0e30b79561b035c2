// A peer whose shim6 daemon is gone for good (its host up, UDP port 5533 closed): every datagram of
// the context draws an ICMPv6 Port Unreachable from the peer's locator. Proven ones (the quote carries
// the context's CT(peer), between our locator and a verified locator of the peer: icmp.ts) that go on
// for `peerGoneTimeout` with nothing heard from the peer end the context (`peer-gone`): an event, the
// peer in the negative cache, new packets plain IPv6 on the ULIDs. A daemon that restarts within that
// time and resumes (R1bis / I2bis) keeps the context; forged errors change nothing.
// In virtual time on the simulator (test/sim/): the errors are made from what A really sent to B, and
// handed to `handleIcmp` as the driver would from its socket's error queue.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sim } from '../sim/sim.ts';
import { configuredPair, engineEvents, rebootShimHost, sendShim, type ShimHost } from '../sim/shim-hosts.ts';
import { LegacyEndpoint } from '../sim/legacy.ts';
import { mark, traceAfter, type TraceLine } from '../sim/trace.ts';
import { State, type EngineEvent, type IcmpInput, type IcmpResult } from '../../shim/engine/index.ts';
import type { SimEndpoint } from '../sim/endpoint.ts';
import { ms } from '../../shim/time.ts';

const HOLD = 10_000;
const timers = { peerGoneTimeout: ms(HOLD) };

/** Port Unreachable from B's locator about datagram `l` A sent it (`tweak`: what a forger changes). */
function portUnreachable(l: TraceLine, tweak: Partial<IcmpInput> = {}): IcmpInput {
  return { type: 1, code: 4, info: 0, offender: l.dst, src: l.src, dst: l.dst, port: 5533, invoking: l.bytes, ...tweak };
}

/** A's context with B re-homed off its ULID pair (the ULID pair black-holed, then back). */
function rehomed(seed: number): { sim: Sim; a: ShimHost; b: ShimHost } {
  const p = configuredPair(seed, { a: { timers }, b: { timers } });
  const { sim, a, b } = p;
  sim.setLink(a.ulid, b.ulid, { blackhole: true });
  sim.driveUntil(() => { sendShim(sim, a, b); sendShim(sim, b, a); return ctxOf(a)?.pair.peer !== b.ulid || ctxOf(a)?.pair.local !== a.ulid; }, { within: 30_000, what: 're-homed' });
  sim.runFor(1000);
  sim.setLink(a.ulid, b.ulid, { blackhole: false }); // the ULIDs reach each other again: plain IPv6 would work
  assert.equal(ctxOf(a)?.state, State.ESTABLISHED);
  return p;
}

const ctxOf = (h: ShimHost) => h.engine.status().contexts[0];

/** B's daemon stops (no Close): its host drops every Shim6 datagram, as a closed UDP port does. */
function daemonGone(b: ShimHost): void {
  b.host.endpoint = new LegacyEndpoint() as SimEndpoint;
}

/**
 * The application on A keeps sending to B (as TCP retransmits) until `until`, and every datagram A
 * sends to one of B's locators draws a Port Unreachable from there (`error`: what the network makes
 * of it; undefined: none). The engine's answers to those errors.
 */
function run(sim: Sim, a: ShimHost, b: ShimHost, until: number, error: ((l: TraceLine) => IcmpInput | undefined) | undefined = portUnreachable): IcmpResult[] {
  const out: IcmpResult[] = [];
  let m = mark(sim);
  while (sim.now < until) {
    sendShim(sim, a, b);
    sim.runFor(Math.min(250, until - sim.now));
    const lines = traceAfter(sim, m).filter((l) => l.from === 'a' && b.locators.includes(l.dst) && l.type !== 'plain');
    m = mark(sim);
    for (const l of lines) {
      const e = error?.(l);
      if (e !== undefined) out.push(a.engine.handleIcmp(sim.now, e));
    }
    sim.flush();
  }
  return out;
}

const peerGone = (h: ShimHost): EngineEvent[] => engineEvents(h).filter((e) => (e.kind === 'context-closed' || e.kind === 'peer-unsupported') && e.reason === 'peer-gone');

test('B\'s daemon gone for good after a re-homing: the context ends once, after peerGoneTimeout of proven Port Unreachables; B goes into the negative cache and new packets go plain on the ULIDs', () => {
  const { sim, a, b } = rehomed(1);
  daemonGone(b);
  const start = sim.now;
  const early = run(sim, a, b, start + HOLD - 500);
  assert.ok(early.length > 10, `errors drawn: ${early.length}`);
  assert.ok(early.every((r) => r.kind === 'consumed'), 'each proven error is Shim6\'s (counted), not the application\'s');
  assert.equal(ctxOf(a)?.state, State.ESTABLISHED, 'not before the hold');
  const counting = ctxOf(a)?.peerGone;
  assert.ok(counting !== undefined && counting.errors === early.length, `status says so: ${JSON.stringify(counting)}`);
  assert.deepEqual(peerGone(a), []);
  run(sim, a, b, start + 3 * HOLD);
  assert.equal(a.engine.status().contexts.length, 0, 'the context ended');
  const closed = engineEvents(a).filter((e) => e.kind === 'context-closed');
  assert.equal(closed.length, 1, 'ended once');
  const c = closed[0]!;
  assert.ok(c.kind === 'context-closed' && c.reason === 'peer-gone' && !c.resumable, JSON.stringify(c));
  const at = a.host.events.find((e) => e.event.kind === 'context-closed')!.at;
  assert.ok(at - start >= HOLD && at - start < HOLD + 2000, `ended ${at - start} ms after the first error`);
  assert.ok(engineEvents(a).some((e) => e.kind === 'peer-unsupported' && e.reason === 'peer-gone' && e.peerUlid === b.ulid));
  const neg = a.engine.status(sim.now).capability!.negative;
  assert.deepEqual(neg.map((n) => [n.address, n.ulid, n.reason]), [[b.ulid, b.ulid, 'peer-gone']]);
  // New packets to B: plain IPv6 on the ULIDs, and no new exchange with the gone daemon.
  const m = mark(sim);
  assert.equal(sendShim(sim, a, b), false, 'plain IPv6');
  sim.runFor(5000);
  assert.deepEqual(traceAfter(sim, m).filter((l) => l.from === 'a').map((l) => l.type), ['plain'], 'no I1 to the gone daemon');
  assert.equal(a.engine.discover(sim.now, a.ulid, b.ulid), 'negative');
});

test('B\'s daemon restarts within peerGoneTimeout and resumes (R1bis / I2bis): the context is kept; a later death counts from its own first error', () => {
  const { sim, a, b } = rehomed(2);
  daemonGone(b);
  const start = sim.now;
  run(sim, a, b, start + HOLD / 2);
  assert.ok(ctxOf(a)?.peerGone !== undefined, 'counting');
  rebootShimHost(sim, b, { timers }); // the new daemon, without the context: A's next packets draw its R1bis
  sim.driveUntil(() => { sendShim(sim, a, b); return engineEvents(a).some((e) => e.kind === 'context-established' && e.recovered); }, { within: 10_000, what: 'recovered' });
  assert.equal(ctxOf(a)?.peerGone, undefined, 'heard from again: no count');
  // Well past the first error's hold, the context carries traffic.
  run(sim, a, b, start + 3 * HOLD, undefined);
  assert.equal(ctxOf(a)?.state, State.ESTABLISHED);
  assert.equal(sendShim(sim, a, b), true, 'through the context');
  assert.deepEqual(peerGone(a), []);
  // Dead again: a fresh count, not the old one's.
  daemonGone(b);
  const again = sim.now;
  run(sim, a, b, again + HOLD - 500);
  assert.equal(ctxOf(a)?.state, State.ESTABLISHED, 'the earlier errors do not count');
  run(sim, a, b, again + 3 * HOLD);
  assert.equal(a.engine.status().contexts.length, 0);
  assert.equal(engineEvents(a).filter((e) => e.kind === 'context-closed' && e.reason === 'peer-gone').length, 1);
});

test('forged Port Unreachables (no CT(peer), another peer\'s locator, a router) change nothing, however long they go on', () => {
  const { sim, a, b } = rehomed(3);
  daemonGone(b);
  const flipTag = (l: TraceLine): Uint8Array => { const x = l.bytes.slice(); x[7]! ^= 0x01; return x; };
  const forgeries: Array<(l: TraceLine) => IcmpInput | undefined> = [
    (l) => l.type === 'payload' ? portUnreachable(l, { invoking: flipTag(l) }) : undefined,
    (l) => portUnreachable(l, { dst: '2001:db8:99::1', offender: '2001:db8:99::1' }),
    (l) => portUnreachable(l, { offender: '2001:db8:77::1' }),
    (l) => portUnreachable(l, { src: '2001:db8:99::2' }),
  ];
  let until: number = sim.now;
  for (const forge of forgeries) {
    until += 3 * HOLD;
    const rs = run(sim, a, b, until, forge);
    assert.ok(rs.length > 0 && rs.every((r) => r.kind === 'drop'), JSON.stringify(rs.find((r) => r.kind !== 'drop')));
    assert.equal(ctxOf(a)?.state, State.ESTABLISHED);
    assert.equal(ctxOf(a)?.peerGone, undefined);
  }
  assert.deepEqual(peerGone(a), []);
  assert.deepEqual(a.engine.status(sim.now).capability!.negative, [], 'no negative entry');
});

test('traffic still arriving from B (its killed daemon\'s kernel programs carry it: the kernel path\'s counters) keeps the context, errors about control messages or not', () => {
  const { sim, a, b } = rehomed(4);
  daemonGone(b);
  const start = sim.now;
  let m = mark(sim);
  let errors = 0;
  while (sim.now < start + 3 * HOLD) {
    a.engine.kernelTraffic(sim.now, a.ulid, b.ulid, { sent: true, received: true });
    sim.runFor(250);
    for (const l of traceAfter(sim, m).filter((x) => x.from === 'a' && b.locators.includes(x.dst) && x.type !== 'plain')) {
      if (a.engine.handleIcmp(sim.now, portUnreachable(l)).kind === 'consumed') errors++;
    }
    m = mark(sim);
    sim.flush();
  }
  assert.ok(errors > 10, `proven errors about A's own messages (keepalives, probes): ${errors}`);
  assert.equal(ctxOf(a)?.state, State.ESTABLISHED);
  assert.deepEqual(peerGone(a), []);
});

test('B\'s daemon back after the context ended (past the hold): its exchange sets the context up again and lifts the negative entry', () => {
  const { sim, a, b } = rehomed(5);
  daemonGone(b);
  run(sim, a, b, sim.now + 3 * HOLD);
  assert.equal(a.engine.status().contexts.length, 0, 'ended: peer-gone');
  rebootShimHost(sim, b, { timers });
  b.engine.prime(sim.now, { ulid: a.ulid, locators: [], ttl: 300, source: 'configured' }); // B's saved context, or a connection it protects
  sim.driveUntil(() => ctxOf(a)?.state === State.ESTABLISHED, { within: 10_000, what: 'set up again by B' });
  assert.deepEqual(a.engine.status(sim.now).capability!.negative, [], 'the handshake lifted the peer-gone entry');
  assert.equal(sendShim(sim, a, b), true, 'A\'s packets go through the context again');
});

// Timer behaviour from issue 3 not covered elsewhere: Update Requests retransmit
// forever with the back-off capped at MAX_UPDATE_TIMEOUT (RFC 5533 §10.2); the
// Keepalive Timeout option is advertised when the Send Timeout is not the RFC's
// (fast profile, overrides) and the peer's keepalives honour it (RFC 5534 §5.3);
// E-FAILED / NO-SUPPORT hold-downs block new exchanges until they expire.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sim } from '../sim/sim.ts';
import { addLinkedShimHost, addShimHost, engineEvents, hbaIdentity, primeWith, rebootShimHost, sendShim, shimDeliveries, shimPair, A_PREFIXES, type ShimHost } from '../sim/shim-hosts.ts';
import { mark, sent, traceAfter } from '../sim/trace.ts';
import { State, type EngineConfig } from '../../shim/engine/index.ts';
import { findOption } from '../../shim/wire/index.ts';
import { ms } from '../../shim/time.ts';
import { LocatorFlag } from '../../shim/constants.ts';

function pair(seed: number, extraA: Partial<EngineConfig>, extraB: Partial<EngineConfig>): { sim: Sim; a: ShimHost; b: ShimHost } {
  const { sim, a, b } = shimPair(seed, { a: extraA, b: extraB });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(300);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  return { sim, a, b };
}

/** A alone on the simulator (fast profile). */
function alone(seed: number): { sim: Sim; a: ShimHost } {
  const sim = new Sim(seed);
  return { sim, a: addShimHost(sim, 'a', hbaIdentity(A_PREFIXES, sim.rng.fork())) };
}

test('Update Request retransmission never stops and no gap exceeds maxUpdateTimeout (fast: 8 s)', () => {
  const { sim, a, b } = pair(81, { profile: 'fast' }, { profile: 'fast' });
  sim.setLink(a.ulid, b.ulid, { blackhole: true });
  a.engine.localLocatorDown(sim.now, a.locators[1]!);
  const start = sim.now;
  sim.runUntil(ms(start + 120_000));
  const times = sent(sim, 'a').filter((l) => l.type === 'UpdateRequest').map((l) => l.at);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.ok(Math.max(...gaps) <= 8000, `max gap ${Math.max(...gaps)}`);
  assert.ok(gaps.slice(-5).every((g) => g >= 4000), `settled near the cap: ${gaps.slice(-5)}`);
  assert.ok(times.at(-1)! > start + 110_000, 'still retransmitting after 110 s');
  assert.ok(gaps[0]! < 1000, 'started from updateTimeout (500 ms, randomised)');
});

test('Keepalive Timeout option: sent under fast and with a sendTimeout override, not under rfc defaults', () => {
  const opt = (h: ShimHost, sim: Sim, type: string) => {
    const l = sent(sim, h.host.name).find((x) => x.type === type);
    return l === undefined ? undefined : findOption(l.message!, 'KeepaliveTimeout')?.timeoutSeconds;
  };
  const fast = pair(83, { profile: 'fast' }, { profile: 'rfc' });
  assert.equal(opt(fast.a, fast.sim, 'I2'), 1, 'fast: Send Timeout 150 ms → 1 s (at least 1)');
  assert.equal(opt(fast.b, fast.sim, 'R2'), undefined, 'rfc defaults: no option');
  const over = pair(85, { profile: 'rfc', timers: { sendTimeout: ms(20_000) } }, { profile: 'fast', timers: { sendTimeout: ms(3_500) } });
  assert.equal(opt(over.a, over.sim, 'I2'), 20);
  assert.equal(opt(over.b, over.sim, 'R2'), 3, 'rounded down, so keepalives arrive within the Send Timeout');
});

test('the peer honours an advertised Keepalive Timeout: rfc-profile B keeps A (Send Timeout 1 s) from exploring on one-way traffic', () => {
  const { sim, a, b } = pair(87, { profile: 'fast', timers: { sendTimeout: ms(1000) } }, { profile: 'rfc' });
  const from = mark(sim);
  for (let t = 0; t < 50; t++) { sendShim(sim, a, b); sim.runFor(100); } // 5 s, A → B only
  const later = traceAfter(sim, from);
  const kas = later.filter((l) => l.from === 'b' && l.type === 'Keepalive').map((l) => l.at);
  assert.ok(kas.length >= 5, `B sent keepalives: ${kas.length}`);
  const gaps = kas.slice(1).map((t, i) => t - kas[i]!);
  assert.ok(Math.max(...gaps) <= 600, `keepalives every ⅓–½ of A's 1 s: ${gaps}`);
  assert.equal(later.filter((l) => l.from === 'a' && l.type === 'Probe').length, 0, 'A never suspected a failure');
});

test('a peer that set the context up anew (its restart) is held to the Keepalive Timeout it advertises now, not to its previous instance\'s', () => {
  const { sim, a, b } = pair(89, { profile: 'rfc' }, { profile: 'fast', timers: { sendTimeout: ms(1000) } });
  const keepalivesFromA = (): number => {
    const from = mark(sim);
    for (let t = 0; t < 50; t++) { sendShim(sim, b, a); sim.runFor(100); } // 5 s, B → A only
    return traceAfter(sim, from).filter((l) => l.from === 'a' && l.type === 'Keepalive').length;
  };
  assert.ok(keepalivesFromA() >= 5, 'A keeps to the 1 s B advertised');
  // B restarts with the RFC's timers (no Keepalive Timeout option); A's payload brings the context back (R1bis, I2bis, R2).
  const fresh = rebootShimHost(sim, b, { profile: 'rfc' });
  sendShim(sim, a, fresh);
  sim.runFor(2000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-established' && e.recovered));
  const after = keepalivesFromA();
  assert.ok(after <= 2, `A keeps to the default Keepalive Timeout (10 s) again: ${after} keepalives in 5 s`);
});

test('fast on both ends: keepalives capped by keepaliveTimeoutMax keep A (Send Timeout 150 ms) from exploring on one-way traffic', () => {
  const { sim, a, b } = pair(91, { profile: 'fast' }, { profile: 'fast' });
  const from = mark(sim);
  for (let t = 0; t < 100; t++) { sendShim(sim, a, b); sim.runFor(50); } // 5 s, A → B only
  const later = traceAfter(sim, from);
  const kas = later.filter((l) => l.from === 'b' && l.type === 'Keepalive').map((l) => l.at);
  const gaps = kas.slice(1).map((t, i) => t - kas[i]!);
  assert.ok(kas.length >= 50, `B sent keepalives: ${kas.length}`);
  // 50–75 ms apart while the Keepalive timer runs; across its restart (next payload in, ≤ 50 ms) up to 125 ms.
  assert.ok(Math.max(...gaps) <= 130, `keepalives well within A's 150 ms Send Timeout: max gap ${Math.max(...gaps)}`);
  assert.ok(gaps.filter((g) => g <= 75).length >= gaps.length / 2, `mostly ⅓–½ of 150 ms apart: ${gaps}`);
  assert.equal(later.filter((l) => l.from === 'a' && l.type === 'Probe').length, 0, 'A never suspected a failure');
  assert.deepEqual(a.engine.status().contexts[0]!.pair, { local: a.ulid, peer: b.ulid });
});

test('false exploration is harmless: fast A, rfc B (keepalives too slow for 150 ms) → payload never leaves the working pair', () => {
  const { sim, a, b } = pair(93, { profile: 'fast' }, { profile: 'rfc' });
  const from = mark(sim);
  const before = shimDeliveries(sim, b).length;
  for (let t = 0; t < 100; t++) { sendShim(sim, a, b); sim.runFor(50); } // 5 s, A → B only
  const later = traceAfter(sim, from);
  assert.ok(later.some((l) => l.from === 'a' && l.type === 'Probe'), 'A explored (B keeps alive every 333–500 ms, for the advertised 1 s)');
  const payload = later.filter((l) => l.from === 'a' && l.type === 'payload');
  assert.ok(payload.every((l) => l.src === a.ulid && l.dst === b.ulid), 'every payload packet stayed on the current pair');
  assert.equal(shimDeliveries(sim, b).length - before, 100, 'every payload packet delivered');
  assert.deepEqual(a.engine.status().contexts[0]!.pair, { local: a.ulid, peer: b.ulid }, 'the current pair was re-confirmed');
});

test('E-FAILED hold-down: traffic during it starts nothing; after NO_R1_HOLDDOWN_TIME it starts a fresh I1', () => {
  const { sim, a } = alone(89);
  const dead = '2001:db8:dead::1';
  const out = () => a.engine.encapsulate(sim.now, { srcUlid: a.ulid, dstUlid: dead, nextHeader: 17, payload: new Uint8Array(4) });
  const i1s = () => sent(sim, 'a').filter((l) => l.type === 'I1').length;
  assert.equal(out().kind, 'no-context');
  while (!engineEvents(a).some((e) => e.kind === 'context-failed')) sim.runFor(500);
  assert.equal(i1s(), 5, '1 + I1_RETRIES_MAX');
  assert.equal(a.engine.status().contexts[0]?.state, State.E_FAILED);
  const failedAt = sim.now;
  for (let t = 0; t < 9; t++) { assert.equal(out().kind, 'no-context'); sim.runFor(500); }
  assert.equal(i1s(), 5, 'no I1 during the hold-down');
  sim.runUntil(ms(failedAt + 5_100));
  assert.equal(a.engine.contextCount, 0, 'hold-down over: back to IDLE');
  out();
  sim.flush();
  assert.equal(i1s(), 6, 'traffic starts a new exchange');
});

test('NO-SUPPORT hold-down: traffic starts nothing until ICMP_HOLDDOWN_TIME (fast: 60 s) has passed', () => {
  const { sim, a } = alone(91);
  const legacy = '2001:db8:1e9::1';
  const out = () => a.engine.encapsulate(sim.now, { srcUlid: a.ulid, dstUlid: legacy, nextHeader: 17, payload: new Uint8Array(4) });
  const i1s = () => sent(sim, 'a').filter((l) => l.type === 'I1');
  out();
  sim.flush();
  const i1 = i1s()[0]!;
  // Port Unreachable from the host the I1 went to: no daemon there (UDP encapsulation's "no Shim6").
  assert.equal(a.engine.handleIcmp(sim.now, { type: 1, code: 4, info: 0, offender: i1.dst, src: i1.src, dst: i1.dst, port: 5533, invoking: i1.bytes }).kind, 'consumed');
  const at = sim.now;
  sim.runUntil(ms(at + 30_000));
  out();
  sim.flush();
  assert.equal(a.engine.status().contexts[0]?.state, State.NO_SUPPORT);
  assert.equal(i1s().length, 1, 'held down: no new I1 after 30 s');
  sim.runUntil(ms(at + 60_100));
  out();
  sim.flush();
  assert.equal(i1s().length, 2, 'after the hold-down, traffic tries again');
});

test('the timer heap stays at about one entry per context over a long life with no context removed: 8 peers send A a packet every 500 ms for 10 min (rfc)', () => {
  // Each REAP timer A starts and stops on their packets (Keepalive, Keepalive Interval) used to
  // leave another entry for the idle deadline behind: 40 per context after 10 min, 320 for these 8.
  const { sim, a, b } = shimPair(88, { a: { profile: 'rfc' }, b: { profile: 'rfc' } });
  const peers = [b];
  for (let i = 0; i < 7; i++) peers.push(addLinkedShimHost(sim, `p${i}`, hbaIdentity([`2001:db8:c${i}::/64`], sim.rng.fork()), { profile: 'rfc' }));
  for (const p of peers) primeWith(sim, p, a, 3600);
  sim.runFor(5000);
  assert.equal(a.engine.contextCount, 8);
  const heapSize = (): number => (a.engine as unknown as { core: { heap: { size: number } } }).core.heap.size;
  let most = 0;
  for (let t = 0; t < 600_000; t += 500) {
    for (const p of peers) sim.send(p.host, a.ulid);
    sim.runFor(500);
    most = Math.max(most, heapSize());
    if (t % 60_000 === 0) sim.adversary.captured.length = 0; // the capture is the test's memory, not the engine's
  }
  assert.equal(a.engine.contextCount, 8);
  assert.ok(most <= 2 * 8 + 64, `the timer heap held up to ${most} entries for 8 contexts`);
});

test('idle GC: a context without upper-layer traffic goes after idleTimeout on both ends though our locators change every 5 min (rfc): the Update exchanges are no activity', () => {
  // A roaming host (a link that goes down and up, addresses that come and go) sends every peer an
  // Update Request at each change; its Update Ack counted as traffic, so no context ever idled out.
  const { sim, a, b } = pair(89, { profile: 'rfc' }, { profile: 'rfc' });
  sendShim(sim, a, b);
  sendShim(sim, b, a);
  sim.runFor(1000);
  for (let i = 0; i < 6; i++) {
    sim.runFor(300_000);
    a.engine.setLocalLocators(sim.now, a.locators.map((address, k) => ({ address, flags: k === 1 && i % 2 === 0 ? LocatorFlag.BROKEN : 0 })));
    sim.flush();
  }
  sim.runFor(60_000); // 31 min after the last payload, 1 min after the last change
  assert.ok(sent(sim).filter((l) => l.type === 'UpdateAck').length >= 1, 'the peer acknowledged the changes made while the context lived');
  assert.equal(a.engine.contextCount, 0, 'A');
  assert.equal(b.engine.contextCount, 0, 'B');
  assert.deepEqual(engineEvents(a).filter((e) => e.kind === 'context-closed').map((e) => (e as { reason?: string }).reason), ['idle']);
});

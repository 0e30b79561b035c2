// R1bis / I2bis recovery (RFC 5533 §7.17–§7.20) when the peer's R1bis answers
// a packet we sent on a pair other than the context's current one: a REAP
// probe during an exploration (the e2e restart test on a busy host: B's daemon
// restarted while A explored, B answered A's probe on link Q, A dropped it as
// `no-context`). Deterministic: the network simulator, seeded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sim } from '../sim/sim.ts';
import { configuredPair, engineEvents, rebootShimHost, sendShim, shimDeliveries, shimPair, type ShimHost } from '../sim/shim-hosts.ts';
import { mark, sent, traceAfter } from '../sim/trace.ts';
import { State } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, tryDecodeMessage, type I2bisMessage } from '../../shim/wire/index.ts';

/** A sends to B every 50 ms until `until` (B sends nothing: it has no context after its restart). */
function sendUntil(sim: Sim, a: ShimHost, b: ShimHost, until: number): void {
  while (sim.now < until) {
    sendShim(sim, a, b);
    sim.runFor(50);
  }
}

/** Both ways every 50 ms until `until`. */
function bidi(sim: Sim, a: ShimHost, b: ShimHost, until: number): void {
  while (sim.now < until) {
    sendShim(sim, a, b);
    sendShim(sim, b, a);
    sim.runFor(50);
  }
}

test('the peer restarted while the current pair is down: its R1bis answers our probe on another pair, the I2bis goes there and the context comes back', () => {
  const { sim, a, b } = configuredPair(5101);
  bidi(sim, a, b, sim.now + 500);
  const before = a.engine.status().contexts[0]!;
  assert.deepEqual(before.pair, { local: a.ulid, peer: b.ulid });
  // The current pair (the ULIDs, link P) fails both ways, and B's daemon restarts (no contexts).
  sim.setLink(a.ulid, b.ulid, { blackhole: true });
  rebootShimHost(sim, b);
  const t = sim.now;
  sendUntil(sim, a, b, t + 4000);
  // B answered A's probes on the pairs that work with R1bis (types 64–127, unknown tag).
  const r1bis = sent(sim, 'b').filter((l) => l.at >= t && l.type === 'R1bis');
  assert.ok(r1bis.length > 0, 'B answered with R1bis');
  assert.ok(r1bis.every((l) => l.src !== b.ulid || l.dst !== a.ulid), 'none on the dead pair');
  // A answered one of them with an I2bis on that R1bis's pair (the validator binds its locators).
  const i2bis = sent(sim, 'a').filter((l) => l.at >= t && l.type === 'I2bis');
  assert.ok(i2bis.length > 0, `A sent an I2bis (A's context: ${JSON.stringify(a.engine.status().contexts[0])})`);
  assert.ok(i2bis.every((l) => r1bis.some((r) => r.src === l.dst && r.dst === l.src)), 'each I2bis on the pair of an R1bis');
  const rec = engineEvents(a).filter((e) => e.kind === 'context-established' && e.recovered);
  assert.equal(rec.length, 1, 'A recovered the context once');
  const sa = a.engine.status().contexts[0]!;
  const sb = b.engine.status().contexts[0]!;
  assert.equal(sa.state, State.ESTABLISHED);
  assert.equal(sb.state, State.ESTABLISHED);
  assert.equal(sa.contextTag, before.contextTag, 'A keeps its own tag');
  assert.equal(sa.peerContextTag, sb.contextTag, 'A knows B\'s new tag');
  assert.notDeepEqual(sa.pair, { local: a.ulid, peer: b.ulid }, 'A left the dead pair (the R2 proved the other one)');
  // Payload flows both ways again.
  const atB = shimDeliveries(sim, b).length;
  const atA = shimDeliveries(sim, a).length;
  bidi(sim, a, b, sim.now + 1500);
  assert.ok(shimDeliveries(sim, b).length > atB, 'A → B flows');
  assert.ok(shimDeliveries(sim, a).length > atA, 'B → A flows');
});

test('an R1bis off the current pair changes nothing until its R2: only a pair we probed draws an I2bis, the context stays ESTABLISHED on its pair, and an unanswered I2bis ends without a teardown', () => {
  const { sim, a, b } = configuredPair(5102);
  bidi(sim, a, b, sim.now + 500);
  // Every pair silent both ways: A explores and probes them all, and only what we hand it here reaches it.
  for (const la of a.locators) for (const lb of b.locators) sim.setLink(la, lb, { blackhole: true });
  sendUntil(sim, a, b, sim.now + 400);
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.reap, 'Exploring');
  const aQ = a.locators[1]!, bQ = b.locators[1]!;
  assert.ok(sent(sim, 'a').some((l) => l.type === 'Probe' && l.src === aQ && l.dst === bQ), 'A probed (aQ, bQ)');
  const forged = (validator: number) => encodeMessage({ type: 'R1bis', packetContextTag: ctx.peerContextTag, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(12).fill(validator) }] });
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  const t0 = sim.now;
  // A pair A never sent anything on (a locator that is not B's): dropped, nothing sent.
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: '2001:db8:666::1', dst: aQ, bytes: forged(1) }), { kind: 'drop', reason: 'no-context' });
  assert.equal(a.engine.pollTransmit(), undefined);
  // A probed pair: an I2bis on it, carrying the R1bis's validator and the ULIDs; the context is unchanged.
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: bQ, dst: aQ, bytes: forged(2) }), { kind: 'consumed' });
  const tx = a.engine.pollTransmit()!;
  assert.equal(tx.src, aQ);
  assert.equal(tx.dst, bQ);
  const msg = decodeMessage(tx.bytes) as I2bisMessage;
  assert.equal(msg.type, 'I2bis');
  assert.equal(msg.packetContextTag, ctx.peerContextTag);
  assert.ok(msg.options.some((o) => o.type === 'ResponderValidator' && o.validator.every((x) => x === 2)));
  assert.ok(msg.options.some((o) => o.type === 'UlidPair' && o.senderUlid === a.ulid && o.receiverUlid === b.ulid));
  // Another R1bis at once (forged or another probe's answer) draws no second I2bis while this one is fresh.
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: bQ, dst: aQ, bytes: forged(3) }), { kind: 'drop', reason: 'pending' });
  assert.equal(a.engine.pollTransmit(), undefined);
  const after = a.engine.status().contexts[0]!;
  assert.equal(after.state, State.ESTABLISHED, 'no state change on an unproven R1bis');
  assert.deepEqual(after.pair, ctx.pair, 'no redirection');
  assert.equal(after.peerContextTag, ctx.peerContextTag);
  // Nobody answers: the I2bis is retransmitted, then given up; the context is still there as it was.
  sim.runFor(10_000);
  const final = a.engine.status().contexts[0]!;
  assert.equal(final.state, State.ESTABLISHED);
  assert.equal(final.peerContextTag, ctx.peerContextTag);
  assert.equal(final.contextTag, ctx.contextTag);
  const resent = sent(sim, 'a').filter((l) => l.type === 'I2bis' && l.at >= t0);
  assert.equal(resent.length, 2, 'the I2bis retransmitted i2bisRetriesMax (2) times, then given up');
  assert.ok(!engineEvents(a).some((e) => e.kind === 'context-closed' || e.kind === 'context-failed'), 'no teardown');
  assert.ok(!sent(sim, 'a').some((l) => l.type === 'I1' && l.at >= t0), 'no fallback to I1');
});

test('while A explores, an R1bis on a pair of B\'s verified locators that A has not probed yet draws nothing; on a pair it probed, an I2bis', () => {
  const three = (p: string): string[] => [1, 2, 3].map((i) => `2001:db8:${p}${i}::/64`);
  const { sim, a, b } = configuredPair(5103, { aPrefixes: three('a'), bPrefixes: three('b') });
  bidi(sim, a, b, sim.now + 500);
  for (const la of a.locators) for (const lb of b.locators) sim.setLink(la, lb, { blackhole: true });
  sendUntil(sim, a, b, sim.now + 400);
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.reap, 'Exploring');
  const probed = (la: string, lb: string): boolean => sent(sim, 'a').some((l) => l.type === 'Probe' && l.src === la && l.dst === lb);
  const pairs = a.locators.flatMap((la) => b.locators.map((lb) => [la, lb] as const)).filter(([la, lb]) => la !== ctx.pair.local || lb !== ctx.pair.peer);
  const unprobed = pairs.find(([la, lb]) => !probed(la, lb));
  const done = pairs.find(([la, lb]) => probed(la, lb));
  assert.ok(unprobed && done, `some pairs probed, some not yet (${pairs.map(([la, lb]) => probed(la, lb)).join(' ')})`);
  const r1bis = encodeMessage({ type: 'R1bis', packetContextTag: ctx.peerContextTag, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(12).fill(1) }] });
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: unprobed[1], dst: unprobed[0], bytes: r1bis }), { kind: 'drop', reason: 'no-context' }, 'a pair not probed');
  assert.equal(a.engine.pollTransmit(), undefined, 'nothing sent');
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: done[1], dst: done[0], bytes: r1bis }), { kind: 'consumed' }, 'a probed pair');
  assert.equal(decodeMessage(a.engine.pollTransmit()!.bytes).type, 'I2bis');
});

test('E-FAILED processes packets as in IDLE (RFC 5533 Appendix B): the peer\'s payload for the failed context\'s tag draws an R1bis and the context comes back at once, not after the hold-down', () => {
  const { sim, a, b } = shimPair(5107);
  const isR2 = (p: { bytes: Uint8Array }): boolean => { const r = tryDecodeMessage(p.bytes); return r.ok && r.message.type === 'R2'; };
  let dropR2 = true;
  for (const from of a.locators) for (const to of b.locators) sim.setLink(from, to, { dropIf: (p) => dropR2 && isR2(p) }, 'forward');
  // B sets the context up; A is established by B's I2, but none of A's R2s reaches B: B fails.
  b.engine.prime(sim.now, { ulid: a.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.driveUntil(() => engineEvents(b).some((e) => e.kind === 'context-failed'), { within: 60_000 });
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED, 'A holds B\'s tag');
  assert.equal(b.engine.status().contexts[0]?.state, State.E_FAILED);
  dropR2 = false;
  const delivered = shimDeliveries(sim, b).length;
  const from = mark(sim);
  sendShim(sim, a, b);
  sim.runFor(500); // well within the hold-down (5 s under the fast profile)
  assert.ok(traceAfter(sim, from).some((l) => l.from === 'b' && l.type === 'R1bis'), 'B answered the payload with an R1bis');
  assert.equal(shimDeliveries(sim, b).length, delivered, 'nothing delivered through a failed context');
  assert.equal(b.engine.status().contexts.find((c) => c.peerUlid === a.ulid)?.state, State.ESTABLISHED, 'B recovered by A\'s I2bis');
  assert.ok(sendShim(sim, b, a), 'B carries payload through the context again');
});

test('an R1bis from the current peer locator but to another of our addresses is not about the current pair: with no probe sent on its pair it draws nothing; to the current local locator, the I2bis', () => {
  const { sim, a, b } = configuredPair(5109);
  bidi(sim, a, b, sim.now + 500);
  const ctx = a.engine.status().contexts[0]!;
  assert.deepEqual(ctx.pair, { local: a.ulid, peer: b.ulid });
  const aQ = a.locators.find((l) => l !== ctx.pair.local)!;
  assert.ok(!sent(sim, 'a').some((l) => l.src === aQ && l.dst === b.ulid), 'A never sent from aQ to B\'s ULID');
  const r1bis = encodeMessage({ type: 'R1bis', packetContextTag: ctx.peerContextTag, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(12).fill(1) }] });
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: ctx.pair.peer, dst: aQ, bytes: r1bis }), { kind: 'drop', reason: 'no-context' });
  assert.equal(a.engine.pollTransmit(), undefined, 'nothing sent');
  const after = a.engine.status().contexts[0]!;
  assert.equal(after.state, State.ESTABLISHED);
  assert.deepEqual(after.pair, ctx.pair);
  // On the current pair itself: §7.18, an I2bis there and I2BIS-SENT.
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: ctx.pair.peer, dst: ctx.pair.local, bytes: r1bis }), { kind: 'consumed' });
  const tx = a.engine.pollTransmit()!;
  assert.deepEqual([decodeMessage(tx.bytes).type, tx.src, tx.dst], ['I2bis', ctx.pair.local, ctx.pair.peer]);
  assert.equal(a.engine.status().contexts[0]!.state, State.I2BIS_SENT);
});

test('an R1bis on a pair A probed, from a locator B has since withdrawn (BROKEN by its Update), draws nothing: only a pair A may still use is answered', () => {
  const { sim, a, b } = configuredPair(5111);
  bidi(sim, a, b, sim.now + 500);
  for (const la of a.locators) for (const lb of b.locators) sim.setLink(la, lb, { blackhole: true });
  sendUntil(sim, a, b, sim.now + 400);
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.reap, 'Exploring');
  const aQ = a.locators[1]!, bQ = b.locators[1]!;
  assert.ok(sent(sim, 'a').some((l) => l.type === 'Probe' && l.src === aQ && l.dst === bQ), 'A probed (aQ, bQ)');
  // B's bQ goes down: its Update Request (lost on the dead links) is handed to A.
  const from = mark(sim);
  b.engine.localLocatorDown(sim.now, bQ);
  sim.flush();
  const update = traceAfter(sim, from).find((l) => l.from === 'b' && l.type === 'UpdateRequest')!;
  assert.ok(update, 'B sent an Update Request');
  assert.equal(a.engine.handleDatagram(sim.now, { src: update.src, dst: update.dst, bytes: update.bytes }).kind, 'consumed');
  const bq = a.engine.status().contexts[0]!.peerLocators.find((l) => l.address === bQ)!;
  assert.equal(bq.flags & 1, 1, 'A holds bQ BROKEN: a source only');
  const r1bis = encodeMessage({ type: 'R1bis', packetContextTag: ctx.peerContextTag, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(12).fill(1) }] });
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: bQ, dst: aQ, bytes: r1bis }), { kind: 'drop', reason: 'no-context' });
  assert.equal(a.engine.pollTransmit(), undefined, 'no I2bis to a withdrawn locator');
  assert.equal(a.engine.status().contexts[0]!.state, State.ESTABLISHED);
});

test('an R1bis on a pair A probed, to a local locator A has since lost (BROKEN), draws nothing: no I2bis from an address A no longer sends from', () => {
  const { sim, a, b } = configuredPair(5113);
  bidi(sim, a, b, sim.now + 500);
  for (const la of a.locators) for (const lb of b.locators) sim.setLink(la, lb, { blackhole: true });
  sendUntil(sim, a, b, sim.now + 400);
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.reap, 'Exploring');
  const aQ = a.locators[1]!, bQ = b.locators[1]!;
  assert.ok(sent(sim, 'a').some((l) => l.type === 'Probe' && l.src === aQ && l.dst === bQ), 'A probed (aQ, bQ)');
  a.engine.localLocatorDown(sim.now, aQ);
  const r1bis = encodeMessage({ type: 'R1bis', packetContextTag: ctx.peerContextTag, responderNonce: 9, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(12).fill(1) }] });
  while (a.engine.pollTransmit() !== undefined) { /* drain */ }
  assert.deepEqual(a.engine.handleDatagram(sim.now, { src: bQ, dst: aQ, bytes: r1bis }), { kind: 'drop', reason: 'no-context' });
  assert.equal(a.engine.pollTransmit(), undefined, 'no I2bis from a lost locator');
  assert.equal(a.engine.status().contexts[0]!.state, State.ESTABLISHED);
});

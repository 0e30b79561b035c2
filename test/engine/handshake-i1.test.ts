// What an I1 can draw from a host that has a context for its ULID pair (RFC 5533 §7.9 read with
// §16; docs/security.md). An R2 carries our context tag, CT(local): the one secret that keeps
// off-path attackers from forging Close, Update Request or payload for the context. So an I1 is
// answered with an R2 only when it comes from an address we already send this context's packets
// to (the peer's ULID or a locator DNS or configuration gave, where our own I1s go; a locator the
// handshake or a probe showed return-routable), and no more than once per context in half an
// I1 timeout, through the reply limits. Anything else gets what an I1 gets in IDLE: a stateless,
// rate-limited R1 no larger than twice the I1. In I2-SENT the R2 is followed by an I1 of ours with
// the I2's nonce, once per I2 cycle (docs/engine.md "An I1 in I2-SENT").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Engine, State } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, findOption, type R1Message, type Shim6Option } from '../../shim/wire/index.ts';
import { generateCga, signCgaLocators } from '../../shim/wire/cga.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';
import type { Sim } from '../sim/sim.ts';
import { engineEvents, established, primeWith, rebootShimHost, sendShim, shimPair, type ShimHost } from '../sim/shim-hosts.ts';
import { mark, traceAfter } from '../sim/trace.ts';

/** The off-path attacker's own address: not a locator of any host (what is sent there is captured, then unrouted). */
const X = '2001:db8:6666::1';

/**
 * Until `done()` (at most `maxMs` of virtual time), one I1 every millisecond from X to A's ULID
 * whose ULID Pair option names (B, A) (an attacker's I1s, as fast as it likes); returns the states
 * A's context with B went through meanwhile.
 */
function claimB(sim: Sim, a: ShimHost, b: ShimHost, done: () => boolean, maxMs: number): Set<string> {
  const seen = new Set<string>();
  const rng = new SimRng(sim.seed ^ 0x5a5a);
  const claim: Shim6Option = { type: 'UlidPair', critical: false, senderUlid: b.ulid, receiverUlid: a.ulid };
  for (let t = 0; t < maxMs && !done(); t++) {
    sim.adversary.inject({ src: X, dst: a.ulid, bytes: encodeMessage({ type: 'I1', contextTag: rng.int(2 ** 47), initiatorNonce: rng.int(2 ** 32), options: [claim] }) });
    sim.runFor(1);
    const s = a.engine.status().contexts.find((c) => c.peerUlid === b.ulid)?.state;
    if (s !== undefined) seen.add(s);
  }
  return seen;
}

/** What A sent to X since `from`: message types, and every context tag they carry. */
function toX(sim: Sim, from: number): { types: string[]; tags: number[] } {
  const lines = traceAfter(sim, from).filter((l) => l.from === 'a' && l.dst === X);
  return {
    types: lines.map((l) => l.type),
    tags: lines.flatMap((l) => (l.message !== undefined && 'contextTag' in l.message ? [l.message.contextTag] : [])),
  };
}

test('an off-path I1 naming (B, A) from a third address during A\'s handshake (I1-SENT, I2-SENT) draws no R2 and never A\'s tag', () => {
  const { sim, a, b } = shimPair(4101);
  const m = mark(sim);
  primeWith(sim, a, b); // the resolver primes A: I1-SENT
  const seen = claimB(sim, a, b, () => established(a) === 1 && established(b) === 1, 2000);
  claimB(sim, a, b, () => false, 50); // and a little after
  assert.ok(seen.has(State.I1_SENT) && seen.has(State.I2_SENT), `the I1s reached A in I1-SENT and I2-SENT (saw ${[...seen].join(', ')})`);
  assert.equal(established(a), 1, 'A still set up its context with B');
  const tag = a.engine.status().contexts[0]!.contextTag;
  const { types, tags } = toX(sim, m);
  assert.equal(types.includes('R2'), false, `A answered X with ${types.join(', ')}`);
  assert.equal(tags.includes(tag), false, 'A\'s context tag never went to X');
  assert.ok(types.length > 0 && types.every((t) => t === 'R1'), 'X gets what an I1 gets in IDLE: R1s');
  assert.ok(types.length <= 10 + 10 * (sim.now / 1000), `R1s to X within the /64's reply limit (${types.length})`);
});

test('an off-path I1 naming (B, A) from a third address while A recovers the context (I2BIS-SENT) draws no R2', () => {
  const { sim, a, b } = shimPair(4102);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  rebootShimHost(sim, b); // B lost the context: A's next payload draws an R1bis, A sends I2bis
  const m = mark(sim);
  sendShim(sim, a, b);
  const seen = claimB(sim, a, b, () => established(a) === 2, 2000);
  assert.ok(seen.has(State.I2BIS_SENT), `the I1s reached A in I2BIS-SENT (saw ${[...seen].join(', ')})`);
  assert.equal(established(a), 2, 'A recovered the context');
  const tag = a.engine.status().contexts[0]!.contextTag;
  const { types, tags } = toX(sim, m);
  assert.equal(types.includes('R2'), false, `A answered X with ${types.join(', ')}`);
  assert.equal(tags.includes(tag), false);
});

test('crossing I1s from the peer are still answered with R2 where it is known; from a locator A does not hold for it, with an R1', () => {
  const { sim, a, b } = shimPair(4103);
  // A knows only B's ULID (configured, no locators). An I1 for (B, A) from B's second locator,
  // a locator A does not hold for B, is answered as in IDLE (R1 to B, which has no use for it).
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.flush();
  let m = mark(sim);
  const claim: Shim6Option = { type: 'UlidPair', critical: false, senderUlid: b.ulid, receiverUlid: a.ulid };
  sim.adversary.inject({ src: b.locators[1]!, dst: a.ulid, bytes: encodeMessage({ type: 'I1', contextTag: 77, initiatorNonce: 78, options: [claim] }) });
  sim.runFor(1);
  assert.deepEqual(traceAfter(sim, m).filter((l) => l.from === 'a' && l.dst === b.locators[1]).map((l) => l.type), ['R1']);
  // The same from B's ULID (where A's own I1 went, carrying that tag already): R2, as §7.4 has it.
  m = mark(sim);
  sim.adversary.inject({ src: b.ulid, dst: a.ulid, bytes: encodeMessage({ type: 'I1', contextTag: 79, initiatorNonce: 80, options: [] }) });
  sim.runFor(1);
  assert.deepEqual(traceAfter(sim, m).filter((l) => l.from === 'a' && l.dst === b.ulid).map((l) => l.type), ['R2']);
  sim.runFor(500);
  assert.equal(a.engine.status().contexts[0]!.state, State.ESTABLISHED);
});

test('I2-SENT: I1s forged from the peer\'s ULID draw at most one R2 per half I1 timeout and one I1 with the I2\'s nonce per I2 cycle; the context does not change', () => {
  const { sim, a, b } = shimPair(4107);
  // B's R2s never reach A: A stays in I2-SENT (its first I2 cycle: 0.5 + 1 + 2 s, ±50 %).
  const isR2 = (p: { bytes: Uint8Array }): boolean => { try { return decodeMessage(p.bytes).type === 'R2'; } catch { return false; } };
  for (const from of b.locators) for (const to of a.locators) sim.setLink(from, to, { dropIf: isR2 }, 'forward');
  const m0 = mark(sim);
  primeWith(sim, a, b);
  sim.runFor(60); // I1, R1, I2: A in I2-SENT
  const before = a.engine.status().contexts[0]!;
  assert.equal(before.state, State.I2_SENT);
  const i2 = traceAfter(sim, m0).find((l) => l.from === 'a' && l.type === 'I2')!.message as { initiatorNonce: number };
  const m = mark(sim);
  const rng = new SimRng(sim.seed ^ 0x77);
  const claim: Shim6Option = { type: 'UlidPair', critical: false, senderUlid: b.ulid, receiverUlid: a.ulid };
  // 200 I1s naming (B, A) from B's ULID (where A's own I1 went) in 1 s, within the cycle.
  for (let i = 0; i < 200; i++) {
    sim.adversary.inject({ src: b.ulid, dst: a.ulid, bytes: encodeMessage({ type: 'I1', contextTag: rng.int(2 ** 47), initiatorNonce: rng.int(2 ** 32), options: i % 2 === 0 ? [] : [claim] }) });
    sim.runFor(5);
  }
  const fromA = traceAfter(sim, m).filter((l) => l.from === 'a');
  const r2 = fromA.filter((l) => l.type === 'R2').length;
  const i1 = fromA.filter((l) => l.type === 'I1');
  assert.ok(r2 >= 1 && r2 <= 1000 / 150 + 1, `R2s: at most one per half I1 timeout (150 ms): ${r2}`);
  assert.deepEqual(i1.map((l) => (l.message as { initiatorNonce: number }).initiatorNonce), [i2.initiatorNonce], 'one I1, with the I2\'s nonce');
  const after = a.engine.status().contexts[0]!;
  assert.equal(after.state, State.I2_SENT, 'still waiting for the R2 to its I2');
  assert.equal(after.contextTag, before.contextTag);
  assert.equal(after.peerContextTag, before.peerContextTag, 'no tag taken from an I1');
  assert.equal(engineEvents(a).filter((e) => e.kind === 'context-established').length, 0);
});

test('a peer that lost the context sets it up anew (I1, R1, I2 with a new tag): A\'s context stays and says so, established again with the new tag', () => {
  const { sim, a, b } = shimPair(4104);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  const before = a.engine.status().contexts[0]!;
  rebootShimHost(sim, b); // B's daemon restarted: it sets the context up again itself (a saved pair, an open connection)
  primeWith(sim, b, a);
  sim.driveUntil(() => established(b) === 2, { within: 5000 });
  sim.runFor(100);
  const after = a.engine.status().contexts;
  assert.equal(after.length, 1, 'one context with B');
  assert.equal(after[0]!.contextTag, before.contextTag, 'A\'s context stayed (its own tag)');
  const tagB = b.engine.status().contexts[0]!.contextTag;
  assert.notEqual(tagB, before.peerContextTag);
  assert.equal(after[0]!.peerContextTag, tagB, 'A sends with B\'s new tag');
  const ups = engineEvents(a).filter((e) => e.kind === 'context-established');
  assert.equal(ups.length, 2, 'A reported the context up again');
  assert.deepEqual([ups[1]!.kind === 'context-established' && ups[1]!.recovered, ups[1]!.kind === 'context-established' && ups[1]!.peerContextTag], [true, tagB]);
  // A retransmitted I2 (same tag) is no new set-up: nothing more reported.
  sim.runFor(2000);
  assert.equal(established(a), 2);
});

// --- ESTABLISHED: the R2 a retransmitted I1 draws (a reflection toward a third party) ---

const A = '2001:db8:a1::1';
const V = '2001:db8:53::53'; // a third party (say, a DNS server)
const M_SRC = '2001:db8:e1::66'; // the malicious peer's own address

/**
 * A malicious peer M sets up an ordinary context with A from M_SRC: its ULID a CGA of its own key,
 * its Locator List [M_SRC, V] signed by that key, so V is a "verified" locator of M at A (a
 * signature proves who lists a locator, not that the lister can receive there).
 */
function maliciousPeer(opts: { brokenSource?: boolean } = {}): { a: Engine; ulid: string; tag: number; claim: Shim6Option } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
  const rng = new SimRng(4104);
  const cga = generateCga({ subnetPrefix: '2001:db8:66::/64', publicKey: new Uint8Array(publicKey.export({ type: 'spki', format: 'der' })), sec: 0, randomBytes: (n) => rng.bytes(n) });
  const a = new Engine({ localLocators: [{ address: A }] }, new SimRng(42)); // rfc timers: half an I1 timeout is 2 s
  const tag = 0x1234;
  const claim: Shim6Option = { type: 'UlidPair', critical: false, senderUlid: cga.address, receiverUlid: A };
  a.handleDatagram(ms(0), { src: M_SRC, dst: A, bytes: encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: 1, options: [claim] }) });
  const r1 = decodeMessage(a.pollTransmit()!.bytes) as R1Message;
  const locators = [M_SRC, V];
  const i2 = encodeMessage({ type: 'I2', contextTag: tag, initiatorNonce: 2, responderNonce: r1.responderNonce, options: [
    findOption(r1, 'ResponderValidator')!, claim,
    { type: 'LocatorList', critical: false, generation: 1, locators: locators.map((address) => ({ address, verificationMethod: VerificationMethod.CGA })) },
    { type: 'CgaParameterDataStructure', critical: false, pds: cga.params },
    { type: 'CgaSignature', critical: false, signature: signCgaLocators(privateKey, 1, locators) },
    // `brokenSource`: M's preferences flag its own M_SRC BROKEN (0x01), V usable.
    ...(opts.brokenSource ? [{ type: 'LocatorPreferences' as const, critical: false, generation: 1, elementLength: 1, elements: [{ flags: 0x01 }, { flags: 0 }] }] : []),
  ] });
  assert.equal(a.handleDatagram(ms(0), { src: M_SRC, dst: A, bytes: i2 }).kind, 'consumed');
  assert.equal(decodeMessage(a.pollTransmit()!.bytes).type, 'R2');
  const ctx = a.status().contexts[0]!;
  assert.equal(ctx.state, State.ESTABLISHED);
  assert.equal(ctx.peerLocators.find((l) => l.address === V)?.verified, true, 'V is a verified locator of M at A');
  while (a.pollEvent() !== undefined);
  return { a, ulid: cga.address, tag, claim };
}

/** `n` copies of `i1` from `src` (UDP port `port`) over `seconds` of virtual time from `t0`; what A sent back, by type, and the largest. */
function repeatI1(a: Engine, t0: Millis, n: number, seconds: number, src: string, i1: Uint8Array, port?: number): { types: Record<string, number>; largest: number } {
  const types: Record<string, number> = {};
  let largest = 0;
  for (let i = 0; i < n; i++) {
    a.handleDatagram(ms(t0 + (i * seconds * 1000) / n), { src, dst: A, bytes: i1, port });
    for (let t = a.pollTransmit(); t !== undefined; t = a.pollTransmit()) {
      assert.equal(t.dst, src);
      const type = decodeMessage(t.bytes).type;
      types[type] = (types[type] ?? 0) + 1;
      largest = Math.max(largest, t.bytes.length);
    }
  }
  return { types, largest };
}

test('ESTABLISHED: I1s naming the context, forged from a signed but never probed locator, draw no R2 there: only R1s, within the limits and twice the I1', () => {
  // At V's DNS port, and at the context's own port (where the port check lets them by: only the
  // locator's want of a probe stops the R2 there).
  for (const port of [53, undefined]) {
    const { a, tag, claim } = maliciousPeer();
    const i1 = encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: 7, options: [claim] });
    const { types, largest } = repeatI1(a, ms(1000), 200, 1, V, i1, port);
    assert.equal(types.R2 ?? 0, 0, `port ${port}: R2s to V: ${JSON.stringify(types)}`);
    assert.ok((types.R1 ?? 0) <= 10 + 10, `port ${port}: R1s to V within the /64's limit: ${JSON.stringify(types)}`);
    assert.ok(largest <= 2 * i1.length, `port ${port}: every reply at most twice the I1 (${largest} for ${i1.length})`);
    assert.equal(a.status().contexts[0]!.state, State.ESTABLISHED, 'the context is as it was');
  }
});

test('ESTABLISHED, a context the peer set up: I1s forged from the peer\'s ULID (proven by its key, never shown return-routable) draw no R2 there', () => {
  const { a, ulid, tag, claim } = maliciousPeer();
  assert.equal(a.status().contexts[0]!.peerLocators.find((l) => l.address === ulid)?.verified, true, 'the ULID is a verified locator of M at A');
  const i1 = encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: 7, options: [claim] });
  const { types } = repeatI1(a, ms(1000), 50, 1, ulid, i1);
  assert.equal(types.R2 ?? 0, 0, `R2s to the ULID: ${JSON.stringify(types)}`);
  assert.ok((types.R1 ?? 0) > 0, `answered as in IDLE: ${JSON.stringify(types)}`);
});

test('ESTABLISHED: I1s from the peer\'s return-routable locator that its preferences flag BROKEN draw no R2 there', () => {
  const { a, tag, claim } = maliciousPeer({ brokenSource: true });
  assert.equal(a.status().contexts[0]!.peerLocators.find((l) => l.address === M_SRC)?.flags, 0x01, 'M_SRC flagged BROKEN');
  const i1 = encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: 7, options: [claim] });
  const { types } = repeatI1(a, ms(1000), 50, 1, M_SRC, i1);
  assert.equal(types.R2 ?? 0, 0, `R2s to a BROKEN locator: ${JSON.stringify(types)}`);
  assert.ok((types.R1 ?? 0) > 0, `answered as in IDLE: ${JSON.stringify(types)}`);
});

test('ESTABLISHED: I1s naming the context from its return-routable locator draw at most one R2 per half I1 timeout, within the reply limits', () => {
  const { a, tag, claim } = maliciousPeer();
  const i1 = encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: 7, options: [claim] });
  // The first is the retransmitted I1 of a peer whose R2 was lost (§7.9): it is answered with R2.
  const first = repeatI1(a, ms(1000), 1, 0, M_SRC, i1);
  assert.deepEqual(first.types, { R2: 1 });
  // 1,000 more in 3 s: rfc timers, half an I1 timeout is 2 s: one more R2 at most; the rest as in IDLE.
  const { types } = repeatI1(a, ms(1001), 1000, 3, M_SRC, i1);
  assert.ok((types.R2 ?? 0) <= 2, `R2s: ${JSON.stringify(types)}`);
  assert.ok((types.R2 ?? 0) + (types.R1 ?? 0) <= 10 + 10 * 3, `replies within the /64's limit: ${JSON.stringify(types)}`);
  const r2 = a.status().guard.replies.R2;
  assert.equal(r2.sent, 1 + (types.R2 ?? 0));
  assert.equal(r2.limited, 1000 - (types.R2 ?? 0), 'each I1 within the gap counted');
  // From the same locator at another UDP port (an I1 proves no port): as in IDLE.
  const other = repeatI1(a, ms(10_000), 1, 0, M_SRC, i1, 53);
  assert.deepEqual(other.types, { R1: 1 });
  assert.equal(a.status().contexts[0]!.state, State.ESTABLISHED);
});

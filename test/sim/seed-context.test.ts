// draft-ietf-shim6-functional-dec §3.2 (context establishment, security
// information, DoS protection) and §4 (locator set management), as scenarios
// with the real Engine. Sections (§) are the draft's; where each is realised:
// docs/architecture.md "The protocol's functions". Messages are
// read off the simulated wire (trace.ts), never from engine internals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ms } from '../../shim/time.ts';
import { decodeMessage, encodeMessage } from '../../shim/wire/index.ts';
import { established, primeWith, shimPair } from './shim-hosts.ts';
import { controlTypes, trace } from './trace.ts';
import { contextSnapshot } from './inspect.ts';

test('§3.2.3: the 4-way exchange I1 → R1 → I2 → R2; 47-bit random context tags bound on both ends', () => {
  const { sim, a, b } = shimPair(3201);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  assert.deepEqual(controlTypes(sim), ['a:I1', 'b:R1', 'a:I2', 'b:R2']);
  const ea = a.host.eventsOf('context-established')[0]!;
  const eb = b.host.eventsOf('context-established')[0]!;
  assert.equal(ea.peerUlid, b.ulid);
  assert.equal(eb.peerUlid, a.ulid);
  assert.equal(ea.contextTag, eb.peerContextTag);
  assert.equal(eb.contextTag, ea.peerContextTag);
  for (const t of [ea.contextTag, eb.contextTag]) {
    assert.ok(Number.isInteger(t) && (t as number) > 0 && (t as number) < 2 ** 47, `tag ${String(t)} is 47-bit`);
  }
  const i2 = trace(sim).find((l) => l.type === 'I2')!.message!;
  assert.ok(i2.options.some((o) => o.type === 'ResponderValidator'), 'I2 echoes the responder validator (§3.2.2)');
  assert.ok(i2.options.some((o) => o.type === 'LocatorList'), 'I2 carries the alternative locators (§3.2)');
  assert.ok(i2.options.some((o) => o.type === 'CgaParameterDataStructure'), 'and what proves them (§3.2.1)');
});

test('§3.2: every new context gets a fresh context tag', () => {
  const { sim, a, b } = shimPair(3202);
  const tags = new Set<number>();
  for (let i = 0; i < 5; i++) {
    primeWith(sim, a, b);
    sim.driveUntil(() => established(a) === i + 1, { within: 5000 });
    const t = a.host.eventsOf('context-established')[i]!.contextTag as number;
    assert.ok(!tags.has(t), 'a new context gets a new tag');
    tags.add(t);
    a.engine.close(sim.now, b.ulid);
    sim.driveUntil(() => a.host.eventsOf('context-closed').length === i + 1, { within: 10_000 });
  }
});

test('§3.2: crossing I1s (both ends primed at once) end in one context per end, tags cross-bound', () => {
  const { sim, a, b } = shimPair(3203);
  primeWith(sim, a, b);
  primeWith(sim, b, a);
  sim.driveUntil(() => established(a) >= 1 && established(b) >= 1, { within: 10_000 });
  sim.runFor(5000);
  const ca = contextSnapshot(a), cb = contextSnapshot(b);
  assert.equal(ca.state, 'ESTABLISHED');
  assert.equal(cb.state, 'ESTABLISHED');
  assert.deepEqual([ca.tags[0], ca.tags[1]], [cb.tags[1], cb.tags[0]]);
  const types = controlTypes(sim);
  assert.equal(types.filter((t) => t.endsWith(':I1')).length, 2, `both sent I1: ${types.join(' ')}`);
});

test('§3.2: a lost R2 — the initiator retransmits I2, the responder answers again, still one context', () => {
  const { sim, a, b } = shimPair(3204);
  const reverseLoss = (loss: number): void => { for (const la of a.locators) for (const lb of b.locators) sim.setLink(la, lb, { loss }, 'reverse'); };
  primeWith(sim, a, b);
  sim.driveUntil(() => trace(sim).some((l) => l.type === 'I2'), { within: 10_000 });
  reverseLoss(1); // everything b → a is lost from now: the R2 dies on the way
  sim.driveUntil(() => established(b) === 1, { within: 10_000 });
  sim.runFor(30);
  reverseLoss(0);
  sim.driveUntil(() => established(a) === 1, { within: 10_000, what: 'I2 retransmitted, R2 again' });
  const types = controlTypes(sim);
  assert.ok(types.filter((t) => t === 'a:I2').length >= 2, types.join(' '));
  assert.ok(types.filter((t) => t === 'b:R2').length >= 2, types.join(' '));
  assert.equal(b.engine.status().contexts.length, 1);
  assert.equal(established(b), 1, 'the retransmitted I2 did not make a second context');
  assert.deepEqual(contextSnapshot(a).tags, [...contextSnapshot(b).tags].reverse());
});

test('§3.2.2 DoS: I1s from a thousand spoofed sources leave the responder with no state at all', () => {
  const { sim, a, b } = shimPair(3221);
  primeWith(sim, a, b);
  sim.runFor(25); // the genuine I1 is on the wire, not the I2
  const i1 = sim.adversary.find((c) => c.from === 'a')[0]!;
  for (let i = 0; i < 1000; i++) {
    sim.adversary.replay(i1, { src: `2001:db8:6666::${(i + 1).toString(16)}`, dst: b.locators[i % 2]! });
  }
  sim.runFor(10);
  assert.equal(b.engine.status().contexts.length, 0, 'no state before a valid I2');
  const r1s = trace(sim).filter((l) => l.from === 'b' && l.type === 'R1').length;
  assert.ok(r1s >= 1, 'R1s are answered statelessly');
  sim.driveUntil(() => established(b) === 1, { within: 5000 });
  assert.equal(b.engine.status().contexts.length, 1, 'the genuine initiator still gets its context');
});

test('§3.2.2 DoS: an I2 with a forged or stale validator creates nothing; a replayed I2 changes nothing', () => {
  const { sim, a, b } = shimPair(3222);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(b) === 1, { within: 5000 });
  const i2 = sim.adversary.find((c) => c.from === 'a').find((c) => trace(sim).some((l) => l.type === 'I2' && l.at === c.at))!;
  const before = contextSnapshot(b);
  // Replay as it was, and from a spoofed source with the validator bits flipped.
  sim.adversary.replay(i2);
  sim.adversary.replay(i2, { src: '2001:db8:6666::1', mutate: (x) => flipValidator(x) });
  sim.runFor(100);
  assert.deepEqual(contextSnapshot(b), before);
  // After the validator expired (> 2 × VALIDATOR_MIN_LIFETIME), before the idle timeout, from another source.
  sim.runFor(90_000);
  const now = contextSnapshot(b);
  sim.adversary.replay(i2, { src: '2001:db8:6666::2' });
  sim.runFor(100);
  assert.deepEqual(contextSnapshot(b), now);
});

/** Flip every octet of the Responder Validator and re-encode (valid checksum, wrong validator). */
function flipValidator(bytes: Uint8Array): Uint8Array {
  const m = decodeMessage(bytes);
  return encodeMessage({ ...m, options: m.options.map((o) => (o.type === 'ResponderValidator' ? { ...o, validator: o.validator.map((x) => x ^ 0xff) } : o)) });
}

test('§4: adding a locator — Update Request with the full list, Ack, and the peer learns it (HBA-verified)', () => {
  const { sim, a, b } = shimPair(4001, {
    aPrefixes: ['2001:db8:a1::/64', '2001:db8:a2::/64', '2001:db8:a3::/64'],
    a: (ids) => ({ localLocators: ids.a.locators.slice(0, 2).map((address) => ({ address })) }),
  });
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  const t = sim.now;
  a.engine.setLocalLocators(sim.now, a.locators.map((address) => ({ address })));
  sim.flush();
  sim.driveUntil(() => b.host.eventsOf('locator-set-updated').length >= 1, { within: 5000 });
  const types = controlTypes(sim, t);
  assert.deepEqual(types.slice(0, 2), ['a:UpdateRequest', 'b:UpdateAck']);
  const upd = b.host.eventsOf('locator-set-updated').at(-1)!;
  assert.deepEqual([...(upd.locators as string[])].sort(), [...a.locators].sort());
  const list = trace(sim, t).find((l) => l.type === 'UpdateRequest')!.message!.options.find((o) => o.type === 'LocatorList');
  assert.equal(list?.type === 'LocatorList' && list.locators.length, 3, 'the atomic approach: the full set each time');
});

test('§4: removing a locator — the peer drops it and stops using it', () => {
  const { sim, a, b } = shimPair(4002);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]! }]);
  sim.flush();
  sim.driveUntil(() => b.host.eventsOf('locator-set-updated').length >= 1, { within: 5000 });
  assert.deepEqual(b.host.eventsOf('locator-set-updated').at(-1)!.locators, [a.locators[0]]);
  const t = sim.now;
  for (let i = 0; i < 20; i++) { sim.send(b.host, a.ulid); sim.runFor(50); }
  assert.ok(trace(sim, t).every((l) => l.from !== 'b' || l.dst !== a.locators[1]), 'nothing goes to the removed locator');
});

test('§4: a locator change while the handshake is still in flight reaches the peer once established', () => {
  const { sim, a, b } = shimPair(4003);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(b) === 1, { within: 5000 }); // b sent R2; a is still in I2-SENT
  assert.equal(established(a), 0);
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]! }]);
  sim.flush();
  sim.driveUntil(() => b.host.eventsOf('locator-set-updated').length >= 1, { within: 10_000, what: 'the peer hears of the change' });
  assert.deepEqual(b.host.eventsOf('locator-set-updated').at(-1)!.locators, [a.locators[0]]);
});

test('§4.1: a locator the peer cannot prove (not in its HBA set) is never used; forged updates change nothing', () => {
  const { sim, a, b } = shimPair(4101);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(b) === 1, { within: 5000 });
  const ctx = b.host.eventsOf('context-established')[0]!;
  const before = contextSnapshot(b);
  const victim = '2001:db8:7777::1';
  // A forged Update Request carrying b's real context tag (seen on the wire) and a victim address.
  const forged = encodeMessage({
    type: 'UpdateRequest', contextTag: ctx.contextTag as number, requestNonce: 12345,
    options: [{ type: 'LocatorList', critical: false, generation: 99, locators: [{ address: a.locators[0]!, verificationMethod: 1 }, { address: victim, verificationMethod: 1 }] }],
  });
  sim.adversary.inject({ src: '2001:db8:6666::9', dst: b.locators[0]!, bytes: forged });
  sim.adversary.inject({ src: a.locators[0]!, dst: b.locators[0]!, bytes: forged }, ms(1));
  sim.runFor(2000);
  assert.ok(trace(sim).every((l) => l.dst !== victim), 'no packet to the third party (§5.1 flooding)');
  const after = contextSnapshot(b);
  assert.deepEqual(after.ulids, before.ulids);
  assert.ok(!after.usablePeerLocators.includes(victim));
});

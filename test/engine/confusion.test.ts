// Lookup keys (RFC 5533 §12.4), the Forked Instance Identifier and context
// confusion (§7.6, §7.15): contexts are found by ULID pair + FII, the FII is
// bound into the R1 validator, and a context whose CT(peer) the peer reuses for
// another ULID pair is stale and removed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sim } from '../sim/sim.ts';
import { addLinkedShimHost, engineEvents, hbaIdentity, rebootShimHost, sendShim, shimDeliveries } from '../sim/shim-hosts.ts';
import { sentTypes } from '../sim/trace.ts';
import { Engine, State } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, encodePayloadHeader, findOption, type R1Message, type Shim6Option } from '../../shim/wire/index.ts';
import { ms } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';

const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'];
const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];

test('context confusion (§7.6): the peer restarts with another ULID and reuses the tag → the stale context is removed', () => {
  const sim = new Sim(41);
  const id = hbaIdentity(A_PREFIXES, sim.rng.fork());
  const a = addLinkedShimHost(sim, 'a', id, {}, new SimRng(41));
  const b = addLinkedShimHost(sim, 'b', hbaIdentity(B_PREFIXES, sim.rng.fork()));
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(300);
  const stale = b.engine.status().contexts[0]!;
  assert.equal(stale.peerUlid, id.locators[0]);
  // A restarts (same seed → same first context tag) and now uses its second address as ULID.
  const a2 = rebootShimHost(sim, a, { localUlid: id.locators[1]! }, new SimRng(41));
  a2.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(300);
  const fresh = a2.engine.status().contexts[0]!;
  assert.equal(fresh.state, State.ESTABLISHED);
  assert.equal(fresh.contextTag, stale.peerContextTag, 'the peer reused its context tag');
  const closed = engineEvents(b).find((e) => e.kind === 'context-closed');
  assert.ok(closed && closed.kind === 'context-closed');
  assert.equal(closed.reason, 'confusion');
  assert.equal(closed.peerUlid, id.locators[0]);
  const left = b.engine.status().contexts;
  assert.equal(left.length, 1, 'only the new context remains');
  assert.equal(left[0]!.peerUlid, id.locators[1]);
  // Payload now reaches B as from the new ULID.
  assert.ok(sendShim(sim, a2, b, id.locators[1]!));
  sim.runFor(100);
  assert.equal(shimDeliveries(sim, b).at(-1)?.srcUlid, id.locators[1]);
});

test('Forked Instance Identifier: two contexts for one ULID pair, told apart by FII; the FII is bound into the validator', () => {
  const B = '2001:db8:b1::1';
  const F = '2001:db8:f1::1';
  const b = new Engine({ localLocators: [{ address: B }] }, new SimRng(43));
  const now = ms(0);
  /** I1 → R1 → I2 (→ R2) from F with tag `tag` and FII `fii` (0: no option); returns B's answer to the I2. */
  const handshake = (tag: number, fii: number, fiiInI2 = fii): { result: string; r2?: number } => {
    const fiiOpt = (f: number): Shim6Option[] => (f === 0 ? [] : [{ type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: f }]);
    b.handleDatagram(now, { src: F, dst: B, bytes: encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: tag, options: fiiOpt(fii) }) });
    const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
    const validator = findOption(r1, 'ResponderValidator')!.validator;
    const i2 = encodeMessage({ type: 'I2', contextTag: tag, initiatorNonce: tag + 1, responderNonce: r1.responderNonce, options: [{ type: 'ResponderValidator', critical: false, validator }, ...fiiOpt(fiiInI2)] });
    const r = b.handleDatagram(now, { src: F, dst: B, bytes: i2 });
    const out = b.pollTransmit();
    return { result: r.kind === 'drop' ? r.reason : r.kind, ...(out === undefined ? {} : { r2: out.bytes[2]! & 0x7f }) };
  };
  assert.deepEqual(handshake(0x111, 7), { result: 'consumed', r2: 4 });
  assert.deepEqual(handshake(0x222, 0), { result: 'consumed', r2: 4 });
  const ctxs = b.status().contexts;
  assert.equal(ctxs.length, 2, 'same ULID pair, two forked instances');
  assert.deepEqual(ctxs.map((c) => c.peerContextTag).sort(), [0x111, 0x222]);
  assert.ok(ctxs.every((c) => c.state === State.ESTABLISHED && c.peerUlid === F));
  // An I2 that drops the FII its I1 had fails the validator: no third context, nothing sent.
  assert.deepEqual(handshake(0x333, 9, 0), { result: 'bad-validator' });
  assert.equal(b.contextCount, 2);
  // An I1 is looked up by ULID pair + FII: FII 7 with that instance's tag → R2 (R2 was lost);
  // the same tag without the FII names the FII 0 instance, whose CT(peer) differs → R1.
  const i1 = (fii: number): number => {
    const options: Shim6Option[] = fii === 0 ? [] : [{ type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: fii }];
    b.handleDatagram(now, { src: F, dst: B, bytes: encodeMessage({ type: 'I1', contextTag: 0x111, initiatorNonce: 5, options }) });
    return b.pollTransmit()!.bytes[2]! & 0x7f;
  };
  assert.equal(i1(7), 4);
  assert.equal(i1(0), 2);
  assert.equal(b.contextCount, 2);
  // Payload reaches each instance by its tag.
  for (const c of ctxs) {
    const h = encodePayloadHeader(17, c.contextTag);
    const r = b.handleDatagram(now, { src: F, dst: B, bytes: Uint8Array.from([...h, 1, 2]) });
    assert.equal(r.kind, 'payload');
  }
});

test('I2 with a ULID option and no Locator List from another locator: the ULID is unproven → no context, no R2 (RFC 5533 §7.13, §16)', () => {
  const B = '2001:db8:b1::1';
  const UF = '2001:db8:f1::1'; // the ULID F claims
  const F2 = '2001:db8:f2::2'; // the locator F's I1/I2 came from
  const b = new Engine({ localLocators: [{ address: B }] }, new SimRng(44));
  const now = ms(0);
  const ulidOpt: Shim6Option = { type: 'UlidPair', critical: false, senderUlid: UF, receiverUlid: B };
  b.handleDatagram(now, { src: F2, dst: B, bytes: encodeMessage({ type: 'I1', contextTag: 0x99, initiatorNonce: 1, options: [ulidOpt] }) });
  const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
  const validator = findOption(r1, 'ResponderValidator')!.validator;
  const i2 = encodeMessage({ type: 'I2', contextTag: 0x99, initiatorNonce: 2, responderNonce: r1.responderNonce, options: [{ type: 'ResponderValidator', critical: false, validator }, ulidOpt] });
  assert.deepEqual(b.handleDatagram(now, { src: F2, dst: B, bytes: i2 }), { kind: 'drop', reason: 'ulid-unproven' });
  assert.equal(b.pollTransmit(), undefined, 'no R2');
  assert.equal(b.contextCount, 0);
  assert.equal(b.status().guard.ulidUnproven, 1);
  assert.deepEqual(b.pollEvent(), { kind: 'ulid-refused', claimedUlid: UF, source: F2, reason: 'ulid-unproven' });
});

test('hosts without HBA/CGA: DNS-primed I1 falls over to the second locator; R2 from there makes it usable both ways', () => {
  const sim = new Sim(45);
  const a = addLinkedShimHost(sim, 'a', { ulid: '2001:db8:a1::1', locators: ['2001:db8:a1::1'] });
  const b = addLinkedShimHost(sim, 'b', { ulid: '2001:db8:b1::1', locators: ['2001:db8:b1::1', '2001:db8:b2::1'] });
  sim.setLink(a.ulid, b.ulid, { blackhole: true });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: b.locators.map((address) => ({ address, flags: 0, priority: 0, weight: 0 })), ttl: 60, source: 'dns' });
  sim.runFor(3000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.deepEqual(a.engine.status().contexts[0]!.pair, { local: a.ulid, peer: '2001:db8:b2::1' });
  for (let i = 0; i < 3; i++) { assert.ok(sendShim(sim, a, b)); assert.ok(sendShim(sim, b, a)); sim.runFor(100); }
  assert.equal(shimDeliveries(sim, b).length, 3);
  assert.equal(shimDeliveries(sim, a).length, 3);
  assert.ok(!sentTypes(sim).includes('R1bis'), 'no R1bis');
});

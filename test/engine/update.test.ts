import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configuredPair, engineEvents, established, pairWithContextIn, rebootShimHost, sendShim, shimDeliveries } from '../sim/shim-hosts.ts';
import { mark, sent, sentTypes, traceAfter } from '../sim/trace.ts';
import { Engine, State } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, type ErrorMessage } from '../../shim/wire/index.ts';
import { SimRng } from '../helpers/rng.ts';


test('Update Request with new preferences is verified, merged, acked once (no retransmission)', () => {
  const { sim, a, b } = configuredPair(21);
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]!, priority: 5 }, { address: a.locators[1]!, priority: 1 }]);
  sim.runFor(5000);
  assert.equal(sentTypes(sim, 'a').filter((t) => t === 'UpdateRequest').length, 1, 'one Update Request, acked, never retransmitted');
  assert.equal(sentTypes(sim, 'b').filter((t) => t === 'UpdateAck').length, 1);
  const upd = engineEvents(b).find((e) => e.kind === 'locator-set-updated');
  assert.ok(upd && upd.kind === 'locator-set-updated');
  assert.deepEqual([...upd.locators].sort(), [...a.locators].sort());
  assert.equal(upd.generation, a.engine.status().localGeneration);
});

test('Update Request retransmitted with back-off while unanswered; an older generation is not merged', () => {
  const { sim, a, b } = configuredPair(23);
  sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
  a.engine.localLocatorDown(sim.now, a.locators[1]!);
  sim.runFor(3000);
  const times = sent(sim, 'a').filter((l) => l.type === 'UpdateRequest').map((l) => l.at);
  assert.ok(times.length >= 3, `retransmissions: ${times.length}`);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.ok(gaps[1]! > gaps[0]! * 0.6, 'back-off grows (randomised)');
  sim.setLink(a.ulid, b.ulid, { blackhole: false }, 'forward');
  sim.runFor(10_000);
  const gen = engineEvents(b).filter((e) => e.kind === 'locator-set-updated').at(-1);
  assert.ok(gen && gen.kind === 'locator-set-updated');
  // replay the first (older-or-equal generation) request: acked, not merged again
  const first = sent(sim, 'a').find((l) => l.type === 'UpdateRequest')!;
  const n = engineEvents(b).length;
  b.engine.handleDatagram(sim.now, { src: first.src, dst: first.dst, bytes: first.bytes });
  sim.flush();
  assert.equal(engineEvents(b).length, n, 'replayed Update Request changed nothing');
});

test('Locator Preferences with the wrong generation → Error code 3; wrong element count → Error code 4', () => {
  const { sim, a, b } = configuredPair(25);
  const sb = b.engine.status().contexts[0]!;
  const send = (options: Parameters<typeof encodeMessage>[0]['options']): ErrorMessage => {
    const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: sb.contextTag, requestNonce: 99, options });
    const r = b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes });
    assert.equal(r.kind, 'drop');
    const out = b.engine.pollTransmit()!;
    return decodeMessage(out.bytes) as ErrorMessage;
  };
  const gen = a.engine.status().localGeneration;
  const e3 = send([{ type: 'LocatorPreferences', critical: false, generation: (gen + 7) >>> 0, elementLength: 1, elements: [{ flags: 0 }, { flags: 0 }] }]);
  assert.equal(e3.errorCode, 3);
  const e4 = send([{ type: 'LocatorPreferences', critical: false, generation: gen, elementLength: 1, elements: [{ flags: 0 }] }]);
  assert.equal(e4.errorCode, 4);
});

test('Update Request with a locator HBA does not prove → Error code 2, Ls(peer) unchanged', () => {
  const { sim, a, b } = configuredPair(27);
  const sb = b.engine.status().contexts[0]!;
  const before = JSON.stringify(sb.peerLocators);
  const gen = (a.engine.status().localGeneration + 1) >>> 0;
  const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: sb.contextTag, requestNonce: 5, options: [
    { type: 'LocatorList', critical: false, generation: gen, locators: [{ address: a.locators[0]!, verificationMethod: 1 }, { address: '2001:db8:666::1', verificationMethod: 1 }] },
  ] });
  assert.deepEqual(b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes }), { kind: 'drop', reason: 'locator-unverified' });
  assert.equal((decodeMessage(b.engine.pollTransmit()!.bytes) as ErrorMessage).errorCode, 2);
  assert.equal(JSON.stringify(b.engine.status().contexts[0]!.peerLocators), before);
});

test('a Locator List is merged whatever its generation (RFC 5533 §10.1: random), but for the current one and the few before it', () => {
  const { sim, a, b } = configuredPair(31);
  const gen = a.engine.status().localGeneration;
  const request = (generation: number, nonce: number, locators: string[]): Uint8Array => encodeMessage({ type: 'UpdateRequest', contextTag: b.engine.status().contexts[0]!.contextTag, requestNonce: nonce, options: [
    { type: 'LocatorList', critical: false, generation, locators: locators.map((address) => ({ address, verificationMethod: 1 })) },
  ] });
  const peerSet = (): string[] => b.engine.status().contexts[0]!.peerLocators.map((l) => l.address).sort();
  // A peer that picks a random generation: this one is "older" in serial arithmetic.
  const random = (gen - 0x4000_0000) >>> 0;
  b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes: request(random, 41, [a.locators[0]!]) });
  sim.flush();
  assert.deepEqual(peerSet(), [a.locators[0]!], 'the list of a random generation is the peer\'s set');
  const upd = engineEvents(b).filter((e) => e.kind === 'locator-set-updated').at(-1);
  assert.ok(upd && upd.kind === 'locator-set-updated' && upd.generation === random);
  // A late copy of a request the sender abandoned for this one (+1 sender): acked, not merged.
  b.engine.handleDatagram(sim.now, { src: a.ulid, dst: b.ulid, bytes: request((random - 1) >>> 0, 42, [...a.locators]) });
  sim.flush();
  assert.deepEqual(peerSet(), [a.locators[0]!], 'a late copy of the generation before did not roll the set back');
});

test('R1bis / I2bis: the peer lost its state; payload triggers recovery and the context comes back', () => {
  const { sim, a, b } = configuredPair(29);
  // B restarts: same addresses, no contexts
  const fresh = rebootShimHost(sim, b);
  sendShim(sim, a, fresh);
  sim.runFor(500);
  const t = sentTypes(sim);
  assert.ok(t.includes('R1bis') && t.includes('I2bis'), `R1bis and I2bis sent: ${t.slice(-6)}`);
  assert.equal(fresh.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-established' && e.recovered));
  assert.equal(a.engine.status().contexts[0]!.peerContextTag, fresh.engine.status().contexts[0]!.contextTag);
  sendShim(sim, a, fresh);
  sim.runFor(100);
  assert.equal(shimDeliveries(sim, fresh).length, 1);
});

test('a forged Keepalive / Update for an unknown tag gets an R1bis and creates nothing', () => {
  const e = new Engine({ localLocators: [{ address: '2001:db8:b1::1' }] }, new SimRng(1));
  const r = e.handleDatagram(0 as never, { src: '2001:db8:a1::1', dst: '2001:db8:b1::1', bytes: encodeMessage({ type: 'Keepalive', contextTag: 1234, options: [] }) });
  assert.deepEqual(r, { kind: 'drop', reason: 'no-context' });
  assert.equal(decodeMessage(e.pollTransmit()!.bytes).type, 'R1bis');
  assert.equal(e.contextCount, 0);
});

test('one outstanding Update Request: a second change abandons the first; only the newest is retransmitted and acked', () => {
  const { sim, a, b } = configuredPair(111);
  sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
  a.engine.localLocatorDown(sim.now, a.locators[1]!);
  sim.runFor(100);
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]! }]);
  const newest = a.engine.status().localGeneration;
  sim.runFor(2000);
  const requests = sent(sim, 'a').filter((l) => l.type === 'UpdateRequest').map((l) => decodeMessage(l.bytes));
  const gens = requests.map((m) => m.options.find((o) => o.type === 'LocatorList')).map((o) => (o as { generation: number }).generation);
  assert.ok(gens.length >= 3);
  assert.equal(gens.filter((g) => g !== newest).length, 1, 'the first request went out once and was never retransmitted');
  assert.ok(gens.slice(1).every((g) => g === newest));
  sim.setLink(a.ulid, b.ulid, { blackhole: false }, 'forward');
  sim.runFor(5000);
  const after = sent(sim, 'a').filter((l) => l.type === 'UpdateRequest').length;
  sim.runFor(20_000);
  assert.equal(sent(sim, 'a').filter((l) => l.type === 'UpdateRequest').length, after, 'acked: retransmission stopped');
  const last = engineEvents(b).filter((e) => e.kind === 'locator-set-updated').at(-1);
  assert.ok(last && last.kind === 'locator-set-updated');
  assert.deepEqual(last.locators, [a.locators[0]]);
});

test('Update Request in I2-SENT (the peer has the context, its R2 lost): no Update Ack before the peer\'s tag is known, the I2 again; once established, the request is taken and acked', () => {
  // A lab run crashed B's daemon here: the Ack named CT(peer), which I2-SENT does not have yet (-1).
  const { sim, a, b, tag } = pairWithContextIn(State.I2_SENT, 31); // B's R2 is lost: A stays in I2-SENT
  const request = (): { src: string; dst: string; bytes: Uint8Array } => ({ src: b.ulid, dst: a.ulid, bytes: encodeMessage({ type: 'UpdateRequest', contextTag: tag, requestNonce: 41, options: [] }) });
  let m = mark(sim);
  assert.deepEqual(a.engine.handleDatagram(sim.now, request()), { kind: 'drop', reason: 'peer-tag-unknown' });
  sim.flush();
  assert.deepEqual(traceAfter(sim, m).filter((l) => l.from === 'a').map((l) => l.type), ['I2'], 'the I2 again (RFC 5533 §10.4), no Update Ack');
  assert.equal(a.engine.status().contexts[0]!.state, State.I2_SENT);
  sim.setLink(b.ulid, a.ulid, { blackhole: false }, 'forward');
  sim.driveUntil(() => established(a) === 1, { within: 5000 });
  m = mark(sim);
  assert.deepEqual(a.engine.handleDatagram(sim.now, request()), { kind: 'consumed' });
  sim.flush();
  const acks = traceAfter(sim, m).filter((l) => l.from === 'a' && l.type === 'UpdateAck');
  assert.equal(acks.length, 1, 'the request sent again once A is established is acked');
  assert.equal((decodeMessage(acks[0]!.bytes) as { contextTag: number }).contextTag, b.engine.status().contexts[0]!.contextTag, 'with B\'s tag');
});

test('a pending Update Request goes again under the tag of the context the restarted peer set up anew (R1bis recovery, or its own I2): the old tag drew an R1bis at every retransmission, for good', () => {
  for (const how of ['r1bis', 'peer-i2'] as const) {
    const { sim, a, b } = configuredPair(23);
    sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
    a.engine.localLocatorDown(sim.now, a.locators[1]!); // an Update Request B never gets
    sim.runFor(1000);
    const fresh = rebootShimHost(sim, b);
    sim.setLink(a.ulid, b.ulid, { blackhole: false }, 'forward');
    if (how === 'peer-i2') {
      fresh.engine.prime(sim.now, { ulid: a.ulid, locators: [], ttl: 300, source: 'configured' });
      sim.flush();
    }
    sim.driveUntil(() => engineEvents(a).some((e) => e.kind === 'context-established' && e.recovered), { within: 20_000 });
    const newTag = fresh.engine.status().contexts[0]!.contextTag;
    assert.equal(a.engine.status().contexts[0]!.peerContextTag, newTag, how);
    const since = sim.now;
    sim.runFor(30_000);
    const after = sent(sim).filter((l) => l.at >= since);
    const requests = after.filter((l) => l.from === 'a' && l.type === 'UpdateRequest').map((l) => decodeMessage(l.bytes) as { contextTag: number });
    assert.ok(requests.length >= 1, `${how}: the pending Update Request went again`);
    assert.ok(requests.every((m) => m.contextTag === newTag), `${how}: Update Requests under the old tag: ${requests.filter((m) => m.contextTag !== newTag).length}`);
    assert.ok(after.some((l) => l.from === 'b' && l.type === 'UpdateAck'), `${how}: and B acknowledged it`);
    assert.equal(after.filter((l) => l.from === 'b' && l.type === 'R1bis').length, 0, `${how}: no R1bis`);
    assert.equal(a.engine.status().contexts[0]!.timers.update, undefined, `${how}: nothing left to retransmit`);
    const last = engineEvents(fresh).filter((e) => e.kind === 'locator-set-updated' || e.kind === 'context-established');
    assert.ok(last.length > 0);
    const bs = fresh.engine.status().contexts[0]!;
    assert.ok(bs.peerLocators.some((l) => l.address === a.locators[1] && (l.flags & 1) === 1), `${how}: B knows A's locator is BROKEN`);
  }
});

test('an Error about an Update Request we abandoned for a newer one leaves the newer one retransmitting (code 2 for the old request stopped it for good)', () => {
  const { sim, a, b } = configuredPair(113);
  sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
  a.engine.localLocatorDown(sim.now, a.locators[1]!); // request 1
  sim.runFor(100);
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]! }]); // request 2 abandons it (§10.3)
  sim.runFor(10);
  const [first, second] = sent(sim, 'a').filter((l) => l.type === 'UpdateRequest');
  assert.ok(first !== undefined && second !== undefined && decodeMessage(first.bytes).options.length > 0);
  // B's Error code 2 about request 1 (it could not verify that list) arrives now.
  const ctx = a.engine.status().contexts[0]!;
  const error = encodeMessage({ type: 'Error', errorCode: 2, pointer: 0, offendingPacket: first.bytes, options: [] });
  a.engine.handleDatagram(sim.now, { src: ctx.pair.peer, dst: ctx.pair.local, bytes: error });
  sim.flush();
  assert.ok(a.engine.status().contexts[0]!.timers.update !== undefined, 'request 2 is still retransmitted');
  sim.setLink(a.ulid, b.ulid, { blackhole: false }, 'forward');
  sim.runFor(20_000);
  const last = engineEvents(b).filter((e) => e.kind === 'locator-set-updated').at(-1);
  assert.ok(last && last.kind === 'locator-set-updated', 'B got request 2');
  assert.deepEqual(last.locators, [a.locators[0]]);
});

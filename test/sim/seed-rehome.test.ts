// draft-ietf-shim6-functional-dec §5 (re-homing, reachability tests,
// third-party flooding) and §6 (removal of state: unilateral idle timers with
// R1bis/I2bis recovery, and the draft's coordinated Close / Close-Ack, our
// extension: docs/wire.md "Close and CloseAck"), as scenarios with the real
// Engine. Sections (§) are the draft's; where each is realised:
// docs/architecture.md "The protocol's functions".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeMessage } from '../../shim/wire/index.ts';
import type { Sim } from './sim.ts';
import { established, primeWith, rebootShimHost, shimPair, type ShimHost } from './shim-hosts.ts';
import { controlTypes, trace } from './trace.ts';
import { contextSnapshot } from './inspect.ts';

/** Payload both ways every `every` ms for `duration` ms; returns the ids sent. */
export function bidi(sim: Sim, a: ShimHost, b: ShimHost, duration: number, every = 50): string[] {
  const ids: string[] = [];
  for (let t = 0; t < duration; t += every) {
    ids.push(sim.send(a.host, b.ulid), sim.send(b.host, a.ulid));
    sim.runFor(every);
  }
  return ids;
}

function setup(seed: number) {
  const { sim, a, b } = shimPair(seed);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  bidi(sim, a, b, 500);
  return { sim, a, b };
}

test('§5: the current pair goes silent; REAP finds another pair and payload flows again within a second (fast profile)', () => {
  const { sim, a, b } = setup(5001);
  const pair = sim.ledger.deliveries.at(-1)!.via;
  const t1 = sim.now;
  sim.setLink(pair.src, pair.dst, { blackhole: true });
  const ids = bidi(sim, a, b, 3000);
  const dead = (v: { src: string; dst: string }): boolean => (v.src === pair.src && v.dst === pair.dst) || (v.src === pair.dst && v.dst === pair.src);
  const firstOk = sim.ledger.deliveries.find((d) => d.at > t1 && d.path === 'shim' && !dead(d.via));
  assert.ok(firstOk, 'payload flows on another pair');
  assert.ok(firstOk.at - t1 <= 1000, `re-homed in ${firstOk.at - t1} ms`);
  assert.ok(a.host.eventsOf('locator-pair-changed').length + b.host.eventsOf('locator-pair-changed').length >= 1);
  assert.ok(trace(sim, t1).some((l) => l.type === 'Probe'), 'by REAP probes (§5 reachability test)');
  const late = ids.slice(-20);
  for (const id of late) assert.equal(sim.ledger.of(id).length, 1, `late payload ${id} arrives`);
  assert.deepEqual(sim.ledger.report().misdelivered, []);
  assert.deepEqual(contextSnapshot(a).ulids, [a.ulid, b.ulid]);
});

test('§5: both of the peer\'s ULID locator links die at once; the other locators take over', () => {
  const { sim, a, b } = setup(5002);
  const t1 = sim.now;
  sim.setLocatorBlackhole(b.locators[0]!, true);
  sim.setLocatorBlackhole(a.locators[0]!, true);
  const ids = bidi(sim, a, b, 4000);
  for (const id of ids.slice(-20)) assert.equal(sim.ledger.of(id).length, 1);
  const last = sim.ledger.deliveries.at(-1)!;
  assert.ok(!last.via.src.startsWith('2001:db8:a1:') && !last.via.dst.startsWith('2001:db8:b1:'));
  assert.ok(sim.ledger.deliveries.find((d) => d.at > t1 && d.via.dst === b.locators[1])!.at - t1 <= 1000);
});

test('§5.1: probes only go to verified peer locators; nothing reaches a third party', () => {
  const { sim, a, b } = setup(5101);
  sim.setLocatorBlackhole(b.locators[0]!, true);
  bidi(sim, a, b, 3000);
  const dsts = new Set(trace(sim).filter((l) => l.from === 'a').map((l) => l.dst));
  for (const d of dsts) assert.ok(b.locators.includes(d), `a only sends to b's own locators (${d})`);
});

test('§6 coordinated: Close / Close-Ack removes the context on both ends', () => {
  const { sim, a, b } = setup(6001);
  const t = sim.now;
  a.engine.close(sim.now, b.ulid);
  sim.flush();
  sim.driveUntil(() => b.host.eventsOf('context-closed').length === 1 && a.host.eventsOf('context-closed').length === 1, { within: 5000 });
  assert.deepEqual(controlTypes(sim, t), ['a:Close', 'b:CloseAck']);
  assert.equal(a.host.eventsOf('context-closed')[0]!.reason, 'local-close');
  assert.equal(b.host.eventsOf('context-closed')[0]!.reason, 'peer-close');
  assert.equal(a.engine.status().contexts.length, 0);
  assert.equal(b.engine.status().contexts.length, 0);
});

test('§6 coordinated: a lost Close is retransmitted; a forged Close is ignored', () => {
  const { sim, a, b } = setup(6002);
  const ctx = contextSnapshot(b);
  // A forged Close with the right tag (seen on the wire) but a made-up nonce from a spoofed source.
  sim.adversary.inject({ src: '2001:db8:6666::1', dst: b.locators[0]!, bytes: closeFor(ctx.tags[0]!) });
  sim.runFor(100);
  assert.deepEqual(contextSnapshot(b), ctx);
  const pair = sim.ledger.deliveries.at(-1)!.via;
  sim.setLink(pair.src, pair.dst, { loss: 1 });
  a.engine.close(sim.now, b.ulid);
  sim.flush();
  sim.runFor(30);
  sim.setLink(pair.src, pair.dst, { loss: 0 });
  sim.driveUntil(() => b.host.eventsOf('context-closed').length === 1, { within: 10_000 });
  assert.ok(controlTypes(sim).filter((x) => x === 'a:Close').length >= 1);
});

test('§6 unilateral: idle contexts are collected on both ends after the idle timeout', () => {
  const { sim, a, b } = setup(6101);
  sim.runFor(130_000);
  assert.equal(a.host.eventsOf('context-closed')[0]?.reason, 'idle');
  assert.equal(b.host.eventsOf('context-closed')[0]?.reason, 'idle');
});

test('§6 unilateral: the peer lost its state (reboot); R1bis → I2bis recovers the context, payload flows', () => {
  const { sim, a, b: b0 } = setup(6102);
  const oldTags = contextSnapshot(a).tags;
  const b = rebootShimHost(sim, b0);
  const t = sim.now;
  const ids = bidi(sim, a, b, 2000);
  const types = controlTypes(sim, t);
  assert.ok(types.includes('b:R1bis') && types.includes('a:I2bis'), `recovery messages: ${types.join(' ')}`);
  const rec = a.host.eventsOf('context-established').at(-1)!;
  assert.equal(rec.recovered, true);
  assert.deepEqual(contextSnapshot(a).ulids, [a.ulid, b.ulid], 'same ULIDs after recovery');
  assert.equal(contextSnapshot(a).tags[0], oldTags[0], 'our own tag is kept');
  for (const id of ids.slice(-10)) assert.equal(sim.ledger.of(id).length, 1);
  assert.deepEqual(sim.ledger.report().misdelivered, []);
});

/** A Close with the right tag but a made-up nonce: what an adversary who saw the tag can forge. */
function closeFor(tag: number): Uint8Array {
  return encodeMessage({ type: 'Close', contextTag: tag, nonce: 777, options: [] });
}

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { State } from '../../shim/engine/index.ts';
import { Sim } from '../sim/sim.ts';
import { addShimHost, engineEvents, hbaIdentity, sendShim, shimDeliveries, shimPair, A_PREFIXES, type ShimHost } from '../sim/shim-hosts.ts';
import { sent, sentTypes } from '../sim/trace.ts';
import { ms } from '../../shim/time.ts';

const rfc = { profile: 'rfc' } as const;

/** A alone on the simulator, `rfc` timers. */
function alone(seed: number): { sim: Sim; a: ShimHost } {
  const sim = new Sim(seed);
  return { sim, a: addShimHost(sim, 'a', hbaIdentity(A_PREFIXES, sim.rng.fork()), rfc) };
}

test('prime() → I1, R1, I2, R2: both ends ESTABLISHED in 2 RTTs with verified locator sets', () => {
  const { sim, a, b } = shimPair(1, { a: rfc, b: rfc });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: b.locators.map((address, i) => ({ address, flags: 0, priority: i, weight: 0 })), ttl: 300, source: 'dns' });
  sim.runFor(80);
  const est = engineEvents(a).find((e) => e.kind === 'context-established');
  assert.ok(est, `A events: ${JSON.stringify(engineEvents(a))}`);
  // The R1 is announced (the driver's hold waits longer for a peer that answered), once, before the context is up.
  const kinds = engineEvents(a).map((e) => e.kind);
  assert.deepEqual(kinds.filter((k) => k === 'context-initiated' || k === 'context-answered' || k === 'context-established'), ['context-initiated', 'context-answered', 'context-established']);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-answered' && e.peerUlid === b.ulid && e.localUlid === a.ulid));
  assert.equal(engineEvents(b).some((e) => e.kind === 'context-answered'), false, 'the responder answers; it is not answered');
  assert.equal(sent(sim, 'a').length, 2, 'I1 and I2 only');
  assert.deepEqual(sentTypes(sim), ['I1', 'R1', 'I2', 'R2']);
  assert.ok(engineEvents(b).some((e) => e.kind === 'context-established'));
  const sa = a.engine.status().contexts[0]!;
  assert.equal(sa.state, State.ESTABLISHED);
  assert.deepEqual(sa.peerLocators.filter((l) => l.verified).map((l) => l.address).sort(), [...b.locators].sort());
  const sb = b.engine.status().contexts[0]!;
  assert.equal(sb.peerContextTag, sa.contextTag);
  assert.equal(sa.peerContextTag, sb.contextTag);
  // payload flows both ways through the context
  assert.ok(sendShim(sim, a, b));
  assert.ok(sendShim(sim, b, a));
  sim.runFor(120);
  assert.equal(shimDeliveries(sim, b).length, 1);
  assert.equal(shimDeliveries(sim, b)[0]!.srcUlid, a.ulid);
  assert.equal(shimDeliveries(sim, a).length, 1);
  assert.deepEqual(sim.ledger.report(), { lost: [], duplicated: [], misdelivered: [] });
});

test('crossing I1s are answered with R2 and both ends establish one context each', () => {
  const { sim, a, b } = shimPair(3, { a: rfc, b: rfc });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  b.engine.prime(sim.now, { ulid: a.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(500);
  assert.equal(a.engine.status().contexts.length, 1);
  assert.equal(a.engine.status().contexts[0]!.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts[0]!.state, State.ESTABLISHED);
  assert.ok(sentTypes(sim, 'a').includes('R2') && sentTypes(sim, 'b').includes('R2'), 'each side sent an R2');
  assert.equal(a.engine.status().contexts[0]!.peerContextTag, b.engine.status().contexts[0]!.contextTag);
});

test('no answer: I1 retransmitted I1_RETRIES_MAX times with randomised back-off, then E-FAILED, hold-down, IDLE', () => {
  const { sim, a } = alone(5);
  const t0 = sim.now;
  a.engine.prime(sim.now, { ulid: '2001:db8:ff::1', locators: [], ttl: 300, source: 'dns' });
  while (!engineEvents(a).some((e) => e.kind === 'context-failed') && sim.now < t0 + 400_000) sim.runFor(1000);
  // the negative cache keeps a new prime from starting I1 again (DNS claimed support: address + ULID)
  const before = sent(sim).length;
  a.engine.prime(sim.now, { ulid: '2001:db8:ff::1', locators: [], ttl: 300, source: 'dns' });
  sim.flush();
  assert.equal(sent(sim).length, before, 'no new I1 while negatively cached');
  sim.runFor(61_000);
  const sends = sent(sim, 'a').map((l) => l.at);
  assert.equal(sends.length, 5, '1 + I1_RETRIES_MAX');
  const gaps = sends.slice(1).map((t, i) => t - sends[i]!);
  gaps.forEach((g, i) => {
    const nominal = 4000 * 2 ** i;
    assert.ok(g >= 0.5 * nominal && g <= 1.5 * nominal, `gap ${i} = ${g}`);
  });
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-failed' && e.reason === 'no-answer'));
  assert.ok(engineEvents(a).some((e) => e.kind === 'peer-unsupported'));
  assert.equal(a.engine.contextCount, 0, 'E-FAILED held down for NO_R1_HOLDDOWN_TIME, then gone');
});

test('lost R2: I2 retransmitted; I2 retries exhausted fall back to I1 and still establish', () => {
  const { sim, a, b } = shimPair(6);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(30); // I1 delivered, R1 in flight
  sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward'); // every R2 (and R1) B → A is lost
  sim.runFor(7_970);
  const aTypes = sentTypes(sim, 'a');
  assert.ok(aTypes.filter((t) => t === 'I2').length >= 3, `I2 retransmitted: ${aTypes}`);
  assert.ok(aTypes.lastIndexOf('I1') > aTypes.indexOf('I2'), 'fell back to I1 after I2 retries');
  sim.setLink(b.ulid, a.ulid, { blackhole: false }, 'forward');
  sim.runFor(2_000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts.length, 1, 'B kept exactly one context');
});

test('host-based independent mode: I1 → R1 only, no context stays on either side', () => {
  const { sim, a, b } = shimPair(9, { a: ({ b }) => ({ ...rfc, peers: [{ ulid: b.ulid, mode: 'independent' }] }), b: rfc });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  sim.runFor(1000);
  assert.deepEqual(sentTypes(sim), ['I1', 'R1']);
  assert.ok(engineEvents(a).some((e) => e.kind === 'peer-supported'));
  assert.equal(engineEvents(a).some((e) => e.kind === 'context-answered'), false, 'a probe holds no packets');
  assert.equal(a.engine.contextCount, 0);
  assert.equal(b.engine.contextCount, 0);
});

test('ICMP no-support quoting our I1 → NO-SUPPORT, negative cache, ICMP hold-down, then IDLE', () => {
  const { sim, a } = alone(31);
  a.engine.prime(sim.now, { ulid: '2001:db8:ee::1', locators: [], ttl: 300, source: 'configured' });
  sim.flush();
  const i1 = sent(sim).at(-1)!;
  // Parameter Problem "unrecognized next header" (native Shim6, RFC 5533 §7.8) quoting our I1.
  assert.deepEqual(a.engine.handleIcmp(sim.now, { type: 4, code: 1, info: 40, src: i1.src, dst: i1.dst, invoking: i1.bytes }), { kind: 'consumed' });
  sim.flush();
  assert.equal(a.engine.status().contexts[0]!.state, State.NO_SUPPORT);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-failed' && e.reason === 'refused'));
  sim.runFor(599_000);
  assert.equal(a.engine.contextCount, 1, 'still held down before ICMP_HOLDDOWN_TIME');
  sim.runFor(2_000);
  assert.equal(a.engine.contextCount, 0);
});

test('a context whose local ULID is a host address outside the HBA set (a discovered flow from a privacy address) is established: our messages carry no PDS that fails to prove that ULID (the peer refused every I2 as ulid-unproven, and we held the peer down)', () => {
  const sim = new Sim(7);
  const idA = hbaIdentity(A_PREFIXES, sim.rng.fork());
  const privacy = '2001:db8:a1::77'; // on A's first link, not a member of its HBA set
  const a = addShimHost(sim, 'a', { ...idA, locators: [...idA.locators, privacy] });
  const b = addShimHost(sim, 'b', hbaIdentity(['2001:db8:b1::/64', '2001:db8:b2::/64'], sim.rng.fork()));
  sim.connectHosts(a.host, b.host, { delay: ms(20) });
  assert.equal(a.engine.discover(sim.now, privacy, b.ulid), 'started');
  sim.runFor(2000);
  assert.ok(!engineEvents(b).some((e) => e.kind === 'ulid-refused'), 'B proved the ULID');
  const ctx = b.engine.status().contexts.find((c) => c.peerUlid === privacy);
  assert.equal(ctx?.state, State.ESTABLISHED);
  assert.equal(ctx.ulidProof, 'locator', 'proven as the handshake\'s source locator');
  assert.equal(a.engine.status().contexts.find((c) => c.localUlid === privacy)?.state, State.ESTABLISHED);
  assert.deepEqual(a.engine.exportCaches(sim.now).negative, [], 'no negative entry for B');
  // The daemon's own ULID, an HBA member, still announces the whole set with its PDS.
  assert.equal(a.engine.discover(sim.now, a.ulid, b.ulid), 'started');
  sim.runFor(2000);
  const own = b.engine.status().contexts.find((c) => c.peerUlid === a.ulid);
  assert.equal(own?.state, State.ESTABLISHED);
  assert.equal(own.ulidProof, 'locator');
  assert.ok(own.peerLocators.filter((l) => l.verified).length >= 2, 'A\'s HBA members verified');
});

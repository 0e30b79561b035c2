// draft-ietf-shim6-functional-dec §2 (initial contact, failure during startup)
// and §3.1 (capability detection: node configuration, DNS, host-based
// independent and integrated, timing and caches), each as a scenario on the
// simulator with the real Engine. Sections (§) are the draft's; where each is
// realised: docs/architecture.md "The protocol's functions".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ms } from '../../shim/time.ts';
import { LegacyEndpoint } from './legacy.ts';
import { Sim } from './sim.ts';
import { addShimHost, established, hbaIdentity, primeWith, shimPair, A_PREFIXES, B_PREFIXES } from './shim-hosts.ts';
import { controlTypes, trace } from './trace.ts';

/** Send `n` payloads from `from` to `to` every `every` ms, driving the sim in between. */
function stream(sim: Sim, from: Parameters<Sim['send']>[0], to: string, n: number, every = 50): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(sim.send(from, to));
    sim.runFor(every);
  }
  return ids;
}

function assertClean(sim: Sim): void {
  const r = sim.ledger.report();
  assert.deepEqual(r.misdelivered, [], 'no payload delivered to the wrong context');
  assert.deepEqual(r.duplicated, [], 'no payload delivered twice');
  assert.deepEqual(sim.violations, []);
}

test('§2.1: ULID = locator, shim off: plain IPv6 only, no signalling', () => {
  const { sim, a, b } = shimPair(2101, { a: { defaultMode: 'off' }, b: { defaultMode: 'off' } });
  const ids = stream(sim, a.host, b.ulid, 5);
  sim.runFor(1000);
  assertClean(sim);
  assert.deepEqual(sim.ledger.report().lost, []);
  for (const id of ids) assert.equal(sim.ledger.of(id)[0]?.path, 'plain');
  assert.deepEqual(controlTypes(sim), []);
  assert.equal(established(a) + established(b), 0);
});

test('§2.1 + §3.1.3 integrated (the default): first packets go plain, the context follows, every payload arrives once', () => {
  const { sim, a, b } = shimPair(2102);
  const ids = stream(sim, a.host, b.ulid, 20);
  assertClean(sim);
  assert.deepEqual(sim.ledger.report().lost, []);
  assert.equal(sim.ledger.sent.get(ids[0]!)?.path, 'plain', 'no context yet: ULID = locator');
  assert.equal(established(a), 1);
  assert.equal(established(b), 1);
  assert.equal(sim.ledger.sent.get(ids.at(-1)!)?.path, 'shim', 'later packets go through the context');
  const types = controlTypes(sim);
  assert.deepEqual(types.slice(0, 4), ['a:I1', 'b:R1', 'a:I2', 'b:R2']);
});

test('§2.2: failure during startup — the peer ULID\'s locator is dead; DNS-primed locators carry the first packets', () => {
  const { sim, a, b } = shimPair(2201);
  sim.setLocatorBlackhole(b.ulid, true);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 10_000, what: 'context over B\'s second locator' });
  const ids = stream(sim, a.host, b.ulid, 5);
  for (const id of ids) {
    const d = sim.ledger.of(id);
    assert.equal(d.length, 1, `payload ${id} arrives`);
    assert.equal(d[0]!.dstUlid, b.ulid, 'the app still talks to the ULID');
    assert.equal(d[0]!.via.dst, b.locators[1], 'carried to the live locator');
  }
  const back = stream(sim, b.host, a.ulid, 3);
  for (const id of back) assert.equal(sim.ledger.of(id)[0]?.srcUlid, b.ulid);
  assertClean(sim);
});

test('§2.2 on two links: B\'s link-P locator dead, so every pair with a P end fails; the first I1 retry already uses Q at both ends', () => {
  // A lab with links P and Q (shim6 lab): a[0]/b[0] on P, a[1]/b[1] on Q. P is dead at B,
  // and a packet between a P and a Q address crosses P, so only a[1] ↔ b[1] works.
  const { sim, a, b } = shimPair(2203, { a: { profile: 'fast' }, b: { profile: 'fast' } });
  sim.setLocatorBlackhole(b.ulid, true);
  sim.setLink(a.ulid, b.locators[1]!, { blackhole: true });
  sim.setLink(a.locators[1]!, b.ulid, { blackhole: true });
  const t0 = sim.now;
  primeWith(sim, a, b);
  const at = sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 10_000, what: 'context over Q at both ends' });
  // I1 at 0, retry after the fast I1 timeout (300 ms jittered to ≤ 450) on a[1] → b[1], then R1/I2/R2 (3 × 20 ms).
  assert.ok(at - t0 <= 600, `established after ${at - t0} ms`);
  const i1s = trace(sim).filter((r) => r.from === 'a' && r.type === 'I1');
  assert.deepEqual([i1s[1]?.src, i1s[1]?.dst], [a.locators[1], b.locators[1]], 'the first retry shares no locator with the failed pair');
  const ids = stream(sim, a.host, b.ulid, 3);
  for (const id of ids) assert.equal(sim.ledger.of(id)[0]?.via.dst, b.locators[1], 'carried on Q');
  assertClean(sim);
});

test('§2.2 baseline: without the shim, plain IPv6 to a dead ULID is simply lost', () => {
  const { sim, a, b } = shimPair(2202, { a: { defaultMode: 'off' }, b: { defaultMode: 'off' } });
  sim.setLocatorBlackhole(b.ulid, true);
  const ids = stream(sim, a.host, b.ulid, 5);
  sim.runFor(1000);
  assert.deepEqual(sim.ledger.report().lost, ids);
});

test('§2.2: DNS priming that lands while an I1 to the dead ULID is already pending still reaches the live locator', () => {
  const { sim, a, b } = shimPair(2203);
  sim.setLocatorBlackhole(b.ulid, true);
  sim.send(a.host, b.ulid); // the app's packet starts an integrated exchange towards the ULID only
  sim.runFor(10);
  primeWith(sim, a, b); // then the resolver learns the full locator set
  sim.driveUntil(() => established(a) === 1, { within: 10_000, what: 'context via the primed second locator' });
  assert.equal(a.host.eventsOf('peer-unsupported').length, 0, 'the peer is not written off as legacy');
});

test('§3.1.1: node configuration — a configured peer gets a context without DNS', () => {
  const { sim, a, b } = shimPair(3111, { a: (ids) => ({ defaultMode: 'off', peers: [{ ulid: ids.b.ulid, mode: 'configured', locators: [...ids.b.locators] }] }) });
  stream(sim, a.host, b.ulid, 20);
  assert.equal(established(a), 1);
  assert.equal(established(b), 1);
  assertClean(sim);
  assert.deepEqual(sim.ledger.report().lost, []);
});

test('§3.1.2: DNS priming starts the exchange at lookup time: ESTABLISHED after 2 round trips, before the first packet', () => {
  const { sim, a, b } = shimPair(3121);
  const t0 = sim.now;
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1, { within: 5000 });
  assert.equal(sim.now - t0, 4 * 20, 'I1, R1, I2, R2 over 20 ms links');
  const id = sim.send(a.host, b.ulid);
  sim.runFor(100);
  assert.equal(sim.ledger.sent.get(id)?.path, 'shim', 'the very first app packet uses the context');
  assert.equal(sim.ledger.of(id).length, 1);
  assertClean(sim);
});

test('§3.1.3 independent: I1 → R1 only; the peer is known capable and the responder holds nothing', () => {
  const { sim, a, b } = shimPair(3131, { a: (ids) => ({ peers: [{ ulid: ids.b.ulid, mode: 'independent' }] }) });
  stream(sim, a.host, b.ulid, 10);
  sim.runFor(2000);
  assert.deepEqual(controlTypes(sim), ['a:I1', 'b:R1']);
  assert.equal(a.host.eventsOf('peer-supported').length, 1);
  assert.equal(established(a) + established(b), 0);
  assert.equal(b.engine.status().contexts.length, 0);
  assert.deepEqual(sim.ledger.report().lost, [], 'payloads went plain');
  assertClean(sim);
});

test('§3.1.3/§3.1.4: a legacy peer never answers; negative cache by address; traffic continues plain', () => {
  const sim = new Sim(3141);
  const a = addShimHost(sim, 'a', hbaIdentity(A_PREFIXES, sim.rng.fork()));
  const bId = hbaIdentity(B_PREFIXES, sim.rng.fork());
  const legacy = new LegacyEndpoint();
  const b = sim.addHost({ name: 'b', locators: bId.locators }, () => legacy);
  sim.connectHosts(a.host, b, { delay: ms(20) });
  const ids = stream(sim, a.host, bId.ulid, 5);
  sim.driveUntil(() => a.host.eventsOf('peer-unsupported').length === 1, { within: 60_000 });
  const i1s = controlTypes(sim).filter((t) => t === 'a:I1').length;
  assert.ok(i1s >= 2, 'I1 was retransmitted before giving up');
  const neg = a.engine.exportCaches(sim.now).negative;
  assert.ok(neg.some((e) => e.address === bId.ulid && e.ulid === undefined), 'negative entry keyed by address');
  const more = stream(sim, a.host, bId.ulid, 5);
  assert.equal(controlTypes(sim).filter((t) => t === 'a:I1').length, i1s, 'held down: no new I1');
  for (const id of [...ids, ...more]) assert.equal(sim.ledger.of(id).length, 1);
  assert.equal(legacy.ignored, i1s);
});

test('§3.1.4: DNS claimed shim6 but the peer does not answer: negative entry keyed by address + ULID', () => {
  const sim = new Sim(3142);
  const a = addShimHost(sim, 'a', hbaIdentity(A_PREFIXES, sim.rng.fork()));
  const bId = hbaIdentity(B_PREFIXES, sim.rng.fork());
  sim.addHost({ name: 'b', locators: bId.locators }, () => new LegacyEndpoint());
  sim.connectHosts(a.host, sim.host('b'), { delay: ms(20) });
  primeWith(sim, a, bId);
  sim.driveUntil(() => a.host.eventsOf('peer-unsupported').length >= 1, { within: 120_000 });
  const neg = a.engine.exportCaches(sim.now).negative;
  assert.ok(neg.length > 0);
  assert.ok(neg.every((e) => e.ulid === bId.ulid), 'held down for this ULID only');
  assert.ok(trace(sim).filter((l) => l.type === 'I1').some((l) => l.dst === bId.locators[1]), 'the other primed locator was tried too');
});

test('§3.1.4: the positive cache outlives the context and survives a restart through export/import', () => {
  const { sim, a, b } = shimPair(3143);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1, { within: 5000 });
  a.engine.close(sim.now, b.ulid);
  sim.driveUntil(() => a.host.eventsOf('context-closed').length === 1, { within: 10_000 });
  const saved = JSON.parse(JSON.stringify(a.engine.exportCaches(sim.now))) as unknown;
  assert.ok(a.engine.exportCaches(sim.now).positive.some((e) => e.ulid === b.ulid));
  const { sim: sim2, a: a2 } = shimPair(3143);
  a2.engine.importCaches(sim2.now, saved as ReturnType<typeof a.engine.exportCaches>);
  assert.ok(a2.engine.exportCaches(sim2.now).positive.some((e) => e.ulid === b.ulid && e.locators.length === 2));
});

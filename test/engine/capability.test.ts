// Capability detection and priming details (docs/engine.md "Capability detection"):
// priming that lands while an I1 is pending, the independent probe not
// repeating once answered, the positive cache keeping what DNS said after a
// handshake, and a locator change during I2-SENT reaching the peer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { engineEvents, rebootShimHost, sendShim, shimPair } from '../sim/shim-hosts.ts';
import { sent, sentTypes } from '../sim/trace.ts';
import { State } from '../../shim/engine/index.ts';
import { tryDecodeMessage } from '../../shim/wire/index.ts';
import { I2_CYCLES_MAX, I2_RETRIES_MAX } from '../../shim/constants.ts';

const hints = (ls: readonly string[]) => ls.map((address, i) => ({ address, flags: 0, priority: i, weight: 0 }));

test('priming while an I1 to the dead ULID is pending: retransmissions try the primed locators and establish', () => {
  const { sim, a, b } = shimPair(101);
  sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
  sim.setLink(a.locators[1]!, b.ulid, { blackhole: true }, 'forward');
  sendShim(sim, a, b); // no context: traffic starts an exchange towards the ULID only
  sim.runFor(10);
  assert.equal(a.engine.status().contexts[0]?.state, State.I1_SENT);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns' });
  sim.runFor(2990);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(a.engine.status().contexts[0]!.pair.peer, b.locators[1]);
  assert.ok(!engineEvents(a).some((e) => e.kind === 'peer-unsupported'));
});

test('independent mode: once the probe is answered, further traffic does not probe again', () => {
  const { sim, a, b } = shimPair(103, { a: ({ b }) => ({ profile: 'rfc', peers: [{ ulid: b.ulid, mode: 'independent' }] }), b: { profile: 'rfc' } });
  for (let i = 0; i < 5; i++) { sendShim(sim, a, b); sim.runFor(500); }
  assert.deepEqual(sentTypes(sim).filter((t) => t !== 'payload'), ['I1', 'R1']);
  assert.equal(engineEvents(a).filter((e) => e.kind === 'peer-supported').length, 1);
  assert.equal(a.engine.contextCount + b.engine.contextCount, 0);
});

test('the positive cache keeps the DNS locators and port after the handshake (and after the context is gone)', () => {
  const { sim, a, b } = shimPair(105);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns', port: 7000 });
  sim.runFor(300);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  a.engine.close(sim.now, b.ulid);
  sim.runFor(500);
  assert.equal(a.engine.contextCount, 0);
  const pos = a.engine.exportCaches(sim.now).positive.find((e) => e.ulid === b.ulid);
  assert.ok(pos);
  assert.deepEqual(pos.locators.map((l) => l.address), b.locators);
  assert.equal(pos.source, 'dns');
  assert.equal(pos.port, 7000);
  assert.ok(pos.expires >= sim.now + 3_000_000, 'confirmed capability lives for positiveTtl (1 h)');
});

test('a locator change while our I2 is in flight reaches the peer by Update once R2 arrives', () => {
  const { sim, a, b } = shimPair(107);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: [], ttl: 60, source: 'configured' });
  sim.runFor(65); // I2 sent at 40, R2 in flight
  assert.equal(a.engine.status().contexts[0]?.state, State.I2_SENT);
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]! }]);
  sim.runFor(500);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  const upd = engineEvents(b).filter((e) => e.kind === 'locator-set-updated').at(-1);
  assert.ok(upd && upd.kind === 'locator-set-updated', 'the peer heard of the change');
  assert.deepEqual(upd.locators, [a.locators[0]]);
  assert.equal(sentTypes(sim, 'a').filter((t) => t === 'UpdateRequest').length, 1, 'exactly one Update Request');
});

test('one policy (docs/engine.md "Capability detection"): DNS absence does not refuse a later record; a claim that failed refuses the same claim; absence never overrides a handshake', () => {
  const { sim, a, b } = shimPair(109);
  // DNS said "no record" for B's address; then a record appears: the record is newer knowledge.
  a.engine.absent(sim.now, { addresses: [b.ulid], ttl: 600 });
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns' });
  sim.runFor(1000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  // A handshake taught A that B runs shim6: a later "no record" does not hold B down.
  a.engine.absent(sim.now, { addresses: [b.ulid], ttl: 600 });
  assert.equal(a.engine.exportCaches(sim.now).negative.length, 0);

  // C is claimed by DNS but runs nothing: the claim fails, and the same claim is refused until the hold-down ends.
  const c = '2001:db8:c1::1';
  a.engine.prime(sim.now, { ulid: c, locators: hints([c]), ttl: 60, source: 'dns' });
  for (let i = 0; i < 600 && !engineEvents(a).some((e) => e.kind === 'context-failed'); i++) sim.runFor(100);
  assert.deepEqual(a.engine.exportCaches(sim.now).negative.map((e) => [e.address, e.ulid, e.reason]), [[c, c, 'no-answer']]);
  const seen = a.host.events.length;
  a.engine.prime(sim.now, { ulid: c, locators: hints([c]), ttl: 60, source: 'dns' });
  sim.flush();
  assert.deepEqual(engineEvents(a).slice(seen).filter((e) => e.kind === 'peer-unsupported').map((e) => e.kind === 'peer-unsupported' && e.reason), ['negative-cache']);
  assert.equal(a.engine.status().contexts.filter((x) => x.peerUlid === c && x.state === State.I1_SENT).length, 0, 'no new I1');
});

test('a peer taken out of the configuration: its configured positive entry goes; what DNS said stays', () => {
  const { sim, a, b } = shimPair(109);
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 86_400, source: 'configured' });
  const positive = (): string[] => a.engine.exportCaches(sim.now).positive.filter((e) => e.ulid === b.ulid).map((e) => e.source);
  assert.deepEqual(positive(), ['configured']);
  assert.equal(a.engine.unconfigure(sim.now, b.ulid), true);
  assert.deepEqual(positive(), [], 'gone: not kept a day, not saved');
  assert.equal(a.engine.unconfigure(sim.now, b.ulid), false, 'nothing left to drop');
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns' });
  assert.equal(a.engine.unconfigure(sim.now, b.ulid), false);
  assert.deepEqual(positive(), ['dns'], 'DNS knowledge is not the configuration\'s to drop');
});

test('a restart after a peer was taken out of the configuration: its configured entry does not come back from the cache file; a peer still configured and what DNS said do', () => {
  const c = '2001:db8:c::1';
  const before = shimPair(110);
  const { sim, b } = before;
  before.a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 86_400, source: 'configured' });
  before.a.engine.prime(sim.now, { ulid: c, locators: [], ttl: 3600, source: 'dns' });
  const file = JSON.parse(JSON.stringify(before.a.engine.exportCaches(sim.now))) as ReturnType<typeof before.a.engine.exportCaches>;
  const imported = (peers: Array<{ ulid: string; mode: 'configured' | 'off' }>): Array<[string, string]> => {
    const { sim: s2, a } = shimPair(111, { a: { peers } });
    a.engine.importCaches(s2.now, file);
    return a.engine.exportCaches(s2.now).positive.map((e): [string, string] => [e.ulid, e.source]).sort();
  };
  assert.deepEqual(imported([]), [[c, 'dns']], 'taken out: not kept a day from the file');
  assert.deepEqual(imported([{ ulid: b.ulid, mode: 'off' }]), [[c, 'dns']], 'now "off": not configured any more');
  assert.deepEqual(imported([{ ulid: b.ulid, mode: 'configured' }]), [[b.ulid, 'configured'], [c, 'dns']].sort() as Array<[string, string]>);
});

test('a peer that answers every I1 and drops every I2 (it cannot verify our ULID): E-FAILED after I2_CYCLES_MAX cycles, not I1 → I2 forever', () => {
  const { sim, a, b } = shimPair(111);
  const isI2 = (p: { bytes: Uint8Array }): boolean => { const r = tryDecodeMessage(p.bytes); return r.ok && r.message.type === 'I2'; };
  for (const from of a.locators) for (const to of b.locators) sim.setLink(from, to, { dropIf: isI2 }, 'forward');
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 60, source: 'dns' });
  const failed = (): boolean => engineEvents(a).some((e) => e.kind === 'context-failed');
  for (let s = 0; s < 600 && !failed(); s++) sim.runFor(1000);
  assert.ok(a.engine.exportCaches(sim.now).negative.length >= 1, 'held down at once: a negative entry');
  sim.runFor(600_000); // and nothing more after the hold-down: the peer is not retried on its own
  const sent = sentTypes(sim, 'a').filter((t) => t === 'I1' || t === 'I2');
  assert.equal(sent.filter((t) => t === 'I2').length, I2_CYCLES_MAX * (I2_RETRIES_MAX + 1), `${I2_CYCLES_MAX} cycles of I2 and its retries: ${sent.join(' ')}`);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-failed' && e.peerUlid === b.ulid && e.reason === 'no-answer'), 'E-FAILED');
  assert.equal(b.engine.contextCount, 0);
});

test('the I2 cycles an establishment took count for that establishment only: a context that needed two, and falls back to I1 once in a later recovery, is not failed', () => {
  const { sim, a, b } = shimPair(113);
  const dropped = new Set<string>(['I2']);
  const drop = (p: { bytes: Uint8Array }): boolean => { const r = tryDecodeMessage(p.bytes); return r.ok && dropped.has(r.message.type); };
  for (const from of a.locators) for (const to of b.locators) sim.setLink(from, to, { dropIf: drop }, 'forward');
  const i2s = (): number => sentTypes(sim, 'a').filter((t) => t === 'I2').length;
  a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 600, source: 'dns' });
  // Two I2 cycles run out (each falls back to I1, §7.12), then the third I2 goes through.
  sim.driveUntil(() => i2s() === 2 * (I2_RETRIES_MAX + 1) + 1, { within: 60_000 });
  dropped.clear();
  sim.driveUntil(() => a.engine.status().contexts[0]?.state === State.ESTABLISHED, { within: 10_000 });
  // Later B loses the context; the recovery's I2bis and the next I2 cycle are lost: one fall back to I1.
  const fresh = rebootShimHost(sim, b);
  dropped.add('I2').add('I2bis');
  const before = i2s();
  sendShim(sim, a, fresh);
  sim.driveUntil(() => i2s() === before + I2_RETRIES_MAX + 1, { within: 60_000 });
  sim.driveUntil(() => a.engine.status().contexts[0]?.state !== State.I2_SENT, { within: 60_000 });
  dropped.clear();
  sim.driveUntil(() => a.engine.status().contexts[0]?.state === State.ESTABLISHED || engineEvents(a).some((e) => e.kind === 'context-failed'), { within: 60_000 });
  assert.ok(!engineEvents(a).some((e) => e.kind === 'context-failed'), 'not E-FAILED: this exchange ran out one I2 cycle');
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(a.engine.exportCaches(sim.now).negative.length, 0, 'no negative entry for a peer that answers');
});

test('a record that comes after host-based discovery found nothing starts the exchange at once: it lifts the address-wide hold-down, the failed context\'s included (it was ignored until the hold-down ended, and nothing started one then)', () => {
  for (const failure of ['no-answer', 'refused'] as const) {
    const { sim, a, b } = shimPair(115);
    sim.setLocatorBlackhole(b.ulid, true);
    assert.equal(a.engine.discover(sim.now, a.ulid, b.ulid), 'started');
    sim.flush();
    if (failure === 'refused') {
      // B's daemon is not running yet: its host answers the I1 with Port Unreachable.
      const i1 = sent(sim, 'a').find((l) => l.type === 'I1')!;
      assert.deepEqual(a.engine.handleIcmp(sim.now, { type: 1, code: 4, info: 0, offender: i1.dst, src: i1.src, dst: i1.dst, port: 5533, invoking: i1.bytes }), { kind: 'consumed' });
    }
    sim.driveUntil(() => engineEvents(a).some((e) => e.kind === 'context-failed'), { within: 60_000 });
    assert.deepEqual(a.engine.exportCaches(sim.now).negative.map((e) => [e.address, e.ulid, e.reason]), [[b.ulid, undefined, failure]]);
    sim.setLocatorBlackhole(b.ulid, false);
    a.engine.prime(sim.now, { ulid: b.ulid, locators: hints(b.locators), ttl: 600, source: 'dns' });
    sim.runFor(1000);
    assert.equal(a.engine.status().contexts.find((c) => c.peerUlid === b.ulid)?.state, State.ESTABLISHED, failure);
    assert.equal(a.engine.exportCaches(sim.now).negative.length, 0);
  }
});

test('status counts the capability entries that live: those expired are not counted (shim6_capability_cache_entries stayed at its peak after a burst, for as long as nothing touched them)', () => {
  const { sim, a } = shimPair(106);
  const addresses = Array.from({ length: 100 }, (_, i) => `2001:db8:f::${(i + 1).toString(16)}`);
  a.engine.absent(sim.now, { addresses, ttl: 60 }); // DNS: no record for these names
  assert.deepEqual(a.engine.status(sim.now).caches, { positive: 0, negative: 100 });
  sim.runFor(120_000);
  const s = a.engine.status(sim.now);
  assert.deepEqual(s.capability?.negative, [], 'listed: none left');
  assert.deepEqual(s.caches, { positive: 0, negative: 0 }, 'counted: none either');
});

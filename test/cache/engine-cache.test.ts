// LruCapabilityCache behind the Engine's CapabilityCache interface: one
// vocabulary, files of earlier versions read, bounds and TTLs as the engine sees them, validated
// import, and the real Engine using it in the simulator (legacy peer → negative
// entry; DNS priming → positive entry; export → JSON → import across a restart).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LruCapabilityCache } from '../../shim/cache/engine-cache.ts';
import { CacheDataError } from '../../shim/cache/index.ts';
import { Engine, NEGATIVE_REASONS } from '../../shim/engine/index.ts';
import type { CacheSnapshot } from '../../shim/engine/index.ts';
import { ms } from '../../shim/time.ts';
import { Sim } from '../sim/sim.ts';
import { LegacyEndpoint } from '../sim/legacy.ts';
import { baseConfig, hbaIdentity, A_PREFIXES, B_PREFIXES } from '../sim/shim-hosts.ts';
import type { SimEndpoint } from '../sim/endpoint.ts';
import { formatStatus } from '../../cli/commands/status.ts';

const T0 = ms(5_000_000);
const loc = (address: string) => ({ address, flags: 0, priority: 0, weight: 1 });

test('one vocabulary: what the engine stores is what it reads back, expiry against the engine\'s now', () => {
  const c = new LruCapabilityCache();
  c.setPositive(T0, { ulid: '2001:db8::1', source: 'configured', locators: [loc('2001:db8::1')], expires: ms(T0 + 1000), port: 6000 });
  assert.deepEqual(c.getPositive(T0, '2001:db8::1'), { ulid: '2001:db8::1', source: 'configured', locators: [loc('2001:db8::1')], expires: T0 + 1000, port: 6000 });
  assert.equal(c.getPositive(ms(T0 + 1000), '2001:db8::1'), undefined);
  for (const reason of NEGATIVE_REASONS) {
    c.setNegative(T0, { address: '2001:db8::9', reason, expires: ms(T0 + 500) });
    assert.equal(c.getNegative(T0, '2001:db8::9')?.reason, reason, 'nothing lost on the way (the old translation turned configured into dns-absent)');
  }
  c.setNegative(T0, { address: '2001:db8::8', ulid: '2001:db8::7', reason: 'no-answer', expires: ms(T0 + 500) });
  assert.equal(c.getNegative(T0, '2001:db8::8'), undefined);
  assert.deepEqual(c.getNegative(T0, '2001:db8::8', '2001:db8::7'), { address: '2001:db8::8', ulid: '2001:db8::7', reason: 'no-answer', expires: T0 + 500 });
  c.deleteNegative('2001:db8::8', '2001:db8::7');
  assert.equal(c.getNegative(T0, '2001:db8::8', '2001:db8::7'), undefined);
  assert.deepEqual(c.size(), { positive: 0, negative: 1 });
});

test('a peer learnt from a handshake (no locators) survives export → import; files of earlier versions are read', () => {
  const c = new LruCapabilityCache();
  c.setPositive(T0, { ulid: '2001:db8::1', source: 'handshake', locators: [], expires: ms(T0 + 1000) });
  const d = new LruCapabilityCache();
  d.import(T0, JSON.parse(JSON.stringify(c.export(T0))) as CacheSnapshot);
  assert.equal(d.getPositive(T0, '2001:db8::1')?.source, 'handshake');
  // What the daemon wrote before (the engine's old words, no version) and version 1 (the cache's old words).
  const old = { positive: [{ ulid: '2001:db8::2', source: 'configured', locators: [loc('2001:db8::2')], expires: T0 + 1000 }], negative: [
    { address: '2001:db8::9', reason: 'dns-absent', expires: T0 + 1000 }, { address: '2001:db8::8', ulid: '2001:db8::7', reason: 'dns-claimed-no-answer', expires: T0 + 1000 },
    { address: '2001:db8::6', reason: 'icmp', expires: T0 + 1000 }] };
  const e = new LruCapabilityCache();
  e.import(T0, old as unknown as CacheSnapshot);
  assert.deepEqual([e.getNegative(T0, '2001:db8::9')?.reason, e.getNegative(T0, '2001:db8::8', '2001:db8::7')?.reason, e.getNegative(T0, '2001:db8::6')?.reason], ['no-record', 'no-answer', 'refused']);
  const v1 = { version: 1, positive: [{ ulid: '2001:db8::3', source: 'config', locators: [loc('2001:db8::3')], expires: T0 + 1000 }], negative: [{ address: '2001:db8::5', source: 'config', reason: 'config', expires: T0 + 1000 }] };
  e.import(T0, v1 as unknown as CacheSnapshot);
  assert.equal(e.getPositive(T0, '2001:db8::3')?.source, 'configured');
  assert.equal(e.getNegative(T0, '2001:db8::5')?.reason, 'configured');
  assert.equal(e.export(T0).version, 2);
});

test('bounded: the engine cannot grow it past maxEntries', () => {
  const c = new LruCapabilityCache({ positive: { maxEntries: 100 }, negative: { maxEntries: 50 } });
  for (let i = 0; i < 1000; i++) {
    c.setPositive(T0, { ulid: `2001:db8::${i.toString(16)}`, source: 'handshake', locators: [], expires: ms(T0 + 1e6) } as never);
    c.setNegative(T0, { address: `2001:db8:1::${i.toString(16)}`, reason: 'no-answer', expires: ms(T0 + 1e6) });
  }
  assert.deepEqual(c.size(), { positive: 100, negative: 50 });
});

test('import of a snapshot read from disk: validated, typed error, nothing half-applied', () => {
  const c = new LruCapabilityCache();
  c.setNegative(T0, { address: '2001:db8::9', reason: 'refused', expires: ms(T0 + 500) });
  const bad = { positive: [{ ulid: 'not-an-address', source: 'dns', locators: [loc('2001:db8::1')], expires: T0 + 10 }], negative: [] };
  assert.throws(() => c.import(T0, bad as unknown as CacheSnapshot), (e: unknown) => e instanceof CacheDataError && e.code === 'ECACHE_ENTRY' && e.path === '$.positive[0].ulid');
  assert.throws(() => c.import(T0, 'garbage' as unknown as CacheSnapshot), (e: unknown) => e instanceof CacheDataError && e.code === 'ECACHE_FORMAT');
  assert.throws(() => c.import(T0, { positive: [], negative: [{ address: '2001:db8::1', reason: 'bored', expires: T0 + 9 }] } as unknown as CacheSnapshot), CacheDataError);
  assert.deepEqual(c.size(), { positive: 0, negative: 1 });
  const good = JSON.parse(JSON.stringify(c.export(T0))) as CacheSnapshot;
  const d = new LruCapabilityCache();
  d.import(T0, good);
  assert.equal(d.getNegative(T0, '2001:db8::9')?.reason, 'refused');
});

/** A (the real Engine on `cache`) and a legacy B: A's traffic to B fails, which leaves a hold-down by address. */
function legacyPeerRun(seed: number) {
  const sim = new Sim(seed);
  const aId = hbaIdentity(A_PREFIXES, sim.rng.fork());
  const bId = hbaIdentity(B_PREFIXES, sim.rng.fork());
  const cId = hbaIdentity(['2001:db8:c1::/64'], sim.rng.fork());
  const cache = new LruCapabilityCache();
  let engine: Engine | undefined;
  const a = sim.addHost({ name: 'a', locators: aId.locators }, (s) => {
    engine = new Engine(baseConfig(aId), s.rng, { cache });
    return engine as unknown as SimEndpoint;
  });
  sim.addHost({ name: 'b', locators: bId.locators }, () => new LegacyEndpoint());
  sim.connectHosts(a, sim.host('b'), { delay: ms(20) });
  sim.send(a, bId.ulid);
  sim.driveUntil(() => a.eventsOf('peer-unsupported').length === 1, { within: 60_000 });
  return { sim, aId, bId, cId, cache, engine: engine! };
}

test('the real Engine on the LRU caches: a legacy peer lands in the negative cache, DNS priming in the positive one, both survive a restart', () => {
  const { sim, aId, bId, cId, cache, engine } = legacyPeerRun(8101);
  assert.ok(cache.caches.negative.lookup(sim.now, bId.ulid), 'the engine wrote the hold-down into the LRU cache');
  engine.prime(sim.now, { ulid: cId.ulid, locators: [loc(cId.ulid)], ttl: 600, source: 'dns' });
  assert.equal(cache.caches.positive.lookup(sim.now, cId.ulid)?.source, 'dns');
  const saved = JSON.parse(JSON.stringify(engine.exportCaches(sim.now))) as CacheSnapshot;
  const cache2 = new LruCapabilityCache();
  const e2 = new Engine(baseConfig(aId), sim.rng.fork(), { cache: cache2 });
  e2.importCaches(sim.now, saved);
  assert.ok(cache2.caches.negative.lookup(sim.now, bId.ulid));
  assert.ok(cache2.caches.positive.lookup(sim.now, cId.ulid));
  assert.throws(() => e2.importCaches(sim.now, { positive: [{}], negative: [] } as unknown as CacheSnapshot), CacheDataError);
});

test('Engine.status(now) lists the capability caches entry by entry: positive by ULID, negative by peer address, with reason, source and remaining lifetime; shim6 status prints them', () => {
  const { sim, bId, cId, engine } = legacyPeerRun(8102);
  const now = sim.now;
  engine.prime(now, { ulid: cId.ulid, locators: [loc(cId.ulid), loc('2001:db8:c2::1')], ttl: 600, source: 'dns', port: 6000 });
  engine.absent(now, { addresses: ['2001:db8:d1::1'], ttl: 90.5 }); // as EngineSink.absent does
  assert.equal(engine.status().capability, undefined, 'no `now`, no lifetimes: sizes only');
  const st = engine.status(ms(now + 1000)).capability!;
  assert.deepEqual(st.positive, [{ ulid: cId.ulid, source: 'dns', locators: [cId.ulid, '2001:db8:c2::1'], port: 6000, ttl: 599 }]);
  const byAddress = new Map(st.negative.map((e) => [e.address, e]));
  const legacy = byAddress.get(bId.ulid);
  assert.ok(legacy && (legacy.reason === 'refused' || legacy.reason === 'no-answer') && legacy.source === 'handshake' && legacy.ttl > 0, JSON.stringify(st.negative));
  assert.deepEqual(byAddress.get('2001:db8:d1::1'), { address: '2001:db8:d1::1', reason: 'no-record', source: 'dns', ttl: 89 });
  const text = formatStatus({ engine: engine.status(ms(now + 1000)) as never });
  assert.match(text, /engine capability cache \(positive, by ULID\): 1\n {2}ulid=2001:db8:c1:\S+ source=dns locators=\S+,2001:db8:c2::1 ttl=599 port=6000\n/);
  assert.match(text, /engine capability cache \(negative, by peer address\): 2\n/);
  assert.match(text, / {2}address=2001:db8:d1::1 reason=no-record source=dns ttl=89\n/);
  // Expired entries are not listed.
  assert.deepEqual(engine.status(ms(now + 700_000)).capability, { positive: [], negative: [] });
});

// Capability caches: TTLs against an injected `now`, LRU bounds, the address vs
// address+ULID keying of negative entries, and export/import through JSON.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CapabilityCaches, NegativeCache, PositiveCache } from '../../shim/cache/index.ts';
import { ms } from '../../shim/time.ts';

const loc = (address: string, priority = 0) => ({ address, flags: 0, priority, weight: 1 });
const T0 = ms(1_700_000_000_000);

test('positive entries expire exactly at now + ttl, with no clock read', () => {
  const c = new PositiveCache();
  c.remember(T0, { ulid: '2001:db8:a::1', locators: [loc('2001:db8:a::1')], source: 'dns', ttl: ms(300_000) });
  assert.equal(c.lookup(ms(T0 + 299_999), '2001:db8:a::1')?.source, 'dns');
  assert.equal(c.lookup(ms(T0 + 300_000), '2001:db8:a::1'), undefined);
  assert.equal(c.size, 0, 'an expired entry is removed when touched');
});

test('ttl 0 stores nothing and forgets (it never means "forever")', () => {
  const c = new PositiveCache();
  c.remember(T0, { ulid: '2001:db8::1', locators: [loc('2001:db8::1')], source: 'dns', ttl: ms(60_000) });
  assert.equal(c.remember(T0, { ulid: '2001:db8::1', locators: [loc('2001:db8::1')], source: 'dns', ttl: ms(0) }), undefined);
  assert.equal(c.lookup(T0, '2001:db8::1'), undefined);
  const n = new NegativeCache();
  n.remember(T0, { address: '2001:db8::9', reason: 'no-record', ttl: ms(0) });
  assert.equal(n.lookup(T0, '2001:db8::9'), undefined);
});

test('TTLs are cut to maxTtl', () => {
  const c = new PositiveCache({ maxTtl: ms(1000) });
  const e = c.remember(T0, { ulid: '2001:db8::1', locators: [loc('2001:db8::1')], source: 'configured', ttl: ms(86_400_000) });
  assert.equal(e?.expires, T0 + 1000);
  assert.equal(c.lookup(ms(T0 + 1000), '2001:db8::1'), undefined);
});

test('bounded in entries: the least recently used goes first', () => {
  const c = new PositiveCache({ maxEntries: 3 });
  for (let i = 1; i <= 3; i++) c.remember(T0, { ulid: `2001:db8::${i}`, locators: [loc(`2001:db8::${i}`)], source: 'dns', ttl: ms(1e6) });
  assert.ok(c.lookup(T0, '2001:db8::1'), 'touch ::1 so ::2 is now the oldest');
  c.remember(T0, { ulid: '2001:db8::4', locators: [loc('2001:db8::4')], source: 'dns', ttl: ms(1e6) });
  assert.equal(c.size, 3);
  assert.equal(c.lookup(T0, '2001:db8::2'), undefined);
  for (const a of ['2001:db8::1', '2001:db8::3', '2001:db8::4']) assert.ok(c.lookup(T0, a), a);
  const n = new NegativeCache({ maxEntries: 2 });
  for (let i = 1; i <= 5; i++) n.remember(T0, { address: `2001:db8::${i}`, reason: 'no-answer', ttl: ms(1e6) });
  assert.equal(n.size, 2);
});

test('addresses are canonicalised: any spelling finds the entry', () => {
  const c = new PositiveCache();
  c.remember(T0, { ulid: '2001:DB8:0:0::0001', locators: [loc('2001:db8:0::1')], source: 'dns', ttl: ms(1e6) });
  assert.equal(c.lookup(T0, '2001:db8::1')?.ulid, '2001:db8::1');
  assert.equal(c.lookup(T0, '2001:db8::1')?.locators[0]?.address, '2001:db8::1');
});

test('negative entries: by address, or by address + ULID only for that ULID', () => {
  const n = new NegativeCache();
  n.remember(T0, { address: '2001:db8::b', ulid: '2001:db8::a1', reason: 'no-answer', ttl: ms(60_000) });
  assert.equal(n.lookup(T0, '2001:db8::b', '2001:db8::a1')?.reason, 'no-answer');
  assert.equal(n.lookup(T0, '2001:db8::b', '2001:db8::a2'), undefined, 'another ULID at the same address may be tried');
  assert.equal(n.lookup(T0, '2001:db8::b'), undefined, 'no address-wide hold-down');
  n.remember(T0, { address: '2001:db8::b', reason: 'refused', ttl: ms(10_000) });
  assert.equal(n.lookup(T0, '2001:db8::b', '2001:db8::a2')?.reason, 'refused', 'an address-wide entry holds every ULID down');
  assert.equal(n.lookup(ms(T0 + 10_000), '2001:db8::b', '2001:db8::a2'), undefined);
  assert.equal(n.lookup(ms(T0 + 10_000), '2001:db8::b', '2001:db8::a1')?.ulid, '2001:db8::a1');
  assert.equal(n.lookup(ms(T0 + 60_000), '2001:db8::b', '2001:db8::a1'), undefined);
});

test('supported() lifts hold-downs on the ULID and every locator; unsupported() drops the claim', () => {
  const c = new CapabilityCaches();
  c.unsupported(T0, { address: '2001:db8:1::1', reason: 'no-answer', ttl: ms(60_000) });
  c.unsupported(T0, { address: '2001:db8:2::1', ulid: '2001:db8:1::1', reason: 'no-answer', ttl: ms(60_000) });
  assert.equal(c.verdict(T0, '2001:db8:1::1').kind, 'unsupported');
  c.supported(T0, { ulid: '2001:db8:1::1', locators: [loc('2001:db8:1::1'), loc('2001:db8:2::1', 1)], source: 'handshake', ttl: ms(600_000) });
  const v = c.verdict(T0, '2001:db8:1::1');
  assert.equal(v.kind, 'supported');
  assert.equal(c.negative.size, 0);
  c.unsupported(T0, { address: '2001:db8:2::1', ulid: '2001:db8:1::1', reason: 'refused', ttl: ms(60_000) });
  const v2 = c.verdict(T0, '2001:db8:1::1', '2001:db8:2::1');
  assert.equal(v2.kind, 'unsupported');
  assert.equal(v2.kind === 'unsupported' && v2.entry.reason, 'refused');
  assert.equal(c.verdict(T0, '2001:db8:9::9').kind, 'unknown');
});

test('export → JSON → import round-trips, drops expired entries and keeps recency order', () => {
  const a = new CapabilityCaches();
  a.supported(T0, { ulid: '2001:db8::1', locators: [loc('2001:db8::1'), loc('2001:db8:1::1', 2)], source: 'dns', ttl: ms(100_000), port: 6000 });
  a.supported(T0, { ulid: '2001:db8::2', locators: [loc('2001:db8::2')], source: 'handshake', ttl: ms(10_000) });
  a.supported(T0, { ulid: '2001:db8::3', locators: [loc('2001:db8::3')], source: 'configured', ttl: ms(100_000) });
  a.unsupported(T0, { address: '2001:db8::9', reason: 'no-record', ttl: ms(100_000) });
  a.unsupported(T0, { address: '2001:db8::8', ulid: '2001:db8::7', reason: 'no-answer', ttl: ms(5_000) });
  a.positive.lookup(T0, '2001:db8::1');
  const json = JSON.parse(JSON.stringify(a.export(T0))) as unknown;
  const b = new CapabilityCaches();
  const later = ms(T0 + 20_000);
  const r = b.import(later, json);
  assert.deepEqual(r, { positive: 2, negative: 1, skipped: 2 });
  assert.deepEqual(b.positive.entries(later).map((e) => e.ulid), ['2001:db8::3', '2001:db8::1']);
  assert.deepEqual(b.positive.lookup(later, '2001:db8::1'), a.positive.lookup(T0, '2001:db8::1'));
  assert.equal(b.positive.lookup(later, '2001:db8::1')?.port, 6000);
  assert.equal(b.negative.lookup(later, '2001:db8::9')?.reason, 'no-record');
  assert.equal(b.negative.lookup(later, '2001:db8::8', '2001:db8::7'), undefined, 'expired while on disk');
});

test('import: live entries win and imported expiries are cut to maxTtl', () => {
  const c = new CapabilityCaches({ positive: { maxTtl: ms(1000) } });
  c.supported(T0, { ulid: '2001:db8::1', locators: [loc('2001:db8::1')], source: 'handshake', ttl: ms(1000) });
  const r = c.import(T0, {
    version: 1,
    positive: [
      { ulid: '2001:db8::1', locators: [loc('2001:db8::5')], source: 'dns', expires: T0 + 500 },
      { ulid: '2001:db8::2', locators: [loc('2001:db8::2')], source: 'dns', expires: T0 + 1e12 },
    ],
    negative: [],
  });
  assert.deepEqual(r, { positive: 1, negative: 0, skipped: 1 });
  assert.equal(c.positive.lookup(T0, '2001:db8::1')?.source, 'handshake');
  assert.equal(c.positive.lookup(T0, '2001:db8::2')?.expires, T0 + 1000);
});

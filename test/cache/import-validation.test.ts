// import() reads a file from disk: every malformed input must give a
// CacheDataError with a stable code and leave the caches untouched — never a
// TypeError or a half-applied import. Seeded fuzzing (fast-check) on top.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CacheDataError, CapabilityCaches } from '../../shim/cache/index.ts';
import { ms } from '../../shim/time.ts';
import { fuzzParams } from '../helpers/rng.ts';

const T0 = ms(1_700_000_000_000);
const goodPos = { ulid: '2001:db8::1', locators: [{ address: '2001:db8::1', flags: 0, priority: 0, weight: 1 }], source: 'dns', expires: T0 + 1000 };
const goodNeg = { address: '2001:db8::9', reason: 'no-record', expires: T0 + 1000 };
const file = (positive: unknown[], negative: unknown[] = []): unknown => ({ version: 2, positive, negative });

const cases: Array<[string, unknown, string, string]> = [
  ['null', null, 'ECACHE_FORMAT', '$'],
  ['array', [], 'ECACHE_FORMAT', '$'],
  ['string', 'x', 'ECACHE_FORMAT', '$'],
  ['version 3', { version: 3, positive: [], negative: [] }, 'ECACHE_VERSION', '$.version'],
  ['version "2"', { version: '2', positive: [], negative: [] }, 'ECACHE_VERSION', '$.version'],
  ['positive not array', { version: 2, positive: {}, negative: [] }, 'ECACHE_FORMAT', '$.positive'],
  ['negative missing', { version: 2, positive: [] }, 'ECACHE_FORMAT', '$.negative'],
  ['entry null', file([null]), 'ECACHE_ENTRY', '$.positive[0]'],
  ['bad ulid', file([{ ...goodPos, ulid: '10.0.0.1' }]), 'ECACHE_ENTRY', '$.positive[0].ulid'],
  ['ulid number', file([{ ...goodPos, ulid: 7 }]), 'ECACHE_ENTRY', '$.positive[0].ulid'],
  ['locators not a list', file([{ ...goodPos, locators: {} }]), 'ECACHE_ENTRY', '$.positive[0].locators'],
  ['an old word in a version 2 file', file([], [{ ...goodNeg, reason: 'no-r1' }]), 'ECACHE_ENTRY', '$.negative[0].reason'],
  ['33 locators', file([{ ...goodPos, locators: new Array(33).fill(goodPos.locators[0]) }]), 'ECACHE_ENTRY', '$.positive[0].locators'],
  ['locator priority 256', file([{ ...goodPos, locators: [{ ...goodPos.locators[0], priority: 256 }] }]), 'ECACHE_ENTRY', '$.positive[0].locators[0].priority'],
  ['locator flags float', file([{ ...goodPos, locators: [{ ...goodPos.locators[0], flags: 0.5 }] }]), 'ECACHE_ENTRY', '$.positive[0].locators[0].flags'],
  ['bad source', file([{ ...goodPos, source: 'rumour' }]), 'ECACHE_ENTRY', '$.positive[0].source'],
  ['expires string', file([{ ...goodPos, expires: '1' }]), 'ECACHE_ENTRY', '$.positive[0].expires'],
  ['expires NaN', file([{ ...goodPos, expires: NaN }]), 'ECACHE_ENTRY', '$.positive[0].expires'],
  ['port 0', file([{ ...goodPos, port: 0 }]), 'ECACHE_ENTRY', '$.positive[0].port'],
  ['bad reason', file([], [{ ...goodNeg, reason: 'dunno' }]), 'ECACHE_ENTRY', '$.negative[0].reason'],
  ['bad neg ulid', file([], [{ ...goodNeg, ulid: 'fe80::1%eth0' }]), 'ECACHE_ENTRY', '$.negative[0].ulid'],
  ['second entry bad', file([goodPos, { ...goodPos, ulid: 'zz' }]), 'ECACHE_ENTRY', '$.positive[1].ulid'],
];

for (const [name, data, code, path] of cases) {
  test(`import rejects ${name} with ${code} at ${path} and changes nothing`, () => {
    const c = new CapabilityCaches();
    c.unsupported(T0, { address: '2001:db8::77', reason: 'configured', ttl: ms(1000) });
    const before = JSON.stringify(c.export(T0));
    assert.throws(() => c.import(T0, data), (e: unknown) => e instanceof CacheDataError && e.code === code && e.path === path);
    assert.equal(JSON.stringify(c.export(T0)), before);
  });
}

test('fuzz: arbitrary JSON and mutated exports only ever throw CacheDataError', (t) => {
  const entryish = fc.record({
    ulid: fc.oneof(fc.constant('2001:db8::1'), fc.string(), fc.integer()),
    address: fc.oneof(fc.constant('2001:db8::2'), fc.ipV6(), fc.string()),
    locators: fc.oneof(fc.constant(goodPos.locators), fc.array(fc.anything(), { maxLength: 3 }), fc.anything()),
    source: fc.oneof(fc.constantFrom('dns', 'config', 'probe', 'handshake'), fc.string()),
    reason: fc.oneof(fc.constantFrom('no-record', 'refused', 'no-answer', 'config'), fc.anything()),
    expires: fc.oneof(fc.double(), fc.constant(T0 + 5), fc.anything()),
    port: fc.oneof(fc.constant(undefined), fc.integer({ min: -5, max: 70_000 })),
  }, { requiredKeys: [] });
  const input = fc.oneof(
    fc.anything(),
    fc.record({ version: fc.oneof(fc.constant(1), fc.anything()), positive: fc.array(entryish, { maxLength: 4 }), negative: fc.array(entryish, { maxLength: 4 }) }),
  );
  fc.assert(fc.property(input, (data) => {
    const c = new CapabilityCaches();
    try {
      const r = c.import(T0, data);
      // Whatever was accepted must look up and export cleanly.
      for (const e of c.positive.entries(T0)) assert.ok(c.positive.lookup(T0, e.ulid));
      assert.equal(c.export(T0).positive.length + c.export(T0).negative.length, r.positive + r.negative);
    } catch (e) {
      if (!(e instanceof CacheDataError)) throw e;
    }
  }), fuzzParams(t, { seed: 5533, numRuns: 500 }));
});

// The resolver's LRU map (resolver/lru.ts) against a reference model, and its bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { halfSipHash, keyedStringHash, Lru } from '../../resolver/lru.ts';
import { fuzzParams } from '../helpers/rng.ts';

/** The reference: a Map in recency order (least recent first), bounded the same way. */
class Model {
  readonly m = new Map<number, string>();
  total = 0;
  constructor(readonly max: number, readonly maxSize: number) {}
  get(k: number): string | undefined {
    const v = this.m.get(k);
    if (v !== undefined) { this.m.delete(k); this.m.set(k, v); }
    return v;
  }
  peek(k: number): string | undefined { return this.m.get(k); }
  delete(k: number): boolean {
    const v = this.m.get(k);
    if (v === undefined) return false;
    this.total -= v.length;
    return this.m.delete(k);
  }
  set(k: number, v: string): void {
    if (v.length > this.maxSize) { this.delete(k); return; }
    const old = this.m.get(k);
    if (old !== undefined) { this.total -= old.length; this.m.delete(k); } else if (this.m.size >= this.max) this.delete(this.m.keys().next().value!);
    this.m.set(k, v);
    this.total += v.length;
    while (this.total > this.maxSize && this.m.size > 1) this.delete(this.m.keys().next().value!);
  }
}

type Op = { op: 'get' | 'peek' | 'delete'; k: number } | { op: 'set'; k: number; v: string } | { op: 'clear' };
const op: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constantFrom('get' as const, 'peek' as const, 'delete' as const), k: fc.integer({ min: 0, max: 40 }) }), weight: 10 },
  { arbitrary: fc.record({ op: fc.constant('set' as const), k: fc.integer({ min: 0, max: 40 }), v: fc.string({ maxLength: 12 }) }), weight: 10 },
  { arbitrary: fc.record({ op: fc.constant('clear' as const) }), weight: 1 },
);

/** The key table's hash (LruOptions.hash): the strings' own, spread, a few places, or one place for every key (each run collides). */
const ownHash = keyedStringHash();
const HASHES: ReadonlyArray<(k: number) => number> = [(k) => ownHash(String(k)), (k) => Math.imul(k, 0x9e3779b1) >>> 0, (k) => k % 3, () => 7, () => 0xffffffff];

test('Lru behaves as the reference model: values, recency, eviction by count and by size, whatever the keys\' hashes', (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: HASHES.length - 1 }), fc.array(op, { maxLength: 400 }), (max, maxSize, h, ops) => {
    const sized = maxSize < 50;
    const hash = HASHES[h]!;
    const lru = new Lru<number, string>({ max, ...(sized ? { maxSize, sizeOf: (v: string) => v.length } : {}), hash });
    const model = new Model(max, sized ? maxSize : Infinity);
    for (const o of ops) {
      if (o.op === 'get') assert.equal(lru.get(o.k), model.get(o.k));
      else if (o.op === 'peek') assert.equal(lru.peek(o.k), model.peek(o.k));
      else if (o.op === 'delete') assert.equal(lru.delete(o.k), model.delete(o.k));
      else if (o.op === 'set') { lru.set(o.k, o.v); model.set(o.k, o.v); } else { lru.clear(); model.m.clear(); model.total = 0; }
      if (o.op !== 'clear') assert.equal(lru.has(o.k), model.m.has(o.k));
      assert.equal(lru.size, model.m.size);
      if (sized) assert.equal(lru.calculatedSize, model.total);
    }
    // Most recent first, as lru-cache's entries().
    assert.deepEqual([...lru.entries()], [...model.m.entries()].reverse());
  }), fuzzParams(t, { numRuns: 300 }));
});

test('Lru holds at most max entries and grows its slots past the first 1024', () => {
  const lru = new Lru<string, number>({ max: 5000 });
  for (let i = 0; i < 12_000; i++) lru.set(`k${i}`, i);
  assert.equal(lru.size, 5000);
  assert.equal(lru.get('k6999'), undefined);
  assert.equal(lru.get('k7000'), 7000);
  assert.equal(lru.get('k11999'), 11999);
  assert.throws(() => new Lru<string, string>({ max: 0 }), RangeError);
});

test('Lru does not store an entry larger than maxSize, and drops the key it replaced', () => {
  const lru = new Lru<string, string>({ max: 10, maxSize: 5, sizeOf: (v) => v.length });
  lru.set('a', 'abc');
  lru.set('a', 'abcdef');
  assert.equal(lru.get('a'), undefined);
  assert.equal(lru.calculatedSize, 0);
  lru.set('b', 'ab');
  lru.set('c', 'abcd'); // 6 > 5: the least recent ('b') goes
  assert.deepEqual([...lru.entries()], [['c', 'abcd']]);
});

test('Lru\'s key table: keys that all hash alike stay reachable through deletes, growth and clear', () => {
  // One run of 300 keys: every look-up probes past the others, every delete moves the run back.
  const lru = new Lru<string, number>({ max: 1000, hash: () => 0 });
  for (let i = 0; i < 300; i++) lru.set(`k${i}`, i);
  for (let i = 0; i < 290; i += 2) assert.equal(lru.delete(`k${i}`), true);
  for (let i = 1; i < 290; i += 2) assert.equal(lru.get(`k${i}`), i);
  for (let i = 0; i < 290; i += 2) assert.equal(lru.has(`k${i}`), false);
  for (let i = 1; i < 300; i += 2) assert.equal(lru.delete(`k${i}`), true);
  for (let i = 290; i < 300; i += 2) assert.equal(lru.get(`k${i}`), i);
  assert.equal(lru.size, 5);
  lru.clear();
  assert.equal(lru.get('k290'), undefined);
  lru.set('after', 2);
  assert.equal(lru.get('after'), 2);
});

test('Lru behaves as the reference model with thousands of keys: the key table grows, wraps around and evicts', () => {
  // The property test above keeps 41 keys; here the table doubles several times (1024 places first).
  for (const hash of HASHES.slice(0, 3)) {
    const lru = new Lru<number, string>({ max: 3000, hash });
    const model = new Model(3000, Infinity);
    let x = 12345;
    const rnd = (n: number): number => { x = (Math.imul(x, 1103515245) + 12345) >>> 0; return x % n; };
    for (let n = 0; n < 40_000; n++) {
      const k = rnd(6000);
      const r = rnd(10);
      if (r < 5) { lru.set(k, `v${n}`); model.set(k, `v${n}`); } else if (r < 8) assert.equal(lru.get(k), model.get(k)); else assert.equal(lru.delete(k), model.delete(k));
      assert.equal(lru.size, model.m.size);
    }
    assert.deepEqual([...lru.entries()], [...model.m.entries()].reverse());
  }
});

test('halfSipHash gives the reference implementation\'s HalfSipHash-2-4 vectors (key 00…07, messages 00…n−1)', () => {
  // github.com/veorq/SipHash vectors.h, vectors_hsip32, the first 12.
  const want = [0x5b9f35a9, 0xb85a4727, 0x03a662fa, 0x04e7fe8a, 0x89466e2a, 0x69b6fac5, 0x23fc6358, 0xc563cf8b, 0x8f84b8d0, 0x79e706f8, 0x3479b094, 0x50300808];
  want.forEach((w, n) => {
    const msg = String.fromCharCode(...Array.from({ length: n }, (_, i) => i));
    assert.equal(halfSipHash(msg, 0x03020100, 0x07060504, 2, 4), w, `length ${n}`);
  });
});

test('keyed string hashes: names that collide under one key spread under another, and 10,000 names land in more than 8,500 of 65,536 places', () => {
  const names = Array.from({ length: 40_000 }, (_, i) => `\x08host${i}\x07example\x00`);
  // A flood chosen against one key: the names that share its 10 low bits with the most others.
  const a = keyedStringHash();
  const byPlace = new Map<number, string[]>();
  for (const n of names) { const p = a(n) & 1023; const at = byPlace.get(p); if (at) at.push(n); else byPlace.set(p, [n]); }
  const flood = [...byPlace.values()].sort((x, y) => y.length - x.length)[0]!;
  assert.ok(flood.length >= 40, `${flood.length} names in one place`);
  // Under the key of another table they are spread like any names (40-odd over 1,024 places).
  const b = keyedStringHash();
  const places = new Map<number, number>();
  for (const n of flood) { const p = b(n) & 1023; places.set(p, (places.get(p) ?? 0) + 1); }
  assert.ok(Math.max(...places.values()) <= 4, `at most ${Math.max(...places.values())} in one place`);
  const used = new Set<number>();
  for (let i = 0; i < 10_000; i++) used.add(b(names[i]!) & 0xffff);
  // Uniform hashing: 65,536 × (1 − e^(−10000/65536)) ≈ 9,270.
  assert.ok(used.size > 8_500, `${used.size} places`);
});

// Locator-pair order (shim/engine/pairs.ts): after a failed pair, the pairs
// that share no locator with it come first, then the rest; preference within.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { commonPrefixLen, disjoint, rankedPairs, tryOrder } from '../../shim/engine/pairs.ts';

const aP = '2001:db8:1::a', aQ = '2001:db8:2::a', aR = '2001:db8:3::a';
const bP = '2001:db8:1::b', bQ = '2001:db8:2::b';
const peer = (address: string, priority = 0, weight = 0) => ({ address, priority, weight });

test('commonPrefixLen counts leading equal bits (RFC 6724 §2.2)', () => {
  assert.equal(commonPrefixLen('2001:db8::1', '2001:db8::1'), 128);
  assert.equal(commonPrefixLen('2001:db8:1::a', '2001:db8:2::b'), 46);
  assert.equal(commonPrefixLen('::', '8000::'), 0);
  assert.equal(commonPrefixLen('fe80::1', '::ffff:1.2.3.4'), 0, 'unparsable (dotted) → 0, never throws');
});

test('2 × 2: after (P,P) fails, (Q,Q) comes next, then the crossed pairs', () => {
  const order = tryOrder({ local: aP, peer: bP }, rankedPairs([aP, aQ], [peer(bP), peer(bQ)]));
  assert.deepEqual(order, [
    { local: aP, peer: bP }, { local: aQ, peer: bQ }, { local: aP, peer: bQ }, { local: aQ, peer: bP },
  ]);
  for (let i = 1; i < 2; i++) assert.ok(disjoint(order[i]!, order[i - 1]!));
});

test('preference: peer priority first, then the longer common prefix (same subnet), then our order', () => {
  const r = rankedPairs([aP, aQ], [peer(bQ, 1), peer(bP, 0)]);
  assert.deepEqual(r.slice(0, 2), [{ local: aP, peer: bP }, { local: aQ, peer: bP }], 'bP has the better priority; aP shares its subnet');
  const order = tryOrder({ local: aQ, peer: bQ }, r, false);
  assert.deepEqual(order[0], { local: aP, peer: bP }, 'disjoint from the failed (Q,Q) before the better-ranked (Q,P)');
  assert.equal(order.length, 3, 'the failed pair left out when includeFirst is false');
});

test('3 × 2: every pair exactly once; each next pair disjoint from the last whenever one is left', () => {
  const ranked = rankedPairs([aP, aQ, aR], [peer(bP), peer(bQ)]);
  const order = tryOrder({ local: aP, peer: bP }, ranked);
  assert.equal(order.length, 6);
  assert.equal(new Set(order.map((p) => `${p.local}|${p.peer}`)).size, 6);
  for (let i = 1; i < order.length; i++) {
    const left = order.slice(i);
    if (left.some((p) => disjoint(p, order[i - 1]!))) assert.ok(disjoint(order[i]!, order[i - 1]!), `step ${i}: ${JSON.stringify(order)}`);
  }
});

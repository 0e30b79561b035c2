// The benchmarks' statistics (bench/_stats.ts): the median of the rounds and its interval, which
// says whether a run decides a target.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { median, medianInterval } from '../../bench/_stats.ts';

test('median: the middle value, or the mean of the two middle ones; none for no values', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), undefined);
});

test('medianInterval: order statistics with at least 95 % when the rounds allow it', () => {
  const xs = Array.from({ length: 20 }, (_, i) => 20 - i); // 20 … 1, unsorted on purpose
  const i20 = medianInterval(xs)!;
  // Binomial(20, ½): P(≤ 5) = 0.0207, P(≤ 6) = 0.0577, so the 6th smallest and the 6th largest.
  assert.deepEqual([i20.lo, i20.hi], [6, 15]);
  assert.ok(Math.abs(i20.confidence - 0.9586) < 1e-4, String(i20.confidence));
  // Five rounds: only the whole range, with 1 − 2/32 = 93.75 %.
  const i5 = medianInterval([5, 1, 4, 2, 3])!;
  assert.deepEqual([i5.lo, i5.hi, i5.confidence], [1, 5, 0.9375]);
  // One round decides nothing: no confidence at all.
  assert.equal(medianInterval([7])!.confidence, 0);
  assert.equal(medianInterval([]), undefined);
});

test('medianInterval: holds the true median about as often as it says', () => {
  // Rounds drawn from a skewed distribution whose median is known (exponential: ln 2); a seeded generator.
  let seed = 12345;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) + 0.5) / 2 ** 31;
  let held = 0;
  const trials = 2000;
  for (let t = 0; t < trials; t++) {
    const xs = Array.from({ length: 20 }, () => -Math.log(rnd()));
    const i = medianInterval(xs)!;
    if (i.lo <= Math.LN2 && Math.LN2 <= i.hi) held++;
  }
  const rate = held / trials;
  assert.ok(rate > 0.94 && rate < 0.975, `held ${rate} of the time, said 0.9586`);
});

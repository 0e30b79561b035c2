// Shared by the micro-benchmarks (wire, crypto): how fast a function runs on one core.
// Files starting with "_" are helpers, not benchmarks (scripts/bench.mjs skips them).

/**
 * Calls per second of `fn`: a warm-up of `warm` calls, then the best of 3 rounds of
 * `seconds / 3` each, calling in batches of `batch` between clock reads. Results go
 * into a ring so that they are really allocated (no escape-analysis shortcut).
 */
export function rate(fn: () => unknown, seconds: number, opts: { warm?: number; batch?: number } = {}): number {
  const warm = opts.warm ?? 20_000;
  const batch = opts.batch ?? 2000;
  const ring = new Array<unknown>(1024);
  for (let i = 0; i < warm; i++) ring[i & 1023] = fn();
  let best = 0;
  for (let round = 0; round < 3; round++) {
    let n = 0;
    const t0 = process.hrtime.bigint();
    const stop = t0 + BigInt(Math.round((seconds / 3) * 1e9));
    let now = t0;
    while (now < stop) {
      for (let i = 0; i < batch; i++) ring[i & 1023] = fn();
      n += batch;
      now = process.hrtime.bigint();
    }
    best = Math.max(best, n / (Number(now - t0) / 1e9));
  }
  if (ring[0] === Symbol.for('never')) console.log(ring);
  return best;
}

/** A rate right-aligned with thousands separators. */
export const fmtRate = (x: number): string => Math.round(x).toLocaleString('en-US').padStart(12);

/**
 * mulberry32: a small, fast, seeded PRNG for fuzz tests (uniform in [0, 1)).
 * The simulator's richer generator, which also serves as the engine's `Rng`,
 * is test/sim/rng.ts.
 */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

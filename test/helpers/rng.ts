/**
 * The tests' one seeded random generator (issue 21: it replaced mulberry32 in
 * test/helpers/prng.ts, the SHA-256 counter of test/crypto/seeded.ts and two
 * local xorshifts). xoshiro128** seeded through splitmix32; a seed's sequence
 * never changes, because tests depend on their seeds.
 *
 * The simulator takes one root generator per run, from which every consumer —
 * each link's fault draws, each host's engine `Rng`, the property test's
 * schedule — gets its own stream by `fork()`, so adding a consumer never
 * shifts another's draws. Fuzz tests draw from `float()` / `int()`; code that
 * takes a `randomBytes(n)` function (CGA/HBA generation) gets `randomBytes(label)`,
 * a stream named by a string so that each test's stream reads as what it is for.
 *
 * Must not know: what the numbers are used for.
 */

/** Seeded PRNG that also satisfies the engine's `Rng` (`fill`). */
export class SimRng {
  #a: number; #b: number; #c: number; #d: number;

  constructor(readonly seed: number) {
    let s = seed >>> 0;
    const split = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = split(); this.#b = split(); this.#c = split(); this.#d = split();
  }

  /** Next uniformly random u32. */
  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.#b, 5) >>> 0, 7), 9) >>> 0;
    const t = (this.#b << 9) >>> 0;
    this.#c ^= this.#a; this.#d ^= this.#b; this.#b ^= this.#c; this.#a ^= this.#d; this.#c ^= t;
    this.#d = rotl(this.#d, 11);
    return r;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new RangeError('pick from an empty list');
    return xs[this.int(xs.length)]!;
  }

  /** The engine's Rng interface: overwrite every octet of `buf`. */
  fill(buf: Uint8Array): void {
    for (let i = 0; i < buf.length; i += 4) {
      const r = this.u32();
      for (let k = 0; k < 4 && i + k < buf.length; k++) buf[i + k] = (r >>> (k * 8)) & 0xff;
    }
  }

  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.fill(out);
    return out;
  }

  /** An independent stream derived from this one. */
  fork(): SimRng {
    return new SimRng(this.u32() ^ 0x5bd1e995);
  }
}

/** FNV-1a of the label's UTF-8 octets: a 32-bit seed from a name. */
function seedOf(label: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(label)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** A seeded stream named by `label`, as a `randomBytes(n)` function (the shape shim/wire/cga.ts and hba.ts take). */
export function randomBytes(label: string): (n: number) => Uint8Array {
  const rng = new SimRng(seedOf(label));
  return (n) => rng.bytes(n);
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * The deep-fuzz knob (docs/security.md "Fuzzing"). Every fuzzer and fast-check property takes
 * its seed through `fuzzSeed` and its iteration count through `fuzzRuns` (or both through
 * `fuzzParams`). Unset, they return the test's fixed seed and count: `npm test` is unchanged.
 *
 * SHIM6_FUZZ_SEED=<u32> | random: a root seed, mixed with each fuzzer's fixed seed so that every
 * fuzzer still gets its own stream; `random` picks one per test process. Either way each test
 * prints the root seed with t.diagnostic, so a failure is replayed by setting it again.
 * SHIM6_FUZZ_SCALE=<positive integer>: multiplies every iteration count and numRuns.
 */
interface FuzzKnob { root: number | undefined; scale: number }

function readKnob(env: NodeJS.ProcessEnv): FuzzKnob {
  const s = env['SHIM6_FUZZ_SEED']?.trim();
  let root: number | undefined;
  if (s === undefined || s === '') root = undefined;
  else if (s === 'random') root = Math.floor(Math.random() * 0x1_0000_0000) >>> 0;
  else if (/^\d{1,10}$/.test(s) && Number(s) <= 0xffff_ffff) root = Number(s);
  else throw new RangeError(`SHIM6_FUZZ_SEED must be a u32 or "random", not ${JSON.stringify(s)}`);
  const c = env['SHIM6_FUZZ_SCALE']?.trim();
  let scale = 1;
  if (c !== undefined && c !== '') {
    if (!/^\d{1,6}$/.test(c) || Number(c) < 1) throw new RangeError(`SHIM6_FUZZ_SCALE must be a positive integer, not ${JSON.stringify(c)}`);
    scale = Number(c);
  }
  return { root, scale };
}

const KNOB = readKnob(process.env);

/** What `fuzzSeed` needs of a test context: where to print the root seed. */
export interface FuzzContext { readonly name: string; diagnostic(message: string): void }

const announced = new WeakSet<FuzzContext>();

/** Print the knob once per test, so that a failing run says how to replay it. */
function announce(t: FuzzContext): void {
  if (KNOB.root === undefined && KNOB.scale === 1) return;
  if (announced.has(t)) return;
  announced.add(t);
  const seed = KNOB.root === undefined ? '' : `SHIM6_FUZZ_SEED=${KNOB.root} `;
  t.diagnostic(`deep fuzz: ${seed}SHIM6_FUZZ_SCALE=${KNOB.scale} (replay with these variables)`);
}

/**
 * The seed of one fuzzer: `fixed` (its seed in `npm test`) unless SHIM6_FUZZ_SEED is set, then a
 * seed mixed from the root and `fixed`, below 2^31 (fast-check takes it as is). A property that
 * has no fixed seed today (fast-check picks one per run) passes `undefined` and keeps that.
 */
export function fuzzSeed(t: FuzzContext, fixed: number): number;
export function fuzzSeed(t: FuzzContext, fixed: number | undefined): number | undefined;
export function fuzzSeed(t: FuzzContext, fixed: number | undefined): number | undefined {
  announce(t);
  if (KNOB.root === undefined) return fixed;
  return new SimRng(KNOB.root ^ seedOf(`${fixed ?? t.name}`)).u32() >>> 1;
}

/** An iteration count under SHIM6_FUZZ_SCALE (`n` by default). */
export function fuzzRuns(n: number): number {
  return n * KNOB.scale;
}

/** fast-check's `{ seed, numRuns }` under the knob (see `fuzzSeed`, `fuzzRuns`). */
export function fuzzParams(t: FuzzContext, p: { seed?: number; numRuns: number }): { seed?: number; numRuns: number } {
  const seed = fuzzSeed(t, p.seed);
  return seed === undefined ? { numRuns: fuzzRuns(p.numRuns) } : { seed, numRuns: fuzzRuns(p.numRuns) };
}

/**
 * Deterministic octets for tests: SHA-256 in counter mode over a seed, so
 * generation and fuzz runs are reproducible (`randomBytes` is injected into
 * shim/wire/cga.ts and hba.ts exactly like this).
 */
import crypto from 'node:crypto';

export function seededRandomBytes(seed: string): (n: number) => Uint8Array {
  let counter = 0;
  let pool = new Uint8Array(0);
  return (n: number): Uint8Array => {
    while (pool.length < n) {
      const block = crypto.createHash('sha256').update(`${seed}/${counter++}`).digest();
      const next = new Uint8Array(pool.length + block.length);
      next.set(pool);
      next.set(block, pool.length);
      pool = next;
    }
    const out = pool.slice(0, n);
    pool = pool.slice(n);
    return out;
  };
}

/** A random octet source that always returns the given octets first (then zeros). */
export function fixedBytes(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  const queue = [...chunks];
  return (n: number): Uint8Array => {
    const c = queue.shift() ?? new Uint8Array(n);
    if (c.length !== n) throw new Error(`fixedBytes: asked for ${n} octets, have ${c.length}`);
    return c;
  };
}

export const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));
export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** A copy of `b` with octet `i` XORed with `mask`. */
export function flipped(b: Uint8Array, i: number, mask = 1): Uint8Array {
  const c = b.slice();
  c[i] = (c[i] ?? 0) ^ mask;
  return c;
}

/**
 * Octets in tests: hex in and out, a flipped bit, and a fixed "random" source.
 * Seeded random octets come from test/helpers/rng.ts (`randomBytes(label)`).
 */

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

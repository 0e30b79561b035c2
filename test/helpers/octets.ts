/**
 * Octets in tests: hex in and out, a flipped bit, a resealed Shim6 checksum, and a fixed
 * "random" source. Seeded random octets come from test/helpers/rng.ts (`randomBytes(label)`).
 */
import { shim6Checksum } from '../../shim/wire/index.ts';

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

/** Make the Shim6 checksum of the control message in `b` good again (after a mutation), so that it reaches the handlers. Too short or a Hdr Ext Len past the end: left alone. */
export function resealChecksum(b: Uint8Array): void {
  if (b.length < 8) return;
  const end = (b[1]! + 1) * 8;
  if (end > b.length) return;
  b[4] = 0;
  b[5] = 0;
  const c = shim6Checksum(b, end);
  b[4] = c >>> 8;
  b[5] = c & 0xff;
}

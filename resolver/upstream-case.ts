/**
 * Randomness for upstream queries: 16-bit words from the CSPRNG (query IDs), and
 * 0x20 mixed-case question names (draft-vixie-dnsext-dns0x20, RFC 5452 §9.2;
 * unbound's `use-caps-for-id`): every letter of the name we send gets a random
 * case, and an answer must echo the question octet for octet, so an off-path
 * forger must guess one more bit per letter besides the ID and the port.
 * It must not know about sockets, upstream selection or what the answer means.
 */
import { randomFillSync } from 'node:crypto';

/**
 * Answers with the letter case changed, in a row, after which an upstream is
 * taken not to preserve case and is asked without 0x20 (an answer that keeps the
 * case resets the count). A forger would need that many right guesses of ID and
 * port in a row to turn 0x20 off, and then only for CASE_FALLBACK_MS.
 */
export const CASE_FALLBACK_AFTER = 3;
/** How long an upstream that does not preserve case is asked without 0x20 (ms); then it is tried again. */
export const CASE_FALLBACK_MS = 3_600_000;

/** Random 16-bit numbers from the CSPRNG, drawn in batches. */
export class RandomWords {
  private buf = new Uint16Array(1024);
  private i = this.buf.length;
  next(): number {
    if (this.i >= this.buf.length) { randomFillSync(this.buf); this.i = 0; }
    return this.buf[this.i++]!;
  }
}

/**
 * Give every ASCII letter in `b[start, end)` a random case, in place; returns
 * how many letters there were (0: nothing to check in the answer). The range is
 * a wire-form name: its length octets are ≤ 63, never letters, so they are
 * left as they are without walking the labels.
 */
export function randomizeCase(b: Uint8Array, start: number, end: number, rnd: { next(): number }): number {
  let letters = 0;
  let bits = 0;
  let left = 0;
  for (let i = start; i < end; i++) {
    const c = b[i]! | 0x20;
    if (c < 0x61 || c > 0x7a) continue;
    if (left === 0) { bits = rnd.next(); left = 16; }
    b[i] = c ^ ((bits & 1) << 5); // branch-free: a random bit is as unpredictable for the CPU as for a forger
    bits >>= 1;
    left--;
    letters++;
  }
  return letters;
}

/** Whether `a` and `b` hold the same octets in `[start, end)` (letter case included). */
export function sameOctets(a: Uint8Array, b: Uint8Array, start: number, end: number): boolean {
  if (a.length < end || b.length < end) return false;
  for (let i = start; i < end; i++) if (a[i] !== b[i]) return false;
  return true;
}

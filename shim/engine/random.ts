/**
 * Randomness for the engine, always injected (quinn-proto style): nonces,
 * context tags, back-off jitter and responder secrets all come from one `Rng`
 * the driver passes in — `cryptoRng()` in the daemon, the simulator's seeded
 * `SimRng` (test/helpers/rng.ts) in tests. This module must not know about contexts or messages.
 */
import { randomFillSync } from 'node:crypto';

/** Source of random octets. `fill` overwrites every octet of `buf`. */
export interface Rng {
  fill(buf: Uint8Array): void;
}

/** The production source: node:crypto's CSPRNG (no I/O, no clock). */
export function cryptoRng(): Rng {
  return { fill: (buf) => void randomFillSync(buf) };
}

/** Draws typed values from an Rng through one scratch buffer (no per-call allocation). */
export class Random {
  private readonly scratch = new Uint8Array(8);
  constructor(readonly rng: Rng) {}

  /** A uniformly random u32 (nonces, generation seeds). */
  u32(): number {
    const b = this.scratch;
    this.rng.fill(b);
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  }

  /** A uniformly random 47-bit context tag, never 0 (RFC 5533 §4.1, §7.1). */
  tag47(): number {
    const b = this.scratch;
    for (;;) {
      this.rng.fill(b);
      const hi = ((b[0]! & 0x7f) << 8) | b[1]!;               // 15 bits
      const lo = ((b[2]! << 24) | (b[3]! << 16) | (b[4]! << 8) | b[5]!) >>> 0; // 32 bits
      const tag = hi * 0x1_0000_0000 + lo;
      if (tag !== 0) return tag;
    }
  }

  /** A float in [0, 1). */
  unit(): number {
    return this.u32() / 0x1_0000_0000;
  }

  /** `nominal` randomised into [0.5, 1.5] × nominal (RFC 5533 §7.8). */
  jitter(nominal: number): number {
    return nominal * (0.5 + this.unit());
  }

  /** Fresh random octets (responder secrets). */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    this.rng.fill(out);
    return out;
  }
}

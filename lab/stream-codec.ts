/**
 * The lab stream's blocks: `magic "S6LB" · seq u32 · length u32 · crc32 u32`
 * then `length` payload octets that are a pure function of `seq`, so the
 * receiver can check every octet (not only the CRC) and that every block
 * arrives exactly once, in order. Owns the block format and the verifying
 * parser; knows nothing of sockets.
 */
import { crc32 } from 'node:zlib';

export const BLOCK_MAGIC = 0x53364c42; // "S6LB"
export const BLOCK_HEADER = 16;
const PATTERN_LEN = 1 << 17;

/** A fixed pseudo-random pattern (xorshift32, fixed seed) the payloads are cut from. */
const PATTERN: Buffer = (() => {
  const b = Buffer.alloc(PATTERN_LEN * 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < b.length; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
})();

/** The payload of block `seq`: a window of the pattern at an offset derived from seq. */
export function blockPayload(seq: number, length: number): Buffer {
  if (length > PATTERN_LEN) throw new RangeError(`block length ${length} > ${PATTERN_LEN}`);
  const off = Math.imul(seq, 2654435761) >>> 0;
  return PATTERN.subarray(off % PATTERN_LEN, (off % PATTERN_LEN) + length);
}

/** Encode block `seq` with `length` payload octets. */
export function encodeBlock(seq: number, length: number): Buffer {
  const payload = blockPayload(seq, length);
  const out = Buffer.allocUnsafe(BLOCK_HEADER + length);
  out.writeUInt32BE(BLOCK_MAGIC, 0);
  out.writeUInt32BE(seq >>> 0, 4);
  out.writeUInt32BE(length, 8);
  out.writeUInt32BE(crc32(payload), 12);
  payload.copy(out, BLOCK_HEADER);
  return out;
}

/** What the verifier has seen so far. */
export interface VerifyCounters {
  /** Octets received (headers included). */
  received: number;
  /** Octets in blocks that arrived intact, once, in order. */
  verified: number;
  /** Blocks that were damaged, duplicated, missing or out of order. */
  corrupt: number;
  /** Blocks verified. */
  blocks: number;
}

/**
 * Incremental verifier: feed it chunks as they arrive. After a bad header it
 * stops trusting framing and counts every further octet as unverified.
 */
export class BlockVerifier {
  readonly counters: VerifyCounters = { received: 0, verified: 0, corrupt: 0, blocks: 0 };
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private nextSeq = 0;
  private lost = false;

  push(chunk: Buffer): void {
    this.counters.received += chunk.length;
    if (this.lost) return;
    this.pending.push(chunk);
    this.pendingLen += chunk.length;
    for (;;) {
      if (this.pendingLen < BLOCK_HEADER) return;
      const head = this.peek(BLOCK_HEADER);
      const magic = head.readUInt32BE(0);
      const length = head.readUInt32BE(8);
      if (magic !== BLOCK_MAGIC || length > PATTERN_LEN) {
        this.counters.corrupt++;
        this.lost = true;
        this.pending = [];
        return;
      }
      if (this.pendingLen < BLOCK_HEADER + length) return;
      const block = this.take(BLOCK_HEADER + length);
      this.check(block, length);
    }
  }

  private check(block: Buffer, length: number): void {
    const seq = block.readUInt32BE(4);
    const crc = block.readUInt32BE(12);
    const payload = block.subarray(BLOCK_HEADER);
    const ok = seq === this.nextSeq && crc32(payload) === crc && payload.equals(blockPayload(seq, length));
    if (ok) {
      this.counters.verified += block.length;
      this.counters.blocks++;
    } else {
      this.counters.corrupt++;
    }
    this.nextSeq = seq + 1;
  }

  private peek(n: number): Buffer {
    if (this.pending[0] && this.pending[0].length >= n) return this.pending[0].subarray(0, n);
    const all = Buffer.concat(this.pending);
    this.pending = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingLen -= n;
    return out;
  }

  /** Octets held back waiting for the rest of a block. */
  get buffered(): number {
    return this.pendingLen;
  }
}

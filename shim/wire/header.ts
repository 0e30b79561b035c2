/**
 * The parts every Shim6 header shares (RFC 5533 §5.1–§5.3): the common control
 * header, the Payload Extension header, the checksum, and the 47-bit tag and u32
 * field accessors. Callers check the input length once on entry; these accessors
 * then never read out of bounds. Knows nothing about message bodies or options.
 */
import { PAYLOAD_HEADER_LENGTH } from '../constants.ts';
import { WireError } from './errors.ts';
import type { PayloadHeader } from './messages.ts';

/** Offsets of the common control header (RFC 5533 §5.3). */
export const Hdr = {
  NEXT_HEADER: 0,
  HDR_EXT_LEN: 1,
  /** P bit (0x80) | Type (7 bits). */
  P_TYPE: 2,
  /** Type-specific (7 bits) | S bit (0x01). */
  TYPE_SPECIFIC_S: 3,
  CHECKSUM: 4,
  /** First octet of the type-specific body. */
  BODY: 6,
} as const;

export const P_BIT = 0x80;
export const S_BIT = 0x01;
/** 2^32, to split 47-bit tags into a 15-bit high part and a u32. */
const TWO32 = 0x1_0000_0000;
/** Largest context tag (47 bits). */
export const MAX_CONTEXT_TAG = 2 ** 47 - 1;

/** Length in octets given by a Hdr Ext Len value: (Hdr Ext Len + 1) × 8. */
export function headerLength(hdrExtLen: number): number {
  return (hdrExtLen + 1) << 3;
}

/** Read `R | tag(47)` at `off` (6 octets); the R bit is ignored on receipt. */
export function readTag(b: Uint8Array, off: number): number {
  const hi = ((b[off]! & 0x7f) << 8) | b[off + 1]!;
  return hi * TWO32 + readU32(b, off + 2);
}

/** Write `0 | tag(47)` at `off` (6 octets). */
export function writeTag(b: Uint8Array, off: number, tag: number): void {
  const hi = Math.floor(tag / TWO32);
  b[off] = hi >>> 8;
  b[off + 1] = hi & 0xff;
  writeU32(b, off + 2, tag - hi * TWO32);
}

export function readU32(b: Uint8Array, off: number): number {
  return ((b[off]! << 24) | (b[off + 1]! << 16) | (b[off + 2]! << 8) | b[off + 3]!) >>> 0;
}

export function writeU32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

export function readU16(b: Uint8Array, off: number): number {
  return (b[off]! << 8) | b[off + 1]!;
}

export function writeU16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

/**
 * RFC 5533 §5.3: the 16-bit one's complement of the one's complement sum over
 * octets [0, end) of the Shim6 header (even `end`; no pseudo-header, no payload).
 * With the checksum field in place, a correct header sums to 0 (returns 0).
 */
export function shim6Checksum(b: Uint8Array, end: number): number {
  let sum = 0;
  for (let i = 0; i < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  // At most 2^16 words of 2^16: fold twice.
  sum = (sum & 0xffff) + (sum >>> 16);
  sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** True when `bytes` start with a Payload Extension header (P bit set, RFC 5533 §5.1). */
export function isPayloadHeader(bytes: Uint8Array): boolean {
  return bytes.length > Hdr.P_TYPE && (bytes[Hdr.P_TYPE]! & P_BIT) !== 0;
}

/** Decode the 8-octet Payload Extension header (RFC 5533 §5.2) at the start of `bytes`. */
export function decodePayloadHeader(bytes: Uint8Array): PayloadHeader {
  if (bytes.length < PAYLOAD_HEADER_LENGTH) throw new WireError('ETRUNCATED', `payload header needs 8 octets, got ${bytes.length}`, 0);
  if ((bytes[Hdr.P_TYPE]! & P_BIT) === 0) throw new WireError('ETYPE', 'P bit clear: a control message, not a payload header', Hdr.P_TYPE);
  if (bytes[Hdr.HDR_EXT_LEN] !== 0) throw new WireError('ELENGTH', `payload header Hdr Ext Len must be 0, got ${bytes[1]}`, Hdr.HDR_EXT_LEN);
  return { nextHeader: bytes[0]!, contextTag: readTag(bytes, 2), headerLength: 8 };
}

/** Encode the 8-octet Payload Extension header: Next Header, 0, P=1 | receiver context tag. */
export function encodePayloadHeader(nextHeader: number, contextTag: number): Uint8Array {
  const b = new Uint8Array(PAYLOAD_HEADER_LENGTH);
  writePayloadHeader(b, 0, nextHeader, contextTag);
  return b;
}

/**
 * Write the payload header into `buf` at `offset` (8 octets), for data paths that
 * build the datagram in one buffer instead of allocating a header per packet.
 */
export function writePayloadHeader(buf: Uint8Array, offset: number, nextHeader: number, contextTag: number): void {
  checkUint('nextHeader', nextHeader, 0xff);
  checkTag('contextTag', contextTag);
  if (!Number.isInteger(offset) || offset < 0 || offset + PAYLOAD_HEADER_LENGTH > buf.length) {
    throw new WireError('ELENGTH', `no room for a payload header at offset ${offset} of ${buf.length} octets`);
  }
  buf[offset] = nextHeader;
  buf[offset + 1] = 0;
  writeTag(buf, offset + 2, contextTag);
  buf[offset + 2] = buf[offset + 2]! | P_BIT;
}

/**
 * A fresh Uint8Array holding octets [start, end) of `b`. Decoded values never alias
 * the input, and are plain Uint8Arrays even when the input is a Node Buffer (whose
 * `slice` is a view).
 */
export function copyBytes(b: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(b.subarray(start, end));
  return out;
}

/** Encoder-side check: an integer field fits its width. Throws WireError('EFIELD') naming the field. */
export function checkUint(field: string, v: number, max: number): void {
  if (!Number.isInteger(v) || v < 0 || v > max) {
    throw new WireError('EFIELD', `${field}: ${String(v)} is not an integer in 0..${max}`);
  }
}

/** Encoder-side check of a 47-bit context tag. */
export function checkTag(field: string, v: number): void {
  checkUint(field, v, MAX_CONTEXT_TAG);
}

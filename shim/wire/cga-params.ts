/**
 * The CGA Parameters data structure (RFC 3972 §3) and its extension fields
 * (RFC 4581 TLVs, the Multi-Prefix extension of RFC 5535 §5): byte layout only.
 *
 * Owns: offsets, decoding untrusted bytes into plain objects (throwing only
 * WireError), encoding, and `scanCgaParams`, the allocation-free structural walk
 * that the verifiers in cga.ts / hba.ts run before hashing.
 * Must not know: hashes, Sec, addresses, keys beyond the DER SEQUENCE header.
 *
 * Layout: modifier (16) · subnet prefix (8) · collision count (1) ·
 * public key (DER SubjectPublicKeyInfo, length from its SEQUENCE header) ·
 * extensions (type u16 · data length u16 · data)*.
 */
import { WireError } from './errors.ts';
import { UsageError } from '../errors.ts';
import {
  CGA_EXT_MULTI_PREFIX, CGA_KEY_OFFSET, CGA_MODIFIER_LENGTH, CGA_PREFIX_LENGTH, MULTI_PREFIX_P_FLAG,
} from '../constants.ts';

/** Field offsets (RFC 3972 §3). */
export const CgaOffset = { MODIFIER: 0, PREFIX: 16, COLLISION_COUNT: 24, KEY: CGA_KEY_OFFSET } as const;

/** One extension field (RFC 4581): type and data, unknown types kept as they are. */
export interface CgaExtension {
  type: number;
  data: Uint8Array;
}

/** A decoded CGA Parameters data structure. Byte fields are copies, never views of the input. */
export interface CgaParams {
  /** 16 octets. */
  modifier: Uint8Array;
  /** 8 octets: the 64-bit subnet prefix. */
  subnetPrefix: Uint8Array;
  /** u8; verification requires 0..2 (RFC 3972 §5 step 1), decoding accepts any value. */
  collisionCount: number;
  /** The DER SubjectPublicKeyInfo (or an HBA-only Extended Modifier encoded as one). */
  publicKey: Uint8Array;
  extensions: CgaExtension[];
}

/** The Multi-Prefix extension (RFC 5535 §5). */
export interface MultiPrefixExtension {
  /** P flag: a real public key is in the Public Key field. */
  publicKeyIncluded: boolean;
  /** 8-octet prefixes, in extension order. */
  prefixes: Uint8Array[];
}

/** Where things are in a structurally valid parameter block (see scanCgaParams). */
export interface CgaLayout {
  /** End of the public key = offset of the first extension. */
  keyEnd: number;
  /** Offset of the first Multi-Prefix extension's data, or -1. */
  multiPrefixData: number;
  /** Length of that data, or 0. */
  multiPrefixLength: number;
  /** How many Multi-Prefix extensions there are (verifiers accept exactly one). */
  multiPrefixCount: number;
}

/**
 * Length of the DER element at `offset` (header + contents), which must be a
 * SEQUENCE (0x30) with a definite, minimally encoded length that fits in `buf`.
 */
export function derSequenceLength(buf: Uint8Array, offset: number): number {
  if (offset + 2 > buf.length) throw new WireError('ETRUNCATED', 'CGA public key: DER header truncated', offset);
  if (buf[offset] !== 0x30) throw new WireError('EFIELD', 'CGA public key: not a DER SEQUENCE', offset);
  const first = buf[offset + 1]!;
  let len: number;
  let header: number;
  if (first < 0x80) {
    len = first;
    header = 2;
  } else {
    const n = first & 0x7f;
    // 0x80 is BER's indefinite form; more than 3 length octets cannot fit an option anyway.
    if (n === 0 || n > 3) throw new WireError('ELENGTH', 'CGA public key: unsupported DER length form', offset + 1);
    if (offset + 2 + n > buf.length) throw new WireError('ETRUNCATED', 'CGA public key: DER length truncated', offset + 1);
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + buf[offset + 2 + i]!;
    // DER: the shortest form, no leading zero octet.
    if (len < 0x80 || buf[offset + 2] === 0) throw new WireError('EFIELD', 'CGA public key: DER length not minimal', offset + 1);
    header = 2 + n;
  }
  if (offset + header + len > buf.length) throw new WireError('ETRUNCATED', 'CGA public key: shorter than its DER length', offset);
  return header + len;
}

/**
 * Walk a parameter block without allocating: key length from the DER header,
 * then the extension TLVs, which must end exactly at the end of the input.
 * Throws WireError on any structural fault.
 */
export function scanCgaParams(buf: Uint8Array): CgaLayout {
  if (buf.length < CGA_KEY_OFFSET) throw new WireError('ETRUNCATED', 'CGA Parameters: shorter than 25 octets', buf.length);
  const keyEnd = CGA_KEY_OFFSET + derSequenceLength(buf, CGA_KEY_OFFSET);
  let multiPrefixData = -1;
  let multiPrefixLength = 0;
  let multiPrefixCount = 0;
  let off = keyEnd;
  while (off < buf.length) {
    if (off + 4 > buf.length) throw new WireError('ETRUNCATED', 'CGA extension: header truncated', off);
    const type = (buf[off]! << 8) | buf[off + 1]!;
    const len = (buf[off + 2]! << 8) | buf[off + 3]!;
    if (off + 4 + len > buf.length) throw new WireError('ETRUNCATED', 'CGA extension: data truncated', off + 2);
    if (type === CGA_EXT_MULTI_PREFIX) {
      if (len < 4 || (len - 4) % CGA_PREFIX_LENGTH !== 0) {
        throw new WireError('ELENGTH', 'Multi-Prefix extension: length is not 4 + 8n', off + 2);
      }
      if (multiPrefixCount === 0) {
        multiPrefixData = off + 4;
        multiPrefixLength = len;
      }
      multiPrefixCount++;
    }
    off += 4 + len;
  }
  return { keyEnd, multiPrefixData, multiPrefixLength, multiPrefixCount };
}

/** Decode untrusted bytes (RFC 3972 §3, RFC 4581). Throws only WireError. */
export function decodeCgaParams(buf: Uint8Array): CgaParams {
  const layout = scanCgaParams(buf);
  const extensions: CgaExtension[] = [];
  for (let off = layout.keyEnd; off < buf.length;) {
    const len = (buf[off + 2]! << 8) | buf[off + 3]!;
    extensions.push({ type: (buf[off]! << 8) | buf[off + 1]!, data: buf.slice(off + 4, off + 4 + len) });
    off += 4 + len;
  }
  return {
    modifier: buf.slice(CgaOffset.MODIFIER, CgaOffset.MODIFIER + CGA_MODIFIER_LENGTH),
    subnetPrefix: buf.slice(CgaOffset.PREFIX, CgaOffset.PREFIX + CGA_PREFIX_LENGTH),
    collisionCount: buf[CgaOffset.COLLISION_COUNT]!,
    publicKey: buf.slice(CGA_KEY_OFFSET, layout.keyEnd),
    extensions,
  };
}

/** Octets `encodeCgaParams(p)` will produce. */
export function cgaParamsLength(p: CgaParams): number {
  let n = CGA_KEY_OFFSET + p.publicKey.length;
  for (const e of p.extensions) n += 4 + e.data.length;
  return n;
}

/** Encode; throws UsageError('ECGA_PARAMS') when a field cannot be represented. */
export function encodeCgaParams(p: CgaParams): Uint8Array {
  if (p.modifier.length !== CGA_MODIFIER_LENGTH) throw usage('modifier must be 16 octets');
  if (p.subnetPrefix.length !== CGA_PREFIX_LENGTH) throw usage('subnetPrefix must be 8 octets');
  if (!Number.isInteger(p.collisionCount) || p.collisionCount < 0 || p.collisionCount > 255) throw usage('collisionCount must be a u8');
  let keyLen: number;
  try { keyLen = derSequenceLength(p.publicKey, 0); } catch { keyLen = -1; }
  if (keyLen !== p.publicKey.length) throw usage('publicKey must be exactly one DER SEQUENCE');
  const out = new Uint8Array(cgaParamsLength(p));
  out.set(p.modifier, CgaOffset.MODIFIER);
  out.set(p.subnetPrefix, CgaOffset.PREFIX);
  out[CgaOffset.COLLISION_COUNT] = p.collisionCount;
  out.set(p.publicKey, CGA_KEY_OFFSET);
  let off = CGA_KEY_OFFSET + p.publicKey.length;
  for (const e of p.extensions) {
    if (!Number.isInteger(e.type) || e.type < 0 || e.type > 0xffff) throw usage('extension type must be a u16');
    if (e.data.length > 0xffff) throw usage('extension data longer than 65535 octets');
    out[off] = e.type >> 8;
    out[off + 1] = e.type & 0xff;
    out[off + 2] = e.data.length >> 8;
    out[off + 3] = e.data.length & 0xff;
    out.set(e.data, off + 4);
    off += 4 + e.data.length;
  }
  return out;
}

/** Build the Multi-Prefix extension (RFC 5535 §5, §6 step 1: Ext Len = 4 + 8n). */
export function encodeMultiPrefixExtension(mp: MultiPrefixExtension): CgaExtension {
  const data = new Uint8Array(4 + mp.prefixes.length * CGA_PREFIX_LENGTH);
  if (data.length > 0xffff) throw usage('too many prefixes for one Multi-Prefix extension');
  data[0] = mp.publicKeyIncluded ? MULTI_PREFIX_P_FLAG : 0;
  mp.prefixes.forEach((p, i) => {
    if (p.length !== CGA_PREFIX_LENGTH) throw usage('a Multi-Prefix prefix must be 8 octets');
    data.set(p, 4 + i * CGA_PREFIX_LENGTH);
  });
  return { type: CGA_EXT_MULTI_PREFIX, data };
}

/**
 * Read a Multi-Prefix extension's data. Reserved bits are ignored on receipt
 * (RFC 5535 §5). Throws WireError('ELENGTH') if the length is not 4 + 8n.
 */
export function decodeMultiPrefixExtension(ext: CgaExtension): MultiPrefixExtension {
  const d = ext.data;
  if (ext.type !== CGA_EXT_MULTI_PREFIX) throw new WireError('ETYPE', `not a Multi-Prefix extension: type ${ext.type}`);
  if (d.length < 4 || (d.length - 4) % CGA_PREFIX_LENGTH !== 0) throw new WireError('ELENGTH', 'Multi-Prefix extension: length is not 4 + 8n');
  const prefixes: Uint8Array[] = [];
  for (let off = 4; off < d.length; off += CGA_PREFIX_LENGTH) prefixes.push(d.slice(off, off + CGA_PREFIX_LENGTH));
  return { publicKeyIncluded: (d[0]! & MULTI_PREFIX_P_FLAG) !== 0, prefixes };
}

/** The first Multi-Prefix extension of decoded parameters, if any. */
export function findMultiPrefix(p: CgaParams): MultiPrefixExtension | undefined {
  const ext = p.extensions.find((e) => e.type === CGA_EXT_MULTI_PREFIX);
  return ext === undefined ? undefined : decodeMultiPrefixExtension(ext);
}

function usage(why: string): UsageError {
  return new UsageError('ECGA_PARAMS', `CGA Parameters: ${why}`);
}

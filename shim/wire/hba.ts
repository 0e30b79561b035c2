/**
 * Hash-Based Addresses (RFC 5535): generation of an HBA set for a prefix
 * vector, verification that an address belongs to the set of a CGA Parameter
 * Data Structure (the prefix substitution of §7.2), and the SHA-256 digest that
 * the capability record's hba-digest parameter carries (docs/capability-record.md).
 *
 * Owns: the Multi-Prefix procedures and the HBA-only Extended Modifier key.
 * Must not know: sockets, clocks, a randomness source of its own (injected).
 *
 * Verification is the engine's hot path (every I2 with an HBA locator list):
 * one copy of the parameters into a scratch buffer, then one SHA-1 per address
 * plus at most one for Hash2 — Hash2 does not depend on the prefix, so a whole
 * set costs n + 1 hashes.
 */
import crypto from 'node:crypto';
import { UsageError } from '../errors.ts';
import { formatIpv6, type Ipv6 } from './ipv6.ts';
import {
  addressBytes, checkSec, formCgaAddress, formatPrefix64, hash1MatchesIid, prefix64,
  searchModifier, secOf, sha1, DEFAULT_MAX_ITERATIONS, type CgaCheck, type RandomBytes,
} from './cga.ts';
import { CgaOffset, cgaParamsLength, encodeCgaParams, encodeMultiPrefixExtension, scanCgaParams } from './cga-params.ts';
import {
  CGA_KEY_OFFSET, CGA_MAX_COLLISION_COUNT, CGA_MAX_SEC, CGA_MODIFIER_LENGTH, CGA_PREFIX_LENGTH,
  HBA_EXTENDED_MODIFIER_BITS, MULTI_PREFIX_P_FLAG,
} from '../constants.ts';

export interface GenerateHbaSetOptions {
  /** The prefix vector (RFC 5535 §6): `2001:db8:1::/64` text or 8 octets each; no duplicates. */
  prefixes: readonly (string | Uint8Array)[];
  /** 0, 1 or 2 (RFC 5535 §6). */
  sec: number;
  /** DER SubjectPublicKeyInfo for an HBA/CGA set; omit for an HBA-only set. */
  publicKey?: Uint8Array;
  randomBytes: RandomBytes;
  /** Bound of the modifier search (default DEFAULT_MAX_ITERATIONS). */
  maxIterations?: number;
}

export interface HbaMember {
  /** `2001:db8:1::/64`. */
  prefix: string;
  address: Ipv6;
  /** This address's CGA Parameter Data Structure (its own prefix in the Subnet Prefix field). */
  params: Uint8Array;
}

export interface HbaSet {
  /** In prefix-vector order. */
  members: HbaMember[];
  /** The public key, or the HBA-only Extended Modifier encoded as one. */
  publicKey: Uint8Array;
  /** P flag of the Multi-Prefix extension. */
  publicKeyIncluded: boolean;
  /** Hash2 computations the modifier search took. */
  iterations: number;
}

/**
 * RFC 5535 §6: one modifier search for the whole set, then per prefix Hash1
 * over modifier ‖ Prefix[i] ‖ collision count 0 ‖ key ‖ Multi-Prefix extension.
 * Duplicate address detection is the caller's business (step 6.4).
 * Randomness is drawn in this order: 16 octets modifier, then (HBA-only) 48
 * octets Extended Modifier.
 */
export function generateHbaSet(o: GenerateHbaSetOptions): HbaSet {
  checkSec(o.sec);
  if (o.prefixes.length === 0) throw new UsageError('EPREFIX', 'an HBA set needs at least one prefix');
  const prefixes = o.prefixes.map(prefix64);
  const seen = new Set(prefixes.map(formatPrefix64));
  if (seen.size !== prefixes.length) throw new UsageError('EPREFIX', 'duplicate prefix in the HBA prefix vector');
  const modifier = Uint8Array.from(o.randomBytes(CGA_MODIFIER_LENGTH).subarray(0, CGA_MODIFIER_LENGTH));
  if (modifier.length !== CGA_MODIFIER_LENGTH) throw new UsageError('ERANDOM', 'randomBytes returned too few octets');
  const publicKeyIncluded = o.publicKey !== undefined;
  const publicKey = o.publicKey ?? encodeExtendedModifier(o.randomBytes(HBA_EXTENDED_MODIFIER_BITS / 8));
  const ext = encodeMultiPrefixExtension({ publicKeyIncluded, prefixes });
  const template = encodeCgaParams({ modifier, subnetPrefix: new Uint8Array(8), collisionCount: 0, publicKey, extensions: [ext] });
  const iterations = searchModifier(modifier, template.subarray(CGA_KEY_OFFSET), o.sec, o.maxIterations ?? DEFAULT_MAX_ITERATIONS);
  template.set(modifier, CgaOffset.MODIFIER);
  const members = prefixes.map((prefix) => {
    const params = template.slice();
    params.set(prefix, CgaOffset.PREFIX);
    const address = formatIpv6(formCgaAddress(prefix, sha1(params), o.sec));
    return { prefix: formatPrefix64(prefix), address, params };
  });
  return { members, publicKey, publicKeyIncluded, iterations };
}

/**
 * Octets of each member's CGA Parameter Data Structure in a set of `prefixCount` prefixes made
 * with `publicKey` (DER), or, without one, the longest an HBA-only set's Extended Modifier makes
 * (its minimal DER INTEGER is one octet longer when the nonce's top bit is set). What
 * generateHbaSet would produce, without the modifier search.
 */
export function hbaParamsLength(prefixCount: number, publicKey?: Uint8Array): number {
  const key = publicKey ?? encodeExtendedModifier(new Uint8Array(HBA_EXTENDED_MODIFIER_BITS / 8).fill(0xff));
  return cgaParamsLength({ modifier: new Uint8Array(CGA_MODIFIER_LENGTH), subnetPrefix: new Uint8Array(CGA_PREFIX_LENGTH), collisionCount: 0, publicKey: key,
    extensions: [{ type: 0, data: new Uint8Array(4 + prefixCount * CGA_PREFIX_LENGTH) }] });
}

/**
 * RFC 5535 §6 step 2: the HBA-only Extended Modifier (384 random bits) as an
 * rsaEncryption SubjectPublicKeyInfo whose RSAPublicKey modulus is the nonce
 * (minimal DER INTEGER, so every bit of it stays random) and whose exponent is
 * 65537, so it parses as the 384-bit RSA key RFC 5535 asks it to look like.
 */
export function encodeExtendedModifier(nonce: Uint8Array): Uint8Array {
  if (nonce.length !== HBA_EXTENDED_MODIFIER_BITS / 8) throw new UsageError('ERANDOM', 'the Extended Modifier is 48 octets');
  const rsaPublicKey = der(0x30, concat(derUnsignedInteger(nonce), derUnsignedInteger(Uint8Array.of(1, 0, 1))));
  const algorithm = Uint8Array.of(0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00);
  return der(0x30, concat(algorithm, der(0x03, concat(Uint8Array.of(0), rsaPublicKey))));
}

/**
 * RFC 5535 §7.2, saying why it failed: the address's prefix must be in the
 * (single) Multi-Prefix extension; it replaces the Subnet Prefix field; then
 * RFC 3972 §5. Never throws on malformed parameters ('malformed').
 */
export function checkHbaAddress(address: Ipv6 | Uint8Array, params: Uint8Array): CgaCheck {
  return checkHbaSet([address], params)[0]!;
}

/** RFC 5535 §7.2: true when `address` belongs to the HBA set of `params`. */
export function verifyHbaAddress(address: Ipv6 | Uint8Array, params: Uint8Array): boolean {
  return checkHbaSet([address], params)[0] === 'ok';
}

/** verifyHbaAddress for several addresses against one parameter block: n + 1 SHA-1s at most. */
export function verifyHbaSet(addresses: readonly (Ipv6 | Uint8Array)[], params: Uint8Array): boolean[] {
  return checkHbaSet(addresses, params).map((r) => r === 'ok');
}

/** checkHbaAddress for several addresses; one result per address, in order. */
export function checkHbaSet(addresses: readonly (Ipv6 | Uint8Array)[], params: Uint8Array): CgaCheck[] {
  const addrs = addresses.map(addressBytes);
  let layout;
  try { layout = scanCgaParams(params); } catch { return addrs.map(() => 'malformed'); }
  const common: CgaCheck | undefined = layout.multiPrefixCount !== 1 ? 'no-multi-prefix'
    : params[CgaOffset.COLLISION_COUNT]! > CGA_MAX_COLLISION_COUNT ? 'collision-count' : undefined;
  if (common !== undefined) return addrs.map(() => common);
  const mpEnd = layout.multiPrefixData + layout.multiPrefixLength;
  const scratch = params.slice();
  // Hash2 does not depend on the prefix: compute it once, keep its count of leading zero octets.
  let hash2Zeros: number | undefined;
  return addrs.map((addr): CgaCheck => {
    if (!prefixListed(params, layout.multiPrefixData, mpEnd, addr)) return 'prefix-not-in-set';
    scratch.set(addr.subarray(0, CGA_PREFIX_LENGTH), CgaOffset.PREFIX);
    if (!hash1MatchesIid(sha1(scratch), addr)) return 'hash1-mismatch';
    const sec = secOf(addr);
    if (sec > CGA_MAX_SEC) return 'unsupported-sec';
    if (sec === 0) return 'ok';
    if (hash2Zeros === undefined) {
      // Hash2 input = modifier ‖ 9 zero octets ‖ key ‖ extensions (RFC 3972 §3).
      scratch.fill(0, CgaOffset.PREFIX, CGA_KEY_OFFSET);
      hash2Zeros = zeroOctets(sha1(scratch).subarray(0, 14));
      scratch[CgaOffset.COLLISION_COUNT] = params[CgaOffset.COLLISION_COUNT]!;
    }
    return hash2Zeros >= 2 * sec ? 'ok' : 'hash2-mismatch';
  });
}

function prefixListed(params: Uint8Array, mpData: number, mpEnd: number, addr: Uint8Array): boolean {
  outer: for (let off = mpData + 4; off < mpEnd; off += CGA_PREFIX_LENGTH) {
    for (let i = 0; i < CGA_PREFIX_LENGTH; i++) if (params[off + i] !== addr[i]) continue outer;
    return true;
  }
  return false;
}

function zeroOctets(h: Uint8Array): number {
  let n = 0;
  while (n < h.length && h[n] === 0) n++;
  return n;
}

/** The Multi-Prefix P flag of `params` (undefined if there is no single Multi-Prefix extension). */
export function hbaPublicKeyIncluded(params: Uint8Array): boolean | undefined {
  let l;
  try { l = scanCgaParams(params); } catch { return undefined; }
  return l.multiPrefixCount === 1 ? (params[l.multiPrefixData]! & MULTI_PREFIX_P_FLAG) !== 0 : undefined;
}

/** The capability record hba-digest, alg 1: SHA-256 of the CGA Parameter Data Structure octets. */
export function hbaDigest(params: Uint8Array): Uint8Array {
  return crypto.createHash('sha256').update(params).digest();
}

/**
 * hbaDigest of the ULID's member of the set: `params` (from any member) with
 * the ULID's prefix in the Subnet Prefix field. The record publishes the
 * digest of the ULID's own structure, and a peer may send another member's.
 */
export function hbaDigestForUlid(params: Uint8Array, ulid: Ipv6 | Uint8Array): Uint8Array {
  const u = addressBytes(ulid);
  if (params.length < CGA_KEY_OFFSET) return hbaDigest(params);
  const h = crypto.createHash('sha256');
  h.update(params.subarray(0, CgaOffset.PREFIX)).update(u.subarray(0, CGA_PREFIX_LENGTH)).update(params.subarray(CgaOffset.COLLISION_COUNT));
  return h.digest();
}

function der(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return concat(Uint8Array.of(tag, ...len), content);
}

function derUnsignedInteger(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return der(0x02, v[0]! & 0x80 ? concat(Uint8Array.of(0), v) : v);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) { out.set(p, off); off += p.length; }
  return out;
}

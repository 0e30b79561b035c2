/**
 * Cryptographically Generated Addresses (RFC 3972) and the Shim6 CGA Signature
 * (RFC 5533 §5.15.5): Hash1/Hash2, generation with a bounded modifier search,
 * verification of an address against its parameters, sign / verify.
 *
 * Owns: the hash procedures and the address/IID arithmetic shared with hba.ts.
 * Must not know: sockets, clocks, or any randomness source of its own — callers
 * inject `randomBytes`, so tests and the simulator can seed it. The parameter
 * byte layout lives in cga-params.ts (re-exported here).
 *
 * Sec: RFC 4982 §6 defines Sec 0, 1, 2 (SHA-1 with 0/16/32 zero bits of Hash2);
 * 3–7 are unassigned, so we neither generate nor accept them.
 */
import crypto from 'node:crypto';
import { UsageError } from '../errors.ts';
import { formatIpv6, parseIpv6, type Ipv6 } from './ipv6.ts';
import { CgaOffset, encodeCgaParams, scanCgaParams, type CgaExtension } from './cga-params.ts';
import {
  CGA_KEY_OFFSET, CGA_MAX_COLLISION_COUNT, CGA_MAX_SEC, CGA_MODIFIER_LENGTH, CGA_PREFIX_LENGTH,
  MULTI_PREFIX_P_FLAG, SHIM6_CGA_TYPE_TAG, SHIM6_MAX_RSA_EXPONENT, SHIM6_MAX_RSA_KEY_BITS, SHIM6_MIN_RSA_KEY_BITS,
} from '../constants.ts';

export * from './cga-params.ts';

/** A source of random octets, injected (node's crypto.randomBytes fits; tests pass a seeded one). */
export type RandomBytes = (n: number) => Uint8Array;

/** Why a verification failed ('ok' when it did not). */
export type CgaCheck =
  | 'ok'
  | 'malformed'          // the parameters do not parse (cga-params.ts)
  | 'collision-count'    // RFC 3972 §5 step 1
  | 'prefix-mismatch'    // step 2
  | 'hash1-mismatch'     // step 4
  | 'unsupported-sec'    // Sec 3..7 (RFC 4982 §6)
  | 'hash2-mismatch'     // step 7
  | 'no-multi-prefix'    // HBA: no (or more than one) Multi-Prefix extension
  | 'prefix-not-in-set'; // HBA: RFC 5535 §7.2 step 1

/** Default bound of the modifier search: Sec 1 needs 2^16 tries on average, so 2^22 fails with p ≈ e^-64. */
export const DEFAULT_MAX_ITERATIONS = 1 << 22;

/** One-shot SHA-1 (crypto.hash since Node 20.12 avoids a Hash object per call). */
export const sha1: (data: Uint8Array) => Uint8Array = typeof crypto.hash === 'function'
  ? (data) => crypto.hash('sha1', data, 'buffer')
  : (data) => crypto.createHash('sha1').update(data).digest();

/** RFC 3972 §3: Hash1 = the leftmost 64 bits of SHA-1(parameters). */
export function cgaHash1(params: Uint8Array): Uint8Array {
  return sha1(params).subarray(0, 8);
}

/** RFC 3972 §3: Hash2 = the leftmost 112 bits of SHA-1(modifier ‖ 9 zero octets ‖ key ‖ extensions). */
export function cgaHash2(params: Uint8Array): Uint8Array {
  // One copy and a one-shot hash beat three update() calls on a Hash object.
  const input = params.slice();
  input.fill(0, CgaOffset.PREFIX, CGA_KEY_OFFSET);
  return sha1(input).subarray(0, 14);
}

/** RFC 3972 §2, Mask1 = 0x1cffffffffffffff: Hash1 against the IID of `addr`, Sec and u/g bits ignored. */
export function hash1MatchesIid(hash1: Uint8Array, addr: Uint8Array): boolean {
  if (((hash1[0]! ^ addr[8]!) & 0x1c) !== 0) return false;
  for (let i = 1; i < 8; i++) if (hash1[i] !== addr[8 + i]) return false;
  return true;
}

/** RFC 3972 §2, Mask2: the leftmost 16·Sec bits of Hash2 are zero. */
export function hash2Satisfies(hash2: Uint8Array, sec: number): boolean {
  for (let i = 0; i < 2 * sec; i++) if (hash2[i] !== 0) return false;
  return true;
}

/** Sec from the three leftmost bits of the interface identifier (RFC 3972 §2). */
export function secOf(addr: Uint8Array): number {
  return addr[8]! >> 5;
}

/** RFC 3972 §4 steps 6–7: prefix ‖ Hash1 with Sec written in and u/g cleared. */
export function formCgaAddress(subnetPrefix: Uint8Array, hash1: Uint8Array, sec: number): Uint8Array {
  const a = new Uint8Array(16);
  a.set(subnetPrefix.subarray(0, CGA_PREFIX_LENGTH), 0);
  a.set(hash1.subarray(0, 8), 8);
  a[8] = (sec << 5) | (hash1[0]! & 0x1c);
  return a;
}

/** 16 address octets from text or bytes (WireError('EADDRESS') on bad text). */
export function addressBytes(a: Ipv6 | Uint8Array): Uint8Array {
  if (typeof a === 'string') return parseIpv6(a);
  if (a.length !== 16) throw new UsageError('EADDRESS', `an address must be 16 octets, got ${a.length}`);
  return a;
}

/**
 * A 64-bit subnet prefix from 8 octets, or text `2001:db8:1::` / `2001:db8:1::/64`
 * (the low 64 bits must be zero). Throws UsageError('EPREFIX').
 */
export function prefix64(p: string | Uint8Array): Uint8Array {
  if (typeof p !== 'string') {
    if (p.length !== CGA_PREFIX_LENGTH) throw new UsageError('EPREFIX', `a prefix must be 8 octets, got ${p.length}`);
    return p;
  }
  const [addr, len, ...rest] = p.split('/');
  if (rest.length > 0 || (len !== undefined && len !== '64')) throw new UsageError('EPREFIX', `prefix ${p}: only /64 prefixes are supported`);
  let bytes: Uint8Array;
  try { bytes = parseIpv6(addr ?? ''); } catch { throw new UsageError('EPREFIX', `prefix ${p}: not an IPv6 prefix`); }
  if (bytes.subarray(8).some((b) => b !== 0)) throw new UsageError('EPREFIX', `prefix ${p}: host bits set`);
  return bytes.slice(0, CGA_PREFIX_LENGTH);
}

/** Canonical text of an 8-octet prefix: `2001:db8:1::/64`. */
export function formatPrefix64(p: Uint8Array): string {
  const a = new Uint8Array(16);
  a.set(p.subarray(0, CGA_PREFIX_LENGTH));
  return `${formatIpv6(a)}/64`;
}

/**
 * RFC 3972 §4 steps 2–3 (and RFC 5535 §6 steps 3–4): starting from `modifier`
 * (changed in place), increment until the leftmost 16·Sec bits of Hash2 are
 * zero. `tail` is key ‖ extensions. Throws UsageError('ECGA_SEARCH')
 * after `maxIterations` hashes, so a caller's Sec choice can never hang it.
 */
export function searchModifier(modifier: Uint8Array, tail: Uint8Array, sec: number, maxIterations: number): number {
  checkSec(sec);
  if (sec === 0) return 0;
  const input = new Uint8Array(CGA_KEY_OFFSET + tail.length);
  input.set(modifier, 0);
  input.set(tail, CGA_KEY_OFFSET);
  for (let i = 1; i <= maxIterations; i++) {
    if (hash2Satisfies(sha1(input), sec)) {
      modifier.set(input.subarray(0, CGA_MODIFIER_LENGTH));
      return i;
    }
    // 128-bit big-endian increment with wrap-around.
    for (let j = CGA_MODIFIER_LENGTH - 1; j >= 0; j--) {
      input[j] = (input[j]! + 1) & 0xff;
      if (input[j] !== 0) break;
    }
  }
  throw new UsageError('ECGA_SEARCH', `no modifier for Sec ${sec} within ${maxIterations} iterations`);
}

export function checkSec(sec: number): void {
  if (!Number.isInteger(sec) || sec < 0 || sec > CGA_MAX_SEC) {
    throw new UsageError('ESEC', `Sec must be 0..${CGA_MAX_SEC} (RFC 4982 §6), got ${sec}`);
  }
}

export interface GenerateCgaOptions {
  subnetPrefix: string | Uint8Array;
  /** DER SubjectPublicKeyInfo. */
  publicKey: Uint8Array;
  sec: number;
  randomBytes: RandomBytes;
  extensions?: readonly CgaExtension[];
  /** Bound of the modifier search (default DEFAULT_MAX_ITERATIONS). */
  maxIterations?: number;
  /** RFC 3972 §4 step 8: after a DAD collision the caller retries with 1, then 2. Default 0. */
  collisionCount?: number;
}

export interface GeneratedCga {
  address: Ipv6;
  /** The CGA Parameters data structure that proves it. */
  params: Uint8Array;
  /** Hash2 computations the search took (0 for Sec 0). */
  iterations: number;
}

/** RFC 3972 §4: generate a CGA and its parameters. */
export function generateCga(o: GenerateCgaOptions): GeneratedCga {
  const prefix = prefix64(o.subnetPrefix);
  const cc = o.collisionCount ?? 0;
  if (!Number.isInteger(cc) || cc < 0 || cc > CGA_MAX_COLLISION_COUNT) throw new UsageError('ECOLLISION_COUNT', 'collisionCount must be 0, 1 or 2');
  const modifier = Uint8Array.from(o.randomBytes(CGA_MODIFIER_LENGTH).subarray(0, CGA_MODIFIER_LENGTH));
  if (modifier.length !== CGA_MODIFIER_LENGTH) throw new UsageError('ERANDOM', 'randomBytes returned too few octets');
  const params = encodeCgaParams({
    modifier, subnetPrefix: prefix, collisionCount: cc, publicKey: o.publicKey, extensions: [...(o.extensions ?? [])],
  });
  const iterations = searchModifier(modifier, params.subarray(CGA_KEY_OFFSET), o.sec, o.maxIterations ?? DEFAULT_MAX_ITERATIONS);
  params.set(modifier, CgaOffset.MODIFIER);
  return { address: formatIpv6(formCgaAddress(prefix, cgaHash1(params), o.sec)), params, iterations };
}

/**
 * RFC 3972 §5: verify `address` against `params`, saying why it failed.
 * At most two SHA-1s; never throws on malformed parameters ('malformed').
 */
export function checkCga(address: Ipv6 | Uint8Array, params: Uint8Array): CgaCheck {
  const addr = addressBytes(address);
  try { scanCgaParams(params); } catch { return 'malformed'; }
  if (params[CgaOffset.COLLISION_COUNT]! > CGA_MAX_COLLISION_COUNT) return 'collision-count';
  for (let i = 0; i < CGA_PREFIX_LENGTH; i++) if (params[CgaOffset.PREFIX + i] !== addr[i]) return 'prefix-mismatch';
  if (!hash1MatchesIid(cgaHash1(params), addr)) return 'hash1-mismatch';
  const sec = secOf(addr);
  if (sec > CGA_MAX_SEC) return 'unsupported-sec';
  if (sec > 0 && !hash2Satisfies(cgaHash2(params), sec)) return 'hash2-mismatch';
  return 'ok';
}

/** RFC 3972 §5: true when `address` is a CGA of `params`. */
export function verifyCga(address: Ipv6 | Uint8Array, params: Uint8Array): boolean {
  return checkCga(address, params) === 'ok';
}

/**
 * RFC 5533 §5.15.5: the signed octets — Shim6 CGA type tag ‖ Locator List
 * generation (u32) ‖ the CGA-method locators in Locator List order.
 */
export function cgaSignatureInput(generation: number, cgaLocators: readonly (Ipv6 | Uint8Array)[]): Uint8Array {
  if (!Number.isInteger(generation) || generation < 0 || generation > 0xffffffff) {
    throw new UsageError('EGENERATION', `Locator List generation must be a u32, got ${generation}`);
  }
  const out = new Uint8Array(16 + 4 + 16 * cgaLocators.length);
  out.set(SHIM6_CGA_TYPE_TAG, 0);
  new DataView(out.buffer).setUint32(16, generation);
  cgaLocators.forEach((l, i) => out.set(addressBytes(l), 20 + 16 * i));
  return out;
}

/** A private key: a KeyObject, PEM text, or PKCS#8 DER octets. */
export type PrivateKeyInput = crypto.KeyObject | string | Uint8Array;

/** RFC 3972 §6 / RFC 5533 §5.15.5: RSASSA-PKCS1-v1_5 with SHA-1 over cgaSignatureInput. */
export function signCgaLocators(privateKey: PrivateKeyInput, generation: number, cgaLocators: readonly (Ipv6 | Uint8Array)[]): Uint8Array {
  const key = privateKey instanceof crypto.KeyObject ? privateKey
    : typeof privateKey === 'string' ? crypto.createPrivateKey(privateKey)
      : crypto.createPrivateKey({ key: Buffer.from(privateKey), format: 'der', type: 'pkcs8' });
  if (key.asymmetricKeyType !== 'rsa') throw new UsageError('EKEY', 'CGA signatures need an RSA key (RFC 3972 §6)');
  const sig = crypto.sign('sha1', cgaSignatureInput(generation, cgaLocators), { key, padding: crypto.constants.RSA_PKCS1_PADDING });
  return new Uint8Array(sig.buffer, sig.byteOffset, sig.length);
}

export interface VerifyCgaSignatureArgs {
  /** The sender's CGA Parameter Data Structure (the key comes from it). */
  params: Uint8Array;
  generation: number;
  /** The CGA-method locators of the Locator List, in list order. */
  locators: readonly (Ipv6 | Uint8Array)[];
  signature: Uint8Array;
  /** When given, the ULID must also be a CGA of `params` (RFC 3972 §6: both checks must pass). */
  ulid?: Ipv6 | Uint8Array;
  /** RFC 5533 §16: at least 1024-bit RSA (default). */
  minKeyBits?: number;
  /**
   * Asked once, after every check that costs no more than a hash has passed and
   * just before the key is parsed and the RSA verification runs (the part that
   * costs ~0.1–1 ms): false stops there ('limited'). The engine's verification
   * budget (shim/engine/verify.ts).
   */
  admit?: (() => boolean) | undefined;
}

/** Why a public key cannot be a peer's CGA key ('ok' when it can): see rsaKeyShape. */
export type RsaKeyCheck =
  | 'ok'
  | 'not-rsa'         // not a DER SubjectPublicKeyInfo of an rsaEncryption key (RFC 3972 §6 wants RSA)
  | 'key-too-short'   // modulus below minKeyBits (RFC 5533 §16: 1024)
  | 'key-too-long'    // modulus above SHIM6_MAX_RSA_KEY_BITS (4096)
  | 'bad-exponent';   // public exponent even, below 3 or above SHIM6_MAX_RSA_EXPONENT (2^32 − 1)

/** Why a CGA Signature did not verify ('ok' when it did). */
export type CgaSignatureCheck =
  | Exclude<RsaKeyCheck, 'ok'>
  | 'ok'
  | 'malformed'       // the parameters do not parse
  | 'hba-only'        // Multi-Prefix P = 0: the "key" is a nonce (RFC 5535 §5)
  | 'ulid-not-cga'    // the ULID is not a CGA of the parameters (RFC 3972 §5)
  | 'limited'         // `admit` said no: not verified
  | 'bad-signature';  // the RSA verification failed

/**
 * Verify a Shim6 CGA Signature, saying why it failed. Never throws. Hash-cost
 * checks come first, then the key's shape from its DER octets (rsaKeyShape, no
 * parsing by OpenSSL), then `admit`, and only then the key parse and the RSA
 * verification — so a key whose verification would cost more than a 4096-bit
 * key with a 32-bit exponent is refused for the price of reading its header.
 */
export function checkCgaSignature(a: VerifyCgaSignatureArgs): CgaSignatureCheck {
  let layout;
  try { layout = scanCgaParams(a.params); } catch { return 'malformed'; }
  if (layout.multiPrefixCount > 0 && (a.params[layout.multiPrefixData]! & MULTI_PREFIX_P_FLAG) === 0) return 'hba-only';
  if (a.ulid !== undefined && !verifyCga(a.ulid, a.params)) return 'ulid-not-cga';
  const spki = a.params.subarray(CGA_KEY_OFFSET, layout.keyEnd);
  const shape = rsaKeyShape(spki, a.minKeyBits);
  if (shape !== 'ok') return shape;
  if (a.admit !== undefined && !a.admit()) return 'limited';
  const key = rsaKeyOf(spki);
  if (key === undefined) return 'not-rsa';
  // OpenSSL read the same numbers; checked again so the bound never rests on the DER reader alone.
  const d = key.asymmetricKeyDetails;
  const again = keyBounds(d?.modulusLength ?? 0, d?.publicExponent ?? 0n, a.minKeyBits);
  if (again !== 'ok') return again;
  try {
    return crypto.verify('sha1', cgaSignatureInput(a.generation, a.locators), { key, padding: crypto.constants.RSA_PKCS1_PADDING }, a.signature) ? 'ok' : 'bad-signature';
  } catch { return 'bad-signature'; }
}

/**
 * Verify a Shim6 CGA Signature. False (never an exception) for malformed
 * parameters, a non-RSA key or one outside the bounds (rsaKeyShape), an
 * HBA-only parameter set (Multi-Prefix P = 0: the "key" is a nonce), or a
 * signature that does not match.
 */
export function verifyCgaSignature(a: VerifyCgaSignatureArgs): boolean {
  return checkCgaSignature(a) === 'ok';
}

function keyBounds(bits: number, e: bigint, minKeyBits = SHIM6_MIN_RSA_KEY_BITS): RsaKeyCheck {
  if (bits < minKeyBits) return 'key-too-short';
  if (bits > SHIM6_MAX_RSA_KEY_BITS) return 'key-too-long';
  if (e < 3n || e > BigInt(SHIM6_MAX_RSA_EXPONENT) || (e & 1n) === 0n) return 'bad-exponent';
  return 'ok';
}

/** DER rsaEncryption AlgorithmIdentifier: SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }. */
const RSA_ALGORITHM = Uint8Array.from([0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00]);

/** One DER TLV at `at` with tag `tag` (definite lengths up to 4 octets): its contents [start, end), or undefined. */
function derTlv(b: Uint8Array, at: number, end: number, tag: number): { start: number; end: number } | undefined {
  if (at + 2 > end || b[at] !== tag) return undefined;
  let len = b[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > end) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[start + i]!;
    start += n;
  }
  return start + len <= end ? { start, end: start + len } : undefined;
}

/**
 * The modulus size and public exponent of an RSA SubjectPublicKeyInfo, read
 * from its DER octets (a few dozen octet reads; parsing by OpenSSL costs about
 * half a millisecond) and checked against the bounds: modulus
 * minKeyBits..SHIM6_MAX_RSA_KEY_BITS (1024–4096) bits, exponent odd and
 * 3..2^32 − 1. A verification's cost grows with the modulus squared times the
 * exponent's bits: OpenSSL accepts any exponent below the modulus up to 3072
 * bits, and a 3072-bit exponent makes one verification cost ~200 times that of
 * a 2048-bit key with e = 65537; within these bounds it is at most ~6 times.
 */
export function rsaKeyShape(spki: Uint8Array, minKeyBits?: number): RsaKeyCheck {
  const outer = derTlv(spki, 0, spki.length, 0x30);
  if (outer === undefined || outer.end !== spki.length) return 'not-rsa';
  const alg = spki.subarray(outer.start, outer.start + RSA_ALGORITHM.length);
  if (alg.length !== RSA_ALGORITHM.length || alg.some((x, i) => x !== RSA_ALGORITHM[i])) return 'not-rsa';
  const bits = derTlv(spki, outer.start + RSA_ALGORITHM.length, outer.end, 0x03);
  if (bits === undefined || bits.end !== outer.end || spki[bits.start] !== 0) return 'not-rsa';
  const seq = derTlv(spki, bits.start + 1, bits.end, 0x30);
  if (seq === undefined || seq.end !== bits.end) return 'not-rsa';
  const n = derTlv(spki, seq.start, seq.end, 0x02);
  if (n === undefined) return 'not-rsa';
  const e = derTlv(spki, n.end, seq.end, 0x02);
  if (e === undefined || e.end !== seq.end) return 'not-rsa';
  return keyBounds(integerBits(spki, n.start, n.end), integerValue(spki, e.start, e.end), minKeyBits);
}

/**
 * Why our own CGA key would be refused by peers (keyBounds, as rsaKeyShape checks a peer's: each
 * refuses our signatures, so no CGA-method locator of ours, nor a CGA ULID, is ever accepted), as
 * the rest of a sentence about the key; undefined when it is fine. For the key's owner: the
 * daemon's start, the engine's config, `zone hba --key`.
 */
export function ownKeyProblem(key: crypto.KeyObject): string | undefined {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  switch (keyBounds(bits, key.asymmetricKeyDetails?.publicExponent ?? 0n)) {
    case 'ok': return undefined;
    case 'key-too-long': return `has ${bits} bits; peers refuse a CGA key of more than ${SHIM6_MAX_RSA_KEY_BITS} (docs/security.md "CGA verification cost")`;
    case 'bad-exponent': return 'has a public exponent peers refuse (odd, 3 to 2^32 − 1: openssl genrsa makes 65537)';
    default: return `has ${bits} bits; RFC 5533 §16 wants at least ${SHIM6_MIN_RSA_KEY_BITS}`;
  }
}

/** Bits of a non-negative DER INTEGER's value (leading zero octets skipped; negative counts as 0). */
function integerBits(b: Uint8Array, start: number, end: number): number {
  if (start < end && (b[start]! & 0x80) !== 0) return 0;
  while (start < end && b[start] === 0) start++;
  if (start === end) return 0;
  return (end - start - 1) * 8 + (32 - Math.clz32(b[start]!));
}

/** A DER INTEGER's value, capped: anything longer than 8 octets of value is reported as 2^64 (out of bounds anyway). */
function integerValue(b: Uint8Array, start: number, end: number): bigint {
  if (start < end && (b[start]! & 0x80) !== 0) return 0n;
  while (start < end && b[start] === 0) start++;
  if (end - start > 8) return 1n << 64n;
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(b[i]!);
  return v;
}

/**
 * Parsing a SubjectPublicKeyInfo costs several times the RSA verify itself,
 * and a peer sends the same key in every signed message of a context, so
 * parsed keys are memoised by their DER octets (bounded; a pure cache — the
 * answer never depends on it).
 */
const KEY_CACHE_MAX = 256;
const keyCache = new Map<string, crypto.KeyObject | null>();

/** The RSA public key in a DER SubjectPublicKeyInfo, or undefined (not parsable, not RSA). */
export function rsaKeyOf(spki: Uint8Array): crypto.KeyObject | undefined {
  const id = Buffer.from(spki.buffer, spki.byteOffset, spki.length).toString('latin1');
  let key = keyCache.get(id);
  if (key === undefined) {
    try {
      const k = crypto.createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
      key = k.asymmetricKeyType === 'rsa' ? k : null;
    } catch { key = null; }
    if (keyCache.size >= KEY_CACHE_MAX) keyCache.delete(keyCache.keys().next().value!);
    keyCache.set(id, key);
  }
  return key ?? undefined;
}

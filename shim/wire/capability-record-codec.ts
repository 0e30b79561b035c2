/**
 * The capability record (docs/capability-record.md): the `CapabilityRecord` type and its
 * binary RDATA codec (TYPE65300, version 1).
 *
 * Owns: the RDATA layout, its validation rules, and the "ignore this RR"
 * outcomes (unknown version, unknown mandatory key). Decoding untrusted bytes
 * throws only WireError; encoding a bad record throws UsageError.
 * Must not know: DNS messages, owner names, TTLs, the presentation or TXT forms
 * (capability-record-text.ts).
 *
 *   0 version u8 · 1 flags u8 (0x80 HBA set, 0x40 CGA ULID) · 2 count u8 (1..32) ·
 *   3 reserved u8 · 4..19 ULID · count × (flags u8 · priority u8 · weight u8 ·
 *   reserved u8 · locator 16) · params (key u16 · len u16 · value)*, keys strictly increasing.
 */
import { WireError } from './errors.ts';
import { UsageError } from '../errors.ts';
import { formatIpv6, octetsText, parseIpv6, type Ipv6, type Ipv6Octets } from './ipv6.ts';
import {
  CAPABILITY_MAX_LOCATORS, CAPABILITY_RECORD_VERSION, CapabilityFlag, CapabilityParamKey, HBA_DIGEST_ALG_SHA256,
} from '../constants.ts';

export interface CapabilityLocator {
  address: Ipv6;
  /** u8, RFC 5533 §5.15.3 flags: 0x01 BROKEN, 0x02 TRANSIENT; other bits kept as they are. */
  flags: number;
  /** u8, lower first (SRV semantics). */
  priority: number;
  /** u8 (SRV semantics). */
  weight: number;
}

/** Parameter 1: the digest of the ULID's CGA Parameter Data Structure. */
export interface HbaDigest {
  /** 1 = SHA-256 (32 octets); other values are kept but unusable. */
  alg: number;
  digest: Uint8Array;
}

/** A parameter this reader does not know (key ≥ 3), kept for round trips. */
export interface CapabilityParam {
  key: number;
  value: Uint8Array;
}

/** A decoded version-1 capability record. */
export interface CapabilityRecord {
  /** Flag 0x80: the locators form an HBA set. */
  hbaSet: boolean;
  /** Flag 0x40: the ULID is a CGA. */
  cgaUlid: boolean;
  ulid: Ipv6;
  /** 1..32, in record order. */
  locators: CapabilityLocator[];
  /** Parameter 0: keys the reader must understand, ascending; [] when absent. */
  mandatory: number[];
  /** Parameter 1. */
  hbaDigest?: HbaDigest;
  /** Parameter 2: UDP port of the peer's shim; absent means SHIM6_UDP_PORT (5533). */
  port?: number;
  /** Parameters with keys ≥ 3, ascending. */
  unknownParams: CapabilityParam[];
}

/** Why a well-formed RR is still to be ignored (docs/capability-record.md "What a reader does with an RR"). */
export type RecordIgnoreReason = 'UNSUPPORTED_VERSION' | 'UNKNOWN_MANDATORY_KEY';

/**
 * Thrown (code 'ERECORD') for an RR the reader must ignore although it may be
 * perfectly valid for a newer reader: version ≠ 1, or a mandatory key this
 * reader does not know. Callers tell it from a malformed RR with `ignoreReason`.
 */
export class IgnoredCapabilityRecord extends WireError {
  readonly reason: RecordIgnoreReason;
  /** The version octet, or the unknown mandatory key. */
  readonly value: number;
  constructor(reason: RecordIgnoreReason, value: number, offset: number) {
    super('ERECORD', reason === 'UNSUPPORTED_VERSION'
      ? `capability record version ${value} is not 1: ignore the RR`
      : `capability record makes unknown key ${value} mandatory: ignore the RR`, offset);
    this.reason = reason;
    this.value = value;
  }
}

/** The ignore reason of an error from the decoders, or undefined (malformed, or not ours). */
export function ignoreReason(e: unknown): RecordIgnoreReason | undefined {
  return e instanceof IgnoredCapabilityRecord ? e.reason : undefined;
}

export interface DecodeRecordOptions {
  /** Also reject non-zero reserved octets and unknown record flag bits (zone checks). Default false: ignored. */
  strict?: boolean;
}

const HEADER = 20;
const LOCATOR = 20;
const KNOWN_KEYS: ReadonlySet<number> = new Set(Object.values(CapabilityParamKey));

/** Decode RDATA. Throws only WireError; see IgnoredCapabilityRecord for the "ignore" outcomes. */
export function decodeCapabilityRecord(rdata: Uint8Array, opts: DecodeRecordOptions = {}): CapabilityRecord {
  return decodeCapabilityRecordAt(rdata, 0, rdata.length, opts.strict === true);
}

/**
 * Decode the RDATA at `b[start, start + len)` where it lies: the resolver reads
 * it straight from an upstream answer's bytes (no view made per record). The
 * same rules and errors as decodeCapabilityRecord; error offsets count from `start`.
 */
export function decodeCapabilityRecordAt(b: Uint8Array, start: number, len: number, strict = false): CapabilityRecord {
  const end = checkLayout(b, start, len, strict);
  const locators: CapabilityLocator[] = [];
  for (let at = start + HEADER; at < start + end; at += LOCATOR) {
    locators.push({ address: formatIpv6(b, at + 4), flags: b[at]!, priority: b[at + 1]!, weight: b[at + 2]! });
  }
  const flags = b[start + 1]!;
  const record: CapabilityRecord = {
    hbaSet: (flags & CapabilityFlag.HBA_SET) !== 0,
    cgaUlid: (flags & CapabilityFlag.CGA_ULID) !== 0,
    ulid: formatIpv6(b, start + RECORD_ULID_OFFSET),
    locators,
    mandatory: [],
    unknownParams: [],
  };
  if (end < len) decodeParams(b, start, end, len, record);
  return record;
}

/**
 * A record's RDATA that passed the decoder's checks, as one flat string of its
 * octets (latin1: one character per octet). The resolver keeps and hands on a
 * peer's record in this form: the objects and address texts of a decoded record
 * are made only by whoever reads it (recordFromOctets).
 */
export type RecordOctets = string & { readonly recordOctets: unique symbol };

/**
 * Check the RDATA at `b[start, start + len)` by the rules of decodeCapabilityRecordAt
 * (not strict) and return its octets, without building the record: the same
 * errors, no objects for the locators, no address text.
 */
export function checkCapabilityRecordAt(b: Uint8Array, start: number, len: number): RecordOctets {
  const end = checkLayout(b, start, len, false);
  if (end < len) decodeParams(b, start, end, len, { mandatory: [], unknownParams: [] }); // its values are dropped
  return octetsText(b, start, start + len) as RecordOctets;
}

/** The record a RecordOctets holds (it was checked when it was made: this does not throw). */
export function recordFromOctets(octets: RecordOctets): CapabilityRecord {
  const b = Buffer.from(octets, 'latin1');
  // A plain Uint8Array view: the parameter values it copies are then Uint8Arrays, as from any other decode.
  return decodeCapabilityRecord(new Uint8Array(b.buffer, b.byteOffset, b.length));
}

/**
 * The record without its parameters (its header and locators: at most 660 octets), as a string
 * of its own (not a slice that keeps the whole RDATA alive): what a cache keeps per peer to show
 * its ULID and locators, whatever the parameters' size (up to 64 KB of RDATA).
 */
export function recordWithoutParams(octets: RecordOctets): RecordOctets {
  const end = HEADER + octets.charCodeAt(2) * LOCATOR;
  if (end >= octets.length) return octets;
  return Buffer.from(octets.slice(0, end), 'latin1').toString('latin1') as RecordOctets;
}

/** Where the ULID's 16 octets start in the RDATA (and so in a RecordOctets). */
export const RECORD_ULID_OFFSET = 4;

/** The ULID of a RecordOctets, as octets. */
export function recordUlidOctets(octets: RecordOctets): Ipv6Octets {
  return octets.slice(RECORD_ULID_OFFSET, RECORD_ULID_OFFSET + 16) as Ipv6Octets;
}

/**
 * The checks of the fixed part (version, header, locator count, the locators'
 * octets, and in strict mode the reserved octets and flag bits): the offset
 * where the parameters start.
 */
function checkLayout(b: Uint8Array, start: number, len: number, strict: boolean): number {
  // A caller's bug, not hostile input: the RDATA's bounds come from an answer already scanned.
  if (!(start >= 0 && len >= 0 && start + len <= b.length)) throw new RangeError(`capability record: RDATA [${start}, +${len}) outside ${b.length} octets`);
  if (len < 1) throw new WireError('ETRUNCATED', 'capability record: empty RDATA', 0);
  // The version decides the layout of everything after it, so it is checked first.
  if (b[start] !== CAPABILITY_RECORD_VERSION) throw new IgnoredCapabilityRecord('UNSUPPORTED_VERSION', b[start]!, 0);
  if (len < HEADER) throw new WireError('ETRUNCATED', 'capability record: header needs 20 octets', len);
  const flags = b[start + 1]!;
  const count = b[start + 2]!;
  if (count < 1 || count > CAPABILITY_MAX_LOCATORS) throw new WireError('EFIELD', `capability record: locator count ${count} not in 1..32`, 2);
  if (strict) {
    if ((flags & ~(CapabilityFlag.HBA_SET | CapabilityFlag.CGA_ULID)) !== 0) throw new WireError('EFIELD', 'capability record: unknown flag bits set', 1);
    if (b[start + 3] !== 0) throw new WireError('EFIELD', 'capability record: reserved octet not zero', 3);
  }
  const end = HEADER + count * LOCATOR;
  if (len < end) throw new WireError('ETRUNCATED', `capability record: ${count} locators need ${end} octets`, len);
  for (let off = HEADER; off < end; off += LOCATOR) {
    const at = start + off;
    if (strict && b[at + 3] !== 0) throw new WireError('EFIELD', 'capability record: locator reserved octet not zero', off + 3);
    // At most 32 locators: comparing octets with the earlier ones costs less than a set of strings.
    for (let prev = start + HEADER; prev < at; prev += LOCATOR) {
      if (sameOctets(b, prev + 4, at + 4)) throw new WireError('ERECORD', `capability record: locator ${formatIpv6(b, at + 4)} listed twice`, off + 4);
    }
  }
  return end;
}

/** Whether the 16 octets at `a` and at `b` are equal. */
function sameOctets(buf: Uint8Array, a: number, b: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

/** A copy of `b[from, to)` (of b's own kind: `slice` of a Buffer would be a view). */
const copyOf = (b: Uint8Array, from: number, to: number): Uint8Array => Uint8Array.prototype.slice.call(b, from, to);

/**
 * The parameters at `b[base + first, base + len)`; error offsets count from `base`. Keys
 * are strictly increasing, and so are the mandatory ones (key 0 comes first): whether each
 * mandatory key is present is a merge of the two lists, without a set of keys.
 */
function decodeParams(b: Uint8Array, base: number, first: number, len: number, record: Pick<CapabilityRecord, 'mandatory' | 'hbaDigest' | 'port' | 'unknownParams'>): void {
  let prevKey = -1;
  let mandatoryOffset = -1;
  let nextMandatory = 0; // index into record.mandatory of the first key not yet met
  let missing = -1; // the smallest mandatory key found absent
  for (let off = first; off < len;) {
    if (off + 4 > len) throw new WireError('ETRUNCATED', 'capability record: parameter header truncated', off);
    const at = base + off;
    const key = (b[at]! << 8) | b[at + 1]!;
    const vlen = (b[at + 2]! << 8) | b[at + 3]!;
    if (off + 4 + vlen > len) throw new WireError('ETRUNCATED', `capability record: parameter ${key} value truncated`, off + 2);
    if (key <= prevKey) throw new WireError('ERECORD', `capability record: parameter keys not strictly increasing (${key} after ${prevKey})`, off);
    const vs = at + 4;
    switch (key) {
      case CapabilityParamKey.MANDATORY: record.mandatory = decodeMandatory(b, vs, vlen, off); mandatoryOffset = off; break;
      case CapabilityParamKey.HBA_DIGEST: record.hbaDigest = decodeHbaDigest(b, vs, vlen, off); break;
      case CapabilityParamKey.PORT: record.port = decodePort(b, vs, vlen, off); break;
      default: record.unknownParams.push({ key, value: copyOf(b, vs, vs + vlen) });
    }
    const m = record.mandatory;
    while (nextMandatory < m.length && m[nextMandatory]! < key) { if (missing < 0) missing = m[nextMandatory]!; nextMandatory++; }
    if (nextMandatory < m.length && m[nextMandatory] === key) nextMandatory++;
    prevKey = key;
    off += 4 + vlen;
  }
  const m = record.mandatory;
  if (missing < 0 && nextMandatory < m.length) missing = m[nextMandatory]!;
  if (missing >= 0) throw new WireError('ERECORD', `capability record: mandatory key ${missing} is not present`, mandatoryOffset);
  for (const k of m) {
    if (!KNOWN_KEYS.has(k)) throw new IgnoredCapabilityRecord('UNKNOWN_MANDATORY_KEY', k, mandatoryOffset);
  }
}

function decodeMandatory(b: Uint8Array, vs: number, vlen: number, off: number): number[] {
  if (vlen === 0 || vlen % 2 !== 0) throw new WireError('ERECORD', 'capability record: mandatory must list one or more u16 keys', off + 2);
  const keys: number[] = [];
  for (let i = 0; i < vlen; i += 2) {
    const k = (b[vs + i]! << 8) | b[vs + i + 1]!;
    if (k === CapabilityParamKey.MANDATORY) throw new WireError('ERECORD', 'capability record: mandatory lists itself', off + 4 + i);
    if (keys.length > 0 && k <= keys[keys.length - 1]!) throw new WireError('ERECORD', 'capability record: mandatory keys not strictly increasing', off + 4 + i);
    keys.push(k);
  }
  return keys;
}

function decodeHbaDigest(b: Uint8Array, vs: number, vlen: number, off: number): HbaDigest {
  if (vlen < 2) throw new WireError('ERECORD', 'capability record: hba-digest needs an algorithm and a digest', off + 2);
  const alg = b[vs]!;
  if (alg === 0) throw new WireError('ERECORD', 'capability record: hba-digest algorithm 0 is reserved', off + 4);
  if (alg === HBA_DIGEST_ALG_SHA256 && vlen !== 33) throw new WireError('ERECORD', 'capability record: SHA-256 hba-digest must be 32 octets', off + 2);
  return { alg, digest: copyOf(b, vs + 1, vs + vlen) };
}

function decodePort(b: Uint8Array, vs: number, vlen: number, off: number): number {
  if (vlen !== 2) throw new WireError('ERECORD', 'capability record: port must be 2 octets', off + 2);
  const port = (b[vs]! << 8) | b[vs + 1]!;
  if (port === 0) throw new WireError('ERECORD', 'capability record: port 0', off + 4);
  return port;
}

/** A reason `r` cannot be encoded (field name + why), or undefined. Shared with the text parser. */
export function recordProblem(r: CapabilityRecord): { field: string; why: string } | undefined {
  const bad = (field: string, why: string): { field: string; why: string } => ({ field, why });
  // Records also arrive from JSON (CLI, config): check shapes before values.
  if (typeof r !== 'object' || r === null) return bad('record', 'not an object');
  if (typeof r.hbaSet !== 'boolean') return bad('hbaSet', 'not a boolean');
  if (typeof r.cgaUlid !== 'boolean') return bad('cgaUlid', 'not a boolean');
  for (const f of ['locators', 'mandatory', 'unknownParams'] as const) if (!Array.isArray(r[f])) return bad(f, 'not an array');
  if (r.hbaDigest !== undefined && !(r.hbaDigest?.digest instanceof Uint8Array)) return bad('hbaDigest.digest', 'not octets');
  for (const [i, p] of r.unknownParams.entries()) if (!(p?.value instanceof Uint8Array)) return bad(`unknownParams[${i}].value`, 'not octets');
  if (addressOctets(r.ulid) === undefined) return bad('ulid', 'not an IPv6 address');
  if (r.locators.length < 1 || r.locators.length > CAPABILITY_MAX_LOCATORS) return bad('locators', 'need 1..32 locators');
  const seen = new Set<string>();
  for (const [i, l] of r.locators.entries()) {
    if (typeof l !== 'object' || l === null) return bad(`locators[${i}]`, 'not an object');
    const octets = addressOctets(l.address);
    if (octets === undefined) return bad(`locators[${i}].address`, 'not an IPv6 address');
    if (seen.has(octets)) return bad(`locators[${i}].address`, 'listed twice');
    seen.add(octets);
    for (const f of ['flags', 'priority', 'weight'] as const) if (!isU(l[f], 0xff)) return bad(`locators[${i}].${f}`, 'not a u8');
  }
  const keys = new Set<number>(r.unknownParams.map((p) => p.key));
  if (r.hbaDigest) keys.add(CapabilityParamKey.HBA_DIGEST);
  if (r.port !== undefined) keys.add(CapabilityParamKey.PORT);
  for (const [i, k] of r.mandatory.entries()) {
    if (!isU(k, 0xffff) || k === 0) return bad('mandatory', `key ${k} cannot be mandatory`);
    if (i > 0 && k <= r.mandatory[i - 1]!) return bad('mandatory', 'keys must be strictly increasing');
    if (!keys.has(k)) return bad('mandatory', `key ${k} is not present`);
  }
  if (r.hbaDigest) {
    const { alg, digest } = r.hbaDigest;
    if (!isU(alg, 0xff) || alg === 0) return bad('hbaDigest.alg', 'must be 1..255');
    if (alg === HBA_DIGEST_ALG_SHA256 ? digest.length !== 32 : digest.length < 1) return bad('hbaDigest.digest', 'wrong length for the algorithm');
  }
  if (r.port !== undefined && (!isU(r.port, 0xffff) || r.port === 0)) return bad('port', 'must be 1..65535');
  for (const [i, p] of r.unknownParams.entries()) {
    if (!isU(p.key, 0xffff) || KNOWN_KEYS.has(p.key)) return bad(`unknownParams[${i}].key`, 'must be 3..65535');
    if (i > 0 && p.key <= r.unknownParams[i - 1]!.key) return bad(`unknownParams[${i}].key`, 'keys must be strictly increasing');
  }
  if (capabilityRecordLength(r) > 0xffff) return bad('record', 'longer than 65535 octets');
  return undefined;
}

/** Octets `encodeCapabilityRecord(r)` produces. */
export function capabilityRecordLength(r: CapabilityRecord): number {
  let n = HEADER + LOCATOR * r.locators.length;
  if (r.mandatory.length > 0) n += 4 + 2 * r.mandatory.length;
  if (r.hbaDigest) n += 4 + 1 + r.hbaDigest.digest.length;
  if (r.port !== undefined) n += 6;
  for (const p of r.unknownParams) n += 4 + p.value.length;
  return n;
}

/** Encode as version-1 RDATA. Throws UsageError('ECAPABILITY_RECORD') naming the field. */
export function encodeCapabilityRecord(r: CapabilityRecord): Uint8Array {
  const problem = recordProblem(r);
  if (problem) throw new UsageError('ECAPABILITY_RECORD', `capability record ${problem.field}: ${problem.why}`, problem.field);
  const out = new Uint8Array(capabilityRecordLength(r));
  out[0] = CAPABILITY_RECORD_VERSION;
  out[1] = (r.hbaSet ? CapabilityFlag.HBA_SET : 0) | (r.cgaUlid ? CapabilityFlag.CGA_ULID : 0);
  out[2] = r.locators.length;
  out.set(parseIpv6(r.ulid), 4);
  let off = HEADER;
  for (const l of r.locators) {
    out[off] = l.flags;
    out[off + 1] = l.priority;
    out[off + 2] = l.weight;
    out.set(parseIpv6(l.address), off + 4);
    off += LOCATOR;
  }
  const put = (key: number, value: Uint8Array): void => {
    out[off] = key >> 8; out[off + 1] = key & 0xff;
    out[off + 2] = value.length >> 8; out[off + 3] = value.length & 0xff;
    out.set(value, off + 4);
    off += 4 + value.length;
  };
  if (r.mandatory.length > 0) put(CapabilityParamKey.MANDATORY, Uint8Array.from(r.mandatory.flatMap((k) => [k >> 8, k & 0xff])));
  if (r.hbaDigest) put(CapabilityParamKey.HBA_DIGEST, Uint8Array.of(r.hbaDigest.alg, ...r.hbaDigest.digest));
  if (r.port !== undefined) put(CapabilityParamKey.PORT, Uint8Array.of(r.port >> 8, r.port & 0xff));
  for (const p of r.unknownParams) put(p.key, p.value);
  return out;
}

function isU(x: unknown, max: number): boolean {
  return typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;
}

/** The address as a 16-character string of its octets (a cheap Set key), or undefined. */
function addressOctets(a: unknown): string | undefined {
  if (typeof a !== 'string') return undefined;
  try { return String.fromCharCode(...parseIpv6(a)); } catch { return undefined; }
}

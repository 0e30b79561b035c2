/**
 * Scanning upstream answers in place (RFC 1035 §4.1, §4.1.4; RFC 2181 §8; RFC 2308 §5).
 *
 * `scanResponse` checks the whole message structure once (every RR inside the
 * buffer, compression pointers pointing backwards, names ≤ 255 octets) and records
 * where each RR's TTL and RDATA live, so the cache can later patch TTLs in a copy
 * of the same bytes. Nothing is decoded into objects; the bytes stay what the
 * upstream sent (unknown types, EDNS options and DNSSEC records pass unharmed).
 * Throws only WireError. It must not know about sockets, caches or the engine.
 */
import { WireError } from '../shim/wire/errors.ts';
import { MAX_LABEL_OCTETS, MAX_NAME_OCTETS, RrType, walkPlainName } from './message.ts';

export interface RrRef {
  /** 0 answer, 1 authority, 2 additional. */
  section: 0 | 1 | 2;
  ownerOff: number;
  type: number;
  klass: number;
  /** RFC 2181 §8: a TTL with the top bit set is treated as 0. */
  ttl: number;
  ttlOff: number;
  rdOff: number;
  rdLen: number;
}

export interface ScannedResponse {
  id: number;
  flags: number;
  /** Full RCODE: header 4 bits plus the OPT extended bits (RFC 6891 §6.1.3). */
  rcode: number;
  /** Lowercased wire name of the question ('' when QDCOUNT = 0). */
  qnameKey: string;
  qtype: number;
  qclass: number;
  questionEnd: number;
  records: RrRef[];
  /** Index into records of the OPT RR, -1 if none. */
  optIndex: number;
  /** RRs (OPT aside) whose TTL field has the top bit set (RFC 2181 §8): zeroHighBitTtls() rewrites them. */
  highBitTtls: number;
}

const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;
const u32 = (b: Uint8Array, o: number): number => ((b[o]! << 24) >>> 0) + ((b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!);
const MAX_POINTER_HOPS = 64;
const MAX_RECORDS = 4096;
const nameScratch = Buffer.alloc(MAX_NAME_OCTETS);

/** Skip a possibly compressed name at `off`; returns the offset after it. */
function skipName(b: Uint8Array, off: number): number {
  let o = off;
  let total = 0;
  for (;;) {
    if (o >= b.length) throw new WireError('ETRUNCATED', 'name runs past the message', o);
    const len = b[o]!;
    if (len === 0) return o + 1;
    if ((len & 0xc0) === 0xc0) {
      if (o + 2 > b.length) throw new WireError('ETRUNCATED', 'compression pointer truncated', o);
      if ((((len & 0x3f) << 8) | b[o + 1]!) >= o) throw new WireError('EFIELD', 'compression pointer does not point backwards', o);
      return o + 2;
    }
    if (len > MAX_LABEL_OCTETS) throw new WireError('EFIELD', 'unknown label type', o);
    total += len + 1;
    if (total + 1 > MAX_NAME_OCTETS) throw new WireError('ELENGTH', 'name longer than 255 octets', o);
    o += len + 1;
  }
}

/**
 * Read a possibly compressed name as a lowercased wire-form key. Pointers must
 * point strictly backwards and are followed at most 64 times.
 */
export function readNameKey(b: Uint8Array, off: number): string {
  let o = off;
  let n = 0; // octets written to nameScratch
  let hops = 0;
  for (;;) {
    if (o >= b.length) throw new WireError('ETRUNCATED', 'name runs past the message', o);
    const len = b[o]!;
    if (len === 0) {
      nameScratch[n++] = 0;
      return nameScratch.toString('latin1', 0, n);
    }
    if ((len & 0xc0) === 0xc0) {
      if (o + 2 > b.length) throw new WireError('ETRUNCATED', 'compression pointer truncated', o);
      const target = ((len & 0x3f) << 8) | b[o + 1]!;
      if (target >= o || ++hops > MAX_POINTER_HOPS) throw new WireError('EFIELD', 'bad compression pointer', o);
      o = target;
      continue;
    }
    if (len > MAX_LABEL_OCTETS) throw new WireError('EFIELD', 'unknown label type', o);
    if (o + 1 + len > b.length) throw new WireError('ETRUNCATED', 'label runs past the message', o);
    if (n + len + 2 > MAX_NAME_OCTETS) throw new WireError('ELENGTH', 'name longer than 255 octets', o);
    nameScratch[n++] = len;
    for (let i = 1; i <= len; i++) {
      const c = b[o + i]!;
      nameScratch[n++] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
    }
    o += len + 1;
  }
}

/**
 * Check the structure of a whole response and index its RRs. `withKey` false:
 * `qnameKey` is left '' (the upstream pool matches the question name with
 * questionNameIs instead: no string made per answer, and then sets it to the
 * question's own key, so that later owner checks compare one string with itself).
 */
export function scanResponse(b: Uint8Array, withKey = true): ScannedResponse {
  if (b.length < 12) throw new WireError('ETRUNCATED', 'DNS header needs 12 octets', b.length);
  const flags = u16(b, 2);
  if (!(flags & 0x8000)) throw new WireError('EFIELD', 'QR clear: not a response', 2);
  const qd = u16(b, 4);
  if (qd > 1) throw new WireError('EFIELD', 'more than one question', 4);
  const an = u16(b, 6), ns = u16(b, 8), ar = u16(b, 10);
  if (an + ns + ar > MAX_RECORDS) throw new WireError('ELENGTH', 'too many records', 6);
  let o = 12;
  let qnameKey = '';
  let qtype = 0;
  let qclass = 0;
  if (qd === 1) {
    const end = walkPlainName(b, 12, nameScratch);
    if (end + 4 > b.length) throw new WireError('ETRUNCATED', 'question truncated', end);
    if (withKey) qnameKey = nameScratch.toString('latin1', 0, end - 12);
    qtype = u16(b, end);
    qclass = u16(b, end + 2);
    o = end + 4;
  }
  const questionEnd = o;
  const records: RrRef[] = [];
  let optIndex = -1;
  let highBitTtls = 0;
  let rcode = flags & 0xf;
  for (let s = 0 as 0 | 1 | 2; s < 3; s = (s + 1) as 0 | 1 | 2) {
    for (let i = 0, count = s === 0 ? an : s === 1 ? ns : ar; i < count; i++) {
      const ownerOff = o;
      const nameEnd = skipName(b, o);
      if (nameEnd + 10 > b.length) throw new WireError('ETRUNCATED', 'RR header truncated', nameEnd);
      const type = u16(b, nameEnd);
      const rdLen = u16(b, nameEnd + 8);
      const rdOff = nameEnd + 10;
      if (rdOff + rdLen > b.length) throw new WireError('ETRUNCATED', 'RDATA runs past the message', nameEnd + 8);
      const rawTtl = u32(b, nameEnd + 4);
      if (type === RrType.OPT) {
        if (s !== 2 || optIndex >= 0) throw new WireError('EFIELD', 'misplaced or repeated OPT', ownerOff);
        optIndex = records.length;
        rcode |= b[nameEnd + 4]! << 4;
      } else if (rawTtl > 0x7fffffff) highBitTtls++;
      records.push({ section: s, ownerOff, type, klass: u16(b, nameEnd + 2), ttl: rawTtl > 0x7fffffff ? 0 : rawTtl, ttlOff: nameEnd + 4, rdOff, rdLen });
      o = rdOff + rdLen;
    }
    if (s === 2) break;
  }
  return { id: u16(b, 0), flags, rcode, qnameKey, qtype, qclass, questionEnd, records, optIndex, highBitTtls };
}

/**
 * Whether the scanned response's one question has the name `nameKey`
 * (lowercased wire form), letter case aside: the same test as
 * `scan.qnameKey === nameKey`, without making the string.
 */
export function questionNameIs(b: Uint8Array, scan: ScannedResponse, nameKey: string): boolean {
  const n = nameKey.length;
  // One question (else questionEnd is 12), its name uncompressed (scanResponse checked it).
  if (scan.questionEnd - 16 !== n) return false;
  for (let i = 0; i < n; i++) {
    const c = b[12 + i]!;
    // Label lengths are under 64, so only letters are in 'A'..'Z'.
    if ((c >= 0x41 && c <= 0x5a ? c | 0x20 : c) !== nameKey.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * RFC 2181 §8: a TTL with the top bit set is treated as 0. Write 0 into each
 * such TTL field of `b` (the OPT's TTL field is flags, not a TTL), so that the
 * client is told what the cache assumed (such an answer is not cached).
 */
export function zeroHighBitTtls(b: Uint8Array, scan: ScannedResponse): void {
  if (scan.highBitTtls === 0) return;
  for (const r of scan.records) {
    if (r.type === RrType.OPT || (b[r.ttlOff]! & 0x80) === 0) continue;
    b.fill(0, r.ttlOff, r.ttlOff + 4);
  }
  scan.highBitTtls = 0;
}

/** CNAME links the stub follows in one answer; a longer chain is not followed (nor is a loop). */
export const MAX_CNAME_LINKS = 16;

/**
 * Follow the CNAME chain in the answer section from `nameKey`; returns the name
 * it ends at, or undefined when it does not end within MAX_CNAME_LINKS links
 * (too long, or a loop): then every name the walk reached is in its middle.
 */
export function followCnames(b: Uint8Array, scan: ScannedResponse, nameKey: string): string | undefined {
  let current = nameKey;
  for (let hop = 0; hop <= MAX_CNAME_LINKS; hop++) {
    let next: string | undefined;
    for (const r of scan.records) {
      if (r.section !== 0 || r.type !== RrType.CNAME) continue;
      if (ownerIs(b, scan, r.ownerOff, current)) { next = readNameKey(b, r.rdOff); break; }
    }
    if (next === undefined) return current;
    if (next === current || hop === MAX_CNAME_LINKS) return undefined;
    current = next;
  }
  return undefined;
}

/**
 * The owner of the data `nameKey`'s answer is about: the end of its CNAME
 * chain, but only when the answer reaches it — it holds RRs of `qtype` there,
 * or proves there are none (an SOA in the authority section: RFC 2308 NODATA
 * or NXDOMAIN). An answer that stops in the middle of a chain (an
 * authoritative server's own link limit, or a chain longer than
 * MAX_CNAME_LINKS) gives undefined: its last name is a middle one.
 */
export function chainEnd(b: Uint8Array, scan: ScannedResponse, nameKey: string, qtype: number): string | undefined {
  const final = followCnames(b, scan, nameKey);
  if (final === undefined || final === nameKey) return final;
  for (const r of scan.records) {
    if (r.section === 0 && r.type === qtype && ownerIs(b, scan, r.ownerOff, final)) return final;
    if (r.section === 1 && r.type === RrType.SOA) return final;
  }
  return undefined;
}

/** The answer-section RRs of `type` owned by `nameKey`. */
export function rrsetAt(b: Uint8Array, scan: ScannedResponse, nameKey: string, type: number): RrRef[] {
  const out: RrRef[] = [];
  for (const r of scan.records) if (r.section === 0 && r.type === type && ownerIs(b, scan, r.ownerOff, nameKey)) out.push(r);
  return out;
}

/**
 * Whether the owner name at `off` is `nameKey`. The usual owner is a pointer to
 * the question name (offset 12), which the scan checked (plain, uncompressed):
 * compared with the scan's key when it made one, else octet by octet in place
 * (questionNameIs). No string is built for it either way.
 */
export function ownerIs(b: Uint8Array, scan: ScannedResponse, off: number, nameKey: string): boolean {
  if (b[off] === 0xc0 && b[off + 1] === 12) {
    if (scan.qnameKey !== '') return scan.qnameKey === nameKey;
    if (scan.questionEnd > 12) return questionNameIs(b, scan, nameKey); // one question: its name starts at 12
  }
  return readNameKey(b, off) === nameKey;
}

/**
 * How long a response may be cached, in seconds, or undefined when it must not be
 * (RFC 2308 §5: a negative answer without SOA is not cached; RFC 1035: TTL 0).
 * Positive: the smallest answer TTL. Negative (NXDOMAIN, or NOERROR without an RR
 * of the asked type at the end of the chain): min(SOA TTL, SOA MINIMUM).
 */
export function cacheTtl(b: Uint8Array, scan: ScannedResponse): { ttl: number; negative: boolean } | undefined {
  const rc = scan.rcode;
  if (rc !== 0 && rc !== 3) return undefined;
  if (scan.flags & 0x0200) return undefined; // TC: never cache a truncated answer
  let minAnswer = Infinity;
  let hasAsked = false;
  for (const r of scan.records) {
    if (r.section !== 0) continue;
    minAnswer = Math.min(minAnswer, r.ttl);
    if (r.type === scan.qtype || scan.qtype === RrType.ANY) hasAsked = true;
  }
  if (rc === 0 && hasAsked) return minAnswer > 0 ? { ttl: minAnswer, negative: false } : undefined;
  const soa = scan.records.find((r) => r.section === 1 && r.type === RrType.SOA);
  if (!soa || soa.rdLen < 22) return undefined;
  // SOA MINIMUM is the negative TTL (RFC 2308 §4): the top bit makes it 0 as for any TTL (RFC 2181 §8).
  const rawMinimum = u32(b, soa.rdOff + soa.rdLen - 4);
  const minimum = rawMinimum > 0x7fffffff ? 0 : rawMinimum;
  const ttl = Math.min(soa.ttl, minimum, minAnswer);
  return ttl > 0 ? { ttl, negative: true } : undefined;
}

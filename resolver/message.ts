/**
 * The resolver's hand-written DNS query parser (RFC 1035 §4.1, RFC 6891 §6.1).
 *
 * It reads only what the stub needs to route and cache a query: header, the one
 * question, and the OPT pseudo-RR. It never decodes the rest of a message into
 * objects, so the cache-hit path stays on raw bytes (see docs/resolver.md).
 * Throws only WireError; `rcode` on the returned parse says how to answer.
 * It must not know about sockets, upstreams or the cache.
 */
import { WireError } from '../shim/wire/errors.ts';

/** RFC 1035 §4.1.1 / RFC 6895 response codes used by the stub. */
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5, BADVERS: 16 } as const;
export type Rcode = (typeof Rcode)[keyof typeof Rcode];

/** RR types the stub looks at. */
export const RrType = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, RRSIG: 46, ANY: 255 } as const;
export const CLASS_IN = 1;
/** RFC 1035 §2.3.4 */
export const MAX_NAME_OCTETS = 255;
export const MAX_LABEL_OCTETS = 63;
/** RFC 6891 §6.2.5: a requestor's payload size below 512 is treated as 512. */
export const MIN_UDP_PAYLOAD = 512;
/**
 * The largest UDP payload an IPv4 datagram carries (65,535 − 20 − 8): a requestor's size above it
 * is treated as this, so a larger answer is truncated (TC) instead of failing to send (EMSGSIZE).
 */
export const MAX_UDP_PAYLOAD = 65_507;
/** Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2). */
export const Flag = { QR: 0x8000, AA: 0x0400, TC: 0x0200, RD: 0x0100, RA: 0x0080, Z: 0x0040, AD: 0x0020, CD: 0x0010 } as const;
/** RFC 3225: DO bit in the OPT TTL field's flags. */
export const EDNS_DO = 0x8000;
/** RFC 8914: the Extended DNS Error option code. */
export const EDNS_OPTION_EDE = 15;
/** After the wire name in a cache key: QTYPE (2), QCLASS (2), DO/CD bits (1). */
const KEY_SUFFIX_OCTETS = 5;

export interface ParsedQuery {
  id: number;
  flags: number;
  /** Lowercased name in wire form as a latin1 string: the cache key's name part. */
  nameKey: string;
  /** questionKey() of this question (name, type, class, DO, CD), built from the raw bytes in one go. */
  key: string;
  /** Offset just past QCLASS. */
  questionEnd: number;
  qtype: number;
  qclass: number;
  /** OPT present in the query. */
  edns: boolean;
  ednsVersion: number;
  /** Requestor's UDP payload size (≥ 512), 512 without EDNS. */
  udpSize: number;
  dnssecOk: boolean;
  checkingDisabled: boolean;
  recursionDesired: boolean;
  /** AD bit in the query: RFC 6840 §5.7, the client understands AD. */
  authenticData: boolean;
}

/** The lowercased name, then QTYPE, QCLASS and a DO/CD octet: the cache key's bytes. */
const scratch = Buffer.alloc(MAX_NAME_OCTETS + KEY_SUFFIX_OCTETS);
const u16 = (b: Uint8Array, o: number): number => (b[o]! << 8) | b[o + 1]!;

/**
 * Walk an uncompressed name at `off` (queries never need pointers), lowercasing
 * ASCII into `out` when given. Returns the offset just past the root label.
 */
export function walkPlainName(b: Uint8Array, off: number, out?: Uint8Array): number {
  let o = off;
  let total = 0;
  for (;;) {
    if (o >= b.length) throw new WireError('ETRUNCATED', 'name runs past the message', o);
    const len = b[o]!;
    if (len === 0) {
      if (out) out[total] = 0;
      return o + 1;
    }
    if (len > MAX_LABEL_OCTETS) throw new WireError('EFIELD', 'compression pointer or label type not allowed here', o);
    if (total + len + 2 > MAX_NAME_OCTETS) throw new WireError('ELENGTH', 'name longer than 255 octets', o);
    if (o + 1 + len > b.length) throw new WireError('ETRUNCATED', 'label runs past the message', o);
    if (out) {
      out[total] = len;
      for (let i = 1; i <= len; i++) {
        const c = b[o + i]!;
        out[total + i] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
      }
    }
    total += len + 1;
    o += len + 1;
  }
}

/**
 * Parse a query. Throws WireError when the bytes are not a DNS query at all
 * (the listener answers FORMERR when at least the header is there, else drops),
 * ETYPE for an opcode other than QUERY unless `anyOpcode` (the listener's NOTIMP
 * then echoes the question and the OPT of a message that is otherwise well formed).
 */
export function parseQuery(b: Uint8Array, anyOpcode = false): ParsedQuery {
  if (b.length < 12) throw new WireError('ETRUNCATED', 'DNS header needs 12 octets', b.length);
  const id = u16(b, 0);
  const flags = u16(b, 2);
  if (flags & Flag.QR) throw new WireError('EFIELD', 'QR set: a response, not a query', 2);
  if (((flags >> 11) & 0xf) !== 0 && !anyOpcode) throw new WireError('ETYPE', 'opcode is not QUERY', 2);
  if (u16(b, 4) !== 1) throw new WireError('EFIELD', 'QDCOUNT must be 1', 4);
  if (u16(b, 6) !== 0 || u16(b, 8) !== 0) throw new WireError('EFIELD', 'a query carries no answer or authority records', 6);
  const arcount = u16(b, 10);
  const nameEnd = walkPlainName(b, 12, scratch);
  if (nameEnd + 4 > b.length) throw new WireError('ETRUNCATED', 'question needs QTYPE and QCLASS', nameEnd);
  const q: ParsedQuery = {
    id, flags, nameKey: '', key: '', questionEnd: nameEnd + 4,
    qtype: u16(b, nameEnd), qclass: u16(b, nameEnd + 2),
    edns: false, ednsVersion: 0, udpSize: MIN_UDP_PAYLOAD, dnssecOk: false,
    checkingDisabled: (flags & Flag.CD) !== 0,
    recursionDesired: (flags & Flag.RD) !== 0,
    authenticData: (flags & Flag.AD) !== 0,
  };
  if (arcount > 0) readQueryOpt(b, q, arcount);
  // One native string for the whole cache key (no template string to flatten and hash per
  // query); the name key is its prefix, so both agree with questionKey() by construction.
  const nameLen = nameEnd - 12;
  for (let i = 0; i < 4; i++) scratch[nameLen + i] = b[nameEnd + i]!;
  scratch[nameLen + 4] = keyBits(q.dnssecOk, q.checkingDisabled);
  q.key = latin1(scratch, nameLen + KEY_SUFFIX_OCTETS);
  q.nameKey = q.key.substring(0, nameLen);
  return q;
}

/** RFC 6891 §6.1.1: at most one OPT, root owner; other additional RRs (TSIG…) are skipped. */
function readQueryOpt(b: Uint8Array, q: ParsedQuery, arcount: number): void {
  let o = q.questionEnd;
  for (let i = 0; i < arcount; i++) {
    const nameEnd = walkPlainName(b, o);
    if (nameEnd + 10 > b.length) throw new WireError('ETRUNCATED', 'additional RR header truncated', nameEnd);
    const type = u16(b, nameEnd);
    const rdlen = u16(b, nameEnd + 8);
    if (nameEnd + 10 + rdlen > b.length) throw new WireError('ETRUNCATED', 'additional RR data truncated', nameEnd + 8);
    if (type === RrType.OPT) {
      if (q.edns) throw new WireError('EFIELD', 'more than one OPT record', o);
      if (nameEnd !== o + 1) throw new WireError('EFIELD', 'OPT owner must be the root', o);
      q.edns = true;
      q.udpSize = Math.min(MAX_UDP_PAYLOAD, Math.max(MIN_UDP_PAYLOAD, u16(b, nameEnd + 2)));
      q.ednsVersion = b[nameEnd + 5]!;
      q.dnssecOk = (u16(b, nameEnd + 6) & EDNS_DO) !== 0;
    }
    o = nameEnd + 10 + rdlen;
  }
}

function latin1(bytes: Buffer, len: number): string {
  return bytes.toString('latin1', 0, len);
}

const keyBits = (dnssecOk: boolean, cd: boolean): number => (dnssecOk ? 1 : 0) | (cd ? 2 : 0);

/**
 * Cache key for a question: the lowercased wire name, then QTYPE and QCLASS as
 * two octets each and one octet of the bits that change the answer (DO, CD).
 * The wire name ends in its root label, so the suffix cannot be confused with it.
 */
export function questionKey(nameKey: string, qtype: number, qclass: number, dnssecOk: boolean, cd: boolean): string {
  return nameKey + String.fromCharCode(qtype >> 8, qtype & 0xff, qclass >> 8, qclass & 0xff, keyBits(dnssecOk, cd));
}

/** Presentation form of a lowercased wire name key ("www.example." style, root = "."). */
export function nameKeyToText(nameKey: string): string {
  let out = '';
  let o = 0;
  while (o < nameKey.length) {
    const len = nameKey.charCodeAt(o);
    if (len === 0) break;
    // A label of plain characters (the usual case) is copied whole, not character by character.
    let plain = true;
    for (let i = 1; i <= len && plain; i++) {
      const c = nameKey.charCodeAt(o + i);
      plain = c > 0x20 && c < 0x7f && c !== 0x2e && c !== 0x5c;
    }
    if (plain) out += nameKey.slice(o + 1, o + 1 + len);
    else {
      for (let i = 1; i <= len; i++) {
        const c = nameKey.charCodeAt(o + i);
        const ch = String.fromCharCode(c);
        out += c <= 0x20 || c >= 0x7f ? `\\${String(c).padStart(3, '0')}` : ch === '.' || ch === '\\' ? `\\${ch}` : ch;
      }
    }
    out += '.';
    o += len + 1;
  }
  return out === '' ? '.' : out;
}

/** Wire form (lowercased) of a presentation name; throws WireError('ESYNTAX') on bad labels. */
export function textToNameKey(text: string): string {
  const name = text.endsWith('.') ? text.slice(0, -1) : text;
  if (name === '') return '\x00';
  let out = '';
  for (const label of name.split('.')) {
    if (label.length === 0 || label.length > MAX_LABEL_OCTETS || /[^\x21-\x7e]/.test(label) || label.includes('\\')) {
      throw new WireError('ESYNTAX', `bad label in name ${JSON.stringify(text)}`);
    }
    out += String.fromCharCode(label.length) + label.toLowerCase();
  }
  out += '\x00';
  if (out.length > MAX_NAME_OCTETS) throw new WireError('ESYNTAX', `name longer than 255 octets: ${text}`);
  return out;
}

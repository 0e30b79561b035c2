/**
 * Building and patching DNS messages as bytes: the stub's upstream queries,
 * its own error answers (FORMERR, SERVFAIL, REFUSED, BADVERS), its own copy of
 * an upstream answer (header flags and OPT of its own), truncated UDP answers,
 * and the last fix-ups of an answer for one client (ID, question case, OPT, AD,
 * RD, CD). Hand-written so that the hit path allocates one copy and no objects.
 * It must not know about sockets, caches or upstream selection.
 */
import { EDNS_DO, EDNS_OPTION_EDE, Flag, Rcode, RrType, type ParsedQuery } from './message.ts';
import type { ScannedResponse } from './answer-scan.ts';

/** RFC 6891 §6.2.5 / DNS flag day 2020: the stub's own UDP payload size. */
export const DEFAULT_EDNS_SIZE = 1232;

export interface QueryOptions {
  recursionDesired?: boolean;
  checkingDisabled?: boolean;
  dnssecOk?: boolean;
  /** RFC 6840 §5.7: set AD in queries to learn whether a validating upstream vouches for the data. */
  authenticData?: boolean;
  udpSize?: number;
}

/** A query for `nameKey` (lowercased wire form) with an OPT RR. */
export function buildQuery(id: number, nameKey: string, qtype: number, qclass: number, opts: QueryOptions = {}): Uint8Array {
  const nameLen = nameKey.length;
  const b = new Uint8Array(12 + nameLen + 4 + 11);
  let flags = 0;
  if (opts.recursionDesired ?? true) flags |= Flag.RD;
  if (opts.checkingDisabled) flags |= Flag.CD;
  if (opts.authenticData ?? true) flags |= Flag.AD;
  writeU16(b, 0, id);
  writeU16(b, 2, flags);
  writeU16(b, 4, 1);
  writeU16(b, 10, 1);
  for (let i = 0; i < nameLen; i++) b[12 + i] = nameKey.charCodeAt(i);
  let o = 12 + nameLen;
  writeU16(b, o, qtype);
  writeU16(b, o + 2, qclass);
  o += 4;
  writeOpt(b, o, opts.udpSize ?? DEFAULT_EDNS_SIZE, 0, opts.dnssecOk ?? false);
  return b;
}

/**
 * The same query built from a question section as the client sent it (name,
 * type, class: copied, not re-encoded); the ID is left 0 for the caller.
 */
export function buildQueryFromQuestion(question: Uint8Array, opts: QueryOptions = {}): Uint8Array {
  const b = new Uint8Array(12 + question.length + 11);
  let flags = 0;
  if (opts.recursionDesired ?? true) flags |= Flag.RD;
  if (opts.checkingDisabled) flags |= Flag.CD;
  if (opts.authenticData ?? true) flags |= Flag.AD;
  writeU16(b, 2, flags);
  writeU16(b, 4, 1);
  writeU16(b, 10, 1);
  b.set(question, 12);
  writeOpt(b, 12 + question.length, opts.udpSize ?? DEFAULT_EDNS_SIZE, 0, opts.dnssecOk ?? false);
  return b;
}

/** OPT RR (11 octets): root owner, type 41, class = payload size, TTL = ext-rcode|version|flags, no options. */
function writeOpt(b: Uint8Array, o: number, udpSize: number, extRcode: number, dnssecOk: boolean): void {
  b[o] = 0;
  writeU16(b, o + 1, RrType.OPT);
  writeU16(b, o + 3, udpSize);
  b[o + 5] = extRcode;
  b[o + 6] = 0;
  writeU16(b, o + 7, dnssecOk ? EDNS_DO : 0);
  writeU16(b, o + 9, 0);
}

/**
 * The stub's own answer with an error RCODE: the query's header and question
 * (when it parsed), QR and RA set, and an OPT when the client used EDNS
 * (RFC 6891 §7: BADVERS needs the extended RCODE bits), or when `withOpt` says so.
 */
export function errorResponse(query: Uint8Array, q: ParsedQuery | undefined, rcode: number, withOpt = q?.edns ?? false): Uint8Array {
  const qEnd = q ? q.questionEnd : 12;
  const b = new Uint8Array(qEnd + (withOpt ? 11 : 0));
  b.set(query.subarray(0, qEnd));
  const rd = query.length >= 4 ? (query[2]! << 8) & Flag.RD : 0;
  const opcode = query.length >= 3 ? query[2]! & 0x78 : 0;
  writeU16(b, 2, Flag.QR | (opcode << 8) | rd | Flag.RA | (q?.checkingDisabled ? Flag.CD : 0) | (rcode & 0xf));
  writeU16(b, 4, q ? 1 : 0);
  writeU16(b, 6, 0);
  writeU16(b, 8, 0);
  writeU16(b, 10, withOpt ? 1 : 0);
  if (withOpt) writeOpt(b, qEnd, DEFAULT_EDNS_SIZE, rcode >> 4, q?.dnssecOk ?? false);
  return b;
}

/** Octets of an OPT RR without options: root owner, TYPE, CLASS, TTL, RDLENGTH. */
const OPT_FIXED = 11;

/**
 * The stub's own copy of an upstream answer, made in one copy without decoding
 * it: the records up to the upstream's OPT as they are, then the stub's own OPT
 * (RFC 6891 §6.1.1, §6.2.5: an OPT is hop by hop, so the upstream's payload size
 * and options are neither forwarded nor cached) with the stub's UDP size, version
 * 0, `dnssecOk` as DO (RFC 3225 §3), the upstream's extended RCODE bits, and its
 * Extended DNS Errors (RFC 8914, carried over on purpose: they explain the
 * answer). An answer without OPT gets one too, so that every answer to an EDNS
 * query carries one (§7; the listener strips it for a client that sent none).
 * Records after the upstream's OPT are dropped (additional data, which RFC 2181
 * §9 lets a server omit: moving them would mean rewriting their compression
 * pointers), and so are octets after the last record. Header: RA set, AA and Z cleared (RFC 1035 §4.1.1: the stub answers
 * as a recursive server, not as the authority). `scan` is updated in place to
 * describe the copy; returns the copy and the offset of its OPT.
 */
export function ownAnswer(src: Uint8Array, scan: ScannedResponse, dnssecOk: boolean): { bytes: Uint8Array; optOff: number } {
  const recs = scan.records;
  const opt = scan.optIndex >= 0 ? recs[scan.optIndex] : undefined;
  // At the upstream's OPT, else after the last record (octets after it, which no count covers, go too).
  const lastRec = recs[recs.length - 1];
  const cut = opt ? opt.ownerOff : lastRec ? lastRec.rdOff + lastRec.rdLen : scan.questionEnd;
  let edeLen = 0;
  if (opt) {
    for (let o = opt.rdOff, end = opt.rdOff + opt.rdLen; o + 4 <= end;) {
      const len = (src[o + 2]! << 8) | src[o + 3]!;
      if (o + 4 + len > end) break;
      if (((src[o]! << 8) | src[o + 1]!) === EDNS_OPTION_EDE) edeLen += 4 + len;
      o += 4 + len;
    }
  }
  // Pooled (sizes under 4 KiB share Node's slab): no ArrayBuffer of its own per answer.
  const size = cut + OPT_FIXED + edeLen;
  const out = Buffer.allocUnsafe(size);
  // The usual upstream OPT (last, no options) is as long as ours: copy it all (no subarray view), then write ours over it.
  out.set(src.length === size ? src : src.subarray(0, cut));
  const flags = ((src[2]! << 8) | src[3]!) & ~(Flag.AA | Flag.Z);
  writeU16(out, 2, flags | Flag.RA);
  writeOpt(out, cut, DEFAULT_EDNS_SIZE, opt ? src[opt.ttlOff]! : 0, dnssecOk);
  if (edeLen > 0) {
    let w = cut + OPT_FIXED;
    for (let o = opt!.rdOff, end = opt!.rdOff + opt!.rdLen; o + 4 <= end;) {
      const len = (src[o + 2]! << 8) | src[o + 3]!;
      if (o + 4 + len > end) break;
      if (((src[o]! << 8) | src[o + 1]!) === EDNS_OPTION_EDE) { out.set(src.subarray(o, o + 4 + len), w); w += 4 + len; }
      o += 4 + len;
    }
    writeU16(out, cut + 9, edeLen);
  }
  // The scan checked every count, so the records are answer + authority + additional, in order.
  const answerAndAuthority = ((src[6]! << 8) | src[7]!) + ((src[8]! << 8) | src[9]!);
  if (opt) {
    // Our OPT takes the upstream's place (and its record object); whatever followed it is gone.
    recs.length = scan.optIndex + 1;
    opt.klass = DEFAULT_EDNS_SIZE;
    opt.ttl = 0;
    opt.ttlOff = cut + 5;
    opt.rdOff = cut + OPT_FIXED;
    opt.rdLen = edeLen;
  } else {
    recs.push({ section: 2, ownerOff: cut, type: RrType.OPT, klass: DEFAULT_EDNS_SIZE, ttl: 0, ttlOff: cut + 5, rdOff: cut + OPT_FIXED, rdLen: 0 });
  }
  writeU16(out, 10, recs.length - answerAndAuthority);
  scan.optIndex = recs.length - 1;
  scan.flags = flags | Flag.RA;
  return { bytes: out, optOff: cut };
}

/**
 * RFC 1035 §4.2.1 / RFC 7766 §5: an answer too big for the client's UDP size
 * becomes header + question with TC set, so the client retries over TCP, and
 * with an OPT when the query had one (RFC 6891 §7): the stub's size, the
 * answer's extended RCODE bits (from its OPT at `optOff`, when known), the
 * client's DO. `answer` is the already finished answer (ID, flags); the
 * question is the query's.
 */
export function truncatedResponse(answer: Uint8Array, query: Uint8Array, q: ParsedQuery, optOff = -1): Uint8Array {
  const b = new Uint8Array(q.questionEnd + (q.edns ? OPT_FIXED : 0));
  b.set(query.subarray(0, q.questionEnd));
  writeU16(b, 2, ((answer[2]! << 8) | answer[3]!) | Flag.TC);
  writeU16(b, 4, 1);
  writeU16(b, 6, 0);
  writeU16(b, 8, 0);
  writeU16(b, 10, q.edns ? 1 : 0);
  if (q.edns) writeOpt(b, q.questionEnd, DEFAULT_EDNS_SIZE, optOff > 0 && optOff + OPT_FIXED <= answer.length ? answer[optOff + 5]! : 0, q.dnssecOk);
  return b;
}

/**
 * Last fix-ups of an answer for one client, in place on `out` (which the caller
 * owns). Returns the bytes to send (a prefix of `out` when OPT is stripped).
 * - ID and the question's letter case from the client's query (RFC 5452 §9.2 0x20);
 * - RD mirrors the query, RA set, AA clear (RFC 1035 §4.1.1: a recursive stub, not an authority);
 * - CD mirrors the query (RFC 4035 §3.2.2);
 * - AD only for clients that asked for it with DO or AD (RFC 6840 §5.8);
 * - no OPT for a client that sent none (RFC 6891 §7).
 */
export function finishForClient(out: Uint8Array, optOff: number, query: Uint8Array, q: ParsedQuery): Uint8Array {
  out[0] = query[0]!;
  out[1] = query[1]!;
  if (out.length >= q.questionEnd && (((out[4]! << 8) | out[5]!) === 1)) {
    // A byte loop: names are short, and subarray + set cost more than copying ~20 octets.
    for (let i = 12, end = q.questionEnd - 4; i < end; i++) out[i] = query[i]!;
  }
  let flags = (out[2]! << 8) | out[3]!;
  flags = (flags & ~(Flag.RD | Flag.CD | Flag.AA)) | (q.flags & (Flag.RD | Flag.CD)) | Flag.RA;
  if (!q.dnssecOk && !q.authenticData) flags &= ~Flag.AD;
  writeU16(out, 2, flags);
  if (!q.edns && optOff > 0 && optOff <= out.length) {
    const ar = (out[10]! << 8) | out[11]!;
    if (ar > 0) writeU16(out, 10, ar - 1);
    return out.subarray(0, optOff);
  }
  return out;
}

/**
 * A copy from Node's Buffer pool (sizes under 4 KiB share an 8 KiB slab), for
 * bytes that live only until sent: no ArrayBuffer of their own per copy.
 */
export function pooledCopy(b: Uint8Array): Uint8Array {
  const out = Buffer.allocUnsafe(b.length);
  out.set(b);
  return out;
}

/** One TTL field at `o` minus `elapsed` seconds, floored at `floor` (a TTL with the top bit set counts as 0: RFC 2181 §8). */
export function patchTtl(out: Uint8Array, o: number, elapsed: number, floor = 0): void {
  const orig = ((out[o]! << 24) >>> 0) + ((out[o + 1]! << 16) | (out[o + 2]! << 8) | out[o + 3]!);
  const base = orig > 0x7fffffff ? 0 : orig;
  const ttl = Math.max(floor, base - elapsed);
  out[o] = ttl >>> 24;
  out[o + 1] = (ttl >>> 16) & 0xff;
  out[o + 2] = (ttl >>> 8) & 0xff;
  out[o + 3] = ttl & 0xff;
}

/**
 * A SERVFAIL for `q` from a stage that gives up, with the stub's OPT at `q.questionEnd` whatever
 * the query: coalesced waiters share it (the cache stage), so it is built as an upstream answer is
 * (ownAnswer), and the listener strips the OPT for a client that sent none (RFC 6891 §7).
 */
export function servfail(query: Uint8Array, q: ParsedQuery): Uint8Array {
  return errorResponse(query, q, Rcode.SERVFAIL, true);
}

export function writeU16(b: Uint8Array, o: number, v: number): void {
  b[o] = (v >> 8) & 0xff;
  b[o + 1] = v & 0xff;
}

/**
 * A small DNS message codec (RFC 1035 §4) for what the zone tools send and read:
 * queries, RFC 2136 UPDATE messages, and the answers to both. RDATA stays raw
 * octets (the capability record, AAAA and TXT are decoded by their owners), so
 * what a server returns can be compared byte for byte.
 *
 * Owns: header, names (with compression on decode, none on encode), question and
 * resource-record framing. Must not know: sockets, TSIG keys, the record format.
 * Decoding throws only DnsFormatError.
 */
import { Shim6Error, UsageError } from '../shim/errors.ts';

/** RFC 1035 §3.2.2 / RFC 3596 / RFC 6895: the types and classes we use. */
export const RrType = { A: 1, NS: 2, CNAME: 5, SOA: 6, TXT: 16, AAAA: 28, OPT: 41, TSIG: 250, ANY: 255 } as const;
export const RrClass = { IN: 1, NONE: 254, ANY: 255 } as const;
/** RFC 1035 §4.1.1, RFC 2136 §1: opcodes. */
export const Opcode = { QUERY: 0, UPDATE: 5 } as const;

/** RFC 1035 §4.1.1, RFC 2136 §2.2, RFC 8945 §4.2: rcode names. */
export const RCODE_NAMES: Readonly<Record<number, string>> = {
  0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED',
  6: 'YXDOMAIN', 7: 'YXRRSET', 8: 'NXRRSET', 9: 'NOTAUTH', 10: 'NOTZONE',
  16: 'BADSIG', 17: 'BADKEY', 18: 'BADTIME', 22: 'BADTRUNC',
};

export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? `RCODE${rcode}`;
}

/** Malformed DNS bytes from a server. */
export class DnsFormatError extends Shim6Error {
  readonly code = 'EDNS_FORMAT';
}

export interface Question {
  name: string;
  type: number;
  class: number;
}

/** A resource record with raw RDATA. Names are absolute, lowercase-preserving, with the trailing dot. */
export interface ResourceRecord {
  name: string;
  type: number;
  class: number;
  ttl: number;
  rdata: Uint8Array;
}

export interface DnsMessage {
  id: number;
  /** QR, opcode, AA, TC, RD, RA, AD, CD and the low 4 rcode bits, as in octets 2–3. */
  flags: number;
  questions: Question[];
  /** Answer section (for UPDATE: prerequisites). */
  answers: ResourceRecord[];
  /** Authority section (for UPDATE: the updates). */
  authorities: ResourceRecord[];
  additionals: ResourceRecord[];
}

export const FLAG_QR = 0x8000;
export const FLAG_AA = 0x0400;
export const FLAG_TC = 0x0200;
export const FLAG_RD = 0x0100;

export function opcodeOf(flags: number): number {
  return (flags >> 11) & 0xf;
}

export function rcodeOf(flags: number): number {
  return flags & 0xf;
}

/** Name text (absolute or not; a trailing dot is implied) → wire labels. Escapes `\.` and `\DDD` are honoured. Throws UsageError EINVALID (nameProblem). */
export function encodeName(name: string): Uint8Array {
  const why = nameProblem(name);
  if (why !== undefined) throw invalidName(name, why);
  const out: number[] = [];
  for (const l of splitLabels(name)) out.push(l.length, ...l);
  out.push(0);
  return Uint8Array.from(out);
}

function invalidName(name: string, why: string): UsageError {
  return new UsageError('EINVALID', `invalid DNS name ${JSON.stringify(name)}: ${why}`);
}

/** Labels of a presentation-form name, each as octets, or why the text is no name. */
function labelsOf(name: string): number[][] | string {
  if (name === '.' || name === '') return [];
  const labels: number[][] = [];
  let cur: number[] = [];
  for (let i = 0; i < name.length; i++) {
    const c = name[i]!;
    if (c === '\\') {
      if (i + 1 >= name.length) return 'ends with a lone "\\"';
      const d = name.slice(i + 1, i + 4);
      if (/^\d{3}$/.test(d)) {
        // RFC 1035 §5.1: \DDD is one octet; BIND and Knot refuse a larger number (no masking).
        if (Number(d) > 255) return `escape \\${d} is over 255`;
        cur.push(Number(d)); i += 3; continue;
      }
      i += 1 + pushChar(cur, name, i + 1);
      continue;
    }
    if (c === '.') {
      if (cur.length === 0) return 'has an empty label';
      labels.push(cur); cur = []; continue;
    }
    i += pushChar(cur, name, i);
  }
  if (cur.length > 0) labels.push(cur);
  return labels;
}

/**
 * Push the character at `i` as octets: itself below 0x80, else its UTF-8 encoding (as
 * master files are read; no masking to 8 bits). Returns the extra UTF-16 units it took.
 */
function pushChar(out: number[], text: string, i: number): number {
  const cp = text.codePointAt(i)!;
  if (cp < 0x80) { out.push(cp); return 0; }
  out.push(...Buffer.from(String.fromCodePoint(cp), 'utf8'));
  return cp > 0xffff ? 1 : 0;
}

/** Labels of a presentation-form name, each as octets. The root is `.`. Throws UsageError EINVALID for an empty label, a bad escape. */
export function splitLabels(name: string): number[][] {
  const labels = labelsOf(name);
  if (typeof labels === 'string') throw invalidName(name, labels);
  return labels;
}

/**
 * Why `name` (presentation form, absolute or not) is no DNS name, or undefined:
 * an empty label, a label over 63 octets, over 255 octets on the wire (RFC 1035
 * §2.3.4), a `\DDD` escape over 255, a lone `\` at the end. `.` is the root.
 */
export function nameProblem(name: string): string | undefined {
  const labels = labelsOf(name);
  if (typeof labels === 'string') return labels;
  if (labels.some((l) => l.length > 63)) return 'a label is longer than 63 octets';
  const octets = labels.reduce((n, l) => n + l.length + 1, 1);
  if (octets > MAX_NAME_OCTETS) return `${octets} octets, over the ${MAX_NAME_OCTETS} of a DNS name`;
  return undefined;
}

/** RFC 1035 §2.3.4: a name is at most 255 octets on the wire (labels with their length octets, and the root). */
export const MAX_NAME_OCTETS = 255;

/** Octets of `name` on the wire (escapes honoured; absolute or not, the root counted); undefined for an empty label or a bad escape. */
export function nameWireLength(name: string): number | undefined {
  const labels = labelsOf(name);
  return typeof labels === 'string' ? undefined : labels.reduce((n, l) => n + l.length + 1, 1);
}

/** Wire label octets → presentation text (RFC 1035 §5.1 escapes). */
function labelText(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) {
    if (b === 0x2e || b === 0x5c || b === 0x22 || b === 0x28 || b === 0x29 || b === 0x3b || b === 0x40 || b === 0x24) s += '\\' + String.fromCharCode(b);
    else if (b <= 0x20 || b >= 0x7f) s += '\\' + String(b).padStart(3, '0');
    else s += String.fromCharCode(b);
  }
  return s;
}

/**
 * Canonical comparison form of a name: absolute, ASCII letters lowercase (RFC 4343: the only case DNS
 * ignores), and each octet written one way (`host\046x`, `host\.x` and `HOST\.X` are one name).
 * A name that is no name (a bad escape, an empty label) is only lowercased: it is reported elsewhere.
 */
export function canonicalName(name: string): string {
  const labels = /[\\\u0080-\uffff]/.test(name) ? labelsOf(name) : undefined;
  if (labels === undefined || typeof labels === 'string') {
    const n = name.toLowerCase();
    return n.endsWith('.') ? n : n + '.';
  }
  let out = '';
  for (const l of labels) out += labelText(Uint8Array.from(l, (b) => (b >= 0x41 && b <= 0x5a ? b + 0x20 : b))) + '.';
  return out === '' ? '.' : out;
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function u32(n: number): number[] {
  return [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** One RR in wire form (no compression). */
export function encodeRecord(rr: ResourceRecord): Uint8Array {
  const name = encodeName(rr.name);
  const out = new Uint8Array(name.length + 10 + rr.rdata.length);
  out.set(name, 0);
  out.set([...u16(rr.type), ...u16(rr.class), ...u32(rr.ttl), ...u16(rr.rdata.length)], name.length);
  out.set(rr.rdata, name.length + 10);
  return out;
}

/** A whole message in wire form. Counts come from the section lengths. */
export function encodeMessage(m: DnsMessage): Uint8Array {
  const parts: Uint8Array[] = [Uint8Array.from([
    ...u16(m.id), ...u16(m.flags), ...u16(m.questions.length), ...u16(m.answers.length),
    ...u16(m.authorities.length), ...u16(m.additionals.length),
  ])];
  for (const q of m.questions) parts.push(encodeName(q.name), Uint8Array.from([...u16(q.type), ...u16(q.class)]));
  for (const rr of [...m.answers, ...m.authorities, ...m.additionals]) parts.push(encodeRecord(rr));
  return concatBytes(parts);
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** Read a (possibly compressed) name at `offset`; returns the name and the offset after it. */
export function decodeName(buf: Uint8Array, offset: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = offset;
  let next = -1;
  let jumps = 0;
  let total = 1;
  for (;;) {
    if (pos >= buf.length) throw new DnsFormatError(`name runs past the message end at ${pos}`);
    const len = buf[pos]!;
    if (len === 0) { pos += 1; break; }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= buf.length) throw new DnsFormatError('truncated compression pointer');
      if (++jumps > 64) throw new DnsFormatError('compression pointer loop');
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | buf[pos + 1]!;
      continue;
    }
    if ((len & 0xc0) !== 0) throw new DnsFormatError(`bad label type 0x${len.toString(16)}`);
    if (pos + 1 + len > buf.length) throw new DnsFormatError('label runs past the message end');
    total += len + 1;
    if (total > 255) throw new DnsFormatError('name longer than 255 octets');
    labels.push(labelText(buf.subarray(pos + 1, pos + 1 + len)));
    pos += 1 + len;
  }
  return { name: labels.length === 0 ? '.' : labels.join('.') + '.', next: next < 0 ? pos : next };
}

function readU16(buf: Uint8Array, o: number): number {
  if (o + 2 > buf.length) throw new DnsFormatError(`truncated at ${o}`);
  return (buf[o]! << 8) | buf[o + 1]!;
}

function readU32(buf: Uint8Array, o: number): number {
  return readU16(buf, o) * 0x10000 + readU16(buf, o + 2);
}

/** Where each RR of a decoded message starts and ends (TSIG verification needs the raw bytes). */
export interface RecordSpan {
  start: number;
  end: number;
}

/** Decode a whole message; `spans` gives the byte range of every RR in section order. */
export function decodeMessage(buf: Uint8Array): DnsMessage & { spans: RecordSpan[] } {
  if (buf.length < 12) throw new DnsFormatError(`message of ${buf.length} octets is shorter than a header`);
  const counts = [4, 6, 8, 10].map((o) => readU16(buf, o));
  let o = 12;
  const questions: Question[] = [];
  for (let i = 0; i < counts[0]!; i++) {
    const n = decodeName(buf, o);
    questions.push({ name: n.name, type: readU16(buf, n.next), class: readU16(buf, n.next + 2) });
    o = n.next + 4;
  }
  const spans: RecordSpan[] = [];
  const section = (count: number): ResourceRecord[] => {
    const out: ResourceRecord[] = [];
    for (let i = 0; i < count; i++) {
      const start = o;
      const n = decodeName(buf, o);
      const type = readU16(buf, n.next);
      const cls = readU16(buf, n.next + 2);
      const ttl = readU32(buf, n.next + 4);
      const len = readU16(buf, n.next + 8);
      const rdStart = n.next + 10;
      if (rdStart + len > buf.length) throw new DnsFormatError(`RDATA of ${n.name} runs past the message end`);
      out.push({ name: n.name, type, class: cls, ttl, rdata: buf.slice(rdStart, rdStart + len) });
      o = rdStart + len;
      spans.push({ start, end: o });
    }
    return out;
  };
  const answers = section(counts[1]!);
  const authorities = section(counts[2]!);
  const additionals = section(counts[3]!);
  return { id: readU16(buf, 0), flags: readU16(buf, 2), questions, answers, authorities, additionals, spans };
}

/** RFC 1035 §3.3.14: TXT RDATA → its character-strings (as latin1 text). */
export function decodeTxtRdata(rdata: Uint8Array): string[] {
  const out: string[] = [];
  let o = 0;
  while (o < rdata.length) {
    const len = rdata[o]!;
    if (o + 1 + len > rdata.length) throw new DnsFormatError('TXT character-string runs past RDATA');
    out.push(Buffer.from(rdata.subarray(o + 1, o + 1 + len)).toString('latin1'));
    o += 1 + len;
  }
  return out;
}

/** Character-strings → TXT RDATA; each string ≤ 255 octets. */
export function encodeTxtRdata(strings: readonly string[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const s of strings) {
    const b = Buffer.from(s, 'latin1');
    if (b.length > 255) throw new RangeError('a TXT character-string holds at most 255 octets');
    parts.push(Uint8Array.of(b.length), b);
  }
  return concatBytes(parts);
}

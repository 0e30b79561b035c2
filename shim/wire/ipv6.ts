/**
 * IPv6 addresses as the rest of shim6 sees them: canonical RFC 5952 text
 * ("2001:db8::1", lowercase, longest zero run compressed) in decoded objects,
 * 16-octet Uint8Arrays on the wire, and `Ipv6Octets` where a hot path only compares
 * addresses it read from a packet. Parsing is strict and throws WireError('EADDRESS').
 */
import { WireError } from './errors.ts';

export type Ipv6 = string;

/**
 * An address as its 16 octets in a one-byte string (latin1: one character per
 * octet), read from a packet without formatting text: equal addresses are equal
 * strings (===), whatever text form a zone wrote them in. formatIpv6Octets makes the text.
 */
export type Ipv6Octets = string & { readonly ipv6Octets: unique symbol };

/** Node's own latin1 reader, callable on any Uint8Array (Buffer#toString would need a Buffer view made first). */
const latin1Slice = (Buffer.prototype as unknown as { latin1Slice(this: Uint8Array, start: number, end: number): string }).latin1Slice;

/** `buf[start, end)` as a one-byte string, one character per octet (a flat string of its own: it keeps no reference to `buf`). */
export function octetsText(buf: Uint8Array, start: number, end: number): string {
  if (!(start >= 0 && start <= end && end <= buf.length)) throw new RangeError(`octets [${start}, ${end}) outside ${buf.length}`);
  return latin1Slice.call(buf, start, end);
}

/** The 16 octets at `offset` of `buf` as Ipv6Octets. */
export function ipv6OctetsAt(buf: Uint8Array, offset: number): Ipv6Octets {
  if (offset < 0 || offset + 16 > buf.length) throw new WireError('ETRUNCATED', 'IPv6 address needs 16 octets', offset);
  return octetsText(buf, offset, offset + 16) as Ipv6Octets;
}

/** Canonical text of an address held as octets. */
export function formatIpv6Octets(octets: Ipv6Octets): Ipv6 {
  return formatIpv6(Buffer.from(octets, 'latin1'));
}

/** Parse IPv6 text (any valid form, incl. embedded IPv4) into 16 octets. */
export function parseIpv6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) throw bad(text);
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) throw bad(text);
  // Hot path (engine, resolver): no embedded IPv4, parsed without regexes or arrays.
  if (s.indexOf('.') < 0) {
    if (!parseHexGroups(s, out)) throw bad(text);
    return out;
  }
  let tail: number[] = [];
  const lastColon = s.lastIndexOf(':');
  if (s.indexOf('.', lastColon) >= 0) {
    const v4 = s.slice(lastColon + 1).split('.');
    if (v4.length !== 4) throw bad(text);
    const b = v4.map((p) => (/^(0|[1-9]\d{0,2})$/.test(p) ? Number(p) : 256));
    if (b.some((x) => x > 255)) throw bad(text);
    tail = [((b[0]! << 8) | b[1]!), ((b[2]! << 8) | b[3]!)];
    s = s.slice(0, lastColon + 1) + (s.endsWith('::') ? '' : '0');
    if (!s.endsWith('::')) s = s.slice(0, -1) + '0';
    s = s.slice(0, -1);
    if (s.endsWith(':') && !s.endsWith('::')) s = s.slice(0, -1);
  }
  const dbl = s.indexOf('::');
  if (dbl !== s.lastIndexOf('::')) throw bad(text);
  const parseGroups = (part: string): number[] => {
    if (part === '') return [];
    return part.split(':').map((g) => {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) throw bad(text);
      return parseInt(g, 16);
    });
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseGroups(s.slice(0, dbl));
    const rest = parseGroups(s.slice(dbl + 2));
    const fill = 8 - tail.length - head.length - rest.length;
    if (fill < 1) throw bad(text);
    groups = [...head, ...new Array<number>(fill).fill(0), ...rest, ...tail];
  } else {
    groups = [...parseGroups(s), ...tail];
  }
  if (groups.length !== 8) throw bad(text);
  for (let i = 0; i < 8; i++) {
    out[i * 2] = groups[i]! >> 8;
    out[i * 2 + 1] = groups[i]! & 0xff;
  }
  return out;
}

/**
 * Write the 16 octets of `text` into `buf` at `offset` (no intermediate array:
 * the encoders' hot path). Throws WireError('EADDRESS') like parseIpv6.
 */
export function writeIpv6(buf: Uint8Array, offset: number, text: Ipv6): void {
  if (typeof text === 'string' && text.length <= 45 && text.indexOf('.') < 0 && text.indexOf('%') < 0 && parseHexGroups(text, buf, offset)) return;
  buf.set(parseIpv6(text), offset);
}

/** Octet → hex without leading zeros, and padded to two digits (formatIpv6 without number → string conversions). */
const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16));
const HEX2: readonly string[] = HEX.map((h) => h.padStart(2, '0'));

/** Format 16 octets (at `offset` of `buf`) as canonical RFC 5952 text. */
export function formatIpv6(buf: Uint8Array, offset = 0): Ipv6 {
  if (offset < 0 || offset + 16 > buf.length) throw new WireError('ETRUNCATED', 'IPv6 address needs 16 octets', offset);
  // Longest run of >= 2 zero groups, first one on ties (RFC 5952 §4.2).
  let bestStart = -1, bestLen = 1, runStart = -1;
  for (let i = 0; i < 8; i++) {
    if (buf[offset + 2 * i] === 0 && buf[offset + 2 * i + 1] === 0) {
      if (runStart < 0) runStart = i;
      if (i - runStart + 1 > bestLen) { bestStart = runStart; bestLen = i - runStart + 1; }
    } else runStart = -1;
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestStart) {
      s += '::';
      i += bestLen - 1;
      continue;
    }
    if (i > 0 && i !== bestStart + bestLen) s += ':';
    const hi = buf[offset + 2 * i]!, lo = buf[offset + 2 * i + 1]!;
    s += hi === 0 ? HEX[lo]! : HEX[hi]! + HEX2[lo]!;
  }
  return s;
}

/** Value of a hex digit's char code, or -1. */
function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  return l >= 97 && l <= 102 ? l - 87 : -1;
}

/** Groups of the address being parsed (reused: parsing allocates only its result). */
const groups = new Uint16Array(8);

/**
 * Parse hex-only IPv6 text (no embedded IPv4) into `out`: 1–4 hex digits per group,
 * at most one "::" standing for at least one zero group. False if it is not valid.
 */
function parseHexGroups(s: string, out: Uint8Array, at = 0): boolean {
  const n = s.length;
  let i = 0, g = 0, dbl = -1;
  if (n >= 1 && s.charCodeAt(0) === 58) {
    if (n < 2 || s.charCodeAt(1) !== 58) return false;
    dbl = 0;
    i = 2;
  }
  while (i < n) {
    let v = 0, d = 0, h: number;
    while (i < n && (h = hexDigit(s.charCodeAt(i))) >= 0) {
      v = (v << 4) | h;
      d++;
      i++;
      if (d > 4) return false;
    }
    if (d === 0 || g >= 8) return false;
    groups[g++] = v;
    if (i === n) break;
    if (s.charCodeAt(i) !== 58) return false;
    i++;
    if (i < n && s.charCodeAt(i) === 58) {
      if (dbl >= 0) return false;
      dbl = g;
      i++;
    } else if (i === n) return false;
  }
  if (dbl < 0 ? g !== 8 : g > 7) return false;
  const tail = dbl < 0 ? 0 : g - dbl;
  for (let k = 0; k < 16; k++) out[at + k] = 0;
  const head = dbl < 0 ? g : dbl;
  for (let k = 0; k < head; k++) {
    out[at + 2 * k] = groups[k]! >> 8;
    out[at + 2 * k + 1] = groups[k]! & 0xff;
  }
  for (let k = 0; k < tail; k++) {
    const o = at + 2 * (8 - tail + k);
    out[o] = groups[dbl + k]! >> 8;
    out[o + 1] = groups[dbl + k]! & 0xff;
  }
  return true;
}

/** Canonicalise IPv6 text (throws WireError('EADDRESS') if it is not an address). */
export function canonicalIpv6(text: string): Ipv6 {
  return formatIpv6(parseIpv6(text));
}

export function isIpv6(text: string): boolean {
  try { parseIpv6(text); return true; } catch { return false; }
}

/**
 * Why an address cannot be a peer's or a host's locator (or ULID), or undefined: the unspecified,
 * loopback, multicast, link-local and IPv4-mapped addresses. One rule for `zone check`, the zone
 * tools' input and the daemon's `peers`. Throws like parseIpv6.
 */
export function locatorProblem(addr: string): string | undefined {
  const b = parseIpv6(addr);
  if (b.every((x) => x === 0)) return 'is the unspecified address';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'is the loopback address';
  if (b[0] === 0xff) return 'is a multicast address';
  if (isLinkLocalOctets(b)) return 'is link-local (not routable between sites)';
  if (isV4MappedOctets(b)) return 'is IPv4-mapped';
  return undefined;
}

/** fe80::/10, from an address's 16 octets. */
export function isLinkLocalOctets(b: Uint8Array): boolean {
  return b[0] === 0xfe && (b[1]! & 0xc0) === 0x80;
}

/** ::ffff:0:0/96 (an IPv4 address written as IPv6), from an address's 16 octets. */
export function isV4MappedOctets(b: Uint8Array): boolean {
  return b.subarray(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff;
}

function bad(text: unknown): WireError {
  return new WireError('EADDRESS', `not an IPv6 address: ${JSON.stringify(text)}`);
}

/** The /64 of `address` as a compact key (the first 8 octets in hex), for per-prefix bookkeeping. Throws like parseIpv6. */
export function prefix64Key(address: Ipv6): string {
  const b = parseIpv6(address);
  let s = '';
  for (let i = 0; i < 8; i++) s += (b[i]! < 16 ? '0' : '') + b[i]!.toString(16);
  return s;
}

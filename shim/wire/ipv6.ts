/**
 * IPv6 addresses as the rest of shim6 sees them: canonical RFC 5952 text
 * ("2001:db8::1", lowercase, longest zero run compressed) in decoded objects,
 * 16-octet Uint8Arrays on the wire. Parsing is strict and throws WireError('BAD_ADDRESS').
 */
import { WireError } from './errors.ts';

export type Ipv6 = string;

/** Parse IPv6 text (any valid form, incl. embedded IPv4) into 16 octets. */
export function parseIpv6(text: string): Uint8Array {
  const out = new Uint8Array(16);
  if (typeof text !== 'string' || text.length === 0 || text.length > 45) throw bad(text);
  let s = text;
  const pct = s.indexOf('%');
  if (pct >= 0) throw bad(text);
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

/** Format 16 octets (at `offset` of `buf`) as canonical RFC 5952 text. */
export function formatIpv6(buf: Uint8Array, offset = 0): Ipv6 {
  if (offset + 16 > buf.length) throw new WireError('TRUNCATED', 'IPv6 address needs 16 octets', offset);
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((buf[offset + i * 2]! << 8) | buf[offset + i * 2 + 1]!);
  // Longest run of >= 2 zero groups, first one on ties (RFC 5952 §4.2).
  let bestStart = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestStart = i; bestLen = j - i; }
    i = j;
  }
  const hex = (x: number): string => x.toString(16);
  if (bestStart < 0) return g.map(hex).join(':');
  return g.slice(0, bestStart).map(hex).join(':') + '::' + g.slice(bestStart + bestLen).map(hex).join(':');
}

/** Canonicalise IPv6 text (throws WireError('BAD_ADDRESS') if it is not an address). */
export function canonicalIpv6(text: string): Ipv6 {
  return formatIpv6(parseIpv6(text));
}

export function isIpv6(text: string): boolean {
  try { parseIpv6(text); return true; } catch { return false; }
}

function bad(text: unknown): WireError {
  return new WireError('BAD_ADDRESS', `not an IPv6 address: ${JSON.stringify(text)}`);
}

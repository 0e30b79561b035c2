/**
 * Locator-pair order for I1 retransmissions (failure during startup) and REAP
 * exploration (RFC 5534 §4.3, which leaves the order to the implementation).
 * After a pair fails, the pairs that share no locator with it (both ends
 * different) come first: a dead link or a dead address takes out every pair
 * that uses it, so a disjoint pair is the best bet. Then the rest. Within each
 * group, RFC 6724-like preference: the peer's locator preference (priority,
 * then weight), then the longer common prefix between source and destination
 * (Rule 8: same subnet, so likely the same link), then our own locator order.
 * Pure functions over addresses; this module knows no context.
 */
import type { Ipv6 } from '../wire/ipv6.ts';

/** One (local, peer) locator pair. */
export interface LocatorPair {
  local: Ipv6;
  peer: Ipv6;
}

/** A peer locator with its preference (RFC 5533 §5.15.3: lower priority first, then higher weight). */
export interface RankedPeer {
  address: Ipv6;
  priority: number;
  weight: number;
}

const key = (p: LocatorPair): string => `${p.local}|${p.peer}`;

/** True when the two pairs have neither end in common. */
export function disjoint(a: LocatorPair, b: LocatorPair): boolean {
  return a.local !== b.local && a.peer !== b.peer;
}

/** Leading bits two IPv6 addresses (canonical text) have in common (RFC 6724 §2.2 CommonPrefixLen). */
export function commonPrefixLen(a: Ipv6, b: Ipv6): number {
  const x = expand(a), y = expand(b);
  if (x === undefined || y === undefined) return 0;
  let bits = 0;
  for (let i = 0; i < 8; i++) {
    const d = x[i]! ^ y[i]!;
    if (d === 0) { bits += 16; continue; }
    return bits + Math.clz32(d) - 16;
  }
  return bits;
}

function expand(a: string): number[] | undefined {
  const [head = '', tail] = a.split('::');
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  if (fill < 0 || h.length + t.length + fill !== 8 || h.concat(t).some((g) => g.includes('.'))) return undefined;
  return [...h, ...Array<string>(fill).fill('0'), ...t].map((g) => parseInt(g, 16) || 0);
}

/** Every pair of `locals` × `peers`, best first (peer preference, prefix match, local order). */
export function rankedPairs(locals: readonly Ipv6[], peers: readonly RankedPeer[]): LocatorPair[] {
  const out: { pair: LocatorPair; pri: number; w: number; cpl: number; li: number }[] = [];
  for (const p of peers) {
    locals.forEach((l, li) => out.push({ pair: { local: l, peer: p.address }, pri: p.priority, w: p.weight, cpl: commonPrefixLen(l, p.address), li }));
  }
  out.sort((a, b) => a.pri - b.pri || b.w - a.w || b.cpl - a.cpl || a.li - b.li);
  return out.map((x) => x.pair);
}

/**
 * The order to try `ranked` pairs in, starting with `first` (the pair in use,
 * or the preferred one): each next pair is the best untried one that shares no
 * locator with the pair tried just before it, else the best untried one.
 * `first` is included at index 0 when it is among `ranked` or `includeFirst`.
 */
export function tryOrder(first: LocatorPair, ranked: readonly LocatorPair[], includeFirst = true): LocatorPair[] {
  const left = ranked.filter((p) => key(p) !== key(first));
  const out: LocatorPair[] = includeFirst ? [first] : [];
  let last = first;
  while (left.length > 0) {
    let i = left.findIndex((p) => disjoint(p, last));
    if (i < 0) i = 0;
    last = left.splice(i, 1)[0]!;
    out.push(last);
  }
  return out;
}

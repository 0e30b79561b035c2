/**
 * Capability knowledge about peers (seed §3.1.4): what the engine needs from the
 * positive and negative caches, as one small interface. shim/cache/ implements
 * it with lru-cache (bounded, TTLs, export/import); `MapCapabilityCache` below
 * is the minimal in-folder implementation the engine uses when none is given.
 * This module must not know about contexts or messages.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';

/** Where positive knowledge came from. */
export type PositiveSource = 'configured' | 'dns' | 'handshake' | 'probe';

/** A peer locator as DNS or configuration gave it (DESIGN.md §2). */
export interface PrimeLocator {
  address: Ipv6;
  flags: number;
  priority: number;
  weight: number;
}

/** "This ULID runs shim6", possibly with its locator set. */
export interface PositiveEntry {
  ulid: Ipv6;
  source: PositiveSource;
  locators: PrimeLocator[];
  port?: number;
  expires: Millis;
}

/** Why a peer is believed not to run shim6 (RFC 5533 §7.8). */
export type NegativeReason = 'no-r1' | 'icmp' | 'dns-absent' | 'dns-claimed-no-answer';

/**
 * "Do not try this peer". Keyed by address alone, or by address + ULID when DNS
 * claimed support but the peer did not answer (seed §3.1.4).
 */
export interface NegativeEntry {
  address: Ipv6;
  ulid?: Ipv6;
  reason: NegativeReason;
  expires: Millis;
}

/** A JSON-able dump for keeping the caches across daemon restarts. */
export interface CacheSnapshot {
  positive: PositiveEntry[];
  negative: NegativeEntry[];
}

/** What the engine calls; every method takes `now` (no clock inside). */
export interface CapabilityCache {
  getPositive(now: Millis, ulid: Ipv6): PositiveEntry | undefined;
  setPositive(now: Millis, entry: PositiveEntry): void;
  /** Negative entry for `address` (address-only key), or for `address` + `ulid`. */
  getNegative(now: Millis, address: Ipv6, ulid?: Ipv6): NegativeEntry | undefined;
  setNegative(now: Millis, entry: NegativeEntry): void;
  deleteNegative(address: Ipv6, ulid?: Ipv6): void;
  export(now: Millis): CacheSnapshot;
  import(now: Millis, data: CacheSnapshot): void;
  size(): { positive: number; negative: number };
}

/** One positive entry as `shim6 status` lists it: by ULID, with its remaining lifetime. */
export interface PositiveStatus {
  ulid: Ipv6;
  source: PositiveSource;
  locators: Ipv6[];
  port?: number;
  /** Remaining lifetime (s). */
  ttl: number;
}

/**
 * One negative entry as `shim6 status` lists it: by peer address (and the ULID
 * DNS claimed, when the hold-down is for that ULID only), why, learnt from what
 * (`dns`: no record; `handshake`: our I1 went unanswered or was refused), and
 * its remaining lifetime.
 */
export interface NegativeStatus {
  address: Ipv6;
  ulid?: Ipv6;
  reason: NegativeReason;
  source: 'dns' | 'handshake';
  /** Remaining lifetime (s). */
  ttl: number;
}

/** The capability caches entry by entry, least recently used first. */
export interface CapabilityStatus {
  positive: PositiveStatus[];
  negative: NegativeStatus[];
}

/** The live entries of `cache` at `now`, for `shim6 status`. */
export function capabilityStatus(cache: CapabilityCache, now: Millis): CapabilityStatus {
  const left = (expires: Millis): number => Math.max(0, Math.floor((expires - now) / 1000));
  const snap = cache.export(now);
  return {
    positive: snap.positive.map((e) => {
      const base: PositiveStatus = { ulid: e.ulid, source: e.source, locators: e.locators.map((l) => l.address), ttl: left(e.expires) };
      return e.port === undefined ? base : { ...base, port: e.port };
    }),
    negative: snap.negative.map((e) => {
      const base: NegativeStatus = { address: e.address, reason: e.reason, source: e.reason === 'dns-absent' ? 'dns' : 'handshake', ttl: left(e.expires) };
      return e.ulid === undefined ? base : { ...base, ulid: e.ulid };
    }),
  };
}

const negKey = (address: Ipv6, ulid?: Ipv6): string => (ulid === undefined ? address : `${address}|${ulid}`);

/**
 * Minimal bounded cache on two Maps (insertion order = eviction order). Used
 * until/unless the driver passes shim/cache's lru-cache implementation.
 */
export class MapCapabilityCache implements CapabilityCache {
  private readonly pos = new Map<Ipv6, PositiveEntry>();
  private readonly neg = new Map<string, NegativeEntry>();
  constructor(private readonly max: number) {}

  getPositive(now: Millis, ulid: Ipv6): PositiveEntry | undefined {
    return fresh(this.pos, ulid, now);
  }
  setPositive(_now: Millis, entry: PositiveEntry): void {
    put(this.pos, entry.ulid, entry, this.max);
  }
  getNegative(now: Millis, address: Ipv6, ulid?: Ipv6): NegativeEntry | undefined {
    return fresh(this.neg, negKey(address), now) ?? (ulid === undefined ? undefined : fresh(this.neg, negKey(address, ulid), now));
  }
  setNegative(_now: Millis, entry: NegativeEntry): void {
    put(this.neg, negKey(entry.address, entry.ulid), entry, this.max);
  }
  deleteNegative(address: Ipv6, ulid?: Ipv6): void {
    this.neg.delete(negKey(address, ulid));
  }
  export(now: Millis): CacheSnapshot {
    return {
      positive: [...this.pos.values()].filter((e) => e.expires > now).map((e) => ({ ...e, locators: e.locators.map((l) => ({ ...l })) })),
      negative: [...this.neg.values()].filter((e) => e.expires > now).map((e) => ({ ...e })),
    };
  }
  import(now: Millis, data: CacheSnapshot): void {
    for (const e of data.positive) if (e.expires > now) this.setPositive(now, e);
    for (const e of data.negative) if (e.expires > now) this.setNegative(now, e);
  }
  size(): { positive: number; negative: number } {
    return { positive: this.pos.size, negative: this.neg.size };
  }
}

function fresh<K, V extends { expires: Millis }>(m: Map<K, V>, k: K, now: Millis): V | undefined {
  const e = m.get(k);
  if (e === undefined) return undefined;
  if (e.expires <= now) {
    m.delete(k);
    return undefined;
  }
  return e;
}

function put<K, V>(m: Map<K, V>, k: K, v: V, max: number): void {
  m.delete(k);
  m.set(k, v);
  while (m.size > max) {
    const oldest = m.keys().next();
    if (oldest.done === true) break;
    m.delete(oldest.value);
  }
}

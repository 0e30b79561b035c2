/**
 * Capability knowledge about peers (docs/engine.md "Capability detection") —
 * the one model: the types every part uses (the engine, shim/cache's LRU
 * implementation, the daemon's cache file, `shim6 status`), and the interface
 * the engine calls. No translation between vocabularies anywhere. The engine's
 * default implementation is shim/cache's `LruCapabilityCache`, the one the
 * daemon ships, so the simulator runs the shipping policy.
 * This module must not know about contexts or messages.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';

/** Where positive knowledge came from. */
export type PositiveSource = 'dns' | 'configured' | 'handshake' | 'probe';
export const POSITIVE_SOURCES: readonly PositiveSource[] = ['dns', 'configured', 'handshake', 'probe'];

/** A peer locator as DNS or configuration gave it (docs/capability-record.md). */
export interface PrimeLocator {
  readonly address: Ipv6;
  /** LocatorFlag bits (BROKEN 0x01, TRANSIENT 0x02). */
  readonly flags: number;
  /** Lower first. */
  readonly priority: number;
  readonly weight: number;
}

/** "This ULID runs shim6", with the locators DNS or configuration gave (a handshake: the context's verified ones, lasting.ts; a probe: none). */
export interface PositiveEntry {
  readonly ulid: Ipv6;
  readonly source: PositiveSource;
  readonly locators: readonly PrimeLocator[];
  /** UDP port of the peer's shim when not the default. */
  readonly port?: number;
  /** Absolute, in the caller's clock. */
  readonly expires: Millis;
}

/** Why a peer is believed not to run shim6. */
export type NegativeReason =
  | 'no-record'   // DNS: the name has no capability record (NODATA / NXDOMAIN, RFC 2308)
  | 'no-answer'   // no R1 before the I1 retries ran out (RFC 5533 §7.8)
  | 'refused'     // ICMP: nothing runs shim6 there (Parameter Problem, Port Unreachable)
  | 'configured'  // the node configuration says so
  | 'peer-gone';  // ICMP: an established context's peer stopped running shim6 (its port closed for peerGoneTimeout)
export const NEGATIVE_REASONS: readonly NegativeReason[] = ['no-record', 'no-answer', 'refused', 'configured', 'peer-gone'];

/**
 * "Do not try this peer". Keyed by address alone, or by address + ULID when
 * DNS claimed shim6 for that ULID but the peer did not answer or refused:
 * then only that ULID at that address is held down, and a later DNS
 * prime of the same claim is refused until the entry expires.
 */
export interface NegativeEntry {
  readonly address: Ipv6;
  readonly ulid?: Ipv6;
  readonly reason: NegativeReason;
  readonly expires: Millis;
}

/** A JSON-able dump for keeping the caches across daemon restarts (the cache file). */
export interface CacheSnapshot {
  readonly version?: 2;
  readonly positive: PositiveEntry[];
  readonly negative: NegativeEntry[];
}

/** What the engine calls; every method takes `now` (no clock inside). */
export interface CapabilityCache {
  getPositive(now: Millis, ulid: Ipv6): PositiveEntry | undefined;
  /** Record positive knowledge; lifts the negative entries of the ULID and its locators (address-wide and keyed). */
  setPositive(now: Millis, entry: PositiveEntry): void;
  /** The entry holding `address` down: the one for `address` + `ulid` first (a refused claim), else the address-wide one. */
  getNegative(now: Millis, address: Ipv6, ulid?: Ipv6): NegativeEntry | undefined;
  setNegative(now: Millis, entry: NegativeEntry): void;
  deleteNegative(address: Ipv6, ulid?: Ipv6): void;
  /** Drop the positive entry of `ulid` (a configured peer taken out of the configuration). */
  deletePositive(ulid: Ipv6): void;
  export(now: Millis): CacheSnapshot;
  /** Load a snapshot (in practice read from a file): validated whole; malformed data throws and changes nothing. */
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
 * (derived from the reason), and its remaining lifetime.
 */
export interface NegativeStatus {
  address: Ipv6;
  ulid?: Ipv6;
  reason: NegativeReason;
  /** What taught it: DNS (no record), our own I1s (no answer, refused), or the configuration. */
  source: 'dns' | 'handshake' | 'configured';
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
      const base: NegativeStatus = { address: e.address, reason: e.reason, source: e.reason === 'no-record' ? 'dns' : e.reason === 'configured' ? 'configured' : 'handshake', ttl: left(e.expires) };
      return e.ulid === undefined ? base : { ...base, ulid: e.ulid };
    }),
  };
}

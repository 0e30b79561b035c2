/**
 * The shapes of capability-cache entries (seed §3.1.4, DESIGN.md §1): what the
 * engine learnt about a peer, from where, and until when. Plain, JSON-able data.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';

/** Where a capability fact came from. */
export type CapabilitySource = 'dns' | 'config' | 'probe' | 'handshake';
export const CAPABILITY_SOURCES: readonly CapabilitySource[] = ['dns', 'config', 'probe', 'handshake'];

/** Why a peer is believed not to run shim6. */
export type NegativeReason =
  | 'no-record'   // DNS says nothing (NODATA / NXDOMAIN, RFC 2308)
  | 'refused'     // the peer answered the I1 with a refusal (ICMP / Port Unreachable)
  | 'no-answer'   // I1 retries ran out without an R1 (RFC 5533 §7.8)
  | 'config';     // the node configuration says so (seed §3.1.1)
export const NEGATIVE_REASONS: readonly NegativeReason[] = ['no-record', 'refused', 'no-answer', 'config'];

/** A peer locator as DNS, configuration or the handshake gave it. */
export interface CachedLocator {
  readonly address: Ipv6;
  /** LocatorFlag bits (BROKEN 0x01, TRANSIENT 0x02). */
  readonly flags: number;
  /** Lower first. */
  readonly priority: number;
  readonly weight: number;
}

/** Positive entry: this ULID runs shim6, reachable at these locators. */
export interface PositiveEntry {
  readonly ulid: Ipv6;
  readonly locators: readonly CachedLocator[];
  readonly source: CapabilitySource;
  /** Absolute expiry (same clock as `now`). */
  readonly expires: Millis;
  /** UDP port of the peer's shim when not the default. */
  readonly port?: number;
}

/**
 * Negative entry: no shim6 at `address`; with `ulid` set, only for that ULID
 * (DNS claimed support for that ULID but the peer refused or did not answer,
 * seed §3.1.4), so the same address under another ULID may still be tried.
 */
export interface NegativeEntry {
  readonly address: Ipv6;
  readonly ulid?: Ipv6;
  readonly source: CapabilitySource;
  readonly reason: NegativeReason;
  readonly expires: Millis;
}

/** What `CapabilityCaches.export()` returns and `import()` reads. */
export interface CachesExport {
  readonly version: 1;
  /** Least recently used first. */
  readonly positive: PositiveEntry[];
  readonly negative: NegativeEntry[];
}

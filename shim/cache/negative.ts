/**
 * Negative capability cache (docs/engine.md "Capability detection"): addresses
 * known not to run shim6. Keyed by address alone (no record in DNS, configured
 * as legacy, refused with no ULID claimed), or by address + ULID when DNS
 * claimed shim6 for that ULID but the peer refused or did not answer — then
 * only that ULID at that address is held down. Bounded LRU; expiry against the
 * caller's `now`.
 */
import { canonicalIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { ms, type Millis } from '../time.ts';
import { ExpiringLru } from './expiring-lru.ts';
import type { CacheOptions } from './positive.ts';
import type { NegativeEntry, NegativeReason } from './types.ts';

/** Implementation defaults: RFC 2308 §5 suggests negative TTLs of 1–3 hours at most. */
export const NEGATIVE_DEFAULTS = { maxEntries: 10_000, maxTtl: ms(3 * 3600_000) } as const;

export interface NegativeInput {
  readonly address: Ipv6;
  readonly ulid?: Ipv6;
  readonly reason: NegativeReason;
  /** Lifetime from `now`; 0 or less stores nothing and forgets what was there. */
  readonly ttl: Millis;
}

const key = (address: Ipv6, ulid: Ipv6 | undefined): string => `${address}|${ulid ?? ''}`;

export class NegativeCache {
  readonly #lru: ExpiringLru<NegativeEntry>;
  readonly maxTtl: Millis;

  constructor(opts: CacheOptions = {}) {
    this.#lru = new ExpiringLru(opts.maxEntries ?? NEGATIVE_DEFAULTS.maxEntries);
    this.maxTtl = opts.maxTtl ?? NEGATIVE_DEFAULTS.maxTtl;
  }

  remember(now: Millis, input: NegativeInput): NegativeEntry | undefined {
    const address = canonicalIpv6(input.address);
    const ulid = input.ulid === undefined ? undefined : canonicalIpv6(input.ulid);
    const k = key(address, ulid);
    if (!(input.ttl > 0)) {
      this.#lru.delete(k);
      return undefined;
    }
    const base: NegativeEntry = {
      address, reason: input.reason,
      expires: ms(now + Math.min(input.ttl, this.maxTtl)),
    };
    const entry = ulid === undefined ? base : { ...base, ulid };
    this.#lru.set(k, entry);
    return entry;
  }

  /** Store an entry as exported earlier, unless it has expired or a live one exists. */
  restore(now: Millis, entry: NegativeEntry): boolean {
    const k = key(entry.address, entry.ulid);
    if (entry.expires <= now || this.#lru.peek(now, k)) return false;
    this.#lru.set(k, { ...entry, expires: ms(Math.min(entry.expires, now + this.maxTtl)) });
    return true;
  }

  /**
   * The live entry that holds `address` down (for `ulid`, when given): the one
   * for exactly this address + ULID first (a refused claim), else an
   * address-wide one.
   */
  lookup(now: Millis, address: Ipv6, ulid?: Ipv6): NegativeEntry | undefined {
    const a = canonicalIpv6(address);
    const keyed = ulid === undefined ? undefined : this.#lru.get(now, key(a, canonicalIpv6(ulid)));
    return keyed ?? this.#lru.get(now, key(a, undefined));
  }

  /** Forget the entry for `address` (and `ulid`, when given: only that keyed entry). */
  forget(address: Ipv6, ulid?: Ipv6): boolean {
    return this.#lru.delete(key(canonicalIpv6(address), ulid === undefined ? undefined : canonicalIpv6(ulid)));
  }

  entries(now: Millis): NegativeEntry[] {
    return this.#lru.live(now).map(([, v]) => v);
  }

  get size(): number {
    return this.#lru.size;
  }

  get maxEntries(): number {
    return this.#lru.max;
  }
}

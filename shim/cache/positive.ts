/**
 * Positive capability cache (docs/engine.md "Capability detection"): peers
 * known to run shim6, keyed by ULID, with their locators, where we learnt it
 * and until when. It outlives the contexts (so a peer contacted again soon is
 * not rediscovered) but never tears one down. Bounded LRU; expiry against the
 * caller's `now`.
 */
import { canonicalIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { ms, type Millis } from '../time.ts';
import { ExpiringLru } from './expiring-lru.ts';
import type { CachedLocator, PositiveEntry, PositiveSource } from './types.ts';

/** Size and TTL bounds of one cache. */
export interface CacheOptions {
  /** Most entries held; the least recently used goes first. */
  readonly maxEntries?: number;
  /** Longest TTL honoured; longer ones (DNS, imported files) are cut to this. */
  readonly maxTtl?: Millis;
}

/** Implementation defaults (not spec constants). */
export const POSITIVE_DEFAULTS = { maxEntries: 10_000, maxTtl: ms(24 * 3600_000) } as const;

/** What to remember about a shim6-capable peer. */
export interface PositiveInput {
  readonly ulid: Ipv6;
  readonly locators: readonly CachedLocator[];
  readonly source: PositiveSource;
  /** Lifetime from `now`; 0 or less stores nothing and forgets what was there. */
  readonly ttl: Millis;
  readonly port?: number;
}

export class PositiveCache {
  readonly #lru: ExpiringLru<PositiveEntry>;
  readonly maxTtl: Millis;

  constructor(opts: CacheOptions = {}) {
    this.#lru = new ExpiringLru(opts.maxEntries ?? POSITIVE_DEFAULTS.maxEntries);
    this.maxTtl = opts.maxTtl ?? POSITIVE_DEFAULTS.maxTtl;
  }

  /** Remember (replacing what was known: the newest fact wins). Returns the stored entry. */
  remember(now: Millis, input: PositiveInput): PositiveEntry | undefined {
    const ulid = canonicalIpv6(input.ulid);
    if (!(input.ttl > 0)) {
      this.#lru.delete(ulid);
      return undefined;
    }
    const base: PositiveEntry = {
      ulid,
      locators: input.locators.map((l) => ({ ...l, address: canonicalIpv6(l.address) })),
      source: input.source,
      expires: ms(now + Math.min(input.ttl, this.maxTtl)),
    };
    const entry = input.port === undefined ? base : { ...base, port: input.port };
    this.#lru.set(ulid, entry);
    return entry;
  }

  /** Store an entry as exported earlier, unless it has expired or a live one exists. */
  restore(now: Millis, entry: PositiveEntry): boolean {
    if (entry.expires <= now || this.#lru.peek(now, entry.ulid)) return false;
    this.#lru.set(entry.ulid, { ...entry, expires: ms(Math.min(entry.expires, now + this.maxTtl)) });
    return true;
  }

  /** The live entry for this ULID, if any. */
  lookup(now: Millis, ulid: Ipv6): PositiveEntry | undefined {
    return this.#lru.get(now, canonicalIpv6(ulid));
  }

  forget(ulid: Ipv6): boolean {
    return this.#lru.delete(canonicalIpv6(ulid));
  }

  /** Live entries, least recently used first. */
  entries(now: Millis): PositiveEntry[] {
    return this.#lru.live(now).map(([, v]) => v);
  }

  /** Entries held (expired ones count until touched or purged). */
  get size(): number {
    return this.#lru.size;
  }

  get maxEntries(): number {
    return this.#lru.max;
  }
}

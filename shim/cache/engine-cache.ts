/**
 * `LruCapabilityCache`: the capability caches (./index.ts) as the engine's
 * `CapabilityCache` (shim/engine/capability.ts) — the implementation the
 * daemon ships and the engine's default, so the simulator runs it too. Same
 * types on both sides: nothing is translated. Bounded LRU, TTLs against the
 * engine's `now`, and an `import` that validates data read back from disk
 * (CacheDataError, caches untouched) instead of trusting it.
 */
import type { CacheSnapshot, CapabilityCache, NegativeEntry, PositiveEntry } from '../engine/capability.ts';
import { ms, type Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { CapabilityCaches } from './index.ts';
import type { CacheOptions } from './positive.ts';

export class LruCapabilityCache implements CapabilityCache {
  readonly caches: CapabilityCaches;

  constructor(opts: { positive?: CacheOptions; negative?: CacheOptions } = {}) {
    this.caches = new CapabilityCaches(opts);
  }

  getPositive(now: Millis, ulid: Ipv6): PositiveEntry | undefined {
    return this.caches.positive.lookup(now, ulid);
  }

  setPositive(now: Millis, entry: PositiveEntry): void {
    const base = { ulid: entry.ulid, locators: entry.locators, source: entry.source, ttl: ms(entry.expires - now) };
    this.caches.supported(now, entry.port === undefined ? base : { ...base, port: entry.port });
  }

  getNegative(now: Millis, address: Ipv6, ulid?: Ipv6): NegativeEntry | undefined {
    return this.caches.negative.lookup(now, address, ulid);
  }

  setNegative(now: Millis, entry: NegativeEntry): void {
    const base = { address: entry.address, reason: entry.reason, ttl: ms(entry.expires - now) };
    this.caches.negative.remember(now, entry.ulid === undefined ? base : { ...base, ulid: entry.ulid });
  }

  deleteNegative(address: Ipv6, ulid?: Ipv6): void {
    this.caches.negative.forget(address, ulid);
  }

  deletePositive(ulid: Ipv6): void {
    this.caches.positive.forget(ulid);
  }

  export(now: Millis): CacheSnapshot {
    return this.caches.export(now);
  }

  /** Validated in full first (files of earlier versions are read too); malformed data throws CacheDataError and changes nothing. */
  import(now: Millis, data: CacheSnapshot): void {
    this.caches.import(now, data);
  }

  size(): { positive: number; negative: number } {
    return { positive: this.caches.positive.size, negative: this.caches.negative.size };
  }
}

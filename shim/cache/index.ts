/**
 * Capability caches (docs/engine.md "Capability detection"): one positive
 * and one negative cache, the rules that keep them consistent (learning that a
 * peer runs shim6 lifts its hold-downs; learning that a claimed ULID does not
 * answer drops the claim), and export/import so the daemon can keep both across
 * restarts. Sans-I/O: `now` comes in, JSON-able data goes out; the daemon owns
 * the file. Expiry times are absolute in the caller's clock, so `now` must come
 * from a wall clock (epoch ms) for exported data to mean anything after a restart.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Millis } from '../time.ts';
import { CacheDataError } from './errors.ts';
import { NegativeCache, type NegativeInput } from './negative.ts';
import { PositiveCache, type CacheOptions, type PositiveInput } from './positive.ts';
import { CACHE_FILE_VERSION, type CachesExport, type NegativeEntry, type PositiveEntry } from './types.ts';
import { asArray, asObject, negativeEntry, positiveEntry, upgradeEntry } from './validate.ts';

export * from './types.ts';
export { CacheDataError, type CacheDataErrorCode } from './errors.ts';
export { PositiveCache, POSITIVE_DEFAULTS, type CacheOptions, type PositiveInput } from './positive.ts';
export { NegativeCache, NEGATIVE_DEFAULTS, type NegativeInput } from './negative.ts';

/** What the caches say about reaching `ulid` at `address`. */
export type CapabilityVerdict =
  | { readonly kind: 'supported'; readonly entry: PositiveEntry }
  | { readonly kind: 'unsupported'; readonly entry: NegativeEntry }
  | { readonly kind: 'unknown' };

/** Counts from `import()`. */
export interface ImportResult {
  readonly positive: number;
  readonly negative: number;
  /** Entries dropped because they had expired (or a live entry already held the key). */
  readonly skipped: number;
}

export class CapabilityCaches {
  readonly positive: PositiveCache;
  readonly negative: NegativeCache;

  constructor(opts: { positive?: CacheOptions; negative?: CacheOptions } = {}) {
    this.positive = new PositiveCache(opts.positive);
    this.negative = new NegativeCache(opts.negative);
  }

  /** The peer runs shim6: remember it and lift hold-downs on its ULID and locators. */
  supported(now: Millis, input: PositiveInput): PositiveEntry | undefined {
    const entry = this.positive.remember(now, input);
    const ulid = entry?.ulid ?? input.ulid;
    for (const a of [input.ulid, ...input.locators.map((l) => l.address)]) {
      this.negative.forget(a);
      this.negative.forget(a, ulid);
    }
    return entry;
  }

  /**
   * The peer does not run shim6 at `address` (for `ulid`, when DNS claimed it).
   * A positive entry claiming `ulid` is dropped: the claim proved wrong here.
   */
  unsupported(now: Millis, input: NegativeInput): NegativeEntry | undefined {
    if (input.ulid !== undefined) this.positive.forget(input.ulid);
    return this.negative.remember(now, input);
  }

  /** Positive knowledge of `ulid` wins over a hold-down of `address`; else the hold-down; else unknown. */
  verdict(now: Millis, ulid: Ipv6, address: Ipv6 = ulid): CapabilityVerdict {
    const pos = this.positive.lookup(now, ulid);
    if (pos) return { kind: 'supported', entry: pos };
    const neg = this.negative.lookup(now, address, ulid);
    return neg ? { kind: 'unsupported', entry: neg } : { kind: 'unknown' };
  }

  /** Live entries as JSON-able data, least recently used first. */
  export(now: Millis): CachesExport {
    return { version: CACHE_FILE_VERSION, positive: this.positive.entries(now), negative: this.negative.entries(now) };
  }

  /**
   * Load what `export()` wrote (possibly long ago, from a file). Validates all of
   * it before storing any of it: malformed data throws CacheDataError and leaves
   * the caches as they were. Expired entries are dropped; live entries win over
   * imported ones; expiries are cut to each cache's `maxTtl` from `now`.
   */
  import(now: Millis, data: unknown): ImportResult {
    const o = asObject(data, '$', 'ECACHE_FORMAT');
    if (o.version !== undefined && o.version !== 1 && o.version !== CACHE_FILE_VERSION) throw new CacheDataError('ECACHE_VERSION', '$.version', `unsupported version ${JSON.stringify(o.version)}`);
    const up = o.version === CACHE_FILE_VERSION ? (e: unknown) => e : upgradeEntry;
    const pos = asArray(o.positive, '$.positive').map((e, i) => positiveEntry(up(e), `$.positive[${i}]`));
    const neg = asArray(o.negative, '$.negative').map((e, i) => negativeEntry(up(e), `$.negative[${i}]`));
    let p = 0, n = 0;
    for (const e of pos) if (this.positive.restore(now, e)) p++;
    for (const e of neg) if (this.negative.restore(now, e)) n++;
    return { positive: p, negative: n, skipped: pos.length + neg.length - p - n };
  }
}

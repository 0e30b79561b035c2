/**
 * A bounded LRU map whose entries carry their own absolute expiry (`expires`,
 * Millis). lru-cache 11 bounds the size and keeps recency; expiry is ours, checked
 * against the `now` the caller passes in, because lru-cache's own TTLs read a clock
 * (`performance.now`) and treat `ttl: 0` as "never expires" — neither fits a
 * sans-I/O core. So lru-cache is built here without `ttl`, and never reads time.
 * Owns: size bound, recency, expiry. Must not know what the entries mean.
 */
import { LRUCache } from 'lru-cache';
import type { Millis } from '../time.ts';

/** Anything with an absolute expiry time. */
export interface Expiring {
  readonly expires: Millis;
}

/** Bounded LRU with caller-driven expiry. */
export class ExpiringLru<V extends Expiring> {
  readonly #lru: LRUCache<string, V>;

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`cache size must be a positive integer, got ${max}`);
    this.#lru = new LRUCache<string, V>({ max });
  }

  /** The live entry under `key` (refreshing its recency), or undefined; an expired one is removed. */
  get(now: Millis, key: string): V | undefined {
    const v = this.#lru.get(key);
    if (v === undefined) return undefined;
    if (v.expires <= now) {
      this.#lru.delete(key);
      return undefined;
    }
    return v;
  }

  /** Like `get` but leaves recency alone. */
  peek(now: Millis, key: string): V | undefined {
    const v = this.#lru.peek(key);
    return v !== undefined && v.expires > now ? v : undefined;
  }

  /** Store `value` under `key`; the least recently used entry goes when full. */
  set(key: string, value: V): void {
    this.#lru.set(key, value);
  }

  delete(key: string): boolean {
    return this.#lru.delete(key);
  }

  clear(): void {
    this.#lru.clear();
  }

  /** Drop every entry expired at `now`; returns how many went. */
  purge(now: Millis): number {
    let n = 0;
    for (const [k, v] of [...this.#lru.entries()]) {
      if (v.expires <= now) {
        this.#lru.delete(k);
        n++;
      }
    }
    return n;
  }

  /** Live entries, least recently used first (the order `import` should replay). */
  live(now: Millis): Array<[string, V]> {
    this.purge(now);
    return [...this.#lru.rentries()] as Array<[string, V]>;
  }

  /** Number of entries held, expired ones included until they are touched or purged. */
  get size(): number {
    return this.#lru.size;
  }

  get max(): number {
    return this.#lru.max;
  }
}

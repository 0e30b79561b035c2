/**
 * A least-recently-used map bounded in entries and, optionally, in a size of
 * the caller's (the answer cache's octets): what the resolver's caches need of
 * lru-cache and no more. One Map from key to a slot; the slots' keys and values
 * in two arrays and their recency order in two Int32Arrays (a doubly linked
 * list by index), so an entry costs the Map its key and nothing else on the
 * heap — no node object per entry for the collector to trace, and no branches
 * for TTLs, disposal or fetching, which the resolver does not use (expiry is
 * decided by the caches themselves against the `now` they are given).
 * It must not know what it stores.
 */
export interface LruOptions<K, V> {
  /** Entries kept at most (≥ 1). */
  max: number;
  /**
   * A hash of the key: keeps a counting filter of the keys held (a byte per bucket, about
   * four buckets per entry), so that looking up a key that is not there reads one byte
   * instead of probing the Map. On a host idle between lookups the Map's buckets and
   * chains are out of the CPU's caches, and a miss probed there costs microseconds
   * (the capability stage's lookup of a new name, resolver/stages/capability.ts).
   */
  hash?: (key: K) => number;
  /** Sum of `sizeOf` kept at most; an entry larger than this alone is not stored. */
  maxSize?: number;
  sizeOf?: (v: V) => number;
}

const NONE = -1;
/** A filter bucket that reached this count stays there (it is never wrong, only less useful). */
const SATURATED = 255;

/** FNV-1a over a string's code units: the `hash` of string keys. */
export function stringHash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export class Lru<K, V> {
  private readonly map = new Map<K, number>();
  private keyOf: Array<K | undefined> = [];
  private valueOf: Array<V | undefined> = [];
  private sizes: Float64Array | undefined;
  private next: Int32Array;
  private prev: Int32Array;
  /** Least recently used, and most recently used slot. */
  private head = NONE;
  private tail = NONE;
  /** Slots freed by delete, and the first never used. */
  private free: number[] = [];
  private top = 0;
  private total = 0;
  readonly max: number;
  private readonly maxSize: number;
  private readonly sizeOf: ((v: V) => number) | undefined;
  /** The counting filter (see LruOptions.hash): how many held keys fall in each bucket. */
  private readonly counts: Uint8Array | undefined;
  private readonly mask: number = 0;
  private readonly hash: ((key: K) => number) | undefined;

  constructor(opts: LruOptions<K, V>) {
    if (!(opts.max >= 1)) throw new RangeError('Lru: max must be at least 1');
    this.max = opts.max;
    this.maxSize = opts.maxSize ?? Infinity;
    this.sizeOf = opts.sizeOf;
    const cap = Math.min(this.max, 1024);
    this.next = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    if (this.sizeOf) this.sizes = new Float64Array(cap);
    if (opts.hash) {
      let n = 1024;
      while (n < 4 * this.max && n < 1 << 20) n *= 2;
      this.counts = new Uint8Array(n);
      this.mask = n - 1;
      this.hash = opts.hash;
    }
  }

  /** The filter's bucket of `key`, or -1 without a filter. */
  private bucket(key: K): number {
    return this.counts === undefined ? -1 : this.hash!(key) & this.mask;
  }

  /** False when `key` is surely not held (its bucket `j` is empty). */
  private mayHold(j: number): boolean {
    return j < 0 || this.counts![j] !== 0;
  }

  private count(j: number, delta: 1 | -1): void {
    if (j >= 0 && this.counts![j] !== SATURATED) this.counts![j] = this.counts![j]! + delta;
  }

  get size(): number { return this.map.size; }
  /** Sum of the entries' sizes (0 without `sizeOf`). */
  get calculatedSize(): number { return this.total; }

  /** The value, made the most recently used. */
  get(key: K): V | undefined {
    if (!this.mayHold(this.bucket(key))) return undefined;
    const i = this.map.get(key);
    if (i === undefined) return undefined;
    if (i !== this.tail) this.moveToTail(i);
    return this.valueOf[i];
  }

  /** The value, recency unchanged. */
  peek(key: K): V | undefined {
    if (!this.mayHold(this.bucket(key))) return undefined;
    const i = this.map.get(key);
    return i === undefined ? undefined : this.valueOf[i];
  }

  has(key: K): boolean { return this.mayHold(this.bucket(key)) && this.map.has(key); }

  /** Store (or replace) as the most recently used, evicting the least recently used beyond the bounds. */
  set(key: K, value: V): this {
    const size = this.sizeOf ? this.sizeOf(value) : 0;
    if (size > this.maxSize) { this.delete(key); return this; }
    const j = this.bucket(key); // hashed once for the look-up and the count
    let i = this.mayHold(j) ? this.map.get(key) : undefined;
    if (i !== undefined) {
      this.valueOf[i] = value;
      if (this.sizes) { this.total += size - this.sizes[i]!; this.sizes[i] = size; }
      if (i !== this.tail) this.moveToTail(i);
    } else {
      if (this.map.size >= this.max) this.evict();
      i = this.slot();
      this.keyOf[i] = key;
      this.valueOf[i] = value;
      if (this.sizes) { this.sizes[i] = size; this.total += size; }
      this.map.set(key, i);
      this.count(j, 1);
      this.prev[i] = this.tail;
      this.next[i] = NONE;
      if (this.tail !== NONE) this.next[this.tail] = i; else this.head = i;
      this.tail = i;
    }
    while (this.total > this.maxSize && this.head !== this.tail) this.evict();
    return this;
  }

  delete(key: K): boolean {
    if (!this.mayHold(this.bucket(key))) return false;
    const i = this.map.get(key);
    if (i === undefined) return false;
    this.unlink(i);
    this.release(i);
    return true;
  }

  clear(): void {
    this.map.clear();
    this.counts?.fill(0);
    this.keyOf = [];
    this.valueOf = [];
    this.free = [];
    this.head = this.tail = NONE;
    this.top = 0;
    this.total = 0;
  }

  /** Entries from the most recently used to the least. */
  *entries(): IterableIterator<[K, V]> {
    for (let i = this.tail; i !== NONE; i = this.prev[i]!) yield [this.keyOf[i] as K, this.valueOf[i] as V];
  }

  private evict(): void {
    const i = this.head;
    if (i === NONE) return;
    this.unlink(i);
    this.release(i);
  }

  /** Forget slot `i` (already out of the list) and its key. */
  private release(i: number): void {
    this.map.delete(this.keyOf[i] as K);
    this.count(this.bucket(this.keyOf[i] as K), -1);
    this.keyOf[i] = undefined;
    this.valueOf[i] = undefined;
    if (this.sizes) { this.total -= this.sizes[i]!; this.sizes[i] = 0; }
    this.free.push(i);
  }

  private slot(): number {
    const f = this.free.pop();
    if (f !== undefined) return f;
    const i = this.top++;
    if (i >= this.next.length) this.grow();
    return i;
  }

  private grow(): void {
    const cap = Math.min(this.max, this.next.length * 2);
    const next = new Int32Array(cap); next.set(this.next); this.next = next;
    const prev = new Int32Array(cap); prev.set(this.prev); this.prev = prev;
    if (this.sizes) { const sizes = new Float64Array(cap); sizes.set(this.sizes); this.sizes = sizes; }
  }

  private unlink(i: number): void {
    const p = this.prev[i]!, n = this.next[i]!;
    if (p !== NONE) this.next[p] = n; else this.head = n;
    if (n !== NONE) this.prev[n] = p; else this.tail = p;
  }

  private moveToTail(i: number): void {
    this.unlink(i);
    this.prev[i] = this.tail;
    this.next[i] = NONE;
    if (this.tail !== NONE) this.next[this.tail] = i; else this.head = i;
    this.tail = i;
  }
}

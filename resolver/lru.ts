/**
 * A least-recently-used map bounded in entries and, optionally, in a size of
 * the caller's (the answer cache's octets): what the resolver's caches need of
 * lru-cache and no more. Keys live in an open-addressing table of its own
 * (linear probing in one Int32Array: a slot number and the key's hash side by
 * side, at most half full, deletion by backward shift, so no tombstones and no
 * rehash but on growth); the slots' keys and values in two arrays and their
 * recency order in two Int32Arrays (a doubly linked list by index). An entry
 * thus costs the heap its key and value and nothing else — no node object per
 * entry for the collector to trace — and a look-up reads one cache line of the
 * table, then the key only when the hashes agree (a keyed hash: see halfSipHash).
 * JS Maps held these keys before and took 2.6 µs of a 20 µs miss with pickup
 * (docs/history/benchmarks-2026-12.md): a probe walks a chain of key objects
 * out of the CPU's caches, and a Map that loses one key and gains another per
 * miss rebuilds itself every few thousand. No branches for TTLs, disposal or
 * fetching, which the resolver does not use (expiry is decided by the caches
 * themselves against the `now` they are given).
 * It must not know what it stores.
 */
import { getRandomValues } from 'node:crypto';

/**
 * `hash`: a 32-bit hash of the key (equal keys must hash alike). Optional only for string keys,
 * whose default is a keyed HalfSipHash-1-3 with a key of this LRU's own (keyedStringHash); any
 * other key type must bring its own (the string hash of a number would never end).
 */
export type LruOptions<K, V> = {
  /** Entries kept at most (≥ 1). */
  max: number;
  /** Sum of `sizeOf` kept at most; an entry larger than this alone is not stored. */
  maxSize?: number;
  sizeOf?: (v: V) => number;
} & ([K] extends [string] ? { hash?: (key: K) => number } : { hash: (key: K) => number });

const NONE = -1;
/** The key table's first size (pairs), doubled while it is more than half full. */
const FIRST_TABLE = 1024;

const rotl = (x: number, b: number): number => (x << b) | (x >>> (32 - b));

/**
 * HalfSipHash (Aumasson and Bernstein's SipHash on 32-bit words, 64-bit key, 32-bit output) of a
 * string of octets (code units below 256; a key of the caches is latin1), with `c` compression
 * and `d` finalization rounds. Keyed: someone who chooses the names a cache holds (any local
 * client, or an upstream answering with CNAMEs) but not the key cannot make them collide, so no
 * probe run of the key table grows past what chance gives (hash flooding, as Linux's hsiphash
 * guards its tables against: the same function with 1 and 3 rounds).
 */
export function halfSipHash(s: string, k0: number, k1: number, c = 1, d = 3): number {
  let v0 = k0 | 0, v1 = k1 | 0, v2 = (0x6c796765 ^ k0) | 0, v3 = (0x74656462 ^ k1) | 0;
  const n = s.length;
  const whole = n - (n & 3);
  // One pass per 32-bit word (c rounds each), the last word holding the octets left and the
  // length in its top octet; then one more pass for the finalization (d rounds).
  for (let i = 0; ; i += 4) {
    const last = i === whole;
    const fin = i > whole;
    let m = 0;
    if (fin) v2 ^= 0xff;
    else if (!last) m = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 8) | (s.charCodeAt(i + 2) << 16) | (s.charCodeAt(i + 3) << 24);
    else {
      m = n << 24;
      const left = n & 3;
      if (left > 2) m |= s.charCodeAt(i + 2) << 16;
      if (left > 1) m |= s.charCodeAt(i + 1) << 8;
      if (left > 0) m |= s.charCodeAt(i);
    }
    v3 ^= m;
    for (let r = fin ? d : c; r > 0; r--) {
      v0 = (v0 + v1) | 0; v1 = rotl(v1, 5) ^ v0; v0 = rotl(v0, 16);
      v2 = (v2 + v3) | 0; v3 = rotl(v3, 8) ^ v2;
      v0 = (v0 + v3) | 0; v3 = rotl(v3, 7) ^ v0;
      v2 = (v2 + v1) | 0; v1 = rotl(v1, 13) ^ v2; v2 = rotl(v2, 16);
    }
    if (fin) return (v1 ^ v3) >>> 0;
    v0 ^= m;
  }
}

/** A HalfSipHash-1-3 of strings under a key of its own, drawn at random: the default `hash` of an Lru. */
export function keyedStringHash(): (s: string) => number {
  const [k0, k1] = getRandomValues(new Uint32Array(2));
  return (s) => halfSipHash(s, k0!, k1!);
}

export class Lru<K, V> {
  /**
   * The key table: pairs of (slot + 1, the key's hash), 0 in the first for an empty place. A key
   * sits at the first empty place from `hash & mask` on (linear probing).
   */
  private table: Int32Array;
  private mask: number;
  private count = 0;
  private keyOf: Array<K | undefined> = [];
  private valueOf: Array<V | undefined> = [];
  /** Each slot's key hash (to find its place in the table when it is evicted). */
  private hashOf: Int32Array;
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
  private readonly hash: (key: K) => number;

  constructor(opts: LruOptions<K, V>) {
    if (!(opts.max >= 1)) throw new RangeError('Lru: max must be at least 1');
    this.max = opts.max;
    this.maxSize = opts.maxSize ?? Infinity;
    this.sizeOf = opts.sizeOf;
    this.hash = opts.hash ?? (keyedStringHash() as unknown as (key: K) => number);
    const cap = Math.min(this.max, 1024);
    this.next = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.hashOf = new Int32Array(cap);
    if (this.sizeOf) this.sizes = new Float64Array(cap);
    this.table = new Int32Array(2 * FIRST_TABLE);
    this.mask = FIRST_TABLE - 1;
  }

  get size(): number { return this.count; }
  /** Sum of the entries' sizes (0 without `sizeOf`). */
  get calculatedSize(): number { return this.total; }

  /** The slot of `key` (whose hash is `h`), or NONE. */
  private find(key: K, h: number): number {
    const t = this.table;
    for (let p = h & this.mask; ; p = (p + 1) & this.mask) {
      const s = t[2 * p]!;
      if (s === 0) return NONE;
      if (t[2 * p + 1] === h && this.keyOf[s - 1] === key) return s - 1;
    }
  }

  /** The value, made the most recently used. */
  get(key: K): V | undefined {
    const i = this.find(key, this.hash(key) | 0);
    if (i === NONE) return undefined;
    if (i !== this.tail) this.moveToTail(i);
    return this.valueOf[i];
  }

  /** The value, recency unchanged. */
  peek(key: K): V | undefined {
    const i = this.find(key, this.hash(key) | 0);
    return i === NONE ? undefined : this.valueOf[i];
  }

  has(key: K): boolean { return this.find(key, this.hash(key) | 0) !== NONE; }

  /** Store (or replace) as the most recently used, evicting the least recently used beyond the bounds. */
  set(key: K, value: V): this {
    const size = this.sizeOf ? this.sizeOf(value) : 0;
    if (size > this.maxSize) { this.delete(key); return this; }
    const h = this.hash(key) | 0; // hashed once for the look-up and the insertion
    let i = this.find(key, h);
    if (i !== NONE) {
      this.valueOf[i] = value;
      if (this.sizes) { this.total += size - this.sizes[i]!; this.sizes[i] = size; }
      if (i !== this.tail) this.moveToTail(i);
    } else {
      if (this.count >= this.max) this.evict();
      i = this.slot();
      this.keyOf[i] = key;
      this.valueOf[i] = value;
      this.hashOf[i] = h;
      if (this.sizes) { this.sizes[i] = size; this.total += size; }
      this.insert(i, h);
      this.prev[i] = this.tail;
      this.next[i] = NONE;
      if (this.tail !== NONE) this.next[this.tail] = i; else this.head = i;
      this.tail = i;
    }
    while (this.total > this.maxSize && this.head !== this.tail) this.evict();
    return this;
  }

  delete(key: K): boolean {
    const i = this.find(key, this.hash(key) | 0);
    if (i === NONE) return false;
    this.unlink(i);
    this.release(i);
    return true;
  }

  clear(): void {
    this.table = new Int32Array(2 * FIRST_TABLE);
    this.mask = FIRST_TABLE - 1;
    this.count = 0;
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

  /** Put slot `i` (hash `h`, not in the table) at its place, the table grown first when it would be more than half full. */
  private insert(i: number, h: number): void {
    if (2 * (this.count + 1) > this.mask + 1) this.growTable();
    const t = this.table;
    let p = h & this.mask;
    while (t[2 * p] !== 0) p = (p + 1) & this.mask;
    t[2 * p] = i + 1;
    t[2 * p + 1] = h;
    this.count++;
  }

  /** Take slot `i` out of the table: the entries after it in its run move back where their probe allows (no tombstones). */
  private remove(i: number): void {
    const t = this.table;
    const mask = this.mask;
    let p = this.hashOf[i]! & mask;
    while (t[2 * p] !== i + 1) p = (p + 1) & mask;
    for (let q = (p + 1) & mask; t[2 * q] !== 0; q = (q + 1) & mask) {
      const home = t[2 * q + 1]! & mask;
      // The entry at q may move to the hole at p when p lies on its probe path: cyclically in [home, q).
      if (((q - home) & mask) >= ((q - p) & mask)) {
        t[2 * p] = t[2 * q]!;
        t[2 * p + 1] = t[2 * q + 1]!;
        p = q;
      }
    }
    t[2 * p] = 0;
    t[2 * p + 1] = 0;
    this.count--;
  }

  private growTable(): void {
    const old = this.table;
    const size = 2 * (this.mask + 1);
    const t = new Int32Array(2 * size);
    const mask = size - 1;
    for (let p = 0; p < old.length; p += 2) {
      const s = old[p]!;
      if (s === 0) continue;
      let q = old[p + 1]! & mask;
      while (t[2 * q] !== 0) q = (q + 1) & mask;
      t[2 * q] = s;
      t[2 * q + 1] = old[p + 1]!;
    }
    this.table = t;
    this.mask = mask;
  }

  private evict(): void {
    const i = this.head;
    if (i === NONE) return;
    this.unlink(i);
    this.release(i);
  }

  /** Forget slot `i` (already out of the list) and its key. */
  private release(i: number): void {
    this.remove(i);
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
    const hashOf = new Int32Array(cap); hashOf.set(this.hashOf); this.hashOf = hashOf;
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

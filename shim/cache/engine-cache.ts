/**
 * The capability caches behind the Engine's `CapabilityCache` interface
 * (shim/engine/capability.ts), so the daemon can pass them as
 * `new Engine(config, rng, { cache: new LruCapabilityCache() })`: bounded LRU,
 * TTLs against the engine's `now`, and an `import` that validates data read
 * back from disk (CacheDataError, caches untouched) instead of trusting it.
 * Translates the engine's vocabulary (absolute `expires`, 'configured',
 * RFC 5533 §7.8 reasons) to this folder's (TTLs, 'config', seed §3.1.4 reasons).
 */
import type { CacheSnapshot, CapabilityCache, NegativeEntry as EngineNegative, NegativeReason as EngineReason, PositiveEntry as EnginePositive, PositiveSource } from '../engine/capability.ts';
import { ms, type Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { CapabilityCaches } from './index.ts';
import type { CacheOptions } from './positive.ts';
import type { CapabilitySource, NegativeEntry, NegativeReason, PositiveEntry } from './types.ts';

const toSource = (s: PositiveSource): CapabilitySource => (s === 'configured' ? 'config' : s);
const fromSource = (s: CapabilitySource): PositiveSource => (s === 'config' ? 'configured' : s);

/** RFC 5533 §7.8 reasons → seed §3.1.4 reasons. */
const TO_REASON: Record<EngineReason, NegativeReason> = {
  'no-r1': 'no-answer',
  'icmp': 'refused',
  'dns-absent': 'no-record',
  'dns-claimed-no-answer': 'no-answer',
};

/** Back again; 'no-answer' splits on whether a ULID was claimed. 'config' has no engine twin: "told so". */
function fromReason(r: NegativeReason, ulid: Ipv6 | undefined): EngineReason {
  switch (r) {
    case 'no-answer': return ulid === undefined ? 'no-r1' : 'dns-claimed-no-answer';
    case 'refused': return 'icmp';
    case 'no-record': case 'config': return 'dns-absent';
  }
}

function toEnginePositive(e: PositiveEntry): EnginePositive {
  const base: EnginePositive = { ulid: e.ulid, source: fromSource(e.source), locators: e.locators.map((l) => ({ ...l })), expires: e.expires };
  return e.port === undefined ? base : { ...base, port: e.port };
}

function toEngineNegative(e: NegativeEntry): EngineNegative {
  const base: EngineNegative = { address: e.address, reason: fromReason(e.reason, e.ulid), expires: e.expires };
  return e.ulid === undefined ? base : { ...base, ulid: e.ulid };
}

/** Map one engine-vocabulary entry of unknown shape to ours, leaving anything odd for validation to reject. */
function translateUnknown(e: unknown, which: 'positive' | 'negative'): unknown {
  if (typeof e !== 'object' || e === null) return e;
  const o = e as Record<string, unknown>;
  if (which === 'positive') return o.source === 'configured' ? { ...o, source: 'config' } : o;
  const r = o.reason;
  return typeof r === 'string' && r in TO_REASON ? { ...o, reason: TO_REASON[r as EngineReason], source: o.source ?? (r === 'dns-absent' ? 'dns' : 'probe') } : o;
}

export class LruCapabilityCache implements CapabilityCache {
  readonly caches: CapabilityCaches;

  constructor(opts: { positive?: CacheOptions; negative?: CacheOptions } = {}) {
    this.caches = new CapabilityCaches(opts);
  }

  getPositive(now: Millis, ulid: Ipv6): EnginePositive | undefined {
    const e = this.caches.positive.lookup(now, ulid);
    return e && toEnginePositive(e);
  }

  setPositive(now: Millis, entry: EnginePositive): void {
    const base = { ulid: entry.ulid, locators: entry.locators, source: toSource(entry.source), ttl: ms(entry.expires - now) };
    this.caches.supported(now, entry.port === undefined ? base : { ...base, port: entry.port });
  }

  getNegative(now: Millis, address: Ipv6, ulid?: Ipv6): EngineNegative | undefined {
    const e = this.caches.negative.lookup(now, address, ulid);
    return e && toEngineNegative(e);
  }

  setNegative(now: Millis, entry: EngineNegative): void {
    const source: CapabilitySource = entry.reason === 'dns-absent' ? 'dns' : 'probe';
    const base = { address: entry.address, source, reason: TO_REASON[entry.reason], ttl: ms(entry.expires - now) };
    this.caches.negative.remember(now, entry.ulid === undefined ? base : { ...base, ulid: entry.ulid });
  }

  deleteNegative(address: Ipv6, ulid?: Ipv6): void {
    this.caches.negative.forget(address, ulid);
  }

  export(now: Millis): CacheSnapshot {
    const d = this.caches.export(now);
    return { positive: d.positive.map(toEnginePositive), negative: d.negative.map(toEngineNegative) };
  }

  /**
   * Load a snapshot (typed, but in practice read from a file): validated in
   * full first; malformed data throws CacheDataError and changes nothing.
   */
  import(now: Millis, data: CacheSnapshot): void {
    const raw = data as unknown;
    const o = typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? (raw as Record<string, unknown>) : undefined;
    const list = (k: 'positive' | 'negative'): unknown => (Array.isArray(o?.[k]) ? (o[k] as unknown[]).map((e) => translateUnknown(e, k)) : o?.[k]);
    this.caches.import(now, o === undefined ? raw : { version: o.version ?? 1, positive: list('positive'), negative: list('negative') });
  }

  size(): { positive: number; negative: number } {
    return { positive: this.caches.positive.size, negative: this.caches.negative.size };
  }
}

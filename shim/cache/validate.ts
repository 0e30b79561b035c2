/**
 * Validation of cache data read back from disk: `unknown` in, typed entries out,
 * or a CacheDataError naming the field. Never lets a TypeError escape. Addresses
 * are canonicalised so that keys made from imported data match live keys.
 */
import { canonicalIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { CAPABILITY_MAX_LOCATORS } from '../constants.ts';
import type { Millis } from '../time.ts';
import { CacheDataError } from './errors.ts';
import {
  NEGATIVE_REASONS, POSITIVE_SOURCES,
  type CachedLocator, type NegativeEntry, type NegativeReason, type PositiveEntry, type PositiveSource,
} from './types.ts';

type Obj = Record<string, unknown>;

function bad(path: string, why: string): CacheDataError {
  return new CacheDataError('ECACHE_ENTRY', path, why);
}

export function asObject(v: unknown, path: string, code: 'ECACHE_ENTRY' | 'ECACHE_FORMAT' = 'ECACHE_ENTRY'): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new CacheDataError(code, path, 'not an object');
  return v as Obj;
}

export function asArray(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) throw new CacheDataError('ECACHE_FORMAT', path, 'not an array');
  return v;
}

function address(v: unknown, path: string): Ipv6 {
  if (typeof v !== 'string') throw bad(path, 'not a string');
  try {
    return canonicalIpv6(v);
  } catch {
    throw bad(path, `not an IPv6 address: ${JSON.stringify(v).slice(0, 60)}`);
  }
}

function octet(v: unknown, path: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) throw bad(path, 'not an integer 0..255');
  return v;
}

function expires(v: unknown, path: string): Millis {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(path, 'not a finite number');
  return v as Millis;
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], path: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) throw bad(path, `not one of ${allowed.join(', ')}`);
  return v as T;
}

function locator(v: unknown, path: string): CachedLocator {
  const o = asObject(v, path);
  return {
    address: address(o.address, `${path}.address`),
    flags: octet(o.flags, `${path}.flags`),
    priority: octet(o.priority, `${path}.priority`),
    weight: octet(o.weight, `${path}.weight`),
  };
}

/**
 * Words of the files earlier versions wrote (version 1: the cache's own;
 * no version: the engine's), mapped to today's. Version 2 files use today's only.
 */
const LEGACY_WORDS: Readonly<Record<string, string>> = {
  'config': 'configured', 'no-r1': 'no-answer', 'icmp': 'refused', 'dns-absent': 'no-record', 'dns-claimed-no-answer': 'no-answer',
};

/** One entry of an earlier file in today's words (anything unknown is left for validation to reject). */
export function upgradeEntry(v: unknown): unknown {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return v;
  const o = { ...(v as Obj) };
  for (const k of ['source', 'reason']) {
    const w = o[k];
    if (typeof w === 'string' && w in LEGACY_WORDS) o[k] = LEGACY_WORDS[w];
  }
  if ('reason' in o) delete o.source; // negative entries no longer carry a source: the reason says it
  return o;
}

/** Check a positive entry as `export()` wrote it (no locators: learnt from a handshake or probe). */
export function positiveEntry(v: unknown, path: string): PositiveEntry {
  const o = asObject(v, path);
  const locs = o.locators;
  if (!Array.isArray(locs) || locs.length > CAPABILITY_MAX_LOCATORS) {
    throw bad(`${path}.locators`, `not an array of 0..${CAPABILITY_MAX_LOCATORS} locators`);
  }
  const entry: PositiveEntry = {
    ulid: address(o.ulid, `${path}.ulid`),
    locators: locs.map((l, i) => locator(l, `${path}.locators[${i}]`)),
    source: oneOf<PositiveSource>(o.source, POSITIVE_SOURCES, `${path}.source`),
    expires: expires(o.expires, `${path}.expires`),
  };
  if (o.port === undefined) return entry;
  if (typeof o.port !== 'number' || !Number.isInteger(o.port) || o.port < 1 || o.port > 65535) {
    throw bad(`${path}.port`, 'not a port 1..65535');
  }
  return { ...entry, port: o.port };
}

/** Check a negative entry as `export()` wrote it. */
export function negativeEntry(v: unknown, path: string): NegativeEntry {
  const o = asObject(v, path);
  const entry: NegativeEntry = {
    address: address(o.address, `${path}.address`),
    reason: oneOf<NegativeReason>(o.reason, NEGATIVE_REASONS, `${path}.reason`),
    expires: expires(o.expires, `${path}.expires`),
  };
  return o.ulid === undefined ? entry : { ...entry, ulid: address(o.ulid, `${path}.ulid`) };
}

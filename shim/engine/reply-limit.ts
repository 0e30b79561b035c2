/**
 * Rate limits for the engine's stateless replies — R1 to an I1, R1bis to a
 * packet naming an unknown context, Error to a malformed message — so that a
 * host running shim6 cannot be used as a reflector (RFC 5533 §16 leaves it to
 * the implementation; we limit like ICMPv6 errors, RFC 4443 §2.4 (f)): a token
 * bucket per source /64 and one global bucket, both must have a token.
 * A reply to a known peer (one the host talks to: core.ts `knownPeer`) that
 * finds the global bucket empty may take a token of a third, the known peers'
 * reserve (`knownPeers`), still after its own /64's: so a flood from many /64s
 * that drains the global bucket does not starve the host's own peers, and
 * draws at most the global and the reserve buckets' tokens in all.
 *
 * Memory is bounded: at most `maxPrefixes` per-prefix buckets, in two
 * generations of half that each: when the current one is full it becomes the
 * previous one and the previous one is dropped whole, and a prefix found in the
 * previous one moves to the current one. So a prefix not seen for a
 * generation is forgotten (which can only give it a fresh burst — the global
 * bucket still caps the total), at O(1) per packet even when every packet of a
 * flood comes from a new /64. (Evicting the oldest entry of one Map, as first
 * done, walks the Map's deleted slots from its start each time: 22 µs per
 * packet checked with 10,000 buckets, five times the R1 itself; bench/engine.ts
 * `i1_limited_per_s`.)
 * Sans-I/O: time comes in as `now`. Owns no sockets, knows no messages.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { prefix64Key } from '../wire/ipv6.ts';

/** One token bucket's parameters: `rate` tokens per second, at most `burst` stored. */
export interface BucketConfig {
  rate: number;
  burst: number;
}

/**
 * `replyLimit` of the engine configuration; `'off'` sends every reply (benchmarks, closed labs).
 * `knownPeers`: the known peers' reserve, taken only when `global` is empty (absent: none).
 */
export type ReplyLimitConfig = { perPrefix: BucketConfig; global: BucketConfig; knownPeers?: BucketConfig } | 'off';

/** The buckets of a limit with every part given (what `resolveReplyLimit` fills in). */
export type ReplyLimitBuckets = { perPrefix: BucketConfig; global: BucketConfig; knownPeers: BucketConfig };

/**
 * Defaults: a source /64 gets 10 replies/s (burst 10), the whole host 200/s
 * (burst 200). A 100,000-packet flood lasting t seconds draws at most
 * 200 + 200·t replies whatever the number of sources (about 600 for a 2 s flood).
 * Known peers (the host's open connections, core.ts `knownPeer`) have a reserve
 * of 100/s (burst 100) beside it: with it a flood draws at most 300 + 300·t
 * replies, the reserve's part only from sources in known peers' /64s.
 */
export const DEFAULT_REPLY_LIMIT: Readonly<ReplyLimitBuckets> = {
  perPrefix: { rate: 10, burst: 10 },
  global: { rate: 200, burst: 200 },
  knownPeers: { rate: 100, burst: 100 },
};

/**
 * Defaults of `verifyLimit`: the public-key verifications (CGA Signatures: a key
 * parse and an RSA verification, at most ~1.3 ms each within the key bounds of
 * shim/wire/cga.ts) that messages not yet proven may make the engine run — a
 * source /64 10/s (burst 10), the whole host 100/s (burst 100): at most about
 * 13% of one core, whatever the flood (docs/security.md "CGA verification cost");
 * known peers' messages 20/s (burst 20) more when the global bucket is empty
 * (about 3% of a core).
 */
export const DEFAULT_VERIFY_LIMIT: Readonly<ReplyLimitBuckets> = {
  perPrefix: { rate: 10, burst: 10 },
  global: { rate: 100, burst: 100 },
  knownPeers: { rate: 20, burst: 20 },
};

/**
 * What a limiter said: `ok` (the global bucket had a token), `reserve` (it had
 * none; the known peers' reserve had one), or refused by the source's /64
 * bucket (`prefix`) or for want of a host-wide token (`global`: the global
 * bucket empty, and the reserve empty or not open to the sender).
 */
export type LimitVerdict = 'ok' | 'reserve' | 'prefix' | 'global';

/** Per-prefix buckets kept at most (about 100 octets each). */
export const MAX_PREFIX_BUCKETS = 10_000;

/** A token bucket; `now` in ms. */
export class Bucket {
  tokens: number;
  constructor(private readonly cfg: BucketConfig, public at: number) {
    this.tokens = cfg.burst;
  }

  /** Refill up to `now`, then take one token if there is one. */
  take(now: number): boolean {
    if (now > this.at) {
      this.tokens = Math.min(this.cfg.burst, this.tokens + ((now - this.at) * this.cfg.rate) / 1000);
      this.at = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

export class ReplyLimiter {
  private readonly global: Bucket | undefined;
  /** The known peers' reserve (`knownPeers`), taken only when the global bucket is empty. */
  private readonly reserve: Bucket | undefined;
  private current = new Map<string, Bucket>();
  private previous = new Map<string, Bucket>();

  /** Buckets per generation: two generations hold at most `maxPrefixes`. */
  private readonly generation: number;

  constructor(private readonly cfg: ReplyLimitConfig, maxPrefixes = MAX_PREFIX_BUCKETS) {
    this.global = cfg === 'off' ? undefined : new Bucket(cfg.global, 0);
    this.reserve = cfg === 'off' || cfg.knownPeers === undefined ? undefined : new Bucket(cfg.knownPeers, 0);
    this.generation = Math.max(1, Math.floor(maxPrefixes / 2));
  }

  /** May one reply go to `to` now? Takes the tokens when it may. `known`: `to` is a known peer's (the reserve is open to it). */
  allow(now: Millis, to: Ipv6, known = false): boolean {
    const v = this.check(now, to, known);
    return v === 'ok' || v === 'reserve';
  }

  /**
   * `allow`, saying which bucket decided: the source's /64 first (a source over its own limit
   * draws nothing host-wide), then the global bucket, then — for a known peer only — the reserve.
   */
  check(now: Millis, to: Ipv6, known = false): LimitVerdict {
    if (this.cfg === 'off') return 'ok';
    let key: string;
    try {
      key = prefix64Key(to);
    } catch {
      return 'prefix';
    }
    let b = this.current.get(key);
    if (b === undefined) {
      b = this.previous.get(key);
      if (b === undefined) b = new Bucket(this.cfg.perPrefix, now);
      else this.previous.delete(key);
      if (this.current.size >= this.generation) {
        this.previous = this.current;
        this.current = new Map();
      }
      this.current.set(key, b);
    }
    // The prefix first: a source over its own limit does not drain the host's bucket.
    if (!b.take(now)) return 'prefix';
    if (this.global!.take(now)) return 'ok';
    return known && this.reserve !== undefined && this.reserve.take(now) ? 'reserve' : 'global';
  }

  /** Per-prefix buckets held now (bounded by `maxPrefixes`). */
  get size(): number {
    return this.current.size + this.previous.size;
  }
}

/**
 * A limit's configuration value: `"off"`, or the buckets under `scope` (per source /64, per context…),
 * `global` and the keys of `defaults` besides (the known peers' reserve), each `{ rate, burst }`
 * with parts left out taken from `defaults`.
 */
function resolveBuckets<S extends string>(v: unknown, field: string, scope: S, defaults: Readonly<Record<S | 'global', BucketConfig>>): { value: 'off' | Record<S | 'global', BucketConfig> } | { error: string } {
  if (v === undefined) return { value: defaults as Record<S | 'global', BucketConfig> };
  if (v === 'off') return { value: 'off' };
  const keys = Object.keys(defaults);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { error: `${field} must be "off" or { ${keys.map((k) => `${k}: { rate, burst }`).join(', ')} }` };
  const out = Object.fromEntries(keys.map((k) => [k, { ...defaults[k as S | 'global'] }])) as Record<S | 'global', BucketConfig>;
  for (const [k, b] of Object.entries(v as Record<string, unknown>)) {
    if (!keys.includes(k)) return { error: `${field}.${k}: unknown key (${keys.join(', ')})` };
    if (typeof b !== 'object' || b === null || Array.isArray(b)) return { error: `${field}.${k} must be { rate, burst }` };
    const bucket = out[k as S | 'global'];
    for (const [bk, bv] of Object.entries(b as Record<string, unknown>)) {
      if (bk !== 'rate' && bk !== 'burst') return { error: `${field}.${k}.${bk}: unknown key (rate, burst)` };
      if (typeof bv !== 'number' || !Number.isFinite(bv) || bv <= 0 || bv > 1e6) return { error: `${field}.${k}.${bk} must be a number > 0 and ≤ 1000000` };
      bucket[bk] = bv;
    }
    if (bucket.burst < 1) return { error: `${field}.${k}.burst must be ≥ 1` };
  }
  return { value: out };
}

/**
 * Check a `replyLimit` (or `verifyLimit`: same shape, its own defaults) value from configuration and
 * fill in the defaults: `perPrefix`, `global` and `knownPeers` (the known peers' reserve).
 */
export function resolveReplyLimit(v: unknown, field = 'replyLimit', defaults: Readonly<ReplyLimitBuckets> = DEFAULT_REPLY_LIMIT): { value: ReplyLimitConfig } | { error: string } {
  return resolveBuckets(v, field, 'perPrefix', defaults);
}

/**
 * `probeReplyLimit` of the engine configuration: token buckets for the Probes this host sends in
 * answer to a peer's Probe (RFC 5534 §6.7, §6.8), one per context and one for the host. Unlike the
 * stateless replies these answer a context's peer, but a peer chooses its own locators (a CGA
 * signature proves who lists an address, not that anyone there wants the traffic), so without a
 * limit one context could have the host answer any number of forged-source Probes toward a third
 * party. `knownPeers`: the reserve of the contexts whose peer is a known peer (core.ts
 * `knownPeer`), taken only when `global` is empty (absent: none), so that contexts set up from an
 * attacker's own addresses, each within its own bucket, cannot keep the host's peers unanswered.
 * `'off'` answers every Probe (closed labs).
 */
export type ProbeReplyLimitConfig = { perContext: BucketConfig; global: BucketConfig; knownPeers?: BucketConfig } | 'off';

/** What a configuration may give: any bucket, or either field of one, left out takes the default. */
export type ProbeReplyLimitInput = { perContext?: Partial<BucketConfig>; global?: Partial<BucketConfig>; knownPeers?: Partial<BucketConfig> } | 'off';

/** The buckets of a probe reply limit with every part given (`defaultProbeReplyLimit`). */
export type ProbeReplyLimitBuckets = { perContext: BucketConfig; global: BucketConfig; knownPeers: BucketConfig };

/**
 * Defaults from the timers. An exploring peer sends a round of probes per Initial Probe Timeout
 * (ours: the current pair and the disjoint one, RFC 5534 §4.3 then back-off), and while both ends
 * explore it also answers ours with InboundOk probes, each of which is answered in turn: a context
 * gets up to four answers per Initial Probe Timeout (8/s with the RFC's 0.5 s, 80/s with the
 * `fast` profile's 50 ms), burst 4 × Number of Initial Probes + 4 (20: a whole first round both
 * ways on two pairs). Two per timeout dropped probes of real explorations in the lab (38 in one
 * re-homing, which then took 1.8 s on the TUN). The host: 50 times the per-context rate, burst 100
 * times it (400/s burst 800 with RFC timers): many contexts exploring at once (a site outage) are
 * all answered within about two seconds of their first probes. The known peers' reserve: half the
 * host's (25 times the per-context rate, burst 50 times it: 200/s burst 400 with RFC timers), 25
 * contexts of known peers answered in full while the global bucket is empty. A flood over any
 * number of contexts draws at most global + reserve answers (600/s, burst 1,200 with RFC timers),
 * the reserve's part only through contexts of known peers, each answer at most twice its probe.
 */
export function defaultProbeReplyLimit(initialProbeTimeout: number, initialProbes: number): ProbeReplyLimitBuckets {
  const rate = 4000 / Math.max(1, initialProbeTimeout);
  return { perContext: { rate, burst: 4 * initialProbes + 4 }, global: { rate: 50 * rate, burst: 100 * rate }, knownPeers: { rate: 25 * rate, burst: 50 * rate } };
}

/**
 * What the probe reply limiter said: `ok` (the global bucket had a token), `reserve` (it had none;
 * the known peers' reserve had one), or refused by the context's own bucket (`context`) or for want
 * of a host-wide token (`global`: the global bucket empty, and the reserve empty or not open to the
 * context).
 */
export type ProbeLimitVerdict = 'ok' | 'reserve' | 'context' | 'global';

/** The per-context, global and reserve buckets of Probe answers. The per-context bucket lives on the context. */
export class ProbeReplyLimiter {
  private readonly global: Bucket | undefined;
  /** The known peers' reserve (`knownPeers`), taken only when the global bucket is empty. */
  private readonly reserve: Bucket | undefined;

  constructor(private readonly cfg: ProbeReplyLimitConfig) {
    this.global = cfg === 'off' ? undefined : new Bucket(cfg.global, 0);
    this.reserve = cfg === 'off' || cfg.knownPeers === undefined ? undefined : new Bucket(cfg.knownPeers, 0);
  }

  /**
   * May the context whose bucket `holder` keeps answer one more Probe now? Takes the tokens when it
   * may, saying which bucket decided: the context's first (a context over its own limit draws
   * nothing host-wide), then the global bucket, then — for a known peer's context (`known`) only —
   * the reserve.
   */
  check(now: Millis, holder: { probeBucket: Bucket | undefined }, known = false): ProbeLimitVerdict {
    if (this.cfg === 'off') return 'ok';
    const b = (holder.probeBucket ??= new Bucket(this.cfg.perContext, now));
    if (!b.take(now)) return 'context';
    if (this.global!.take(now)) return 'ok';
    return known && this.reserve !== undefined && this.reserve.take(now) ? 'reserve' : 'global';
  }
}

/** Check a `probeReplyLimit` value (from configuration); `undefined` gives `dflt`. */
export function resolveProbeReplyLimit(v: unknown, dflt: ProbeReplyLimitBuckets, field = 'probeReplyLimit'): { value: ProbeReplyLimitConfig } | { error: string } {
  return resolveBuckets(v, field, 'perContext', dflt);
}

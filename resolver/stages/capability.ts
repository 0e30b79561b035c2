/**
 * The capability stage: for every A/AAAA question it starts the peer's
 * capability lookup (TYPE65300, own positive and negative cache) at the same
 * moment as the address lookup, looks at the address answer on its way back
 * (CNAME chain → final name, whose record is fetched too), and primes the
 * CapabilitySink before the answer goes out when the record is there in time.
 *
 * It never adds an upstream round trip: after the address answer arrives it
 * waits at most a small budget (a fraction of that answer's own round trip,
 * capped), then answers anyway and settles later. Each peer is primed once per
 * record lifetime, and reported absent once per negative lifetime.
 * It must not know about sockets or the engine beyond the sink.
 */
import type { Millis } from '../../shim/time.ts';
import type { Logger } from '../../shim/log.ts';
import type { Ipv6Octets } from '../../shim/wire/ipv6.ts';
import type { Answer, Handler, Request, Stage } from '../chain.ts';
import type { CapabilitySink } from '../capability-sink.ts';
import type { ResolverCounters } from '../counters.ts';
import { chainEnd, scanResponse, type ScannedResponse } from '../answer-scan.ts';
import { aaaaAt, capabilityOutcome, fetchAaaa, fetchTxt, type CapFetchOptions, type CapResult, type RawLookup } from '../capability-fetch.ts';
import type { QueryListener, UpstreamError, UpstreamResult } from '../upstream.ts';
import { CLASS_IN, nameKeyToText, Rcode, RrType } from '../message.ts';
import { selectRecord, selectRecordAt, whyNone } from '../capability-select.ts';
import { recordFromOctets, recordWithoutParams, type RecordOctets } from '../../shim/wire/capability-record.ts';
import { DeadlineQueue, type Deadlined } from '../deadline-queue.ts';
import { Lru } from '../lru.ts';

export interface CapabilityOptions extends CapFetchOptions {
  /** Wait for the record at most this long after the address answer (ms). */
  waitMaxMs: number;
  /** …and at least this long… */
  waitMinMs: number;
  /** …scaled to this fraction of the address lookup's own time. */
  waitFraction: number;
  /** Capability entries kept (positive + negative + aliases). */
  maxEntries: number;
  /** How long a failed capability lookup is not retried (s). */
  errorTtlSeconds: number;
  /** Upper bound on a found record's lifetime (s), as the answer cache's maxTtlSeconds. */
  maxTtlSeconds: number;
  /** Upper bound on a negative outcome's lifetime (s): no record, or only invalid ones (RFC 2308 §5). */
  maxNegativeTtlSeconds: number;
}

export const DEFAULT_CAPABILITY_OPTIONS: CapabilityOptions = {
  rrType: 65300, txtFallback: false, defaultNegativeTtl: 60,
  waitMaxMs: 5, waitMinMs: 0.2, waitFraction: 0.25, maxEntries: 10_000, errorTtlSeconds: 5,
  maxTtlSeconds: 86_400, maxNegativeTtlSeconds: 3_600,
};

/**
 * What the stage knows about one final name. It is also the listener of its
 * own upstream lookup (no promise, no closure per lookup on the hot path).
 */
export class CapEntry implements QueryListener {
  result: CapResult | undefined = undefined;
  expiresAt: Millis;
  /** Until when this entry's outcome has been handed to the sink. */
  settledUntil = 0 as Millis;
  /** `shown` was handed to the sink. */
  primed = false;
  /**
   * Once settled, the found record `shim6 status` shows (the one handed to the sink, else the
   * first), as the octets of its header and locators: the outcome's list of records is then
   * dropped (see CapabilityStage.settle).
   */
  shown: RecordOctets | undefined = undefined;
  /** Answers (AAAA questions) held back until this entry's outcome is in or their budget runs out (made on first use). */
  waiters: Waiter[] | undefined = undefined;
  /**
   * Address answers still to look at this entry (lookups under way that started or joined it):
   * until they are through, a found record it holds may yet be settled (CapabilityStage.through).
   */
  pending = 0;
  /** The answer is decoded inside upstreamDone: the pool need not copy it. (On the prototype: no field per entry.) */
  get bytesTransient(): boolean { return true; }
  /** Callers of whenFetched() (A questions: rare), resolved with the outcome. */
  private fetchWaiters: Array<(r: CapResult) => void> | undefined = undefined;

  constructor(private readonly stage: CapabilityStage, readonly nameKey: string, now: Millis) {
    this.expiresAt = Math.floor(now) as Millis; // whole ms: kept in the object, not a heap number of its own (answer-cache.ts)
  }

  upstreamDone(err: UpstreamError | undefined, r: UpstreamResult | undefined): void {
    this.stage.looked(this, err, r);
  }

  /** The outcome, once known. */
  whenFetched(): Promise<CapResult> {
    if (this.result) return Promise.resolve(this.result);
    return new Promise((resolve) => (this.fetchWaiters ??= []).push(resolve));
  }

  /** Record the outcome and wake whoever waits for it. */
  fetched(r: CapResult): void {
    this.result = r;
    const w = this.fetchWaiters;
    this.fetchWaiters = undefined;
    if (w) for (const f of w) f(r);
  }
}

/** A found outcome once handed to the sink: its records are no longer kept (CapEntry.shown has what status shows). */
const SETTLED_FOUND_DNS: CapResult = Object.freeze({ kind: 'found', records: Object.freeze([]) as unknown as RecordOctets[], invalid: Object.freeze([]), ttl: 0, source: 'dns' });
const SETTLED_FOUND_TXT: CapResult = Object.freeze({ kind: 'found', records: Object.freeze([]) as unknown as RecordOctets[], invalid: Object.freeze([]), ttl: 0, source: 'txt' });

/** An address answer held back for at most its budget; resolved exactly once. */
class Waiter implements Deadlined {
  done = false;
  readonly promise: Promise<Answer>;
  private resolveFn!: (a: Answer) => void;
  constructor(readonly deadline: number, readonly ans: Answer, readonly entry: CapEntry, readonly addresses: Ipv6Octets[] | undefined) {
    this.promise = new Promise<Answer>((r) => { this.resolveFn = r; });
  }

  /** Let the answer go (record settled, or budget spent). */
  finish(): boolean {
    if (this.done) return false;
    this.done = true;
    this.resolveFn(this.ans);
    return true;
  }
}

/** The longest an alias (a name → the end of its CNAME chain) is kept (s). */
const ALIAS_MAX_SECONDS = 60;

/** How long an alias is kept: its chain's smallest CNAME TTL (a retargeted CNAME's new peer is primed then), at most ALIAS_MAX_SECONDS. */
function aliasLifetimeMs(scan: ScannedResponse): number {
  let ttl = ALIAS_MAX_SECONDS;
  for (const r of scan.records) if (r.section === 0 && r.type === RrType.CNAME && r.ttl < ttl) ttl = r.ttl;
  return ttl * 1000;
}

export class CapabilityStage implements Stage {
  readonly name = 'capability';
  private readonly entries: Lru<string, CapEntry>;
  /**
   * Entries made in this event-loop turn, not yet in `entries`: a new name's entry goes into
   * the LRU (a probe of its key table and an eviction, microseconds when its memory is out of the
   * CPU's caches) only after the turn's questions have left (admitFresh), while the stub
   * waits for their answers. Lookups see both.
   */
  private readonly fresh = new Map<string, CapEntry>();
  private admitScheduled = false;
  /** qname → final name of its CNAME chain, with expiry (aliasLifetimeMs). */
  private readonly aliases: Lru<string, { final: string; expiresAt: Millis }>;

  /**
   * `inner`: the rest of the chain (cache, forward) for AAAA lookups; `direct`:
   * the chain without the answer cache, for the TXT fallback; `lookup`: the
   * capability RRset itself, straight upstream — this stage caches it decoded,
   * so a second raw copy would only cost time.
   */
  private readonly direct: Handler;
  /** Deadlines of held-back answers, on `timer`'s clock. */
  private readonly budget: DeadlineQueue<Waiter>;

  constructor(private readonly inner: Handler, direct: Handler, private readonly lookup: RawLookup, private readonly sink: CapabilitySink,
    private readonly counters: ResolverCounters, private readonly log: Logger, private readonly opts: CapabilityOptions,
    private readonly clock: () => Millis, private readonly timer: () => number) {
    this.direct = (req) => {
      counters.capabilityTxtQueries++;
      return direct(req);
    };
    this.entries = new Lru({ max: opts.maxEntries });
    this.budget = new DeadlineQueue<Waiter>(timer, (w) => { if (w.finish()) counters.capabilityLate++; });
    this.aliases = new Lru({ max: opts.maxEntries });
  }

  serve(req: Request, next: Handler): Answer | Promise<Answer> {
    const { q } = req;
    if ((q.qtype !== RrType.A && q.qtype !== RrType.AAAA) || q.qclass !== CLASS_IN) return next(req);
    // Fast path: this name's outcome is already with the sink and still fresh.
    const alias = this.aliases.size === 0 ? undefined : this.aliases.get(q.nameKey);
    const final = alias && alias.expiresAt > req.now ? alias.final : q.nameKey;
    const known = this.find(final);
    if (known && known.expiresAt > req.now && known.settledUntil > req.now) return next(req);
    return this.slow(req, next, final, known ?? null);
  }

  /** `known`: the entry of `guess` as serve() found it, null for none (saves a second cache lookup). */
  private slow(req: Request, next: Handler, guess: string, known: CapEntry | null): Answer | Promise<Answer> {
    const started = this.timer();
    const first = this.entry(guess, req.now, known); // start at once, in parallel with the address lookup
    first.pending++;
    const ans = next(req);
    // One reaction on the address answer, not an async function: its frame and its resumption cost more per miss.
    return ans instanceof Promise ? ans.then((a) => this.answered(req, guess, first, started, a)) : this.answered(req, guess, first, started, ans);
  }

  /** The address answer is back: settle the record if it is in, else hold the answer for at most its budget. */
  private answered(req: Request, guess: string, first: CapEntry, started: number, ans: Answer): Answer | Promise<Answer> {
    first.pending--;
    if (ans.rcode !== Rcode.NOERROR || ans.failed) { this.through(first); return ans; }
    let scan: ScannedResponse;
    let final: string | undefined;
    try {
      scan = ans.scan ?? scanResponse(ans.bytes);
      final = chainEnd(ans.bytes, scan, req.q.nameKey, req.q.qtype);
      if (final === undefined) {
        // The answer stops in the middle of a CNAME chain (too long, a loop, or cut by the server):
        // its last name is not the peer's, so its record is not fetched.
        this.counters.capabilityChainCut++;
        this.through(first);
        return ans;
      }
    } catch {
      this.through(first);
      return ans; // RDATA names the scan does not check may be broken: the client still gets its bytes
    }
    if (final !== req.q.nameKey) this.aliases.set(req.q.nameKey, { final, expiresAt: (req.now + aliasLifetimeMs(scan)) as Millis });
    // Usually the final name is the one guessed: its entry is the one started above (even if the
    // cache dropped it meanwhile, its lookup still completes into it).
    const entry = final === guess ? first : this.entry(final, req.now);
    // The guess's entry is then an alias's: its record (the final name's, through the chain) primes nobody.
    if (entry !== first) this.through(first);
    const isAaaa = req.q.qtype === RrType.AAAA;
    const r = entry.result;
    // The usual case (the record came with the address answer): a found record is matched
    // against the AAAA RRs where they lie; the addresses are copied out only when kept or reported.
    let pick: RecordOctets | undefined;
    let addresses: Ipv6Octets[] | undefined;
    try {
      if (r?.kind === 'found' && isAaaa) pick = selectRecordAt(r.records, ans.bytes, scan, final);
      else if (isAaaa) addresses = aaaaAt(ans.bytes, scan, final);
    } catch {
      this.through(entry);
      return ans; // as above
    }
    if (r && isAaaa) {
      if (r.kind === 'found') this.primeFound(entry, r, pick, req.now); else this.settle(entry, addresses!, req.now);
      return ans;
    }
    // The budget scales with this lookup's own upstream round trip (on loopback ~0.2 ms, so a
    // fixed 1 ms floor would dominate), floored at waitMinMs and capped at waitMaxMs.
    const budget = Math.min(this.opts.waitMaxMs, Math.max(this.opts.waitMinMs, (this.timer() - started) * this.opts.waitFraction));
    const w = new Waiter(this.timer() + budget, ans, entry, addresses);
    if (addresses) (entry.waiters ??= []).push(w);
    else {
      entry.pending++;
      void Promise.all([entry.whenFetched(), fetchAaaa(this.inner, this.clock, final)]).then(([, aaaa]) => {
        entry.pending--;
        if (aaaa) this.settle(entry, aaaa, this.clock());
        this.through(entry);
        w.finish();
      });
    }
    this.budget.add(w);
    return w.promise;
  }

  /** The entry of `nameKey`, made this turn or cached. */
  private find(nameKey: string): CapEntry | undefined {
    return (this.fresh.size === 0 ? undefined : this.fresh.get(nameKey)) ?? this.entries.get(nameKey);
  }

  /** The entry for `nameKey`, starting its lookup when there is none or it expired. */
  private entry(nameKey: string, now: Millis, known?: CapEntry | null): CapEntry {
    const e = known === undefined ? this.find(nameKey) : known;
    if (e && (e.result === undefined || e.expiresAt > now)) return e;
    const fresh = new CapEntry(this, nameKey, now);
    this.fresh.set(nameKey, fresh);
    this.counters.capabilityQueries++;
    this.lookup(nameKey, this.opts.rrType, fresh);
    // Scheduled after the lookup's send, so it runs after the socket's flush of the turn's questions.
    if (!this.admitScheduled) { this.admitScheduled = true; setImmediate(this.admitFresh); }
    return fresh;
  }

  /** The turn's new entries into the LRU (see `fresh`). */
  private readonly admitFresh = (): void => {
    this.admitScheduled = false;
    this.fresh.forEach(this.admit);
    this.fresh.clear();
  };

  private readonly admit = (e: CapEntry, key: string): void => { this.entries.set(key, e); };

  /** The capability lookup of `e` came back (or failed): decode, then the TXT fallback if due. */
  looked(e: CapEntry, err: Error | undefined, r: UpstreamResult | undefined): void {
    const out = capabilityOutcome(err, r, e.nameKey, this.opts);
    if (out.kind !== 'txt') { this.outcome(e, out); return; }
    void fetchTxt(this.direct, this.clock, out.final, this.opts, out.nodataTtl).then((txt) => this.outcome(e, txt));
  }

  private outcome(e: CapEntry, r: CapResult): void {
    const o = this.opts;
    const ttl = r.kind === 'error' ? o.errorTtlSeconds : Math.min(r.ttl, r.kind === 'found' ? o.maxTtlSeconds : o.maxNegativeTtlSeconds);
    e.expiresAt = (Math.floor(this.clock()) + ttl * 1000) as Millis;
    e.fetched(r);
    if (r.kind === 'found') this.counters.capabilityFound++;
    else if (r.kind === 'absent') this.counters.capabilityAbsent++;
    else if (r.kind === 'invalid') this.counters.capabilityInvalid++;
    else this.counters.capabilityErrors++;
    if (r.kind === 'invalid' || (r.kind === 'found' && r.invalid.length > 0)) {
      this.log.warn('capability record malformed, ignored', { name: nameKeyToText(e.nameKey), errors: r.invalid });
    }
    // Held-back AAAA answers: settle (once per lifetime, even for those already sent late), then release.
    const waiters = e.waiters;
    e.waiters = undefined;
    if (waiters) {
      for (const w of waiters) {
        if (w.addresses) this.settle(e, w.addresses, this.clock());
        w.finish();
      }
    }
    this.through(e);
  }

  /**
   * An address answer is through with `e`. A found record that is still not settled, with no
   * address answer left to look at it (the address lookup failed or was cut, or `e` is a CNAME
   * alias's: its record is the final name's), would be kept whole until evicted, parameters
   * included (up to 64 KB an entry): the entry is dropped instead, and the next lookup of the
   * name fetches the record again.
   */
  private through(e: CapEntry): void {
    if (e.pending > 0 || e.waiters || e.result?.kind !== 'found' || e.settledUntil >= e.expiresAt) return;
    if (this.fresh.get(e.nameKey) === e) this.fresh.delete(e.nameKey);
    else if (this.entries.peek(e.nameKey) === e) this.entries.delete(e.nameKey);
  }

  /** Hand the outcome to the sink once per lifetime: prime a valid record, or report none. */
  private settle(e: CapEntry, addresses: Ipv6Octets[], now: Millis): void {
    const r = e.result;
    if (!r || e.settledUntil >= e.expiresAt) return;
    // A failed lookup has nothing for the sink, but nothing to wait for either until it is retried.
    if (r.kind === 'error') { e.settledUntil = e.expiresAt; return; }
    const remaining = Math.max(0, Math.floor((e.expiresAt - now) / 1000));
    if (r.kind === 'absent') {
      if (addresses.length > 0) { this.sink.absent(now, e.nameKey, addresses, remaining); this.counters.absents++; }
    } else if (r.kind === 'found') {
      this.primeFound(e, r, selectRecord(r.records, addresses), now);
      return;
    }
    e.settledUntil = e.expiresAt;
  }

  /** settle() for a found record, `pick` the one selected against the owner's addresses (or none). */
  private primeFound(e: CapEntry, r: CapResult & { kind: 'found' }, pick: RecordOctets | undefined, now: Millis): void {
    if (e.settledUntil >= e.expiresAt) return;
    if (pick) {
      this.sink.prime(now, pick, Math.max(0, Math.floor((e.expiresAt - now) / 1000)), e.nameKey);
      this.counters.primes++;
      e.primed = true;
    } else {
      this.counters.capabilityInvalid++;
      this.log.warn('capability record ignored', { name: nameKeyToText(e.nameKey), why: whyNone(r.records) });
    }
    // The sink has what it needs: keep one record's header and locators (one flat string, at most
    // 660 octets whatever its parameters' size) for status instead of the list. An entry lives in
    // the cache for thousands of lookups, and every object it holds is copied by the
    // young-generation collection it survives into the old generation.
    const shown = pick ?? r.records[0];
    e.shown = shown === undefined ? undefined : recordWithoutParams(shown);
    e.result = r.source === 'txt' ? SETTLED_FOUND_TXT : SETTLED_FOUND_DNS;
    e.settledUntil = e.expiresAt;
  }

  /**
   * Forget every capability outcome (`shim6 flush`): the next lookup of each name
   * fetches its record again and primes the peer again. Lookups in flight still
   * settle the answers waiting for them. Returns the entries dropped.
   */
  flush(): number {
    const n = this.entries.size + this.fresh.size;
    this.entries.clear();
    this.fresh.clear();
    this.aliases.clear();
    return n;
  }

  /** Positive and negative capability entries with remaining TTLs, for `shim6 status`. */
  status(now: Millis): { positive: unknown[]; negative: unknown[] } {
    const positive: unknown[] = [];
    const negative: unknown[] = [];
    for (const [key, e] of [...this.fresh, ...this.entries.entries()]) {
      const r = e.result;
      if (!r || e.expiresAt <= now) continue;
      const ttl = Math.floor((e.expiresAt - now) / 1000);
      const name = nameKeyToText(key);
      if (r.kind === 'found') {
        const octets = e.shown ?? r.records[0];
        const shown = octets === undefined ? undefined : recordFromOctets(octets);
        positive.push({ name, source: r.source, ttl, primed: e.primed, ulid: shown?.ulid, locators: shown?.locators.map((l) => l.address) ?? [] });
      } else if (r.kind === 'absent' || r.kind === 'invalid') {
        negative.push({ name, source: r.kind === 'invalid' ? `invalid-${r.source}` : r.source, ttl });
      }
    }
    return { positive, negative };
  }
}

/**
 * The cache stage: answers from the answer cache on raw bytes (copy, patch
 * TTLs; the listener patches ID and question case), coalesces identical
 * in-flight questions into one upstream query, stores what comes back, and
 * serves stale answers (RFC 8767) when resolution fails.
 * It must not know about sockets or about which upstream answered.
 */
import type { Answer, Handler, Request, Stage } from '../chain.ts';
import { entryOptOff, entryRcode, type AnswerCache } from '../answer-cache.ts';
import type { ResolverCounters } from '../counters.ts';

export class CacheStage implements Stage {
  readonly name = 'cache';
  private readonly inflight = new Map<string, Promise<Answer>>();

  constructor(private readonly cache: AnswerCache, private readonly counters: ResolverCounters) {}

  serve(req: Request, next: Handler): Answer | Promise<Answer> {
    const e = this.cache.getFresh(req.key, req.now);
    const client = req.transport !== 'internal';
    if (!client) this.counters.internalLookups++;
    if (e) {
      if (client) this.counters.hits++;
      return { bytes: this.cache.render(e, req.now), optOff: entryOptOff(e), source: 'cache', owned: true, rcode: entryRcode(e) };
    }
    if (client) this.counters.misses++;
    const pending = this.inflight.get(req.key);
    if (pending) {
      if (client) this.counters.coalesced++;
      return pending;
    }
    const p = this.resolve(req, next);
    this.inflight.set(req.key, p);
    return p;
  }

  private async resolve(req: Request, next: Handler): Promise<Answer> {
    try {
      const a = await next(req);
      if (a.scan && !a.failed) this.cache.store(req.key, a.bytes, a.scan, a.optOff, req.now);
      if (a.failed) {
        const stale = this.cache.getStale(req.key, req.now);
        if (stale) {
          this.counters.staleServed++;
          return { bytes: this.cache.render(stale, req.now, true), optOff: entryOptOff(stale), source: 'stale', owned: false, rcode: entryRcode(stale) };
        }
      }
      // Coalesced waiters share this answer: nobody may patch it in place. (Every stage below
      // hands up an answer object of its own, so marking it needs no copy of the object.)
      a.owned = false;
      return a;
    } finally {
      this.inflight.delete(req.key);
    }
  }

  /** Questions currently waiting for upstream. */
  get inflightCount(): number { return this.inflight.size; }
}

/**
 * The forward stage: the end of the chain. Sends the question upstream (our own
 * query: the client's question bytes, RD, AD, EDNS 1232, the client's DO and CD)
 * and returns the stub's own copy of the answer (answer-build.ts ownAnswer: the
 * upstream's records, TTLs with the top bit set made 0 (RFC 2181 §8), the
 * stub's header flags and OPT); the listener patches only what differs per
 * client. Resolution failures become a SERVFAIL marked
 * `failed`, so serve-stale can step in.
 * It must not know about caching or capability records.
 */
import type { Answer, Handler, Request, Stage } from '../chain.ts';
import type { QueryListener, UpstreamError, UpstreamPool, UpstreamResult } from '../upstream.ts';
import type { QueryOptions } from '../answer-build.ts';
import { ownAnswer, servfail } from '../answer-build.ts';
import { Rcode } from '../message.ts';
import { zeroHighBitTtls } from '../answer-scan.ts';

/** The resolve function of the promise being built (set synchronously by the executor below). */
let captured: ((a: Answer) => void) | undefined;
/** Module-level executor: a promise per miss, but no closure per miss. */
function capture(resolve: (a: Answer) => void): void { captured = resolve; }

/** One forwarded question waiting for the pool's callback. */
class Forwarding implements QueryListener {
  /** ownAnswer copies the answer anyway: the pool hands over its receive slot instead of a copy of its own. */
  readonly bytesTransient = true;
  constructor(private readonly req: Request, private readonly resolve: (a: Answer) => void) {}

  upstreamDone(err: UpstreamError | undefined, r: UpstreamResult | undefined): void {
    if (err || !r) {
      const { query, q } = this.req;
      this.resolve({ bytes: servfail(query, q), optOff: q.questionEnd, source: 'local', owned: true, rcode: Rcode.SERVFAIL, failed: true });
      return;
    }
    const scan = r.scan;
    zeroHighBitTtls(r.bytes, scan); // RFC 2181 §8, in the receive slot before ownAnswer copies it
    const own = ownAnswer(r.bytes, scan, this.req.q.dnssecOk);
    const failed = scan.rcode === Rcode.SERVFAIL || scan.rcode === Rcode.REFUSED;
    this.resolve({ bytes: own.bytes, optOff: own.optOff, source: 'upstream', owned: false, rcode: scan.rcode, scan, failed });
  }
}

/** Our query's flags by the client's DO and CD (index DO·2 + CD): one object each, not one per miss. */
const QUERY_OPTIONS: readonly QueryOptions[] = [0, 1, 2, 3].map((i) => Object.freeze({ dnssecOk: (i & 2) !== 0, checkingDisabled: (i & 1) !== 0, authenticData: true }));

/** The flags of the query the forward stage sends upstream for a client's DO and CD. */
export const forwardQueryOptions = (dnssecOk: boolean, checkingDisabled: boolean): QueryOptions => QUERY_OPTIONS[(dnssecOk ? 2 : 0) | (checkingDisabled ? 1 : 0)]!;

export class ForwardStage implements Stage {
  readonly name = 'forward';

  constructor(private readonly pool: UpstreamPool, private readonly queryTimeoutMs: number) {}

  serve(req: Request, _next: Handler): Promise<Answer> {
    const { q } = req;
    const p = new Promise<Answer>(capture);
    const resolve = captured!;
    captured = undefined;
    const opts = forwardQueryOptions(q.dnssecOk, q.checkingDisabled);
    // The question section as the client sent it: 12 .. questionEnd holds name, type and class.
    const question = req.query.subarray(12, q.questionEnd);
    this.pool.start(q.nameKey, q.qtype, q.qclass, opts, this.queryTimeoutMs, new Forwarding(req, resolve), question);
    return p;
  }
}

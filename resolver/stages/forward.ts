/**
 * The forward stage: the end of the chain. Sends the question upstream (our own
 * query: RD, AD, EDNS 1232, the client's DO and CD) and returns the upstream's
 * bytes untouched; the listener patches only what RFC 1035/6891/6840 require.
 * Resolution failures become a SERVFAIL marked `failed`, so serve-stale can step in.
 * It must not know about caching or capability records.
 */
import type { Answer, Handler, Request, Stage } from '../chain.ts';
import type { UpstreamPool } from '../upstream.ts';
import { servfail } from '../answer-build.ts';
import { Rcode } from '../message.ts';

export class ForwardStage implements Stage {
  readonly name = 'forward';

  constructor(private readonly pool: UpstreamPool, private readonly queryTimeoutMs: number) {}

  async serve(req: Request, _next: Handler): Promise<Answer> {
    const { q } = req;
    try {
      const r = await this.pool.query(q.nameKey, q.qtype, q.qclass, {
        dnssecOk: q.dnssecOk, checkingDisabled: q.checkingDisabled, authenticData: true,
      }, this.queryTimeoutMs);
      const opt = r.scan.optIndex >= 0 && r.scan.optIndex === r.scan.records.length - 1 ? r.scan.records[r.scan.optIndex]!.ownerOff : -1;
      const failed = r.scan.rcode === Rcode.SERVFAIL || r.scan.rcode === Rcode.REFUSED;
      return { bytes: r.bytes, optOff: opt, source: 'upstream', owned: false, rcode: r.scan.rcode, scan: r.scan, failed };
    } catch {
      return { bytes: servfail(req.query, q), optOff: q.edns ? q.questionEnd : -1, source: 'local', owned: true, rcode: Rcode.SERVFAIL, failed: true };
    }
  }
}

/**
 * The answer cache's entries (one latin1 string: answer, TTL offsets, trailer):
 * what goes in comes out — the answer's octets, OPT offset, RCODE, TTLs counted
 * down from the time it was stored, expiry, serve-stale — also with clock
 * values far beyond 32 bits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { AnswerCache, DEFAULT_CACHE_OPTIONS, entryExpiresAt, entryOptOff, entryRcode, STALE_ANSWER_TTL } from '../../resolver/answer-cache.ts';
import { ownAnswer } from '../../resolver/answer-build.ts';
import { scanResponse } from '../../resolver/answer-scan.ts';
import { ms } from '../../shim/time.ts';

function answer(rcode: 'NOERROR' | 'NXDOMAIN', ttls: number[]): Uint8Array {
  return dnsPacket.encode({
    type: 'response', id: 7, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | (rcode === 'NXDOMAIN' ? 3 : 0),
    questions: [{ type: 'AAAA', name: 'host.example' }],
    answers: rcode === 'NOERROR' ? ttls.map((ttl, i) => ({ type: 'AAAA' as const, name: 'host.example', ttl, data: `2001:db8::${i + 1}` })) : [],
    authorities: rcode === 'NXDOMAIN' ? [{ type: 'SOA', name: 'example', ttl: 600, data: { mname: 'ns.example', rname: 'admin.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 300 } }] : [],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 }],
  } as dnsPacket.Packet) as unknown as Uint8Array;
}

/** The TTLs of an answer's records but OPT, in order. */
function ttlsOf(b: Uint8Array): number[] {
  return scanResponse(b).records.filter((r) => r.type !== 41).map((r) => r.ttl);
}

for (const base of [0, 1_234.75, 2 ** 40 + 0.5]) {
  test(`an entry gives back the answer, OPT offset, RCODE and TTLs counted down (clock at ${base} ms)`, () => {
    const cache = new AnswerCache({ ...DEFAULT_CACHE_OPTIONS, staleMaxSeconds: 60 });
    const raw = answer('NOERROR', [300, 120]);
    const scan = scanResponse(raw);
    const own = ownAnswer(raw, scan, false);
    const e = cache.store('k', own.bytes, scan, own.optOff, ms(base));
    assert.ok(e);
    assert.equal(entryOptOff(e), own.optOff);
    assert.equal(entryRcode(e), 0);
    assert.equal(entryExpiresAt(e), Math.floor(base) + 120_000);
    assert.equal(cache.getFresh('k', ms(base + 1)), e);
    const out = cache.render(e, ms(base + 50_500));
    assert.equal(out.length, own.bytes.length);
    assert.deepEqual(ttlsOf(out), [250, 70]);
    // The rest of the answer is the stored octets.
    const masked = (b: Uint8Array): number[] => { const c = [...b]; for (const r of scanResponse(b).records) c.fill(0, r.ttlOff, r.ttlOff + 4); return c; };
    assert.deepEqual(masked(out), masked(own.bytes));
    assert.equal(cache.getFresh('k', ms(base + 120_000)), undefined, 'expired');
    const stale = cache.getStale('k', ms(base + 150_000));
    assert.ok(stale);
    assert.deepEqual(ttlsOf(cache.render(stale, ms(base + 150_000), true)), [STALE_ANSWER_TTL, STALE_ANSWER_TTL]);
    assert.equal(cache.getStale('k', ms(base + 180_000)), undefined, 'past the serve-stale window');
    assert.equal(cache.getFresh('k', ms(base + 180_000)), undefined);
    assert.equal(cache.size, 0, 'an entry past the serve-stale window is let go');
  });
}

test('TTLs are capped: an answer with TTL 2^31−1 lives maxTtlSeconds, an NXDOMAIN whose SOA says 2^31−1 maxNegativeTtlSeconds (defaults 1 day, 1 h)', () => {
  const huge = 2 ** 31 - 1;
  for (const [opts, maxPos, maxNeg] of [[{ maxTtlSeconds: 600, maxNegativeTtlSeconds: 120 }, 600, 120], [{}, 86_400, 3_600]] as const) {
    const cache = new AnswerCache({ ...DEFAULT_CACHE_OPTIONS, ...opts });
    const pos = answer('NOERROR', [huge, huge]);
    const e = cache.store('p', pos, scanResponse(pos), -1, ms(0));
    assert.ok(e);
    assert.equal(entryExpiresAt(e), maxPos * 1000, `positive: ${JSON.stringify(opts)}`);
    assert.ok(cache.getFresh('p', ms(maxPos * 1000 - 1)));
    assert.equal(cache.getFresh('p', ms(maxPos * 1000)), undefined, 'expired at the cap');
    const neg = dnsPacket.encode({
      type: 'response', id: 7, flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 3,
      questions: [{ type: 'AAAA', name: 'host.example' }],
      authorities: [{ type: 'SOA', name: 'example', ttl: huge, data: { mname: 'ns.example', rname: 'admin.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: huge } }],
    } as dnsPacket.Packet) as unknown as Uint8Array;
    const n = cache.store('n', neg, scanResponse(neg), -1, ms(0));
    assert.ok(n);
    assert.equal(entryExpiresAt(n), maxNeg * 1000, `negative: ${JSON.stringify(opts)}`);
  }
});

test('a negative entry keeps its RCODE, and an answer without OPT its -1', () => {
  const cache = new AnswerCache(DEFAULT_CACHE_OPTIONS);
  const raw = answer('NXDOMAIN', []);
  const scan = scanResponse(raw);
  const e = cache.store('n', raw, scan, -1, ms(10));
  assert.ok(e);
  assert.equal(entryRcode(e), 3);
  assert.equal(entryOptOff(e), -1);
  assert.equal(entryExpiresAt(e), 10 + 300_000);
  assert.deepEqual([...cache.render(e, ms(10))], [...raw]);
});

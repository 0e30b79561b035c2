// Known peers (docs/security.md "Known peers"): a spoofed flood from thousands of
// /64s — none over its own /64's bucket — drains the global reply (or
// verification) bucket, so a benign peer's I1 finds no token. The engine then
// asks its driver for the peers the host talks to (event `limit-pressure`, at
// most one per KNOWN_PEERS_INTERVAL_MS); once `setKnownPeers` names the benign
// peer, its replies take the known peers' reserve when the global bucket is
// empty, each still within its /64's bucket, and the flood draws no more than
// the global bucket's (the reserve's too only from sources in known peers' /64s).
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { DEFAULT_REPLY_LIMIT, DEFAULT_VERIFY_LIMIT, Engine, KNOWN_PEERS_INTERVAL_MS, MAX_KNOWN_PEERS, MAX_PRIMED_PEERS, resolveReplyLimit, type EngineConfig, type EngineEvent } from '../../shim/engine/index.ts';
import { ReplyLimiter } from '../../shim/engine/reply-limit.ts';
import { encodeMessage } from '../../shim/wire/index.ts';
import { signCgaLocators } from '../../shim/wire/cga.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';
import { askR1 as askR1To, bytesFrom, cgaPeer, i2 } from '../helpers/cga-handshake.ts';

const B = '2001:db8:b1::1';
/** An I1 from `src` to B, and the R1's validator and responder nonce. */
const askR1 = (b: Engine, now: Millis, src: string, tag: number): ReturnType<typeof askR1To> => askR1To(b, now, src, B, tag);
/** The benign peer: a /64 of its own. */
const GOOD = '2001:db8:a1::1';
const engineB = (extra: Partial<EngineConfig> = {}) => new Engine({ localLocators: [{ address: B }], ...extra }, new SimRng(42));

/** Forged sources: one address in each of `n` /64s. */
const forged = (n: number) => (i: number): string => `2001:db8:${(0x1000 + (i % n)).toString(16)}::1`;
const i1 = (i: number): Uint8Array => encodeMessage({ type: 'I1', contextTag: i + 1, initiatorNonce: i, options: [] });

/** What B sent, by destination (R1s: the flood's I1s and the benign peer's draw nothing else). */
function drain(b: Engine, into: Map<string, number>): void {
  for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) into.set(t.dst, (into.get(t.dst) ?? 0) + 1);
}

function events(b: Engine): EngineEvent[] {
  const out: EngineEvent[] = [];
  for (let e = b.pollEvent(); e !== undefined; e = b.pollEvent()) out.push(e);
  return out;
}

interface FloodRun {
  /** R1s to each destination. */
  replies: Map<string, number>;
  /** The benign peer's I1s before and after the known peers named it, and the R1s each drew. */
  before: { i1: number; r1: number };
  after: { i1: number; r1: number };
  pressure: Array<{ at: number; e: EngineEvent }>;
  knownAt: number | undefined;
}

/**
 * `rate` forged I1s per second for `seconds` of the engine's time, evenly spaced, round robin over
 * `sources`; the benign peer's I1 every `goodEveryMs` from `goodFromMs`, at the same instant as a
 * forged one just answered or refused (so it finds the global bucket as the flood leaves it). The
 * driver's part: on a `limit-pressure` after `connectedAtMs` (the benign peer's connection is open
 * from then on) it calls `setKnownPeers` with the benign peer (and `alsoKnown`).
 */
function flood(b: Engine, o: { rate: number; seconds: number; sources: (i: number) => string; goodEveryMs: number; goodFromMs: number; connectedAtMs: number; alsoKnown?: string[] }): FloodRun {
  const run: FloodRun = { replies: new Map(), before: { i1: 0, r1: 0 }, after: { i1: 0, r1: 0 }, pressure: [], knownAt: undefined };
  const n = o.rate * o.seconds;
  const step = 1000 / o.rate;
  let nextGood = o.goodFromMs;
  for (let i = 0; i < n; i++) {
    const now = ms(i * step);
    b.handleDatagram(now, { src: o.sources(i), dst: B, bytes: i1(i) });
    drain(b, run.replies);
    if (now >= nextGood) {
      nextGood += o.goodEveryMs;
      const phase = run.knownAt === undefined ? run.before : run.after;
      const had = run.replies.get(GOOD) ?? 0;
      b.handleDatagram(now, { src: GOOD, dst: B, bytes: i1(1_000_000 + i) });
      drain(b, run.replies);
      phase.i1++;
      phase.r1 += (run.replies.get(GOOD) ?? 0) - had;
    }
    for (const e of events(b)) {
      if (e.kind !== 'limit-pressure') continue;
      run.pressure.push({ at: now, e });
      if (now >= o.connectedAtMs && run.knownAt === undefined) {
        assert.equal(b.setKnownPeers(now, [GOOD, ...(o.alsoKnown ?? [])]), 1 + (o.alsoKnown?.length ?? 0));
        run.knownAt = now;
      }
    }
  }
  return run;
}

const bound = (b: { rate: number; burst: number }, seconds: number): number => Math.floor(b.burst + b.rate * seconds);

test('a spoofed I1 flood from 5,000 /64s: the benign peer gets no R1 until it is a known peer, then every I1 (within its /64\'s limit) is answered; the flood stays within the global bucket', (t) => {
  const b = engineB();
  const seconds = 10;
  // 10,000 I1s/s, two per second from each /64 (under its 10/s); the benign peer 5/s from 1 s, "connected" at 5 s.
  const run = flood(b, { rate: 10_000, seconds, sources: forged(5000), goodEveryMs: 200, goodFromMs: 1000, connectedAtMs: 5000 });
  const { before, after } = run;
  t.diagnostic(`before the known peers: ${before.r1} R1s for ${before.i1} benign I1s; known at ${run.knownAt} ms; after: ${after.r1} R1s for ${after.i1} I1s; `
    + `flood replies ${[...run.replies].filter(([dst]) => dst !== GOOD).reduce((a, [, n]) => a + n, 0)}; limit-pressure at ${run.pressure.map((p) => p.at.toFixed(1)).join(', ')} ms`);
  // Before: its I1s meet a global bucket the flood keeps empty.
  assert.ok(before.i1 >= 19, `${before.i1} benign I1s before`);
  assert.ok(before.r1 <= before.i1 / 10, `before the known peers: ${before.r1} R1s for ${before.i1} I1s`);
  // The engine asked, at most once per interval, and only while it refused.
  assert.ok(run.pressure.length >= 1, 'limit-pressure asked for known peers');
  assert.ok(run.pressure.length <= 1 + (seconds * 1000) / KNOWN_PEERS_INTERVAL_MS, `${run.pressure.length} limit-pressure events in ${seconds} s`);
  for (let k = 1; k < run.pressure.length; k++) assert.ok(run.pressure[k]!.at - run.pressure[k - 1]!.at >= KNOWN_PEERS_INTERVAL_MS);
  const first = run.pressure[0]!.e;
  assert.ok(first.kind === 'limit-pressure' && first.replies >= 1 && first.verifications === 0 && first.knownPeers === 0, JSON.stringify(first));
  // After: every benign I1 drew its R1, from the reserve.
  assert.ok(run.knownAt !== undefined && run.knownAt < 5000 + KNOWN_PEERS_INTERVAL_MS + 1, `known at ${run.knownAt}`);
  assert.ok(after.i1 >= 15, `${after.i1} benign I1s after`);
  assert.equal(after.r1, after.i1, `after: ${after.r1} R1s for ${after.i1} I1s`);
  const g = b.status().guard;
  assert.equal(g.knownPeers.replies, after.r1, 'each from the reserve');
  assert.deepEqual([g.knownPeers.peers, g.knownPeers.updates, g.knownPeers.asked], [1, 1, run.pressure.length]);
  // The flood drew at most the global bucket's tokens; the reserve went to the benign peer only.
  const floodReplies = [...run.replies].filter(([dst]) => dst !== GOOD).reduce((a, [, n]) => a + n, 0);
  const global = DEFAULT_REPLY_LIMIT.global;
  assert.ok(floodReplies <= bound(global, seconds), `${floodReplies} R1s to the flood, within ${bound(global, seconds)}`);
  assert.ok(floodReplies + before.r1 >= bound(global, seconds) - 2, `the global bucket was spent on the flood (${floodReplies})`);
  assert.equal(g.replies.R1.sent, floodReplies + before.r1 + after.r1);
  assert.equal(b.contextCount, 0, 'no state per I1');
});

test('the benign peer is still held to its own /64\'s bucket: 50 I1s/s from it draw at most burst + rate·t', () => {
  const b = engineB();
  const seconds = 6;
  const run = flood(b, { rate: 10_000, seconds, sources: forged(5000), goodEveryMs: 20, goodFromMs: 0, connectedAtMs: 0 });
  const perPrefix = DEFAULT_REPLY_LIMIT.perPrefix;
  assert.ok(run.knownAt !== undefined);
  const good = run.replies.get(GOOD) ?? 0;
  assert.ok(good <= bound(perPrefix, seconds), `${good} R1s, within the /64's ${bound(perPrefix, seconds)}`);
  assert.ok(good >= bound(perPrefix, seconds) - 10, `and about that many (${good}): the reserve does not cut it further`);
});

test('a flood forging known peers\' own addresses draws at most the global and the reserve buckets in all, and each of their /64s its own bucket', () => {
  const b = engineB();
  const seconds = 5;
  // 400 known peers, each in a /64 of its own; the flood forges them (a 25th of it) and 4,800 other /64s.
  const known = Array.from({ length: 400 }, (_, i) => `2001:db8:${(0x8000 + i).toString(16)}::1`);
  const sources = (i: number): string => (i % 25 === 0 ? known[(i / 25) % known.length]! : forged(4800)(i));
  const run = flood(b, { rate: 10_000, seconds, sources, goodEveryMs: 1000, goodFromMs: 0, connectedAtMs: 0, alsoKnown: known });
  const total = [...run.replies.values()].reduce((a, n) => a + n, 0);
  const { global, knownPeers, perPrefix } = DEFAULT_REPLY_LIMIT;
  assert.ok(total <= bound(global, seconds) + bound(knownPeers, seconds), `${total} R1s in all, within global ${bound(global, seconds)} + reserve ${bound(knownPeers, seconds)}`);
  for (const a of known) assert.ok((run.replies.get(a) ?? 0) <= bound(perPrefix, seconds), `${a}: ${run.replies.get(a)}`);
  const reserve = b.status().guard.knownPeers.replies;
  assert.ok(reserve <= bound(knownPeers, seconds), `${reserve} from the reserve`);
  assert.ok(reserve >= bound(knownPeers, seconds) - knownPeers.burst, `the forged known peers spent the reserve (${reserve})`);
});

test('setKnownPeers: replaces the set, canonical addresses, skips what is not one, keeps at most MAX_KNOWN_PEERS', () => {
  const b = engineB();
  assert.equal(b.setKnownPeers(ms(0), ['2001:DB8:A1:0::1', 'not an address', '2001:db8:a2::1']), 2);
  assert.equal(b.status().guard.knownPeers.peers, 2);
  const many = Array.from({ length: MAX_KNOWN_PEERS + 500 }, (_, i) => `2001:db8:${(i >> 8).toString(16)}:${(i & 0xff).toString(16)}::1`);
  assert.equal(b.setKnownPeers(ms(1), many), MAX_KNOWN_PEERS);
  assert.equal(b.setKnownPeers(ms(2), []), 0);
  assert.deepEqual(b.status().guard.knownPeers, { peers: 0, asked: 0, updates: 3, replies: 0, verifications: 0, probeReplies: 0, primed: 0 });
  // The upper-case form named above is the peer whose canonical address sends: it takes the reserve.
  const l = new ReplyLimiter({ perPrefix: { rate: 1, burst: 5 }, global: { rate: 1e-9, burst: 1 }, knownPeers: { rate: 1e-9, burst: 2 } });
  assert.deepEqual([l.check(ms(0), '2001:db8:1::1'), l.check(ms(0), '2001:db8:1::1'), l.check(ms(0), '2001:db8:1::1', true), l.check(ms(0), '2001:db8:1::1', true), l.check(ms(0), '2001:db8:1::1', true)],
    ['ok', 'global', 'reserve', 'reserve', 'global']);
  assert.deepEqual([l.check(ms(0), '2001:db8:1::1', true)], ['prefix'], 'the /64 first: its 5 tokens are spent');
  const c = engineB();
  c.setKnownPeers(ms(0), ['2001:DB8:A1:0::1']);
  // Spend the global bucket from elsewhere, then the known peer is answered.
  for (let i = 0; i < 250; i++) c.handleDatagram(ms(0), { src: forged(250)(i), dst: B, bytes: i1(i) });
  while (c.pollTransmit() !== undefined);
  c.handleDatagram(ms(0), { src: GOOD, dst: B, bytes: i1(9999) });
  assert.equal(c.pollTransmit()?.dst, GOOD);
  assert.equal(c.status().guard.knownPeers.replies, 1);
});

test('replyLimit.knownPeers and verifyLimit.knownPeers: defaults, rate and burst checked like the other buckets', () => {
  assert.deepEqual(resolveReplyLimit(undefined), { value: DEFAULT_REPLY_LIMIT });
  assert.deepEqual(resolveReplyLimit({ knownPeers: { rate: 5 } }), { value: { ...DEFAULT_REPLY_LIMIT, knownPeers: { rate: 5, burst: 100 } } });
  assert.deepEqual(resolveReplyLimit({ global: { rate: 1 } }, 'verifyLimit', DEFAULT_VERIFY_LIMIT), { value: { ...DEFAULT_VERIFY_LIMIT, global: { rate: 1, burst: 100 } } });
  assert.match((resolveReplyLimit({ knownPeers: { rate: 0 } }) as { error: string }).error, /replyLimit\.knownPeers\.rate must be a number > 0/);
  assert.match((resolveReplyLimit({ knownPeers: { burst: 0.5 } }) as { error: string }).error, /replyLimit\.knownPeers\.burst must be ≥ 1/);
  assert.match((resolveReplyLimit({ known: {} }) as { error: string }).error, /replyLimit\.known: unknown key \(perPrefix, global, knownPeers\)/);
  assert.match((resolveReplyLimit({ knownPeers: { size: 3 } }, 'verifyLimit', DEFAULT_VERIFY_LIMIT) as { error: string }).error, /verifyLimit\.knownPeers\.size: unknown key/);
  assert.throws(() => engineB({ replyLimit: { knownPeers: { rate: -1, burst: 1 } } as never }), (e: Error & { code?: string }) => e.code === 'EREPLY_LIMIT');
});

// ---------------------------------------------------------------- verifications (verifyLimit)

const KEY = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
const KEY_SPKI = new Uint8Array(KEY.publicKey.export({ type: 'spki', format: 'der' }));




test('forged I2s from 500 /64s drain the global verification bucket: a benign CGA peer\'s I2 is cga-limited until it is a known peer, then verified from the reserve', () => {
  const b = engineB({ replyLimit: 'off' });
  const attackers = Array.from({ length: 500 }, (_, i) => cgaPeer(`2001:db8:${(0x100 + i).toString(16)}::`, KEY_SPKI, 100 + i));
  const r1s = attackers.map((p, i) => askR1(b, ms(0), p.ulid, 0x1000 + i));
  const good = cgaPeer('2001:db8:a1::', KEY_SPKI, 7);
  const goodR1 = askR1(b, ms(0), good.ulid, 0x77);
  const goodI2 = i2(0x77, goodR1, good, signCgaLocators(KEY.privateKey, 1, [good.ulid, good.extra]));
  const rnd = bytesFrom(16);
  const verify = mock.method(crypto, 'verify');
  const outcomes: string[] = [];
  const pressure: EngineEvent[] = [];
  try {
    // 5,000 forged I2s over 2 s (5 per /64 per second: under each /64's 10/s), each with a fresh random signature.
    for (let i = 0; i < 5000; i++) {
      const now = ms(1 + i * 0.4);
      const k = i % attackers.length;
      b.handleDatagram(now, { src: attackers[k]!.ulid, dst: B, bytes: i2(0x1000 + k, r1s[k]!, attackers[k]!, rnd(128)) });
      while (b.pollTransmit() !== undefined);
      for (const e of events(b)) if (e.kind === 'limit-pressure') pressure.push(e);
      if (i === 1000 || i === 3000) {
        const r = b.handleDatagram(now, { src: good.ulid, dst: B, bytes: goodI2 });
        outcomes.push(r.kind === 'drop' ? r.reason : r.kind);
        if (i === 1000) assert.equal(b.setKnownPeers(now, [good.ulid]), 1); // the driver's answer to limit-pressure
        while (b.pollTransmit() !== undefined);
      }
    }
    const g = b.status().guard;
    const { global } = DEFAULT_VERIFY_LIMIT;
    assert.ok(g.cga.verified - 1 <= bound(global, 2), `${g.cga.verified} RSA verifications (one the benign peer's), within ${bound(global, 2)} + 1`);
    assert.equal(verify.mock.callCount(), g.cga.verified);
  } finally { verify.mock.restore(); }
  assert.deepEqual(outcomes, ['cga-limited', 'consumed'], 'limited before, verified and accepted after');
  assert.ok(pressure.length >= 1 && pressure.some((e) => e.kind === 'limit-pressure' && e.verifications > 0), JSON.stringify(pressure));
  assert.equal(b.status().guard.knownPeers.verifications, 1);
  assert.deepEqual(b.status().contexts.map((c) => c.peerUlid), [good.ulid], 'only the benign context');
});

test('nothing refused, nothing asked: limit-pressure only when a host-wide bucket refuses (a /64 over its own limit is not asked about)', () => {
  const b = engineB();
  // One /64 floods: its own bucket refuses; the global one never does.
  for (let i = 0; i < 20_000; i++) b.handleDatagram(ms(i * 0.5), { src: '2001:db8:e1::66', dst: B, bytes: i1(i) });
  while (b.pollTransmit() !== undefined);
  assert.deepEqual(events(b), []);
  assert.ok(b.status().guard.replies.R1.limited > 19_000);
  assert.equal(b.status().guard.knownPeers.asked, 0);
});

test('a peer primed from DNS is a known peer until its record\'s lifetime ends: its I1s, from any locator of the record, are answered from the reserve before any connection exists', () => {
  const b = engineB();
  // B's stub resolver looked A up: its record, 10 s of lifetime, gives A's ULID and two locators.
  // B starts its own exchange with the ULID (its I1s are not counted below); A's I1s come from its
  // locators, without a ULID Pair option: no context of B's is theirs.
  const GOOD2 = '2001:db8:a2::1';
  const loc = (address: string) => ({ address, flags: 0, priority: 0, weight: 0 });
  b.prime(ms(0), { ulid: '2001:db8:a0::a', locators: [loc(GOOD), loc(GOOD2)], ttl: 10, source: 'dns' });
  assert.equal(b.status().guard.knownPeers.primed, 3, 'the ULID and the two locators');
  const sources = forged(5000);
  const answered = new Map<string, { i1: number; r1: number }>();
  const R1 = 2; // the R1's type (RFC 5533 §5.4), the low 7 bits of the header's third octet
  // 10,000 forged I1s/s for 14 s; A's I1 every 250 ms, alternating its two locators; no setKnownPeers at all.
  let nextGood = 500;
  let k = 0;
  for (let i = 0; i < 140_000; i++) {
    const now = ms(i / 10);
    b.handleDatagram(now, { src: sources(i), dst: B, bytes: i1(i) });
    for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) void t;
    if (now < nextGood) continue;
    nextGood += 250;
    const src = k++ % 2 === 0 ? GOOD : GOOD2;
    const phase = `${now < 10_000 ? 'primed' : 'expired'} ${src}`;
    const p = answered.get(phase) ?? { i1: 0, r1: 0 };
    b.handleDatagram(now, { src, dst: B, bytes: i1(1_000_000 + i) });
    p.i1++;
    for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) if (t.dst === src && (t.bytes[2]! & 0x7f) === R1) p.r1++;
    answered.set(phase, p);
  }
  const g = b.status(ms(14_000)).guard;
  const seen = Object.fromEntries(answered);
  for (const src of [GOOD, GOOD2]) {
    const p = seen[`primed ${src}`]!;
    assert.ok(p.i1 >= 15 && p.r1 === p.i1, `while primed, every I1 from ${src} drew an R1: ${JSON.stringify(seen)}`);
    const e = seen[`expired ${src}`]!;
    assert.ok(e.i1 >= 5 && e.r1 <= 1, `once the record's lifetime is over, ${src} waits for the global bucket like any source: ${JSON.stringify(seen)}`);
  }
  assert.equal(g.knownPeers.updates, 0, 'no open connection was needed');
  assert.ok(g.knownPeers.replies >= seen[`primed ${GOOD}`]!.r1 + seen[`primed ${GOOD2}`]!.r1 - 2, `from the reserve (${g.knownPeers.replies})`);
  assert.equal(g.knownPeers.primed, 0, 'expired entries are dropped');
});

test('primed peers are bounded: the last MAX_PRIMED_PEERS addresses primed, a configured peer\'s included, until it is taken out of the configuration; a peer configured `off` is not one', () => {
  const b = engineB({ peers: [{ ulid: '2001:db8:c1::1', mode: 'off' }] });
  const loc = (address: string) => ({ address, flags: 0, priority: 0, weight: 0 });
  b.prime(ms(0), { ulid: '2001:db8:c1::1', locators: [loc('2001:db8:c1::1')], ttl: 60, source: 'configured' });
  assert.equal(b.status().guard.knownPeers.primed, 0, 'mode off: no context with it, not known either');
  for (let i = 0; i < MAX_PRIMED_PEERS + 10; i++) {
    const u = `2001:db8:d${(i >> 12).toString(16)}:${((i & 0xfff) + 1).toString(16)}::1`; // canonical: the low group never 0
    b.prime(ms(i), { ulid: u, locators: [loc(u)], ttl: 3600, source: i % 2 === 0 ? 'dns' : 'configured' });
  }
  assert.equal(b.status().guard.knownPeers.primed, MAX_PRIMED_PEERS);
  // A configured peer taken out of the configuration (a reload) is no primed peer any more; one from DNS stays.
  const last = (i: number): string => `2001:db8:d${(i >> 12).toString(16)}:${((i & 0xfff) + 1).toString(16)}::1`;
  assert.equal(b.unconfigure(ms(MAX_PRIMED_PEERS + 10), last(MAX_PRIMED_PEERS + 9)), true);
  assert.equal(b.unconfigure(ms(MAX_PRIMED_PEERS + 10), last(MAX_PRIMED_PEERS + 8)), false, 'from DNS: not the configuration\'s to take back');
  assert.equal(b.status().guard.knownPeers.primed, MAX_PRIMED_PEERS - 1);
});

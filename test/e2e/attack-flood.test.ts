// E2E trust 3 (issue 15): floods of I1s and of payload with unknown context tags
// get a bounded number of R1 / R1bis replies, and do not hurt the daemon.
// The attacker on link P sends 100,000 packets from one source, then from 1,000
// sources (100 in P's /64, 900 in /64s of their own that A routes via the
// attacker), and counts the replies it gets. The bound is the token buckets'
// (default per source /64: 10/s, burst 10; global: 200/s, burst 200) over the
// flood's MEASURED duration — from its first packet to the last reply, so a slow
// machine only loosens it — never a wall-clock limit: replies ≤ burst + rate × s,
// per /64 and in total. Afterwards A's daemon still answers `shim6 status`, its
// memory stayed within RSS_GROWTH_MIB of what it used before the floods, and a
// real A→B stream through the shim still works. With `replyLimit: off` the same
// flood draws more replies than even the global bucket allows: the test can fail.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { missingPrereqs, needs } from '../helpers/prereq.ts';
import type { FloodResult } from '../helpers/attacker.ts';
import { LAB_ADDR } from '../../lab/topology.ts';
import { LAB_B_NAME } from '../../lab/dns.ts';
import { LAB_STUB } from '../../lab/daemons.ts';
import { runStream } from '../../lab/run.ts';
import { ATTACK_PREREQ, AttackLab, Cleanup, limitedReplies, memoryOf, prefix64, type StatusView } from './attack-fixture.ts';
import { log, STREAM_RATE, mostOf } from './fixture.ts';

/** The daemon's defaults (the config key `replyLimit`). */
const LIMITS = { perPrefix: { rate: 10, burst: 10 }, global: { rate: 200, burst: 200 } };

/**
 * How much the daemon's peak resident memory (VmHWM) may exceed its resident
 * memory before the floods. Replies are stateless (RFC 5533 §7.10) and the
 * buckets are a bounded table, so a flood leaves only garbage behind; 64 MiB
 * is room for V8's young generation and heap growth under load (the daemon
 * without any limiter peaked 10 MiB above its start after all four floods),
 * far below what keeping anything per packet (400,000 packets) would take.
 */
const RSS_GROWTH_MIB = 64;

const FLOOD = 100_000;
/** The attacker's other /64s (one source each), routed by A via the attacker; and the barrier's. */
const OTHER = (i: number): string => `2001:db8:ee:${i.toString(16)}::1`;
const BARRIER = '2001:db8:ee:ffff::1';
const ONE = [LAB_ADDR.xP];
const MANY = [
  ...Array.from({ length: 100 }, (_, i) => `2001:db8:1::1:${i.toString(16)}`),
  ...Array.from({ length: 900 }, (_, i) => OTHER(i)),
];

const cleanup = new Cleanup('attack-flood');
let x: AttackLab | undefined;
let baselineRssKb = 0;

before(async () => {
  if (missingPrereqs(ATTACK_PREREQ).length > 0) return; // each test then skips (or fails under CI) naming what is missing
  x = await AttackLab.up(cleanup, ['b', 'a']);
  x.addAttackerAddresses([
    ...MANY.slice(0, 100).map((address) => ({ address, dev: 'labp' })),
    ...[...MANY.slice(100), BARRIER].map((address) => ({ address, dev: 'lo' })),
  ]);
  x.routeViaAttacker('2001:db8:ee::/48', LAB_ADDR.xP);
  baselineRssKb = memoryOf((await x.status()).daemon.pid).rssKb;
});
after(() => cleanup.run());

function lab(t: TestContext): AttackLab | undefined {
  if (!needs(t, ATTACK_PREREQ)) return undefined;
  assert.ok(x, 'the attack lab came up');
  return x;
}

const bound = (b: { rate: number; burst: number }, ms: number): number => Math.floor(b.burst + (b.rate * ms) / 1000);
const total = (r: FloodResult): number => Object.values(r.replies).reduce((a, n) => a + n, 0);

/** Replies per source /64. */
function perPrefix(r: FloodResult): Map<string, number> {
  const out = new Map<string, number>();
  for (const [src, n] of Object.entries(r.replies)) out.set(prefix64(src), (out.get(prefix64(src)) ?? 0) + n);
  return out;
}

/** Flood A and check the replies against both buckets; returns the result for more checks. */
async function floodWithinBounds(t: TestContext, l: AttackLab, sources: string[], kind: 'I1' | 'payload'): Promise<FloodResult> {
  const before = await l.status();
  const r = await l.attacker.flood({ sources, dst: LAB_ADDR.aP, kind, count: FLOOD, barrierSource: BARRIER });
  const after = await l.status();
  const ms = r.lastReplyMs;
  const prefixes = perPrefix(r);
  const worst = [...prefixes].sort((a, b) => b[1] - a[1])[0] ?? ['-', 0];
  t.diagnostic(`${kind} flood from ${sources.length} source(s): sent ${r.sent} in ${r.sendMs.toFixed(0)} ms, A read ${after.daemon.stats.udpIn - before.daemon.stats.udpIn}; `
    + `replies ${total(r)} ${JSON.stringify(r.types)}, last at ${ms.toFixed(0)} ms; busiest /64 ${worst[0]} ${worst[1]}; `
    + `bounds per /64 ${bound(LIMITS.perPrefix, ms)}, global ${bound(LIMITS.global, ms)}; limited counter ${counterDelta(before, after)}`);
  const over = [...prefixes].filter(([, n]) => n > bound(LIMITS.perPrefix, ms));
  assert.deepEqual(over, [], `replies per source /64 within burst + rate × ${(ms / 1000).toFixed(2)} s = ${bound(LIMITS.perPrefix, ms)}`);
  assert.ok(total(r) <= bound(LIMITS.global, ms), `${total(r)} replies in all, within the global burst + rate × ${(ms / 1000).toFixed(2)} s = ${bound(LIMITS.global, ms)}`);
  const limited = counterDelta(before, after);
  assert.ok(typeof limited === 'number' && limited > 0, `the limited replies are counted in shim6 status (${limited})`);
  return r;
}

function counterDelta(before: StatusView, after: StatusView): number | string {
  const a = limitedReplies(before);
  const b = limitedReplies(after);
  return a === undefined || b === undefined ? 'no counter in status' : b - a;
}

test('I1 flood from one source: R1s within the token buckets', { timeout: 300_000 }, async (t) => {
  const l = lab(t);
  if (l) await floodWithinBounds(t, l, ONE, 'I1');
});

test('unknown-tag payload flood from one source: R1bis within the token buckets', { timeout: 300_000 }, async (t) => {
  const l = lab(t);
  if (l) await floodWithinBounds(t, l, ONE, 'payload');
});

test('I1 flood from 1,000 sources over 901 /64s: R1s within the per-/64 and the global bucket', { timeout: 300_000 }, async (t) => {
  const l = lab(t);
  if (l) await floodWithinBounds(t, l, MANY, 'I1');
});

test('unknown-tag payload flood from 1,000 sources over 901 /64s: R1bis within the per-/64 and the global bucket', { timeout: 300_000 }, async (t) => {
  const l = lab(t);
  if (l) await floodWithinBounds(t, l, MANY, 'payload');
});

test('after the floods: A\'s daemon answers status, its memory stayed bounded, and a protected A→B stream works', { timeout: 120_000 }, async (t) => {
  const l = lab(t);
  if (!l) return;
  const st = await l.status();
  const mem = memoryOf(st.daemon.pid);
  t.diagnostic(`A's daemon: RSS before the floods ${(baselineRssKb / 1024).toFixed(0)} MiB, now ${(mem.rssKb / 1024).toFixed(0)} MiB, peak ${(mem.hwmKb / 1024).toFixed(0)} MiB`);
  assert.ok(mem.hwmKb <= baselineRssKb + RSS_GROWTH_MIB * 1024, `peak RSS ${(mem.hwmKb / 1024).toFixed(0)} MiB within ${RSS_GROWTH_MIB} MiB of ${(baselineRssKb / 1024).toFixed(0)} MiB`);
  const since = Date.now();
  const r = await runStream(l.lab, { to: LAB_B_NAME, resolver: LAB_STUB, durationMs: 2000, failAtMs: 1, failure: 'none', rate: STREAM_RATE, graceMs: 8000 });
  assert.equal(r.complete, true, 'the stream ended normally');
  assert.equal(r.corrupt, 0);
  assert.ok(r.bytes_sent > mostOf(2000), `sent ${r.bytes_sent}`);
  assert.equal(r.bytes_verified, r.bytes_sent, 'every byte once and intact');
  assert.ok(log(l.lab, 'a').some((e) => e.msg === 'context-established' && e.peerUlid === LAB_ADDR.bP && Date.parse(e.ts) >= since), 'through a shim6 context with B');
  // Through the context: on the TUN path every packet crossed A's TUN; on the kernel path (its ULID
  // pair) the kernel carried them and its counters fed REAP.
  const now = (await l.status()).daemon;
  if (now.dataPath === 'kernel') assert.ok((now.stats.kernelTraffic ?? 0) > (st.daemon.stats.kernelTraffic ?? 0), 'the kernel\'s counters of A\'s context with B moved');
  else assert.ok(now.stats.tunIn > st.daemon.stats.tunIn, 'the stream went through A\'s TUN');
});

test('with replyLimit: off the same flood draws more replies than even the global bucket allows (the bound can fail)', { timeout: 300_000 }, async (t) => {
  const l = lab(t);
  if (!l) return;
  await l.start('a', { replyLimit: 'off' });
  // A fifth of the flood is plenty: unlimited, the daemon answers most of 20,000 I1s, ten times the bound.
  const r = await l.attacker.flood({ sources: ONE, dst: LAB_ADDR.aP, kind: 'I1', count: FLOOD / 5, barrierSource: BARRIER });
  t.diagnostic(`limits off: replies ${total(r)} in ${r.lastReplyMs.toFixed(0)} ms; the global bound would be ${bound(LIMITS.global, r.lastReplyMs)}`);
  assert.ok(total(r) > bound(LIMITS.global, r.lastReplyMs), `${total(r)} replies > ${bound(LIMITS.global, r.lastReplyMs)}`);
  await l.start('a'); // back to the defaults
});

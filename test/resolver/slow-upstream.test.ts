// Slow upstreams must not become SERVFAIL: an answer to any try of a question is taken until
// the question's deadline, a retry never cancels an earlier try, and RTO back-off stays.
// The upstream answers every try after the delay, each with an address that names the try,
// so the answer shows which try it came from. Timings are printed, not asserted (loaded CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { needs } from '../helpers/prereq.ts';
import { dig, digAnswers, digStatus, startStub, udpAsk, type Stub } from './harness.ts';
import { answerFor, startBlackHole, startFakeUpstream, type FakeUpstream } from './fake-upstream.ts';

const noCap = { capability: { enabled: false } };
/** The clock of the stub's answer log (harness `sent[].at`), in ms. */
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Upstream that answers `slow<ms>.*` after <ms> (each try: address 2001:db8:<try>::<ms>) and anything else at once. */
async function slowUpstream(t: Parameters<typeof startFakeUpstream>[0]): Promise<{ up: FakeUpstream; tries: Map<string, number[]> }> {
  const tries = new Map<string, number[]>();
  const up = await startFakeUpstream(t, (q) => {
    const m = /^slow(\d+)\./.exec(q.name);
    if (!m) return [{ bytes: answerFor(q) }];
    const seen = tries.get(q.name) ?? [];
    seen.push(nowMs());
    tries.set(q.name, seen);
    return [{ bytes: answerFor(q, { address: `2001:db8:${seen.length}::${m[1]}` }), delayMs: Number(m[1]) }];
  });
  return { up, tries };
}

/** 40 fast answers: the stub learns a small RTO (a few ms of round trip on loopback; at least 50 ms). */
async function teach(stub: Stub, prefix: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    const r = await udpAsk(stub, dnsPacket.encode({ id: i, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: `${prefix}-${i}.test`, type: 'AAAA' }] }));
    assert.equal(r.raw[3]! & 0xf, 0, 'NOERROR');
  }
}

test('slow upstream after a small RTO was learned: answers after 100, 200, 500, 1000 and 2500 ms are taken from the first try', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const { up, tries } = await slowUpstream(t);
  const stub = await startStub(t, [up.addr], noCap);
  for (const delay of [100, 200, 500, 1000, 2500]) {
    await teach(stub, `fast${delay}`);
    const [h] = stub.resolver.status().upstreams;
    const rto = Math.max(50, h!.rttMs + 4 * h!.rttVarMs);
    const r = await dig(stub, `slow${delay}.test.`, 'AAAA', '+time=8');
    const sent = tries.get(`slow${delay}.test`) ?? [];
    const answeredAt = stub.sent.find((x) => x.name === `slow${delay}.test.`)?.at;
    const took = answeredAt === undefined ? NaN : Number(answeredAt) / 1e6 - sent[0]!;
    t.diagnostic(`delay ${delay} ms: answer sent ${took.toFixed(1)} ms after the first try reached the upstream; RTO before ${rto.toFixed(1)} ms; ` +
      `${sent.length} tries at +${sent.map((x) => (x - sent[0]!).toFixed(0)).join(', +')} ms`);
    assert.equal(digStatus(r.stdout), 'NOERROR', `delay ${delay}: ${r.stdout}`);
    assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), [`2001:db8:1::${delay}`], `delay ${delay}: the first try's answer`);
    // The RTO is at most 800 ms: these questions were asked again, and the retries did not cancel the first try.
    if (delay >= 1000) assert.ok(sent.length >= 2, `delay ${delay}: retried (${sent.length} tries)`);
  }
  assert.equal(stub.resolver.counters.servfail, 0);
});

test('a slow first upstream and a silent second: the first upstream\'s late answer to its first try wins', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const { up: slow, tries } = await slowUpstream(t);
  const hole = await startBlackHole(t);
  const stub = await startStub(t, [slow.addr, hole.addr], { ...noCap, upstream: { attemptTimeoutMs: 200, holdDownMs: 0 } });
  const r = await dig(stub, 'slow600.test.', 'AAAA', '+time=8');
  const sent = tries.get('slow600.test') ?? [];
  t.diagnostic(`${sent.length} tries to the slow upstream, ${hole.queries.length} to the silent one`);
  assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout);
  assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8:1::600']);
  assert.ok(hole.queries.length >= 1, 'the second upstream was tried while the first was slow');
});

test('every try of a question gets its own ID, and a question that was never answered still ends in SERVFAIL at its deadline', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const hole = await startBlackHole(t);
  const stub = await startStub(t, [hole.addr], { ...noCap, queryTimeoutMs: 600, upstream: { attemptTimeoutMs: 100 } });
  const r = await dig(stub, 'never.test.', 'AAAA');
  assert.equal(digStatus(r.stdout), 'SERVFAIL');
  const ids = hole.queries.map((q) => q.id);
  assert.equal(ids.length, 3, 'one try and two more rounds');
  assert.equal(new Set(ids).size, ids.length, 'a fresh ID per try');
  assert.equal(stub.resolver.counters.upstreamTimeouts, 3);
});

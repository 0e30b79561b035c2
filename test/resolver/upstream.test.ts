// Upstream behaviour the stub must survive: TC, black holes, slowness, failover, forgeries, garbage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { needs } from '../helpers/prereq.ts';
import { dig, digAnswers, digStatus, startStub } from './harness.ts';
import { answerFor, startBlackHole, startFakeUpstream, type Query } from './fake-upstream.ts';

const noCap = { capability: { enabled: false } };

test('UDP answer with TC → the same question over TCP to the same upstream', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const up = await startFakeUpstream(t, (q, tr) => [{ bytes: tr === 'udp' ? answerFor(q, { tc: true }) : answerFor(q, { many: 3 }) }]);
  const stub = await startStub(t, [up.addr], noCap);
  const r = await dig(stub, 'tc.test.', 'AAAA');
  assert.equal(digAnswers(r.stdout).length, 3);
  assert.deepEqual(up.queries.map((q) => q.from ? 'udp' : 'tcp'), ['udp', 'tcp']);
  assert.equal(stub.resolver.counters.upstreamTcpFallbacks, 1);
});

test('black-hole first upstream: per-attempt timeout, failover, then held down', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const hole = await startBlackHole(t);
  const good = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::77' }) }]);
  // Each try waits 2 s, its least too: the black hole's tries time out, the good upstream's never do,
  // also on a busy machine (a timeout of the good one would send the next try to the held-down hole).
  const stub = await startStub(t, [hole.addr, good.addr], { ...noCap, upstream: { attemptTimeoutMs: 2000, minAttemptTimeoutMs: 2000, failThreshold: 2, holdDownMs: 60_000 } });
  const holeStatus = () => (stub.resolver.status() as { upstreams: Array<{ port: number; down: boolean; timeouts: number }> }).upstreams.find((u) => u.port === hole.port)!;
  const r1 = await dig(stub, 'a.test.', 'AAAA');
  assert.deepEqual(digAnswers(r1.stdout).map((x) => x[4]), ['2001:db8::77']);
  assert.deepEqual([hole.queries.length, holeStatus().timeouts], [1, 1], 'asked the black hole first, then gave up on it after the attempt timeout');
  await dig(stub, 'b.test.', 'AAAA');
  // Two failures: the black hole is held down; the next query goes straight to the good one.
  assert.deepEqual([holeStatus().down, holeStatus().timeouts], [true, 2]);
  const before = hole.queries.length;
  const t1 = Date.now();
  const r3 = await dig(stub, 'c.test.', 'AAAA');
  t.diagnostic(`answered in ${Date.now() - t1} ms with the black hole held down`);
  assert.deepEqual(digAnswers(r3.stdout).map((x) => x[4]), ['2001:db8::77']);
  assert.equal(hole.queries.length, before, 'held-down upstream skipped');
  assert.equal(holeStatus().timeouts, 2, 'no attempt timeout paid');
});

test('all upstreams silent → SERVFAIL within the query deadline; serve-stale answers from an expired entry', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  let alive = true;
  const up = await startFakeUpstream(t, (q) => (alive ? [{ bytes: answerFor(q, { ttl: 10 }) }] : undefined));
  // The first lookup must be answered within a try, also on a busy machine: 1 s tries, 1.5 s deadline.
  const stub = await startStub(t, [up.addr], { ...noCap, queryTimeoutMs: 1500, upstream: { attemptTimeoutMs: 1000, minAttemptTimeoutMs: 1000, holdDownMs: 0 }, cache: { staleMaxSeconds: 3600 } });
  await dig(stub, 'stale.test.', 'AAAA');
  alive = false;
  stub.advance(20_000); // the 10 s entry has expired
  const r = await dig(stub, 'stale.test.', 'AAAA');
  assert.equal(digStatus(r.stdout), 'NOERROR');
  assert.equal(digAnswers(r.stdout)[0]?.[1], '30', 'RFC 8767: stale answers carry TTL 30');
  assert.equal(stub.resolver.counters.staleServed, 1);
  // dig waits 15 s and the stub's own deadline is 1.5 s: an answer at all is the deadline's SERVFAIL.
  const t0 = Date.now();
  const r2 = await dig(stub, 'never.test.', 'AAAA');
  t.diagnostic(`SERVFAIL after ${Date.now() - t0} ms (query deadline 1500 ms)`);
  assert.equal(digStatus(r2.stdout), 'SERVFAIL');
});

test('slow upstream: a late answer is not waited for past the attempt timeout; the second upstream answers', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  // The slow answer would come long after dig gave up: only the attempt timeout can get an answer in time.
  const slow = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::5' }), delayMs: 60_000 }]);
  const fast = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::6' }) }]);
  const stub = await startStub(t, [slow.addr, fast.addr], { ...noCap, upstream: { attemptTimeoutMs: 1000, minAttemptTimeoutMs: 1000 } });
  const t0 = Date.now();
  const r = await dig(stub, 'slow.test.', 'AAAA');
  t.diagnostic(`answered after ${Date.now() - t0} ms (attempt timeout 1000 ms)`);
  assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8::6']);
  assert.equal(slow.queries.length, 1, 'the slow upstream was asked first');
});

test('SERVFAIL from the first upstream → the next one is asked', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const sf = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { rcode: 2 }) }]);
  const good = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::9' }) }]);
  const stub = await startStub(t, [sf.addr, good.addr], noCap);
  const r = await dig(stub, 'sf.test.', 'AAAA');
  assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8::9']);
  assert.equal(sf.queries.length, 1);
});

test('RFC 5452: forged answers (other port, wrong ID, wrong name, wrong type) and garbage are dropped; the real answer wins', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const up = await startFakeUpstream(t, (q) => {
    const forged = answerFor(q, { address: '2001:db8::bad' });
    const wrongId = Buffer.from(forged); wrongId.writeUInt16BE((q.id + 1) & 0xffff, 0);
    const wrongQ = answerFor({ ...q, name: 'other.test' }, { address: '2001:db8::bad' });
    const wrongType = answerFor({ ...q, type: 'A' }, { address: '192.0.2.66' });
    const garbage = Buffer.concat([forged.subarray(0, 14), Buffer.from([0xff, 0xff, 0xff])]);
    return [
      { bytes: forged, fromOtherPort: true },
      { bytes: wrongId },
      { bytes: wrongQ },
      { bytes: wrongType },
      { bytes: garbage },
      { bytes: Buffer.from([1, 2, 3]) },
      { bytes: answerFor(q, { address: '2001:db8::900d' }), delayMs: 30 },
    ];
  });
  const stub = await startStub(t, [up.addr], noCap);
  const r = await dig(stub, 'forge.test.', 'AAAA');
  assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8::900d']);
  const c = stub.resolver.counters;
  assert.ok(c.upstreamMismatched >= 4, `mismatched ${c.upstreamMismatched}`);
  assert.ok(c.upstreamMalformed >= 2, `malformed ${c.upstreamMalformed}`);
});

test('RFC 5452 over TCP: after a TC, a TCP answer with another ID, name or type is no answer; the next upstream\'s is', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const forgeries: Array<[string, (q: Query) => Buffer]> = [
    ['wrong ID', (q) => { const b = answerFor(q, { address: '2001:db8::bad' }); b.writeUInt16BE((q.id + 1) & 0xffff, 0); return b; }],
    ['wrong name', (q) => answerFor({ ...q, name: 'other.test' }, { address: '2001:db8::bad' })],
    ['wrong type', (q) => answerFor({ ...q, type: 'A' }, { address: '192.0.2.66' })],
  ];
  for (const [kind, forge] of forgeries) {
    const bad = await startFakeUpstream(t, (q, tr) => [{ bytes: tr === 'udp' ? answerFor(q, { tc: true }) : forge(q) }]);
    const good = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::900d' }) }]);
    const stub = await startStub(t, [bad.addr, good.addr], noCap);
    const r = await dig(stub, 'forge-tcp.test.', 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR', `${kind}: ${r.stdout}`);
    assert.deepEqual(digAnswers(r.stdout).map((x) => [x[3], x[4]]), [['AAAA', '2001:db8::900d']], kind);
    assert.deepEqual(bad.queries.map((q) => q.from ? 'udp' : 'tcp'), ['udp', 'tcp'], `${kind}: the first upstream was asked over TCP after its TC`);
    assert.equal(stub.resolver.counters.upstreamMismatched, 1, `${kind}: the TCP answer counted as mismatched`);
  }
});

test('upstream queries use random IDs and several source ports, with EDNS 1232', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q) }]);
  const stub = await startStub(t, [up.addr], noCap);
  for (let i = 0; i < 12; i++) await dig(stub, `r${i}.test.`, 'AAAA');
  const ids = new Set(up.queries.map((q) => q.id));
  const ports = new Set(up.queries.map((q) => q.from?.port));
  // One query per name, plus any retry a loaded machine caused (past the 50 ms minimum wait): each with an ID of its own.
  assert.ok(up.queries.length >= 12, `queries: ${up.queries.length}`);
  assert.equal(ids.size, up.queries.length);
  assert.ok(ports.size >= 4, `source ports used: ${ports.size}`);
  const raw = up.queries[0]!.raw;
  const opt = raw.subarray(raw.length - 11);
  assert.equal(opt.readUInt16BE(1), 41);
  assert.equal(opt.readUInt16BE(3), 1232);
});

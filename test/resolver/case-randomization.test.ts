// 0x20 (draft-vixie-dnsext-dns0x20, RFC 5452 §9.2): upstream questions go out in a random letter
// case, an answer whose question does not echo it is dropped and counted, an upstream that does
// not preserve case is asked without 0x20 after a few such answers, and the key turns it off.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as dnsPacket from 'dns-packet';
import { needs } from '../helpers/prereq.ts';
import { dig, digAnswers, digStatus, startStub, udpAsk } from './harness.ts';
import { answerFor, startFakeUpstream, type Query } from './fake-upstream.ts';
import { randomizeCase, sameOctets } from '../../resolver/upstream-case.ts';

const noCap = { capability: { enabled: false } };

/** The question name of a query as sent, case kept ("Abc.Test"). */
function askedName(q: Query): string {
  return (dnsPacket.decode(q.raw).questions?.[0]?.name) ?? '';
}

test('randomizeCase flips letters only (never length octets, digits, hyphens or other octets), one random bit each', () => {
  const wire = Uint8Array.from([0, 0, 5, ...Buffer.from('a-Z9z'), 3, ...Buffer.from('x_Y'), 2, 0x40, 0xe1, 0]);
  const ones = { next: () => 0xffff };
  const zeros = { next: () => 0 };
  const up = Uint8Array.from(wire);
  assert.equal(randomizeCase(up, 2, wire.length - 1, ones), 5);
  assert.deepEqual([...up], [0, 0, 5, ...Buffer.from('A-Z9Z'), 3, ...Buffer.from('X_Y'), 2, 0x40, 0xe1, 0]);
  const down = Uint8Array.from(wire);
  randomizeCase(down, 2, wire.length - 1, zeros);
  assert.deepEqual([...down], [0, 0, 5, ...Buffer.from('a-z9z'), 3, ...Buffer.from('x_y'), 2, 0x40, 0xe1, 0]);
  assert.ok(sameOctets(up, up.slice(), 2, wire.length));
  assert.ok(!sameOctets(up, down, 2, wire.length));
  // 16 letters take one 16-bit word, bit by bit from the lowest.
  const name = Uint8Array.from(Buffer.from('abcdefghijklmnopq'));
  let words = 0;
  randomizeCase(name, 0, name.length, { next: () => (words++ === 0 ? 0b1010_1010_1010_1010 : 1) });
  assert.equal(Buffer.from(name).toString(), 'aBcDeFgHiJkLmNoPQ');
});

test('0x20: upstream questions carry a random letter case; the client gets its own case back', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q) }]);
  const stub = await startStub(t, [up.addr], noCap);
  const name = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < 8; i++) {
    const asked = `${name}${i}.CaSe.TeSt`;
    const r = await udpAsk(stub, dnsPacket.encode({ id: i, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: asked, type: 'AAAA' }] }));
    assert.equal(r.raw[3]! & 0xf, 0, 'NOERROR');
    assert.equal(r.msg.questions?.[0]?.name, asked, 'the question in the client\'s case');
  }
  const asked = up.queries.map(askedName);
  for (const n of asked) assert.notEqual(n, n.toLowerCase(), `${n}: not all lower case`);
  const patterns = new Set(asked.map((n) => n.replace(/\d/, '')));
  assert.equal(patterns.size, asked.length, 'a fresh case pattern per question');
  assert.equal(stub.resolver.counters.upstreamCaseMismatched, 0);
});

test('0x20: a forged answer with the right ID and port but not the case is dropped and counted; without 0x20 it would be taken', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  // The "forger" is handed the query's ID and port (the 1-in-65,536-per-port guess an off-path
  // attacker needs) but not its letter case: it answers all in lower case, before the real answer.
  const forgeFirstTry = (q: Query): Array<{ bytes: Buffer; delayMs?: number }> => {
    const first = up.queries.filter((x) => x.name === q.name).length === 1;
    const real = { bytes: answerFor(q, { address: '2001:db8::900d' }), delayMs: 30 };
    return first ? [{ bytes: answerFor(q, { address: '2001:db8::bad', echoCase: false }) }, real] : [real];
  };
  const up = await startFakeUpstream(t, (q) => forgeFirstTry(q));
  const on = await startStub(t, [up.addr], noCap);
  const off = await startStub(t, [up.addr], { ...noCap, upstream: { randomizeCase: false } });
  const got = { on: [] as string[], off: [] as string[] };
  for (let i = 0; i < 5; i++) {
    for (const [k, stub] of [['on', on], ['off', off]] as const) {
      const r = await dig(stub, `spoof-trial-${i}-${k}.example-domain.test.`, 'AAAA');
      got[k].push(digAnswers(r.stdout)[0]?.[4] ?? digStatus(r.stdout) ?? r.stderr);
    }
  }
  t.diagnostic(`with 0x20: ${got.on.join(' ')}; without: ${got.off.join(' ')}`);
  assert.deepEqual(got.on, Array(5).fill('2001:db8::900d'), 'with 0x20 the real answer wins every trial');
  assert.deepEqual(got.off, Array(5).fill('2001:db8::bad'), 'without 0x20 the forgery that guessed ID and port is taken (the attack is real)');
  assert.equal(on.resolver.counters.upstreamCaseMismatched, 5);
  assert.equal(on.resolver.status().upstreams[0]?.caseFallback, false, 'real answers in between: no fallback');
});

test('0x20: an upstream that does not preserve case is asked without it after 3 such answers; every question is answered', async (t) => {
  if (!needs(t, { commands: ['dig'] })) return;
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { address: '2001:db8::77', echoCase: false }) }]);
  const stub = await startStub(t, [up.addr], { ...noCap, upstream: { attemptTimeoutMs: 100 } });
  // Long names: a random case leaves a name of n letters all lowercase once in 2^n tries; the
  // upstream's lowercase answer then matches it and is taken before any fallback (9 letters: 1 in 512).
  const name = (i: number): string => `lower${i}.upstream-that-does-not-preserve-letter-case.test`;
  for (let i = 0; i < 4; i++) {
    const r = await dig(stub, `${name(i)}.`, 'AAAA');
    assert.equal(digStatus(r.stdout), 'NOERROR', r.stdout);
    assert.deepEqual(digAnswers(r.stdout).map((x) => x[4]), ['2001:db8::77']);
    // The first question is answered only once an attempt went without 0x20, i.e. after the fallback.
    if (i === 0) assert.equal(stub.resolver.status().upstreams[0]?.caseFallback, true, 'fallen back before the first answer');
  }
  const asked = up.queries.map(askedName);
  const randomized = (n: string) => n !== n.toLowerCase();
  const first = asked.filter((n) => n.toLowerCase() === name(0));
  assert.ok(first.filter(randomized).length >= 3, `three attempts in a random case first: ${first.join(' ')}`);
  assert.deepEqual(asked.filter((n) => n.toLowerCase() !== name(0)).filter(randomized), [], 'then none: the later questions go in the client\'s case');
  // Three mismatched answers make the fallback; an answer to an earlier attempt that a retry
  // overtook (a busy machine) may still come after it, and is dropped and counted as well.
  const mismatched = stub.resolver.counters.upstreamCaseMismatched;
  assert.ok(mismatched >= 3 && mismatched <= first.filter(randomized).length, `${mismatched} mismatched answers`);
  assert.ok(stub.logs.some((l) => l.includes('does not preserve letter case')), 'logged');
});

test('0x20 off (upstream.randomizeCase: false): the question goes upstream in the client\'s case, answers need not echo it', async (t) => {
  const up = await startFakeUpstream(t, (q) => [{ bytes: answerFor(q, { echoCase: q.name.startsWith('echo') }) }]);
  const stub = await startStub(t, [up.addr], { ...noCap, upstream: { randomizeCase: false } });
  for (const name of ['Echo.MiXeD.Test', 'Lower.MiXeD.Test']) {
    const r = await udpAsk(stub, dnsPacket.encode({ id: 7, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'AAAA' }] }));
    assert.equal(r.raw[3]! & 0xf, 0, 'NOERROR');
    assert.equal(r.msg.questions?.[0]?.name, name);
  }
  assert.deepEqual(up.queries.map(askedName), ['Echo.MiXeD.Test', 'Lower.MiXeD.Test']);
  assert.equal(stub.resolver.counters.upstreamCaseMismatched, 0);
});

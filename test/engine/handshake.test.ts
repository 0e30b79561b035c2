import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Loop } from './loop.ts';
import { State } from '../../shim/engine/index.ts';

const A_PREFIXES = ['2001:db8:a1::/64', '2001:db8:a2::/64'];
const B_PREFIXES = ['2001:db8:b1::/64', '2001:db8:b2::/64'];

test('prime() → I1, R1, I2, R2: both ends ESTABLISHED in 2 RTTs with verified locator sets', () => {
  const net = new Loop(20);
  const a = net.add('A', 1, A_PREFIXES);
  const b = net.add('B', 2, B_PREFIXES);
  a.engine.prime(net.now, { ulid: b.ulid, locators: b.locators.map((address, i) => ({ address, flags: 0, priority: i, weight: 0 })), ttl: 300, source: 'dns' });
  net.run(80);
  const est = a.events.find((e) => e.kind === 'context-established');
  assert.ok(est, `A events: ${JSON.stringify(a.events)}`);
  assert.equal(net.log.filter((l) => l.host === 'A').length, 2, 'I1 and I2 only');
  assert.deepEqual(net.types(), ['1', '2', '3', '4']);
  assert.ok(b.events.some((e) => e.kind === 'context-established'));
  const sa = a.engine.status().contexts[0]!;
  assert.equal(sa.state, State.ESTABLISHED);
  assert.deepEqual(sa.peerLocators.filter((l) => l.verified).map((l) => l.address).sort(), [...b.locators].sort());
  const sb = b.engine.status().contexts[0]!;
  assert.equal(sb.peerContextTag, sa.contextTag);
  assert.equal(sa.peerContextTag, sb.contextTag);
  // payload flows both ways through the context
  assert.ok(net.sendPayload(a, b));
  assert.ok(net.sendPayload(b, a));
  net.run(200);
  assert.equal(b.delivered.length, 1);
  assert.equal(b.delivered[0]!.srcUlid, a.ulid);
  assert.equal(a.delivered.length, 1);
});

test('crossing I1s are answered with R2 and both ends establish one context each', () => {
  const net = new Loop(20);
  const a = net.add('A', 3, A_PREFIXES);
  const b = net.add('B', 4, B_PREFIXES);
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  b.engine.prime(net.now, { ulid: a.ulid, locators: [], ttl: 300, source: 'configured' });
  net.run(500);
  assert.equal(a.engine.status().contexts.length, 1);
  assert.equal(a.engine.status().contexts[0]!.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts[0]!.state, State.ESTABLISHED);
  assert.ok(net.types('A').includes('4') && net.types('B').includes('4'), 'each side sent an R2');
  assert.equal(a.engine.status().contexts[0]!.peerContextTag, b.engine.status().contexts[0]!.contextTag);
});

test('no answer: I1 retransmitted I1_RETRIES_MAX times with randomised back-off, then E-FAILED, hold-down, IDLE', () => {
  const net = new Loop(20);
  const a = net.add('A', 5, A_PREFIXES);
  a.engine.prime(net.now, { ulid: '2001:db8:ff::1', locators: [], ttl: 300, source: 'dns' });
  while (!a.events.some((e) => e.kind === 'context-failed') && net.now < 400_000) net.run(net.now + 1000);
  // the negative cache keeps a new prime from starting I1 again (DNS claimed support: address + ULID)
  const before = net.log.length;
  a.engine.prime(net.now, { ulid: '2001:db8:ff::1', locators: [], ttl: 300, source: 'dns' });
  net.flush();
  assert.equal(net.log.length, before, 'no new I1 while negatively cached');
  net.run(net.now + 61_000);
  const sends = net.log.filter((l) => l.host === 'A').map((l) => l.at);
  assert.equal(sends.length, 5, '1 + I1_RETRIES_MAX');
  const gaps = sends.slice(1).map((t, i) => t - sends[i]!);
  gaps.forEach((g, i) => {
    const nominal = 4000 * 2 ** i;
    assert.ok(g >= 0.5 * nominal && g <= 1.5 * nominal, `gap ${i} = ${g}`);
  });
  assert.ok(a.events.some((e) => e.kind === 'context-failed' && e.reason === 'no-answer'));
  assert.ok(a.events.some((e) => e.kind === 'peer-unsupported'));
  assert.equal(a.engine.contextCount, 0, 'E-FAILED held down for NO_R1_HOLDDOWN_TIME, then gone');
});

test('lost R2: I2 retransmitted; I2 retries exhausted fall back to I1 and still establish', () => {
  const net = new Loop(20);
  const a = net.add('A', 6, A_PREFIXES, { profile: 'fast' });
  const b = net.add('B', 7, B_PREFIXES, { profile: 'fast' });
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  net.run(30); // I1 delivered, R1 in flight
  net.block(b.ulid, a.ulid); // every R2 (and R1) B → A is lost
  net.run(8_000);
  const aTypes = net.types('A');
  assert.ok(aTypes.filter((t) => t === '3').length >= 3, `I2 retransmitted: ${aTypes}`);
  assert.ok(aTypes.lastIndexOf('1') > aTypes.indexOf('3'), 'fell back to I1 after I2 retries');
  net.blocked.clear();
  net.run(10_000);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts.length, 1, 'B kept exactly one context');
});

test('host-based independent mode: I1 → R1 only, no context stays on either side', () => {
  const net = new Loop(20);
  const b = net.add('B', 9, B_PREFIXES);
  const a = net.add('A', 8, A_PREFIXES, { peers: [{ ulid: b.ulid, mode: 'independent' }] });
  a.engine.prime(net.now, { ulid: b.ulid, locators: [], ttl: 300, source: 'configured' });
  net.run(1000);
  assert.deepEqual(net.types(), ['1', '2']);
  assert.ok(a.events.some((e) => e.kind === 'peer-supported'));
  assert.equal(a.engine.contextCount, 0);
  assert.equal(b.engine.contextCount, 0);
});

test('ICMP no-support quoting our I1 → NO-SUPPORT, negative cache, ICMP hold-down, then IDLE', () => {
  const net = new Loop(20);
  const a = net.add('A', 31, A_PREFIXES);
  a.engine.prime(net.now, { ulid: '2001:db8:ee::1', locators: [], ttl: 300, source: 'configured' });
  net.flush();
  const i1 = net.log.at(-1)!;
  // Parameter Problem "unrecognized next header" (native Shim6, RFC 5533 §7.8) quoting our I1.
  assert.deepEqual(a.engine.handleIcmp(net.now, { type: 4, code: 1, info: 40, src: i1.src, dst: i1.dst, invoking: i1.bytes }), { kind: 'consumed' });
  net.flush();
  assert.equal(a.engine.status().contexts[0]!.state, State.NO_SUPPORT);
  assert.ok(a.events.some((e) => e.kind === 'context-failed' && e.reason === 'refused'));
  net.run(599_000);
  assert.equal(a.engine.contextCount, 1, 'still held down before ICMP_HOLDDOWN_TIME');
  net.run(601_000);
  assert.equal(a.engine.contextCount, 0);
});

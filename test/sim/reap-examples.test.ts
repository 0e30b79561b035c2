// RFC 5534 Appendix A, examples 1–5, replayed on the simulator with the real
// Engine (fast profile: Send Timeout 150 ms, advertised Keepalive Timeout 1 s).
// The message sequence is read off the wire; payload packets come from the app.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ms } from '../../shim/time.ts';
import type { Sim } from './sim.ts';
import { established, primeWith, shimPair, type ShimHost } from './shim-hosts.ts';
import { controlTypes, trace } from './trace.ts';

function setup(seed: number, aPrefixes?: readonly string[]) {
  const { sim, a, b } = shimPair(seed, aPrefixes ? { aPrefixes } : {});
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  return { sim, a, b };
}

function pump(sim: Sim, from: ShimHost[], to: ShimHost[], duration: number, every = 50): string[] {
  const ids: string[] = [];
  for (let t = 0; t < duration; t += every) {
    from.forEach((f, i) => ids.push(sim.send(f.host, to[i]!.ulid)));
    sim.runFor(every);
  }
  return ids;
}

const REAP = new Set(['Keepalive', 'Probe']);

test('RFC 5534 A example 1: no communications, no messages at all', () => {
  const { sim } = setup(5341);
  const t = sim.now;
  sim.runFor(60_000);
  assert.deepEqual(controlTypes(sim, ms(t + 1)), []);
});

test('RFC 5534 A example 2: bidirectional payload is its own proof of reachability, no REAP messages', () => {
  const { sim, a, b } = setup(5342);
  const t = sim.now;
  const ids = pump(sim, [a, b], [b, a], 10_000);
  assert.deepEqual(trace(sim, t).filter((l) => REAP.has(l.type)).map((l) => l.type), []);
  assert.deepEqual(sim.ledger.report().lost.filter((id) => ids.includes(id)), []);
});

test('RFC 5534 A example 3: unidirectional payload is answered by Keepalives from the receiver, no probes', () => {
  const { sim, a, b } = setup(5343);
  const t = sim.now;
  pump(sim, [a], [b], 5000, 100);
  const reap = trace(sim, t).filter((l) => REAP.has(l.type));
  assert.ok(reap.length >= 5, `keepalives flow (${reap.length})`);
  assert.ok(reap.every((l) => l.type === 'Keepalive' && l.from === 'b'), reap.map((l) => `${l.from}:${l.type}`).join(' '));
  // RFC 5534 §5.3: within the peer's Keepalive Timeout (1 s advertised): no gap larger than that.
  for (let i = 1; i < reap.length; i++) assert.ok(reap[i]!.at - reap[i - 1]!.at <= 1000);
});

test('RFC 5534 A example 4: failure of all paths through B1; exploration with probes; payload flows on (A, B2)', () => {
  const { sim, a, b } = setup(5344, ['2001:db8:a1::/64']);
  pump(sim, [a, b], [b, a], 500);
  const last = sim.ledger.deliveries.at(-1)!;
  assert.ok(last.via.src === b.locators[0] || last.via.dst === b.locators[0], 'traffic starts on B1');
  const t1 = sim.now;
  sim.setLocatorBlackhole(b.locators[0]!, true);
  const ids = pump(sim, [a, b], [b, a], 3000);
  const probes = trace(sim, t1).filter((l) => l.type === 'Probe');
  assert.ok(probes.some((p) => p.message?.type === 'Probe' && p.message.state === 'Exploring'), 'someone explores');
  assert.ok(probes.some((p) => p.message?.type === 'Probe' && p.message.state === 'InboundOk'), 'the other side reports InboundOk');
  assert.ok(probes.every((p) => a.locators.includes(p.dst) || b.locators.includes(p.dst)));
  for (const id of ids.slice(-10)) {
    const d = sim.ledger.of(id);
    assert.equal(d.length, 1, `${id} arrives`);
    assert.ok(d[0]!.via.src === b.locators[1] || d[0]!.via.dst === b.locators[1], 'on B2');
  }
  for (const h of [a, b]) {
    const back = sim.ledger.deliveries.find((d) => d.at > t1 && d.host === h.host.name && d.via.src !== b.locators[0] && d.via.dst !== b.locators[0]);
    assert.ok(back && back.at - t1 <= 1500, `${h.host.name} receives again ${back ? back.at - t1 : '?'} ms after T1`);
  }
});

test('RFC 5534 A example 5: one-way failure A1 → B1; A moves to another pair, B may keep sending on (B1, A1)', () => {
  const { sim, a, b } = setup(5345);
  pump(sim, [a, b], [b, a], 500);
  const ab = sim.ledger.deliveries.filter((d) => d.host === 'b').at(-1)!.via;
  assert.deepEqual(ab, { src: a.locators[0], dst: b.locators[0] }, 'traffic starts on (A1, B1)');
  const t1 = sim.now;
  sim.setLink(a.locators[0]!, b.locators[0]!, { blackhole: true }, 'forward');
  const ids = pump(sim, [a, b], [b, a], 3000);
  const probes = trace(sim, t1).filter((l) => l.type === 'Probe');
  assert.ok(probes.length > 0, 'REAP explored');
  for (const id of ids.slice(-10)) assert.equal(sim.ledger.of(id).length, 1, `${id} arrives`);
  const lastAB = sim.ledger.deliveries.filter((d) => d.host === 'b').at(-1)!.via;
  assert.notDeepEqual(lastAB, { src: a.locators[0], dst: b.locators[0] }, 'A → B left the broken direction');
  const firstAtB = sim.ledger.deliveries.find((d) => d.host === 'b' && d.at > t1 + 40)!;
  assert.ok(firstAtB.at - t1 <= 1500, `A → B re-homed after ${firstAtB.at - t1} ms`);
  assert.deepEqual(sim.ledger.report().misdelivered, []);
});

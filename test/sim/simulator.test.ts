// The simulator itself, driven with the trivial EchoEndpoint: virtual time,
// delays, faults per direction, black holes switched at a virtual time,
// determinism per seed, the adversary, the payload ledger and bounded drives.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ms } from '../../shim/time.ts';
import { EchoEndpoint } from './echo.ts';
import { Sim, SimStallError, SIM_EPOCH } from './sim.ts';

const A1 = '2001:db8:a1::1', A2 = '2001:db8:a2::1', B1 = '2001:db8:b1::1', B2 = '2001:db8:b2::1';

function pair(seed: number, link = {}) {
  const sim = new Sim(seed);
  const echoes = new Map<string, EchoEndpoint>();
  const mk = (name: string, locs: string[]) => sim.addHost({ name, locators: locs }, (s) => {
    const e = new EchoEndpoint(s.locators);
    echoes.set(name, e);
    return e;
  });
  const a = mk('a', [A1, A2]);
  const b = mk('b', [B1, B2]);
  sim.connectHosts(a, b, link);
  return { sim, a, b, ea: echoes.get('a')!, eb: echoes.get('b')! };
}

test('virtual time jumps: a ping over 20 ms links comes back at exactly +40 ms', () => {
  const { sim, a, ea } = pair(1);
  ea.ping(sim.now, [B1]);
  const took = sim.driveUntil(() => a.eventsOf('pong').length === 1, { within: 1000 });
  assert.equal(took, 40);
  assert.equal(sim.now, SIM_EPOCH + 40);
});

// No real waiting: over one-hour links the ping takes two hours of virtual time, and this test
// (synchronous, so nothing else can advance it) ends long before its one-minute timeout.
test('virtual time jumps: a ping over one-hour links comes back at +2 h without real waiting', { timeout: 60_000 }, (t) => {
  const HOUR = 3_600_000;
  const sim = new Sim(1);
  let ea!: EchoEndpoint;
  const a = sim.addHost({ name: 'a', locators: [A1] }, (s) => (ea = new EchoEndpoint(s.locators, { retryTimeout: ms(3 * HOUR), retries: 0 })));
  const b = sim.addHost({ name: 'b', locators: [B1] }, (s) => new EchoEndpoint(s.locators));
  sim.connectHosts(a, b, { delay: ms(HOUR) });
  const t0 = Date.now();
  ea.ping(sim.now, [B1]);
  const took = sim.driveUntil(() => a.eventsOf('pong').length === 1, { within: 3 * HOUR });
  t.diagnostic(`two virtual hours in ${Date.now() - t0} ms`);
  assert.equal(took, 2 * HOUR);
});

test('a one-way black hole loses only that direction; the retry moves to another pair', () => {
  const { sim, a, ea } = pair(2);
  sim.setLink(A1, B1, { blackhole: true }, 'reverse'); // B1 → A1 dead, A1 → B1 fine
  ea.ping(sim.now, [B1, B2]);
  sim.driveUntil(() => a.eventsOf('pong').length === 1, { within: 1000 });
  const pong = a.eventsOf('pong')[0]!;
  assert.equal(pong.attempt, 1, 'first attempt A1→B1 lost its answer');
  assert.equal(pong.src, A2);
  assert.equal(sim.net.stats(A1, B1)?.blackholed, 0);
  assert.equal(sim.net.stats(B1, A1)?.blackholed, 1);
  assert.equal(sim.now, SIM_EPOCH + 100 + 40);
});

test('a black hole switched on at a virtual time, and healed later', () => {
  const { sim, a, ea } = pair(3);
  sim.at(ms(SIM_EPOCH + 10), () => sim.setLocatorBlackhole(B1, true));
  sim.at(ms(SIM_EPOCH + 250), () => sim.setLocatorBlackhole(B1, false));
  ea.ping(sim.now, [B1]);
  sim.driveUntil(() => a.eventsOf('pong').length === 1, { within: 2000 });
  // t=0 PING reaches B1 at 20 but the answer leaves after the hole opened; retries
  // at 100 and 200 are swallowed; the one at 300 crosses the healed link.
  assert.equal(a.eventsOf('pong')[0]!.attempt, 3);
  assert.equal(sim.now, SIM_EPOCH + 340);
});

test('loss gives up after the retries; the same seed replays the same run, another seed differs', () => {
  const trace = (seed: number) => {
    const { sim, a, ea } = pair(seed, { loss: 0.5, jitter: ms(7) });
    const out: string[] = [];
    for (let i = 0; i < 30; i++) {
      ea.ping(sim.now, [B1, B2]);
      sim.driveUntil(() => a.events.length > i, { within: 5000 });
      const e = a.events[i]!;
      out.push(`${e.at}:${e.event.kind}:${String(e.event.attempt ?? '')}`);
    }
    return out.join(',');
  };
  const t1 = trace(42);
  assert.equal(trace(42), t1);
  assert.notEqual(trace(43), t1);
  assert.match(t1, /ping-failed/, '50% loss over 4 tries should fail some pings in 30');
  assert.match(t1, /pong/);
});

test('duplication delivers twice and the ledger flags it; reordering lets later packets overtake', () => {
  const { sim, a, b } = pair(4, { duplicate: 1 });
  const id = sim.send(a, B1, A1);
  sim.runFor(100);
  assert.equal(sim.ledger.of(id).length, 2);
  assert.deepEqual(sim.ledger.report().duplicated, [id]);
  sim.setLink(A1, B1, { duplicate: 0, reorder: 1, reorderDelay: ms(30) });
  const first = sim.send(a, B1, A1);
  sim.setLink(A1, B1, { reorder: 0 });
  const second = sim.send(a, B1, A1);
  sim.runFor(100);
  assert.ok(sim.ledger.of(second)[0]!.at < sim.ledger.of(first)[0]!.at);
  assert.equal(sim.ledger.of(first)[0]!.host, b.name);
});

test('the ledger catches a payload delivered for the wrong ULID pair', () => {
  const { sim, a, eb } = pair(5);
  const ok = sim.send(a, B1, A1);
  sim.runFor(50);
  eb.swapUlids = true;
  const bad = sim.send(a, B1, A1);
  sim.runFor(50);
  const r = sim.ledger.report();
  assert.deepEqual(r.lost, []);
  assert.deepEqual(r.misdelivered.map((d) => d.id), [bad]);
  assert.equal(sim.ledger.of(ok).length, 1);
});

test('no context means plain IPv6 between the ULIDs; no link means no route', () => {
  const { sim, a, b } = pair(6);
  const id = sim.send(a, B2, '2001:db8:ffff::1'); // the echo has no "context" for a foreign ULID
  sim.runFor(50);
  assert.equal(sim.ledger.sent.get(id)?.path, 'plain');
  assert.equal(sim.ledger.of(id).length, 0, 'no link from that address');
  assert.equal(sim.net.unrouted, 1);
  assert.equal(sim.violations.length, 1, 'sending from an address the host does not own is flagged');
  const id2 = sim.send(b, A2, B2);
  sim.runFor(50);
  assert.equal(sim.ledger.of(id2)[0]?.path, 'shim');
});

test('adversary: every packet is captured; replays and forgeries are delivered and marked', () => {
  const { sim, a, b, ea } = pair(7);
  ea.ping(sim.now, [B1]);
  sim.runFor(100);
  const pings = sim.adversary.find((c) => new TextDecoder().decode(c.packet.bytes).startsWith('PING'));
  assert.equal(pings.length, 1);
  assert.equal(pings[0]!.from, 'a');
  sim.adversary.replay(pings[0]!, { src: A2 });
  sim.adversary.inject({ src: '2001:db8:666::1', dst: A1, bytes: new TextEncoder().encode('PONG|99') }, ms(5));
  sim.runFor(100);
  assert.equal(sim.adversary.injected, 2);
  const pongs = sim.adversary.find((c) => c.from === 'b').map((c) => c.packet);
  assert.deepEqual(pongs.map((p) => `${p.src}>${p.dst}`), [`${B1}>${A1}`, `${B1}>${A2}`], 'b answered the replay on the spoofed source');
  assert.equal(a.drops.at(-1)?.reason, 'unexpected', 'the forged PONG with a stale nonce was dropped');
  assert.equal(b.drops.length, 0);
});

test('bounded drives: a stuck timer or an unreachable goal throws instead of spinning', () => {
  const { sim, a, ea } = pair(8);
  ea.stuckTimer = true;
  assert.throws(() => sim.driveUntil(() => false, { within: 1000, maxSteps: 500 }), (e: unknown) => e instanceof SimStallError && /500 steps/.test(e.message));
  ea.stuckTimer = false;
  sim.setLocatorBlackhole(B1, true);
  ea.ping(sim.now, [B1]);
  const before = a.events.length;
  assert.throws(() => sim.driveUntil(() => a.eventsOf('pong').length > 0, { within: 10_000 }), SimStallError);
  assert.equal(a.events.length, before + 1, 'the ping failed and then nothing was pending');
  ea.stuckTimer = true;
  assert.throws(() => sim.runUntil(ms(sim.now + 10), 300), SimStallError, 'runUntil is bounded too');
});

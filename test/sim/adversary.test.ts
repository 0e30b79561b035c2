// The adversary against an established pair, deterministic: random datagrams,
// bit-flipped captures and re-addressed replays must never make the Engine
// throw (RFC 5533 §12: a dropped packet is a value) and never change a context.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ms } from '../../shim/time.ts';
import { SimRng } from './rng.ts';
import { established, primeWith, shimPair } from './shim-hosts.ts';
import { allContexts } from './inspect.ts';

function establishedPair(seed: number) {
  const { sim, a, b } = shimPair(seed);
  primeWith(sim, a, b);
  sim.driveUntil(() => established(a) === 1 && established(b) === 1, { within: 5000 });
  for (let i = 0; i < 5; i++) { sim.send(a.host, b.ulid); sim.send(b.host, a.ulid); sim.runFor(50); }
  return { sim, a, b };
}

test('adversary: a payload header with a bad Hdr Ext Len is dropped, not thrown', () => {
  const { sim, a, b } = establishedPair(7001);
  const before = JSON.stringify(allContexts(b));
  const bytes = Uint8Array.from([17, 5, 0x80, 0, 0, 0, 0, 1, 1, 2, 3, 4]); // P = 1, Hdr Ext Len 5
  assert.doesNotThrow(() => {
    sim.adversary.inject({ src: a.locators[0]!, dst: b.locators[0]!, bytes });
    sim.runFor(10);
  });
  assert.equal(b.host.drops.at(-1)?.packet.bytes.length, bytes.length, 'dropped as a value');
  assert.equal(JSON.stringify(allContexts(b)), before);
});

test('adversary: 2000 random datagrams and bit-flipped captures never throw and never change a context', () => {
  const { sim, a, b } = establishedPair(7002);
  const r = new SimRng(7002);
  const snap = () => JSON.stringify([allContexts(a), allContexts(b)].map((cs) => cs.map((c) => ({ ...c, pair: undefined, usablePeerLocators: undefined }))));
  const before = snap();
  const all = [...a.locators, ...b.locators];
  const captured = sim.adversary.captured.filter((c) => !c.packet.plain);
  for (let i = 0; i < 2000; i++) {
    if (i % 2 === 0) {
      sim.adversary.inject({ src: r.pick([...all, '2001:db8:6666::1']), dst: r.pick(all), bytes: r.bytes(1 + r.int(120)) });
    } else {
      const c = r.pick(captured);
      sim.adversary.replay(c, { mutate: (x) => { const k = r.int(x.length); x[k] = x[k]! ^ (1 << r.int(8)); return x; } });
    }
    if (i % 50 === 49) sim.runFor(ms(1));
  }
  sim.runFor(100);
  assert.equal(snap(), before);
});

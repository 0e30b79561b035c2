// The adversary against an established pair, deterministic: random datagrams,
// bit-flipped captures and re-addressed replays must never make the Engine
// throw (RFC 5533 §12: a dropped packet is a value) and never change a context;
// ULID hijacks get no context and no R2, floods draw limited replies
// (docs/security.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ms } from '../../shim/time.ts';
import { fuzzRuns, fuzzSeed, SimRng } from '../helpers/rng.ts';
import { established, primeWith, shimPair } from './shim-hosts.ts';
import { allContexts } from './inspect.ts';
import { decodeMessage, encodeMessage, encodePayloadHeader, findOption, isPayloadHeader, type R1Message, type Shim6Option } from '../../shim/wire/index.ts';
import { resealChecksum } from '../helpers/octets.ts';
import { VerificationMethod } from '../../shim/constants.ts';

/** Both hosts' contexts as text, without what REAP may move on its own (the pair, the usable locators). */
function contextsOf(...hosts: ReturnType<typeof establishedPair>['a'][]): string {
  return JSON.stringify(hosts.map((h) => allContexts(h).map((c) => ({ ...c, pair: undefined, usablePeerLocators: undefined }))));
}

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

test('adversary: 2000 random datagrams and bit-flipped captures never throw and never change a context', (t) => {
  const seed = fuzzSeed(t, 7002);
  const { sim, a, b } = establishedPair(seed);
  const r = new SimRng(seed);
  const before = contextsOf(a, b);
  const all = [...a.locators, ...b.locators];
  const captured = sim.adversary.captured.filter((c) => !c.packet.plain);
  for (let i = 0; i < fuzzRuns(2000); i++) {
    if (i % 2 === 0) {
      sim.adversary.inject({ src: r.pick([...all, '2001:db8:6666::1']), dst: r.pick(all), bytes: r.bytes(1 + r.int(120)) });
    } else {
      const c = r.pick(captured);
      sim.adversary.replay(c, { mutate: (x) => { const k = r.int(x.length); x[k] = x[k]! ^ (1 << r.int(8)); return x; } });
    }
    if (i % 50 === 49) sim.runFor(ms(1));
  }
  sim.runFor(100);
  assert.equal(contextsOf(a, b), before);
});

// The captures mutated and resealed, so that they pass the checksum and reach the handlers. The I2
// is left out: replayed from its own locator inside the validator's lifetime it is a retransmitted
// I2 (RFC 5533 §7.13), whose Locator List replaces Ls(peer) — unproven entries kept, never
// destinations — as an on-path attacker may (docs/security.md "On-path attacker").
test('adversary: 2000 resealed mutations of captured messages and payloads never throw and never change a context', (t) => {
  const seed = fuzzSeed(t, 7005);
  const { sim, a, b } = establishedPair(seed);
  const r = new SimRng(seed);
  const before = contextsOf(a, b);
  const captured = sim.adversary.captured.filter((c) => !c.packet.plain && c.packet.bytes[2] !== 3);
  assert.ok(captured.length >= 4, 'the handshake and payloads were captured');
  for (let i = 0; i < fuzzRuns(2000); i++) {
    sim.adversary.replay(r.pick(captured), {
      mutate: (x) => {
        for (let e = 1 + r.int(3); e > 0; e--) {
          const k = 2 + r.int(x.length - 2);
          if (r.chance(0.5)) x[k] = x[k]! ^ (1 << r.int(8));
          else x[k] = r.int(256);
        }
        const y = r.chance(0.2) ? x.subarray(0, 8 + r.int(x.length - 7)) : x;
        if (y.length >= 8 && (y[2]! & 0x80) === 0) resealChecksum(y); // payload headers carry no checksum
        return y;
      },
    });
    if (i % 50 === 49) sim.runFor(ms(1));
  }
  sim.runFor(100);
  assert.equal(contextsOf(a, b), before);
});

/** The adversary's I1 → (R1 from the tap) → I2 towards `b`, from `src`, with `options`; the messages B sent back to `src`. */
function hijack(sim: ReturnType<typeof establishedPair>['sim'], bLocator: string, src: string, options: Shim6Option[]): string[] {
  const since = sim.adversary.captured.length;
  sim.adversary.inject({ src, dst: bLocator, bytes: encodeMessage({ type: 'I1', contextTag: 0x6666, initiatorNonce: 66, options: options.filter((o) => o.type === 'UlidPair') }) });
  sim.runFor(30);
  const r1 = sim.adversary.captured.slice(since).find((c) => c.packet.dst === src && !c.packet.plain && decodeMessage(c.packet.bytes).type === 'R1');
  assert.ok(r1, 'B answered the I1 with an R1 (the tool works)');
  const m = decodeMessage(r1.packet.bytes) as R1Message;
  const validator = findOption(m, 'ResponderValidator')!.validator;
  const mark = sim.adversary.captured.length;
  sim.adversary.inject({ src, dst: bLocator, bytes: encodeMessage({ type: 'I2', contextTag: 0x6666, initiatorNonce: 67, responderNonce: m.responderNonce, options: [{ type: 'ResponderValidator', critical: false, validator }, ...options] }) });
  sim.runFor(30);
  return sim.adversary.captured.slice(mark).filter((c) => c.packet.dst === src && !c.packet.plain).map((c) => decodeMessage(c.packet.bytes).type);
}

test('adversary: I2s claiming A\'s ULID, a third party\'s or B\'s own address (with and without a replayed PDS) get no R2 and change no context', () => {
  const { sim, a, b } = establishedPair(7003);
  const before = JSON.stringify(allContexts(b));
  const attacker = '2001:db8:6666::1';
  const claim = (ulid: string, extra: Shim6Option[] = []) => hijack(sim, b.locators[0]!, attacker, [{ type: 'UlidPair', critical: false, senderUlid: ulid, receiverUlid: b.ulid }, ...extra]);
  const replayedPds: Shim6Option[] = [
    { type: 'LocatorList', critical: false, generation: 9, locators: [...a.locators, attacker].map((address) => ({ address, verificationMethod: VerificationMethod.HBA })) },
    { type: 'CgaParameterDataStructure', critical: false, pds: a.params! },
  ];
  for (const [ulid, extra] of [[a.ulid, []], [a.ulid, replayedPds], ['2001:db8:53::53', []], [b.locators[1]!, []]] as const) {
    assert.deepEqual(claim(ulid, [...extra]), [], `no R2 for a claim of ${ulid}`);
  }
  assert.equal(JSON.stringify(allContexts(b)), before, 'B\'s contexts unchanged, none added');
  const guard = b.engine.status().guard;
  assert.deepEqual([guard.ulidUnproven, guard.ulidIsLocal], [3, 1], 'every refusal counted');
  // The positive control: the attacker as itself (no ULID option) may have a context of its own.
  assert.deepEqual(hijack(sim, b.locators[0]!, attacker, []), ['R2']);
  // A and B still talk.
  sim.send(a.host, b.ulid);
  sim.runFor(100);
  assert.equal(JSON.stringify(allContexts(b).filter((c) => c.ulids[1] === a.ulid)), before);
});

test('adversary: 20,000 I1s and 20,000 unknown-tag packets in 2 s draw replies within the limits; A and B keep talking', () => {
  const { sim, a, b } = establishedPair(7004);
  const mark = sim.adversary.captured.length;
  for (let i = 0; i < 20_000; i++) {
    const src = `2001:db8:66${(i % 50).toString(16).padStart(2, '0')}::${(i % 7) + 1}`;
    const bytes = i % 2 === 0
      ? encodeMessage({ type: 'I1', contextTag: i + 1, initiatorNonce: i, options: [] })
      : Uint8Array.from([...encodePayloadHeader(6, 0x5000_0000 + i), ...new Uint8Array(20)]);
    sim.adversary.inject({ src, dst: b.locators[0]!, bytes });
    if (i % 100 === 99) sim.runFor(10);
  }
  sim.runFor(100);
  const replies = sim.adversary.captured.slice(mark).filter((c) => c.packet.dst.startsWith('2001:db8:66')).length;
  // 2 s of flood from 50 /64s: the global bucket (200 + 200/s) bounds it.
  assert.ok(replies <= 200 + 200 * 2.2, `${replies} replies`);
  assert.ok(replies >= 200, 'the limiter lets a burst through (the flood did reach B)');
  sim.send(a.host, b.ulid);
  sim.send(b.host, a.ulid);
  sim.runFor(100);
  assert.equal(established(a), 1);
  assert.equal(b.engine.status().contexts.length, 1);
});

test('adversary: captured payloads re-addressed from a third address (the context\'s tag, not a verified locator of the peer) are not delivered and change nothing, at most an R1bis back; from the peer\'s own locator they are', () => {
  const { sim, a, b } = establishedPair(7006);
  const payloads = sim.adversary.captured.filter((c) => !c.packet.forged && !c.packet.plain && isPayloadHeader(c.packet.bytes)
    && a.locators.includes(c.packet.src) && b.locators.includes(c.packet.dst));
  assert.ok(payloads.length >= 3, 'A→B payloads were captured');
  const forgedAtB = (): number => sim.ledger.forgedDeliveries.filter((d) => d.host === b.host.name).length;
  const before = contextsOf(a, b);
  for (const src of ['2001:db8:6666::1', '2001:db8:53::53']) {
    const mark = sim.adversary.captured.length;
    for (const c of payloads) sim.adversary.replay(c, { src });
    sim.runFor(50);
    assert.equal(forgedAtB(), 0, `from ${src}: nothing delivered at B`);
    const back = sim.adversary.captured.slice(mark).filter((c) => c.packet.dst === src && !c.packet.plain).map((c) => decodeMessage(c.packet.bytes).type);
    assert.ok(back.every((t) => t === 'R1bis'), `from ${src}: only R1bis back (${back.join(', ')})`);
  }
  assert.equal(contextsOf(a, b), before, 'no context changed');
  // The control: the same bytes from A's locator carry the tag and come from a verified locator,
  // which is all a payload can show (RFC 5533 §16: an on-path attacker forging A's address gets this far).
  sim.adversary.replay(payloads[0]!);
  sim.runFor(50);
  assert.equal(forgedAtB(), 1, 'from A\'s own locator: delivered');
});

// REAP Probe answers are no reflector (docs/security.md "Off-path attacker", RFC 5534 §8, RFC 5533 §16).
// A peer lists any address it likes under its own CGA signature, so a "verified" locator V proves
// nothing about who receives there. The attack (review 2026-12-05, /work/rev-wire/repro/probe-reflect.ts):
// the attacker sets up an ordinary context from its own address X, Locator List [X, V] signed by its
// key, then floods Probes (State Exploring, the host's context tag) with V forged as the source and
// UDP source port 53. Before: every probe drew an answer to V:53 of up to 336 octets (6× a 56-octet
// probe). Now: a per-context and a global token bucket (`probeReplyLimit`), answers at most twice
// their probe, and to the context's port, not the one the forged datagram names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { Engine, State, resolveConfig, type EngineConfig, type Transmit } from '../../shim/engine/index.ts';
import { encodeMessage, tryDecodeMessage, type Shim6Message } from '../../shim/wire/index.ts';
import { generateCga, signCgaLocators } from '../../shim/wire/cga.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { configuredPair, hbaIdentity, sendShim } from '../sim/shim-hosts.ts';
import { sent } from '../sim/trace.ts';
import { SimRng } from '../helpers/rng.ts';

const V = '2001:db8:53::53'; // the victim: listed by the attacker, never its address
const VPORT = 53;

const { privateKey: KEY, publicKey } = generateKeyPairSync('rsa', { modulusLength: 1024 });
const SPKI = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));

function bytesFrom(seed: number): (n: number) => Uint8Array {
  const rng = new SimRng(seed);
  return (n) => { const b = new Uint8Array(n); rng.fill(b); return b; };
}

/** The host under attack: an HBA host on one prefix, as the daemon would run it. */
function target(seed: number, config: Partial<EngineConfig> = {}): { engine: Engine; ulid: string } {
  const id = hbaIdentity(['2001:db8:b1::/64'], new SimRng(seed));
  const engine = new Engine({ localLocators: id.locators.map((address) => ({ address })), localUlid: id.ulid, cgaParams: id.params, ...config }, new SimRng(seed + 7));
  return { engine, ulid: id.ulid };
}

const drain = (e: Engine): Transmit[] => { const out: Transmit[] = []; for (let t = e.pollTransmit(); t !== undefined; t = e.pollTransmit()) out.push(t); return out; };
const decode = (t: Transmit): Shim6Message => { const r = tryDecodeMessage(t.bytes); assert.ok(r.ok); return r.message; };

/**
 * The attacker's ordinary context from X (its own address), ULID a CGA of its key, Locator List
 * [X, V] signed by that key: V becomes a verified peer locator. Returns the host's context tag.
 */
function attackerContext(host: { engine: Engine; ulid: string }, x: string, seed: number, now: Millis): number {
  const cga = generateCga({ subnetPrefix: '2001:db8:66::/64', publicKey: SPKI, sec: 0, randomBytes: bytesFrom(seed) });
  const contextTag = 0x1234_5678 + seed;
  const initiatorNonce = 0x0bad_0000 + seed;
  const ulidPair = { type: 'UlidPair' as const, critical: false, senderUlid: cga.address, receiverUlid: host.ulid };
  host.engine.handleDatagram(now, { src: x, dst: host.ulid, bytes: encodeMessage({ type: 'I1', contextTag, initiatorNonce, options: [ulidPair] }) });
  const r1 = drain(host.engine).map(decode).find((m) => m.type === 'R1');
  assert.ok(r1 !== undefined && r1.type === 'R1', 'R1');
  const locs = [x, V];
  const i2 = encodeMessage({
    type: 'I2', contextTag, initiatorNonce, responderNonce: r1.responderNonce, options: [
      r1.options.find((o) => o.type === 'ResponderValidator')!, ulidPair,
      { type: 'LocatorList', critical: false, generation: 1, locators: locs.map((address) => ({ address, verificationMethod: VerificationMethod.CGA })) },
      { type: 'CgaParameterDataStructure', critical: false, pds: cga.params },
      { type: 'CgaSignature', critical: false, signature: signCgaLocators(KEY as KeyObject, 1, locs) },
    ],
  });
  host.engine.handleDatagram(now, { src: x, dst: host.ulid, bytes: i2 });
  const r2 = drain(host.engine).map(decode).find((m) => m.type === 'R2');
  assert.ok(r2 !== undefined && r2.type === 'R2', 'R2: the context is established');
  const ctx = host.engine.status().contexts.find((c) => c.peerUlid === cga.address)!;
  assert.equal(ctx.state, State.ESTABLISHED);
  assert.equal(ctx.peerLocators.find((l) => l.address === V)?.verified, true, 'V is a verified locator: the CGA signature covers it');
  return r2.contextTag;
}

/** A forged Probe from V (State Exploring, the host's tag), as probe-reflect.ts sends them. */
const forgedProbe = (tag: number, dst: string, n: number): Uint8Array =>
  encodeMessage({ type: 'Probe', contextTag: tag, state: 'Exploring', sent: [{ source: V, destination: dst, nonce: n, data: n }], received: [], options: [] });

test('forged Exploring probes from a CGA-listed locator: at most burst + rate·t answers, none over twice the probe, none to the forged port', (t) => {
  const host = target(301);
  const x = '2001:db8:66::bad';
  const tag = attackerContext(host, x, 1, ms(0));
  let toV: Transmit[] = [];
  let octetsIn = 0;
  let probes = 0;
  // 10,000 probes over 10 virtual seconds (1,000/s), as the review's 30,000 at 7,500/s.
  for (let i = 0; i < 10_000; i += 1) {
    const bytes = forgedProbe(tag, host.ulid, i + 1);
    octetsIn += bytes.length;
    probes++;
    host.engine.handleDatagram(ms(1000 + i), { src: V, dst: host.ulid, bytes, port: VPORT });
    host.engine.handleTimeout(ms(1000 + i));
    toV = toV.concat(drain(host.engine).filter((tx) => tx.dst === V));
  }
  const seconds = 10;
  // RFC timers: 8/s, burst 20 per context (defaultProbeReplyLimit).
  assert.ok(toV.length <= 20 + 8 * seconds + 1, `${toV.length} packets reached V from ${probes} probes`);
  assert.ok(toV.length >= 1, 'the first probes are still answered (REAP works for the peer it is)');
  const answers = toV.filter((tx) => decode(tx).type === 'Probe');
  for (const tx of answers) assert.ok(tx.bytes.length <= 2 * forgedProbe(tag, host.ulid, 1).length, `answer of ${tx.bytes.length} octets to a probe of 56`);
  assert.ok(toV.every((tx) => tx.port !== VPORT), 'nothing goes to the port the forged datagram names');
  const octetsOut = toV.reduce((n, tx) => n + tx.bytes.length, 0);
  assert.ok(octetsOut < octetsIn / 50, `${octetsOut} octets to V for ${octetsIn} in`);
  const g = host.engine.status().guard.probeReplies;
  t.diagnostic(`${probes} probes (${octetsIn} octets) → ${toV.length} datagrams (${octetsOut} octets) to V; ${JSON.stringify(g)}`);
  assert.ok(g.limited >= probes - 110, `limited ${g.limited}`);
  assert.ok(g.portPinned >= 1 && g.sent >= 1);
});

test('forged probes spread over many attacker contexts: the global bucket caps the host', () => {
  const host = target(302, { probeReplyLimit: { perContext: { rate: 4, burst: 10 }, global: { rate: 20, burst: 30 } } });
  const tags: Array<{ tag: number }> = [];
  for (let i = 0; i < 8; i++) tags.push({ tag: attackerContext(host, `2001:db8:66::${(i + 1).toString(16)}`, 10 + i, ms(0)) });
  let toV = 0;
  // 8 contexts × 100 probes at one instant: per-context bursts would allow 80, the global burst 30.
  for (let n = 0; n < 100; n++) {
    for (const { tag } of tags) {
      host.engine.handleDatagram(ms(1000), { src: V, dst: host.ulid, bytes: forgedProbe(tag, host.ulid, n + 1), port: VPORT });
      toV += drain(host.engine).filter((tx) => tx.dst === V).length;
    }
  }
  assert.ok(toV <= 30, `${toV} packets to V`);
  assert.ok(toV >= 20, `${toV}: the global burst is used`);
});

test('the limits off (closed labs): every probe is answered, as before', () => {
  const host = target(303, { probeReplyLimit: 'off' });
  const tag = attackerContext(host, '2001:db8:66::bad', 2, ms(0));
  let toV = 0;
  for (let n = 0; n < 100; n++) {
    host.engine.handleDatagram(ms(1000), { src: V, dst: host.ulid, bytes: forgedProbe(tag, host.ulid, n + 1), port: VPORT });
    toV += drain(host.engine).filter((tx) => tx.dst === V).length;
  }
  assert.equal(toV, 100);
});

test('a legitimate exploration (RFC timers) is answered in full: nothing limited, the pair moves', () => {
  const { sim, a, b } = configuredPair(307, { a: { profile: 'rfc' }, b: { profile: 'rfc' } });
  for (let t = 0; t < 20; t++) { sendShim(sim, a, b); sendShim(sim, b, a); sim.runFor(50); }
  sim.setLink(a.ulid, b.ulid, { blackhole: true }, 'forward');
  sim.setLink(b.ulid, a.ulid, { blackhole: true }, 'forward');
  const hole = sim.now;
  while (sim.now < hole + 40_000) { sendShim(sim, a, b); sendShim(sim, b, a); sim.runFor(250); }
  for (const h of [a, b]) {
    const c = h.engine.status().contexts[0]!;
    assert.equal(c.reap, 'Operational');
    assert.ok(c.rehomings >= 1, 'moved off the black hole');
    const g = h.engine.status().guard.probeReplies;
    assert.equal(g.limited, 0, 'no probe of a peer that keeps to RFC 5534 §4.3 is left unanswered');
    assert.equal(g.portPinned, 0);
  }
  assert.ok(sent(sim, 'a').some((l) => l.at >= hole && l.type === 'Probe'));
  assert.ok(b.engine.status().guard.probeReplies.sent + a.engine.status().guard.probeReplies.sent >= 1, 'probes were answered');
});

test('probeReplyLimit defaults follow the timers; a partial setting keeps the rest', () => {
  const limit = (c: Partial<EngineConfig>): unknown => resolveConfig({ localLocators: [{ address: '2001:db8:b1::1' }], ...c }).probeReplyLimit;
  assert.deepEqual(limit({}), { perContext: { rate: 8, burst: 20 }, global: { rate: 400, burst: 800 }, knownPeers: { rate: 200, burst: 400 } });
  assert.deepEqual(limit({ profile: 'fast', probeReplyLimit: { global: { burst: 7 } } }), { perContext: { rate: 80, burst: 20 }, global: { rate: 4000, burst: 7 }, knownPeers: { rate: 2000, burst: 4000 } });
  assert.deepEqual(limit({ probeReplyLimit: { knownPeers: { rate: 50 } } }), { perContext: { rate: 8, burst: 20 }, global: { rate: 400, burst: 800 }, knownPeers: { rate: 50, burst: 400 } });
  assert.throws(() => new Engine({ localLocators: [{ address: '2001:db8:b1::1' }], probeReplyLimit: { perContext: { rate: -1 } } }, new SimRng(1)), /probeReplyLimit/);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Sim } from '../sim/sim.ts';
import { configuredPair, engineEvents, sendShim, shimDeliveries, type ShimHost } from '../sim/shim-hosts.ts';
import { sent, sentTypes } from '../sim/trace.ts';
import { State, defaultProbeReplyLimit, type EngineEvent } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, findOption, type ProbeMessage, type R1Message, type R2Message } from '../../shim/wire/index.ts';
import { parseIpv6 } from '../../shim/wire/ipv6.ts';
import { ms } from '../../shim/time.ts';


/** Bidirectional payload every 50 ms until `until`. */
function traffic(sim: Sim, a: ShimHost, b: ShimHost, until: number): void {
  while (sim.now < until) {
    sendShim(sim, a, b);
    sendShim(sim, b, a);
    sim.runFor(50);
  }
}

/** Blackhole (or heal) one direction of a locator pair. */
const block = (sim: Sim, src: string, dst: string, on = true): void => sim.setLink(src, dst, { blackhole: on }, 'forward');

test('REAP: silent black hole of the current pair in both directions → probes, new pair within 1 s (fast), payload flows', () => {
  const { sim, a, b } = configuredPair(11);
  traffic(sim, a, b, sim.now + 800);
  block(sim, a.ulid, b.ulid);
  block(sim, b.ulid, a.ulid);
  const hole = sim.now;
  const deliveredBefore = shimDeliveries(sim, b).length;
  traffic(sim, a, b, hole + 2000);
  const changedA = engineEvents(a).find((e) => e.kind === 'locator-pair-changed');
  const changedB = engineEvents(b).find((e) => e.kind === 'locator-pair-changed');
  assert.ok(changedA && changedB, `pair changes: ${JSON.stringify([changedA, changedB])}`);
  assert.ok(sentTypes(sim).includes('Probe'), 'Probe messages were exchanged');
  const firstNew = sent(sim, 'a').find((l) => l.at >= hole && l.type === 'payload' && (l.src !== a.ulid || l.dst !== b.ulid));
  assert.ok(firstNew, 'A sent payload on another pair');
  assert.ok(firstNew.at - hole <= 1000, `re-homed after ${firstNew.at - hole} ms`);
  assert.ok(shimDeliveries(sim, b).length > deliveredBefore + 5, 'payload delivered after re-homing');
  // payload stayed on the old pair until the new one was confirmed
  const switchAt = firstNew.at;
  assert.ok(sent(sim, 'a').filter((l) => l.at >= hole && l.at < switchAt && l.type === 'payload').every((l) => l.src === a.ulid && l.dst === b.ulid));
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
});

test('REAP: one-way failure A→B on the current pair → A moves, B may keep its direction (different pairs per direction)', () => {
  const { sim, a, b } = configuredPair(13);
  const start = sim.now;
  traffic(sim, a, b, start + 800);
  block(sim, a.ulid, b.ulid);
  traffic(sim, a, b, start + 3800);
  const sa = a.engine.status().contexts[0]!;
  const sb = b.engine.status().contexts[0]!;
  assert.notDeepEqual(sa.pair, { local: a.ulid, peer: b.ulid }, 'A no longer sends on the broken pair');
  assert.ok(sb.pair.local === b.ulid && sb.pair.peer === a.ulid, `B kept its working direction: ${JSON.stringify(sb.pair)}`);
  const late = shimDeliveries(sim, b).length;
  traffic(sim, a, b, start + 4800);
  assert.ok(shimDeliveries(sim, b).length > late, 'A → B payload flows again');
  assert.equal(sa.reap, 'Operational');
  assert.equal(sb.reap, 'Operational');
});

test('REAP: unidirectional traffic is kept alive by Keepalives (RFC 5534 App. A ex. 3), no exploration', () => {
  const { sim, a, b } = configuredPair(15);
  const end = sim.now + 4800;
  while (sim.now < end) {
    sendShim(sim, a, b);
    sim.runFor(100);
  }
  assert.ok(sentTypes(sim, 'b').includes('Keepalive'), 'B sent Keepalives');
  assert.ok(!sentTypes(sim).includes('Probe'), 'no Probe');
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
});

test('Close / CloseAck: coordinated removal on both ends', () => {
  const { sim, a, b } = configuredPair(17);
  a.engine.close(sim.now, b.ulid);
  sim.runFor(200);
  assert.deepEqual(sentTypes(sim).slice(-2), ['Close', 'CloseAck']);
  assert.equal(a.engine.contextCount, 0);
  assert.equal(b.engine.contextCount, 0);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-closed' && e.reason === 'local-close'));
  assert.ok(engineEvents(b).some((e) => e.kind === 'context-closed' && e.reason === 'peer-close'));
});

test('idle contexts are garbage-collected after the idle timeout', () => {
  const { sim, a, b } = configuredPair(19);
  sim.runFor(121_000 + 800);
  assert.equal(a.engine.contextCount, 0);
  assert.equal(b.engine.contextCount, 0);
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-closed' && e.reason === 'idle'));
});

test('Close to a peer without the extension: its Error code 0 (unknown type) ends CLOSING at once; silence ends it after the retries', () => {
  const { sim, a, b } = configuredPair(93);
  a.engine.close(sim.now, b.ulid);
  const close = a.engine.pollTransmit()!;
  assert.equal(close.bytes[2]! & 0x7f, 60);
  assert.equal(a.engine.status().contexts[0]?.state, State.CLOSING);
  // What a shim6 host that lacks types 60/61 answers (RFC 5533 §5.14: Pointer at the type octet).
  const quoted = new Uint8Array(40 + close.bytes.length);
  quoted[0] = 0x60; quoted[6] = 140;
  quoted.set(parseIpv6(close.src), 8); quoted.set(parseIpv6(close.dst), 24); quoted.set(close.bytes, 40);
  const err = encodeMessage({ type: 'Error', errorCode: 0, pointer: 42, offendingPacket: quoted, options: [] });
  assert.equal(a.engine.handleDatagram(sim.now, { src: close.dst, dst: close.src, bytes: err }).kind, 'consumed');
  assert.equal(a.engine.contextCount, 0);
  sim.flush();
  assert.ok(engineEvents(a).some((e) => e.kind === 'context-closed' && e.reason === 'local-close'));

  const second = configuredPair(95);
  block(second.sim, second.a.ulid, second.b.ulid);
  second.a.engine.close(second.sim.now, second.b.ulid);
  second.sim.runFor(10_000);
  assert.equal(sentTypes(second.sim, 'a').filter((t) => t === 'Close').length, 4, '1 + closeRetriesMax');
  assert.equal(second.a.engine.contextCount, 0);
  assert.ok(engineEvents(second.a).some((e) => e.kind === 'context-closed' && e.reason === 'close-timeout'));
});

test('REAP from kernel counters (kernelTraffic): traffic both ways keeps it Operational; sent with nothing received explores (reap-state events), and a pair that answers is kept', () => {
  const { sim, a, b } = configuredPair(31);
  const kernel = (h: ShimHost, peer: ShimHost, sent: boolean, received: boolean) => assert.ok(h.engine.kernelTraffic(sim.now, h.ulid, peer.ulid, { sent, received }));
  const start = sim.now;
  while (sim.now < start + 1000) {
    kernel(a, b, true, true);
    kernel(b, a, true, true);
    sim.runFor(50);
  }
  assert.equal(engineEvents(a).filter((e) => e.kind === 'reap-state').length, 0, 'no exploration while the kernel sees packets both ways');
  // A's packets go out, nothing comes back (as the kernel counts it); the pair itself still carries probes.
  const from = sim.now;
  while (sim.now < from + 2000) {
    kernel(a, b, true, false);
    sim.runFor(50);
  }
  const states = engineEvents(a).filter((e) => e.kind === 'reap-state');
  assert.deepEqual(states.slice(0, 2).map((e) => e.kind === 'reap-state' && e.state), ['exploring', 'operational']);
  assert.deepEqual(states[0]!.kind === 'reap-state' && states[0]!.pair, { local: a.ulid, peer: b.ulid }, 'the event names the pair');
  assert.ok(!engineEvents(a).some((e) => e.kind === 'locator-pair-changed'), 'the current pair answered the probes: kept');
  assert.equal(a.engine.kernelTraffic(sim.now, a.ulid, 'fd00::dead', { sent: true, received: false }), false, 'no context: nothing to feed');
});

test('kernelTraffic: a reading whose inbound counter moved makes it the last received (status lastReceivedAgoMs 0); one that saw only sent packets, or nothing, leaves it', () => {
  const { sim, a, b } = configuredPair(41);
  const ago = () => a.engine.status(sim.now).contexts.find((c) => c.peerUlid === b.ulid)!.lastReceivedAgoMs;
  const before = ago();
  assert.ok(a.engine.kernelTraffic(sim.now, a.ulid, b.ulid, { sent: true, received: false }));
  assert.equal(ago(), before, 'only sent: unchanged');
  assert.ok(a.engine.kernelTraffic(sim.now, a.ulid, b.ulid, { sent: false, received: true }));
  assert.equal(ago(), 0, 'the peer\'s packets came: received at this reading');
  sim.runFor(5000);
  assert.equal(ago(), 5000);
  assert.ok(a.engine.kernelTraffic(sim.now, a.ulid, b.ulid, { sent: true, received: false }));
  assert.ok(a.engine.kernelTraffic(sim.now, a.ulid, b.ulid, { sent: false, received: false }));
  assert.equal(ago(), 5000, 'nothing came in: unchanged');
  assert.ok(a.engine.kernelTraffic(sim.now, a.ulid, b.ulid, { sent: true, received: true }));
  assert.equal(ago(), 0, 'both ways in one reading: received at this reading');
});

test('REAP from kernel counters: a reading that saw both ways, then a pause longer than the Send Timeout: either end may have had the last packet, both keep the other quiet with Keepalives, neither explores', () => {
  const { sim, a, b } = configuredPair(37);
  const kernel = (h: ShimHost, peer: ShimHost, sent: boolean, received: boolean) => assert.ok(h.engine.kernelTraffic(sim.now, h.ulid, peer.ulid, { sent, received }));
  const keepalives = (h: string) => sentTypes(sim, h).filter((x) => x === 'Keepalive').length;
  const before = { a: keepalives('a'), b: keepalives('b') };
  // A paced stream: a burst (a round trip in one reading at each end), then 400 ms of nothing, five times.
  for (let burst = 0; burst < 5; burst++) {
    kernel(a, b, true, true);
    sim.runFor(10);
    kernel(b, a, true, true);
    sim.runFor(400);
  }
  const explored = (h: ShimHost) => engineEvents(h).filter((e) => e.kind === 'reap-state');
  assert.deepEqual([explored(a).length, explored(b).length], [0, 0], 'no exploration in the pauses');
  assert.ok(keepalives('a') > before.a && keepalives('b') > before.b, 'each end sent Keepalives in the pauses');
  // While readings keep seeing both ways, no Keepalive goes (each reading restarts the timer).
  const streaming = { a: keepalives('a'), b: keepalives('b') };
  const from = sim.now;
  while (sim.now < from + 1000) {
    kernel(a, b, true, true);
    kernel(b, a, true, true);
    sim.runFor(25);
  }
  assert.deepEqual([keepalives('a'), keepalives('b')], [streaming.a, streaming.b], 'no Keepalive while packets flow both ways');
  // The pair fails after such a reading: A sends on and hears nothing. Its Send Timer ran from that
  // reading (A's packet may have been the last), its Keepalive timer too (B's may have been).
  block(sim, a.ulid, b.ulid);
  block(sim, b.ulid, a.ulid);
  kernel(a, b, true, true);
  const failedAt = sim.now;
  const timers = a.engine.status(sim.now).contexts[0]!.timers as Record<string, number>;
  assert.deepEqual([timers.send, timers.keepalive], [failedAt + 150, failedAt + 150], 'both timers run from the reading (fast: 150 ms)');
  while (sim.now < failedAt + 1000) {
    sim.runFor(25);
    kernel(a, b, true, false);
  }
  const first = a.host.events.find((e) => e.at >= failedAt && (e.event as unknown as { kind: string }).kind === 'reap-state');
  assert.ok(first !== undefined && (first.event as unknown as { state: string }).state === 'exploring', 'A explored');
  assert.ok(first.at - failedAt <= 150, `within a Send Timeout of the reading that saw both ways (${first.at - failedAt} ms)`);
  assert.ok(engineEvents(a).some((e) => e.kind === 'locator-pair-changed'), 'and moved off the black-holed pair');
});

test('a packet the kernel already counted (encapsulate with counted) is sent and drives REAP, and is not counted again in the traffic figures', () => {
  const { sim, a, b } = configuredPair(35);
  const traffic = () => a.engine.status(sim.now).contexts[0]!.traffic;
  const before = traffic();
  const p = { srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: 17, payload: new Uint8Array(100) };
  assert.equal(a.engine.encapsulate(sim.now, { ...p, counted: true }).kind, 'send');
  assert.deepEqual(traffic(), before, 'not counted again');
  assert.equal(a.engine.encapsulate(sim.now, p).kind, 'send');
  assert.deepEqual([traffic().packetsOut, traffic().bytesOut], [before.packetsOut + 1, before.bytesOut + 100], 'counted otherwise');
  // Only such packets sent, nothing comes back: REAP's Send Timer runs on them and A explores.
  block(sim, b.ulid, a.ulid);
  const from = sim.now;
  while (sim.now < from + 2000) {
    a.engine.encapsulate(sim.now, { ...p, counted: true });
    sim.runFor(50);
  }
  assert.ok(engineEvents(a).some((e) => e.kind === 'reap-state' && e.state === 'exploring'), 'explored');
});

test('REAP from kernel counters: the ULID pair black-holed, A explores and moves off it; reap-state operational names the new pair', () => {
  const { sim, a, b } = configuredPair(33);
  const kernel = (h: ShimHost, peer: ShimHost, sent: boolean, received: boolean) => h.engine.kernelTraffic(sim.now, h.ulid, peer.ulid, { sent, received });
  block(sim, a.ulid, b.ulid);
  block(sim, b.ulid, a.ulid);
  const start = sim.now;
  while (sim.now < start + 3000) {
    kernel(a, b, true, false);
    kernel(b, a, true, false);
    sim.runFor(50);
  }
  const changed = engineEvents(a).find((e) => e.kind === 'locator-pair-changed');
  assert.ok(changed, 'A re-homed');
  const last = engineEvents(a).filter((e) => e.kind === 'reap-state').at(-1);
  assert.ok(last?.kind === 'reap-state' && last.state === 'operational' && (last.pair.local !== a.ulid || last.pair.peer !== b.ulid), JSON.stringify(last));
});

test('liveness (kernel path): a Keepalive with the peer\'s context tag on the current pair at once; no established context, nothing sent', () => {
  const { sim, a, b } = configuredPair(35);
  const before = sent(sim, 'a').length;
  assert.equal(a.engine.liveness(a.ulid, b.ulid), true);
  sim.runFor(1);
  const ka = sent(sim, 'a').slice(before).filter((l) => l.type === 'Keepalive');
  assert.equal(ka.length, 1, 'one Keepalive');
  const ctxB = b.engine.status().contexts.find((c) => c.peerUlid === a.ulid)!;
  assert.equal((ka[0]!.message as { contextTag: number }).contextTag, ctxB.contextTag, 'B\'s own tag: B finds the context by it (or answers R1bis without it)');
  assert.equal(ka[0]!.src, a.ulid);
  assert.equal(ka[0]!.dst, b.ulid);
  assert.equal(a.engine.liveness(a.ulid, 'fd00::dead'), false);
});

test('REAP: a locator the peer flags BROKEN (deprecated) is never kept as the destination, though it still answers probes', () => {
  const { sim, a, b } = configuredPair(17);
  const start = sim.now;
  traffic(sim, a, b, start + 800);
  // A's ULID address is deprecated: still there and working, listed with the BROKEN flag (shim/daemon).
  const flaggedAt = sim.now;
  a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]!, flags: 0x01 }, { address: a.locators[1]! }]);
  traffic(sim, a, b, start + 4000);
  // Not even a probe (which A would answer, and report: the lab saw B keep the pair that way).
  // (Payload stays on the pair until REAP has confirmed another, RFC 5533 §10.4.)
  const probes = sent(sim, 'b').filter((l) => l.at >= flaggedAt && l.dst === a.ulid && l.type === 'Probe');
  assert.deepEqual(probes.map((l) => l.at - flaggedAt), [], 'B sends no probe to the flagged locator');
  const sa = a.engine.status().contexts[0]!;
  const sb = b.engine.status().contexts[0]!;
  assert.notEqual(sa.pair.local, a.ulid, `A no longer sends from its deprecated locator: ${JSON.stringify(sa.pair)}`);
  assert.notEqual(sb.pair.peer, a.ulid, `B no longer sends to A's deprecated locator: ${JSON.stringify(sb.pair)}`);
  assert.equal(sb.reap, 'Operational');
  const late = shimDeliveries(sim, a).length;
  traffic(sim, a, b, start + 5000);
  assert.ok(shimDeliveries(sim, a).length > late, 'B → A payload flows');
});

/**
 * A false exploration on a working network leaves A's probes on P (the current pair) in B's
 * received-probe log: B answered them from Operational and never explored itself, so its log was
 * not emptied (RFC 5534 §5.2 empties it on entering Exploring). P then fails; A explores and B's
 * InboundOk answer over Q still lists those old P probes next to A's new Q probe.
 */
function staleReportsWorld(seed: number): { sim: Sim; a: ShimHost; b: ShimHost; oldNonces: Set<number>; hole: number } {
  const { sim, a, b } = configuredPair(seed);
  const kernel = (h: ShimHost, peer: ShimHost, s: boolean, r: boolean) => assert.ok(h.engine.kernelTraffic(sim.now, h.ulid, peer.ulid, { sent: s, received: r }));
  // A's kernel sees its packets go out and nothing back (a stalled reading): it explores while
  // the network works, probes P and Q, and B's reports of them keep P.
  const falseAt = sim.now;
  while (sim.now < falseAt + 400) {
    kernel(a, b, true, false);
    sim.runFor(25);
  }
  assert.ok(!engineEvents(a).some((e) => e.kind === 'locator-pair-changed'), 'the false exploration kept P');
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
  const oldNonces = new Set(sent(sim, 'a').filter((l) => l.type === 'Probe' && l.src === a.ulid && l.dst === b.ulid)
    .map((l) => (l.message as ProbeMessage).sent[0]!.nonce));
  assert.ok(oldNonces.size > 0, 'A probed P during the false exploration');
  // Traffic both ways on P for a while; neither end explores.
  const quiet = engineEvents(a).length;
  traffic(sim, a, b, sim.now + 1000);
  assert.equal(engineEvents(a).slice(quiet).filter((e) => e.kind === 'reap-state').length, 0);
  block(sim, a.ulid, b.ulid);
  block(sim, b.ulid, a.ulid);
  return { sim, a, b, oldNonces, hole: sim.now };
}

test('REAP: the peer\'s reports of probes A sent before the failure do not keep the dead pair: A re-homes to the working pair at the first answer', () => {
  const { sim, a, b, oldNonces, hole } = staleReportsWorld(41);
  const p = { local: a.ulid, peer: b.ulid };
  const delivered = shimDeliveries(sim, b).length;
  // Only A sends (an upload): its Send Timer notices the black hole.
  while (sim.now < hole + 1500) {
    sendShim(sim, a, b);
    sim.runFor(50);
  }
  // The scenario: B's InboundOk answer over the other pair lists A's old P probes.
  const answers = sent(sim, 'b').filter((l) => l.at >= hole && l.type === 'Probe' && (l.message as ProbeMessage).state === 'InboundOk');
  assert.ok(answers.some((l) => l.src !== b.ulid && (l.message as ProbeMessage).received.some((r) => oldNonces.has(r.nonce))), 'B reported the old P probes over Q');
  const states = a.host.events.filter((e) => e.at >= hole && (e.event as unknown as EngineEvent).kind === 'reap-state').map((e) => e.event as unknown as EngineEvent & { kind: 'reap-state' });
  assert.equal(states[0]?.state, 'exploring');
  const op = states.find((e) => e.state === 'operational');
  assert.ok(op !== undefined, 'A went Operational again');
  assert.notDeepEqual(op.pair, p, `A went Operational on the black-holed pair: ${JSON.stringify(states)}`);
  assert.equal(states.filter((e) => e.state === 'exploring').length, 1, 'one exploration: the first answer re-homed A');
  const changed = engineEvents(a).find((e) => e.kind === 'locator-pair-changed');
  assert.ok(changed?.kind === 'locator-pair-changed' && changed.old.local === p.local && changed.old.peer === p.peer, JSON.stringify(changed));
  assert.ok(shimDeliveries(sim, b).length > delivered + 5, 'A → B payload flows on the new pair');
});

test('REAP: an InboundOk probe reporting only probes A sent before its exploration does not make A Operational; A answers it and keeps exploring', () => {
  const { sim, a, b, oldNonces, hole } = staleReportsWorld(43);
  // Nothing from B reaches A but what the test hands it.
  for (const bl of b.locators) for (const al of a.locators) block(sim, bl, al);
  while (a.engine.status().contexts[0]!.reap !== 'Exploring' && sim.now < hole + 1000) {
    sendShim(sim, a, b);
    sim.runFor(10);
  }
  assert.equal(a.engine.status().contexts[0]!.reap, 'Exploring');
  const old = sent(sim, 'a').filter((l) => l.at < hole && l.type === 'Probe' && oldNonces.has((l.message as ProbeMessage).sent[0]!.nonce)).map((l) => (l.message as ProbeMessage).sent[0]!);
  const tag = a.engine.status().contexts[0]!.contextTag;
  const probe = encodeMessage({ type: 'Probe', contextTag: tag, state: 'InboundOk', sent: [{ source: b.locators[1]!, destination: a.locators[1]!, nonce: 7, data: 0 }], received: old, options: [] });
  const before = sent(sim, 'a').length;
  assert.equal(a.engine.handleDatagram(sim.now, { src: b.locators[1]!, dst: a.locators[1]!, bytes: probe }).kind, 'consumed');
  sim.flush();
  const ctx = a.engine.status().contexts[0]!;
  assert.equal(ctx.reap, 'InboundOk', 'it hears B, but no pair is proven');
  assert.deepEqual(ctx.pair, { local: a.ulid, peer: b.ulid });
  const answer = sent(sim, 'a').slice(before).filter((l) => l.type === 'Probe');
  assert.ok(answer.some((l) => (l.message as ProbeMessage).state === 'InboundOk' && l.src === a.locators[1] && l.dst === b.locators[1] && (l.message as ProbeMessage).received.some((r) => r.nonce === 7)), 'answered with an InboundOk probe on the reverse pair, reporting B\'s');
  // B's next answer reports one of these: A re-homes.
  const fresh = answer.find((l) => l.src === a.locators[1])!.message as ProbeMessage;
  const op = encodeMessage({ type: 'Probe', contextTag: tag, state: 'Operational', sent: [{ source: b.locators[1]!, destination: a.locators[1]!, nonce: 8, data: 0 }], received: [fresh.sent[0]!], options: [] });
  a.engine.handleDatagram(sim.now, { src: b.locators[1]!, dst: a.locators[1]!, bytes: op });
  sim.flush();
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
  assert.deepEqual(a.engine.status().contexts[0]!.pair, { local: a.locators[1], peer: b.locators[1] });
});

/** An ordinary context at `h` set up from the attacker's own address `x` (its ULID): `h`'s tag for it. */
function attackerContext(sim: Sim, h: ShimHost, x: string, n: number): number {
  const drain = (): Uint8Array[] => {
    const out: Uint8Array[] = [];
    for (let t = h.engine.pollTransmit(); t !== undefined; t = h.engine.pollTransmit()) if (t.dst === x) out.push(t.bytes);
    return out;
  };
  h.engine.handleDatagram(sim.now, { src: x, dst: h.ulid, bytes: encodeMessage({ type: 'I1', contextTag: 0x100 + n, initiatorNonce: n, options: [] }) });
  const r1 = decodeMessage(drain()[0]!) as R1Message;
  const i2 = encodeMessage({ type: 'I2', contextTag: 0x100 + n, initiatorNonce: n, responderNonce: r1.responderNonce, options: [findOption(r1, 'ResponderValidator')!] });
  h.engine.handleDatagram(sim.now, { src: x, dst: h.ulid, bytes: i2 });
  const r2 = decodeMessage(drain()[0]!) as R2Message;
  assert.equal(r2.type, 'R2');
  sim.flush();
  return r2.contextTag;
}

/**
 * A and B (RFC timers) exchange payload, then the ULID pair fails both ways for 40 s while the
 * other pairs work. With `attack`, an attacker first sets up 1,500 ordinary contexts at B from its
 * own addresses (150 /64s, within maxContextsPerPrefix and the R1 budgets), then sends 10,000
 * Exploring probes a second over them, each context at 6.7/s (under its own bucket, 8/s): together
 * they keep B's global bucket of probe answers (400/s) empty. With `connected`, B's driver answers
 * `limit-pressure` as the daemon does, with its open connections: A's ULID (the application's
 * payload between the ULIDs). Only the simulator's clock.
 */
function probeFlood(o: { attack: boolean; connected: boolean }): { a: ShimHost; b: ShimHost; pressure: Array<EngineEvent & { kind: 'limit-pressure' }>; seconds: number } {
  const { sim, a, b } = configuredPair(911, { a: { profile: 'rfc' }, b: { profile: 'rfc' } });
  traffic(sim, a, b, sim.now + 1000);
  const attacker: Array<{ x: string; tag: number }> = [];
  if (o.attack) {
    for (let i = 0; i < 1500; i++) {
      const x = `2001:db8:66:${(i % 150).toString(16)}::${(Math.floor(i / 150) + 1).toString(16)}`;
      attacker.push({ x, tag: attackerContext(sim, b, x, i + 1) });
      sim.runFor(6);
    }
  }
  const pressure: Array<EngineEvent & { kind: 'limit-pressure' }> = [];
  let seen = b.host.events.length;
  let n = 0;
  // Every 10 ms: 100 probes, evenly spread; then B's driver reads its events.
  const step = (): void => {
    if (o.attack) {
      for (let k = 0; k < 100; k++) {
        const { x, tag } = attacker[n++ % attacker.length]!;
        sim.adversary.inject({ src: x, dst: b.ulid, bytes: encodeMessage({ type: 'Probe', contextTag: tag, state: 'Exploring', sent: [{ source: x, destination: b.ulid, nonce: n, data: 0 }], received: [], options: [] }) }, ms(0.05 + k * 0.1));
      }
    }
    sim.runFor(10);
    for (const { event } of b.host.events.slice(seen)) {
      const e = event as unknown as EngineEvent;
      if (e.kind !== 'limit-pressure') continue;
      pressure.push(e);
      if (o.connected) b.engine.setKnownPeers(sim.now, [a.ulid]);
    }
    seen = b.host.events.length;
  };
  for (let t = 0; t < 100; t++) step(); // 1 s of flood before the failure
  block(sim, a.ulid, b.ulid);
  block(sim, b.ulid, a.ulid);
  const hole = sim.now;
  while (sim.now < hole + 40_000) {
    if ((sim.now - hole) % 250 === 0) { sendShim(sim, a, b); sendShim(sim, b, a); }
    step();
  }
  return { a, b, pressure, seconds: sim.now / 1000 };
}

const peerContext = (h: ShimHost, peer: ShimHost) => h.engine.status().contexts.find((c) => c.peerUlid === peer.ulid)!;

test('REAP under a probe flood, control: without the attacker, A and B move off the failed ULID pair within 40 s (RFC timers)', () => {
  const { a, b } = probeFlood({ attack: false, connected: false });
  for (const [h, peer] of [[a, b], [b, a]] as const) {
    const c = peerContext(h, peer);
    assert.equal(c.state, State.ESTABLISHED);
    assert.ok(c.rehomings >= 1 && c.reap === 'Operational', `${h.host.name}: REAP ${c.reap}, ${c.rehomings} re-homings`);
  }
});

test('REAP under a probe flood from an attacker\'s own 1,500 contexts that keeps the global bucket of probe answers empty: the connected peer\'s context is answered from the known peers\' reserve and both ends re-home; the answers stay within global + reserve', () => {
  const { a, b, pressure, seconds } = probeFlood({ attack: true, connected: true });
  const g = b.engine.status().guard;
  for (const [h, peer] of [[a, b], [b, a]] as const) {
    const c = peerContext(h, peer);
    assert.ok(c.rehomings >= 1 && c.reap === 'Operational', `${h.host.name}'s context after 40 s: REAP ${c.reap}, ${c.rehomings} re-homings, pair ${c.pair.local} → ${c.pair.peer} (B: ${JSON.stringify(g.probeReplies)}, ${JSON.stringify(g.knownPeers)})`);
  }
  assert.ok(g.probeReplies.limited > 100_000, `the flood was refused: ${g.probeReplies.limited}`);
  assert.ok(pressure.length >= 1 && pressure.some((e) => e.probeReplies > 0), `B asked for its known peers: ${JSON.stringify(pressure.slice(0, 3))}`);
  assert.ok(g.knownPeers.probeReplies >= 1, 'A\'s probes answered from the reserve');
  const { global, knownPeers } = defaultProbeReplyLimit(500, 4);
  const bound = global.burst + global.rate * seconds + knownPeers.burst + knownPeers.rate * seconds;
  assert.ok(g.probeReplies.sent <= bound, `${g.probeReplies.sent} answers in ${seconds} s (bound ${bound})`);
  assert.ok(g.knownPeers.probeReplies <= knownPeers.burst + knownPeers.rate * seconds);
});

test('REAP under the same probe flood, the peer not known: B leaves A\'s probes unanswered, yet what they prove counts — B moves its own direction off the failed pair', () => {
  const { a, b } = probeFlood({ attack: true, connected: false });
  const c = peerContext(b, a);
  assert.ok(c.rehomings >= 1 && c.pair.peer !== a.ulid, `B: REAP ${c.reap}, ${c.rehomings} re-homings, pair ${c.pair.local} → ${c.pair.peer}`);
  assert.equal(b.engine.status().guard.knownPeers.probeReplies, 0);
});

// A's link goes down (the daemon's new set: the locator BROKEN, `wentDown`). A explores at once;
// B, told by A's Update, probes A's other locator, and its probe (no reports yet) takes A back to
// Operational before B's report of A's probe moves A's pair. That re-homing is still the one A's
// own exploration began: its cause stays local-locator-down (it read peer-exploring, as if B had
// started it, in status, the log and the metrics).
test('REAP: the re-homing after our link went down is counted with cause local-locator-down, though REAP went Operational before the report that moved the pair', () => {
  for (const seed of [1, 2, 3]) {
    const { sim, a, b } = configuredPair(seed);
    traffic(sim, a, b, sim.now + 800);
    sim.setLocatorBlackhole(a.locators[0]!, true);
    a.engine.setLocalLocators(sim.now, [{ address: a.locators[0]!, flags: 0x01 }, { address: a.locators[1]! }], [a.locators[0]!]);
    traffic(sim, a, b, sim.now + 3000);
    const changes = engineEvents(a).filter((e) => e.kind === 'locator-pair-changed');
    assert.deepEqual(changes.map((e) => e.kind === 'locator-pair-changed' && e.cause), ['local-locator-down'], `seed ${seed}`);
    assert.equal(a.engine.status().rehomings['local-locator-down'], 1, `seed ${seed}`);
    assert.notEqual(a.engine.status().contexts[0]!.pair.local, a.locators[0], `seed ${seed}: off the down locator`);
  }
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Loop, established, type Host } from './loop.ts';
import { State } from '../../shim/engine/index.ts';
import { encodeMessage } from '../../shim/wire/index.ts';
import { parseIpv6 } from '../../shim/wire/ipv6.ts';


/** Bidirectional payload every 50 ms until `until`. */
function traffic(net: Loop, a: Host, b: Host, until: number): void {
  while (net.now < until) {
    net.sendPayload(a, b);
    net.sendPayload(b, a);
    net.run(net.now + 50);
  }
}

test('REAP: silent black hole of the current pair in both directions → probes, new pair within 1 s (fast), payload flows', () => {
  const { net, a, b } = established(11, 12);
  traffic(net, a, b, 1000);
  net.block(a.ulid, b.ulid);
  net.block(b.ulid, a.ulid);
  const hole = net.now;
  const deliveredBefore = b.delivered.length;
  traffic(net, a, b, hole + 2000);
  const changedA = a.events.find((e) => e.kind === 'locator-pair-changed');
  const changedB = b.events.find((e) => e.kind === 'locator-pair-changed');
  assert.ok(changedA && changedB, `pair changes: ${JSON.stringify([changedA, changedB])}`);
  assert.ok(net.types().includes('67'), 'Probe messages were exchanged');
  const firstNew = net.log.find((l) => l.at >= hole && l.host === 'A' && (l.bytes[2]! & 0x80) !== 0 && l.src !== a.ulid || (l.at >= hole && l.host === 'A' && (l.bytes[2]! & 0x80) !== 0 && l.dst !== b.ulid));
  assert.ok(firstNew, 'A sent payload on another pair');
  assert.ok(firstNew.at - hole <= 1000, `re-homed after ${firstNew.at - hole} ms`);
  assert.ok(b.delivered.length > deliveredBefore + 5, 'payload delivered after re-homing');
  // payload stayed on the old pair until the new one was confirmed
  const switchAt = net.log.find((l) => l.host === 'A' && l.at >= hole && (l.bytes[2]! & 0x80) !== 0 && (l.src !== a.ulid || l.dst !== b.ulid))!.at;
  assert.ok(net.log.filter((l) => l.host === 'A' && l.at >= hole && l.at < switchAt && (l.bytes[2]! & 0x80) !== 0).every((l) => l.src === a.ulid && l.dst === b.ulid));
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
});

test('REAP: one-way failure A→B on the current pair → A moves, B may keep its direction (different pairs per direction)', () => {
  const { net, a, b } = established(13, 14);
  traffic(net, a, b, 1000);
  net.block(a.ulid, b.ulid);
  traffic(net, a, b, 4000);
  const sa = a.engine.status().contexts[0]!;
  const sb = b.engine.status().contexts[0]!;
  assert.notDeepEqual(sa.pair, { local: a.ulid, peer: b.ulid }, 'A no longer sends on the broken pair');
  assert.ok(sb.pair.local === b.ulid && sb.pair.peer === a.ulid, `B kept its working direction: ${JSON.stringify(sb.pair)}`);
  const late = b.delivered.length;
  traffic(net, a, b, 5000);
  assert.ok(b.delivered.length > late, 'A → B payload flows again');
  assert.equal(sa.reap, 'Operational');
  assert.equal(sb.reap, 'Operational');
});

test('REAP: unidirectional traffic is kept alive by Keepalives (RFC 5534 App. A ex. 3), no exploration', () => {
  const { net, a, b } = established(15, 16);
  while (net.now < 5000) {
    net.sendPayload(a, b);
    net.run(net.now + 100);
  }
  assert.ok(net.types('B').includes('66'), 'B sent Keepalives');
  assert.ok(!net.types().includes('67'), 'no Probe');
  assert.equal(a.engine.status().contexts[0]!.reap, 'Operational');
});

test('Close / CloseAck: coordinated removal on both ends', () => {
  const { net, a, b } = established(17, 18);
  a.engine.close(net.now, b.ulid);
  net.run(net.now + 200);
  assert.deepEqual(net.types().slice(-2), ['60', '61']);
  assert.equal(a.engine.contextCount, 0);
  assert.equal(b.engine.contextCount, 0);
  assert.ok(a.events.some((e) => e.kind === 'context-closed' && e.reason === 'local-close'));
  assert.ok(b.events.some((e) => e.kind === 'context-closed' && e.reason === 'peer-close'));
});

test('idle contexts are garbage-collected after the idle timeout', () => {
  const { net, a, b } = established(19, 20);
  net.run(121_000 + 1000);
  assert.equal(a.engine.contextCount, 0);
  assert.equal(b.engine.contextCount, 0);
  assert.ok(a.events.some((e) => e.kind === 'context-closed' && e.reason === 'idle'));
});

test('Close to a peer without the extension: its Error code 0 (unknown type) ends CLOSING at once; silence ends it after the retries', () => {
  const { net, a, b } = established(93, 94);
  a.engine.close(net.now, b.ulid);
  const close = a.engine.pollTransmit()!;
  assert.equal(close.bytes[2]! & 0x7f, 60);
  assert.equal(a.engine.status().contexts[0]?.state, State.CLOSING);
  // What a shim6 host that lacks types 60/61 answers (RFC 5533 §5.14: Pointer at the type octet).
  const quoted = new Uint8Array(40 + close.bytes.length);
  quoted[0] = 0x60; quoted[6] = 140;
  quoted.set(parseIpv6(close.src), 8); quoted.set(parseIpv6(close.dst), 24); quoted.set(close.bytes, 40);
  const err = encodeMessage({ type: 'Error', errorCode: 0, pointer: 42, offendingPacket: quoted, options: [] });
  assert.equal(a.engine.handleDatagram(net.now, { src: close.dst, dst: close.src, bytes: err }).kind, 'consumed');
  assert.equal(a.engine.contextCount, 0);
  net.flush();
  assert.ok(a.events.some((e) => e.kind === 'context-closed' && e.reason === 'local-close'));

  const second = established(95, 96);
  second.net.block(second.a.ulid, second.b.ulid);
  second.a.engine.close(second.net.now, second.b.ulid);
  second.net.run(second.net.now + 10_000);
  assert.equal(second.net.types('A').filter((t) => t === '60').length, 4, '1 + closeRetriesMax');
  assert.equal(second.a.engine.contextCount, 0);
  assert.ok(second.a.events.some((e) => e.kind === 'context-closed' && e.reason === 'close-timeout'));
});

test('REAP from kernel counters (kernelTraffic): traffic both ways keeps it Operational; sent with nothing received explores (reap-state events), and a pair that answers is kept', () => {
  const { net, a, b } = established(31, 32);
  const kernel = (h: Host, peer: Host, sent: boolean, received: boolean) => assert.ok(h.engine.kernelTraffic(net.now, h.ulid, peer.ulid, { sent, received }));
  while (net.now < 1000) {
    kernel(a, b, true, true);
    kernel(b, a, true, true);
    net.run(net.now + 50);
  }
  assert.equal(a.events.filter((e) => e.kind === 'reap-state').length, 0, 'no exploration while the kernel sees packets both ways');
  // A's packets go out, nothing comes back (as the kernel counts it); the pair itself still carries probes.
  const from = net.now;
  while (net.now < from + 2000) {
    kernel(a, b, true, false);
    net.run(net.now + 50);
  }
  const states = a.events.filter((e) => e.kind === 'reap-state');
  assert.deepEqual(states.slice(0, 2).map((e) => e.kind === 'reap-state' && e.state), ['exploring', 'operational']);
  assert.deepEqual(states[0]!.kind === 'reap-state' && states[0]!.pair, { local: a.ulid, peer: b.ulid }, 'the event names the pair');
  assert.ok(!a.events.some((e) => e.kind === 'locator-pair-changed'), 'the current pair answered the probes: kept');
  assert.equal(a.engine.kernelTraffic(net.now, a.ulid, 'fd00::dead', { sent: true, received: false }), false, 'no context: nothing to feed');
});

test('REAP from kernel counters: the ULID pair black-holed, A explores and moves off it; reap-state operational names the new pair', () => {
  const { net, a, b } = established(33, 34);
  const kernel = (h: Host, peer: Host, sent: boolean, received: boolean) => h.engine.kernelTraffic(net.now, h.ulid, peer.ulid, { sent, received });
  net.block(a.ulid, b.ulid);
  net.block(b.ulid, a.ulid);
  while (net.now < 3000) {
    kernel(a, b, true, false);
    kernel(b, a, true, false);
    net.run(net.now + 50);
  }
  const changed = a.events.find((e) => e.kind === 'locator-pair-changed');
  assert.ok(changed, 'A re-homed');
  const last = a.events.filter((e) => e.kind === 'reap-state').at(-1);
  assert.ok(last?.kind === 'reap-state' && last.state === 'operational' && (last.pair.local !== a.ulid || last.pair.peer !== b.ulid), JSON.stringify(last));
});

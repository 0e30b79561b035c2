// The peer's UDP port (DESIGN.md §3): learnt from received datagrams when the
// transport passes `port`. Stateless replies (R1, R1bis, Error) go back to the
// source port without keeping anything; a context adopts the port of datagrams
// that passed its checks (a peer on a non-default port, a NAT rebinding), and
// a datagram that fails them (forged tag) changes nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, State, type Transmit } from '../../shim/engine/index.ts';
import { encodePayloadHeader } from '../../shim/wire/index.ts';
import { hbaHost } from './loop.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { SimRng } from '../sim/rng.ts';

interface Side { engine: Engine; ulid: string; port: number; sent: Transmit[] }

function side(seed: number, prefixes: string[], port: number): Side {
  const id = hbaHost(seed, prefixes);
  const engine = new Engine({ localLocators: id.locators.map((address) => ({ address })), localUlid: id.ulid, cgaParams: id.cgaParams, profile: 'fast' }, new SimRng(seed + 7));
  return { engine, ulid: id.ulid, port, sent: [] };
}

/** Deliver everything `from` wants sent to `to`, stamped with `from`'s source port; bounded. */
function shuttle(now: Millis, x: Side, y: Side): void {
  for (let round = 0; round < 10; round++) {
    let moved = false;
    for (const [from, to] of [[x, y], [y, x]] as const) {
      for (let t = from.engine.pollTransmit(); t !== undefined; t = from.engine.pollTransmit()) {
        from.sent.push(t);
        moved = true;
        to.engine.handleDatagram(now, from.port === 5533 ? { src: t.src, dst: t.dst, bytes: t.bytes } : { src: t.src, dst: t.dst, bytes: t.bytes, port: from.port });
      }
    }
    if (!moved) return;
  }
}

test('handshake: R1, I2, R2 go to the port each message came from; payload follows the learnt port', () => {
  const a = side(71, ['2001:db8:a1::/64'], 40_001);
  const b = side(72, ['2001:db8:b1::/64'], 5533);
  const now = ms(0);
  a.engine.prime(now, { ulid: b.ulid, locators: [], ttl: 60, source: 'configured' });
  shuttle(now, a, b);
  assert.equal(a.engine.status().contexts[0]?.state, State.ESTABLISHED);
  assert.equal(b.engine.status().contexts[0]?.state, State.ESTABLISHED);
  const type = (t: Transmit) => t.bytes[2]! & 0x7f;
  assert.deepEqual(b.sent.map((t) => [type(t), t.port]), [[2, 40_001], [4, 40_001]], 'R1 and R2 to A\'s port');
  assert.deepEqual(a.sent.map((t) => [type(t), t.port]), [[1, undefined], [3, undefined]], 'I1, I2 to the default port (no port field)');
  const out = (s: Side, peer: Side) => s.engine.encapsulate(now, { srcUlid: s.ulid, dstUlid: peer.ulid, nextHeader: 17, payload: new Uint8Array(1) });
  assert.equal((out(b, a) as { port?: number }).port, 40_001);
  assert.equal((out(a, b) as { port?: number }).port, undefined);
});

test('NAT rebinding: a verified payload from a new port moves the context; a forged tag does not', () => {
  const a = side(73, ['2001:db8:a1::/64'], 6000);
  const b = side(74, ['2001:db8:b1::/64'], 7000);
  const now = ms(0);
  a.engine.prime(now, { ulid: b.ulid, locators: [], ttl: 60, source: 'configured' });
  shuttle(now, a, b);
  const ctxA = a.engine.status().contexts[0]!;
  const portOf = () => (b.engine.encapsulate(now, { srcUlid: b.ulid, dstUlid: a.ulid, nextHeader: 17, payload: new Uint8Array(1) }) as { port?: number }).port;
  assert.equal(portOf(), 6000);
  const pkt = (tag: number) => { const h = encodePayloadHeader(17, tag); const p = new Uint8Array(h.length + 4); p.set(h); return p; };
  // Wrong tag from the same address, other port: R1bis back to that port, context keeps 6000.
  const forged = b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt((ctxA.peerContextTag + 1) % 2 ** 47), port: 6666 });
  assert.equal(forged.kind, 'drop');
  const r1bis = b.engine.pollTransmit()!;
  assert.equal(r1bis.bytes[2]! & 0x7f, 5);
  assert.equal(r1bis.port, 6666, 'stateless R1bis answers the source port');
  assert.equal(portOf(), 6000);
  // The real tag from a new port (the NAT rebound): adopted.
  assert.equal(b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt(ctxA.peerContextTag), port: 6001 }).kind, 'payload');
  assert.equal(portOf(), 6001);
  // Back on 5533: the default again, so no port field.
  b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt(ctxA.peerContextTag), port: 5533 });
  assert.equal(portOf(), undefined);
  // No port from the transport: nothing learnt, nothing forgotten.
  b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt(ctxA.peerContextTag), port: 6002 });
  b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt(ctxA.peerContextTag) });
  assert.equal(portOf(), 6002);
});

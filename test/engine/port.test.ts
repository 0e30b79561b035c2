// The peer's UDP port (docs/engine.md "The peer's UDP port"): learnt from received datagrams when the
// transport passes `port`. Stateless replies (R1, R1bis, Error) go back to the
// source port without keeping anything; a context adopts a port only from a
// datagram that proves its sender (R1/R2 echoing our nonce, I2 our validator,
// Update Ack our request nonce, a probe report of a probe we sent there) — a
// packet that merely carries the tag from another port moves nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, State, type Transmit } from '../../shim/engine/index.ts';
import { encodeMessage, encodePayloadHeader } from '../../shim/wire/index.ts';
import { hbaIdentity } from '../sim/shim-hosts.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';

interface Side { engine: Engine; ulid: string; port: number; sent: Transmit[] }

function side(seed: number, prefixes: string[], port: number): Side {
  const id = hbaIdentity(prefixes, new SimRng(seed));
  const engine = new Engine({ localLocators: id.locators.map((address) => ({ address })), localUlid: id.ulid, cgaParams: id.params, profile: 'fast' }, new SimRng(seed + 7));
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

test('a packet with the right tag from another port moves nothing; a forged tag gets a stateless R1bis there', () => {
  const a = side(73, ['2001:db8:a1::/64'], 6000);
  const b = side(74, ['2001:db8:b1::/64'], 7000);
  const now = ms(0);
  a.engine.prime(now, { ulid: b.ulid, locators: [], ttl: 60, source: 'configured' });
  shuttle(now, a, b);
  const ctxA = a.engine.status().contexts[0]!;
  const portOf = () => (b.engine.encapsulate(now, { srcUlid: b.ulid, dstUlid: a.ulid, nextHeader: 17, payload: new Uint8Array(1) }) as { port?: number }).port;
  assert.equal(portOf(), 6000);
  const pkt = (tag: number) => { const h = encodePayloadHeader(17, tag); const p = new Uint8Array(h.length + 20); p.set(h); return p; };
  // Wrong tag from the same address, other port: R1bis back to that port, context keeps 6000.
  const forged = b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt((ctxA.peerContextTag + 1) % 2 ** 47), port: 6666 });
  assert.equal(forged.kind, 'drop');
  const r1bis = b.engine.pollTransmit()!;
  assert.equal(r1bis.bytes[2]! & 0x7f, 5);
  assert.equal(r1bis.port, 6666, 'stateless R1bis answers the source port');
  assert.equal(portOf(), 6000);
  // The real tag from other ports (an on-path observer knows it): delivered, but the context stays on 6000.
  assert.equal(b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt(ctxA.peerContextTag), port: 6666 }).kind, 'payload');
  assert.equal(portOf(), 6000);
  b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: pkt(ctxA.peerContextTag), port: 5533 });
  assert.equal(portOf(), 6000);
  const keepalive = encodeMessage({ type: 'Keepalive', contextTag: ctxA.peerContextTag, options: [] });
  b.engine.handleDatagram(now, { src: a.ulid, dst: b.ulid, bytes: keepalive, port: 6666 });
  assert.equal(portOf(), 6000);
});

test('NAT rebinding: REAP probes answered on the new port prove it, and the context moves there', () => {
  const a = side(75, ['2001:db8:a1::/64'], 6000);
  const b = side(76, ['2001:db8:b1::/64'], 7000);
  a.engine.prime(ms(0), { ulid: b.ulid, locators: [], ttl: 60, source: 'configured' });
  shuttle(ms(0), a, b);
  const portOf = (t: Millis) => (b.engine.encapsulate(t, { srcUlid: b.ulid, dstUlid: a.ulid, nextHeader: 17, payload: new Uint8Array(1) }) as { port?: number }).port;
  assert.equal(portOf(ms(0)), 6000);
  a.port = 6001; // A's NAT rebinds: A's datagrams now come from 6001, and what B sends to 6000 is lost
  let moved: number | undefined;
  for (let t = 10; t <= 10_000 && moved === undefined; t += 10) {
    const now = ms(t);
    a.engine.handleTimeout(now);
    b.engine.handleTimeout(now);
    const out = a.engine.encapsulate(now, { srcUlid: a.ulid, dstUlid: b.ulid, nextHeader: 17, payload: new Uint8Array(1) });
    if (out.kind === 'send') b.engine.handleDatagram(now, { src: out.src, dst: out.dst, bytes: Uint8Array.from([...out.header, 0]), port: 6001 });
    for (let t2 = a.engine.pollTransmit(); t2 !== undefined; t2 = a.engine.pollTransmit()) b.engine.handleDatagram(now, { src: t2.src, dst: t2.dst, bytes: t2.bytes, port: 6001 });
    for (let t2 = b.engine.pollTransmit(); t2 !== undefined; t2 = b.engine.pollTransmit()) {
      if (t2.port === 6001) a.engine.handleDatagram(now, { src: t2.src, dst: t2.dst, bytes: t2.bytes, port: 7000 });
    }
    if (portOf(now) === 6001) moved = t;
  }
  assert.ok(moved !== undefined, 'B moved to the new port once A\'s probes and B\'s answers proved it');
  assert.ok(moved > 10, 'not on the first payload from the new port');
});

/** A (engine `a`, identity `id`) with B (`b`, at UDP port 6000) configured as a peer in `mode` at that port. */
function configuredOn6000(mode: 'integrated' | 'independent'): { a: Engine; b: ReturnType<typeof side>; id: ReturnType<typeof hbaIdentity> } {
  const b = side(76, ['2001:db8:b1::/64'], 6000);
  const id = hbaIdentity(['2001:db8:a1::/64'], new SimRng(75));
  const a = new Engine({
    localLocators: id.locators.map((address) => ({ address })), localUlid: id.ulid, cgaParams: id.params, profile: 'fast',
    peers: [{ ulid: b.ulid, mode, locators: [b.ulid], port: 6000 }],
  }, new SimRng(82));
  return { a, b, id };
}

test('a configured peer\'s port (peers[].port) is where discovery sends, in integrated and independent mode alike', () => {
  for (const mode of ['integrated', 'independent'] as const) {
    const { a, b, id } = configuredOn6000(mode);
    assert.equal(a.discover(ms(0), id.ulid, b.ulid), mode === 'integrated' ? 'started' : 'probing', mode);
    const i1 = a.pollTransmit()!;
    assert.equal(i1.bytes[2]! & 0x7f, 1, 'an I1');
    assert.equal(i1.port, 6000, `${mode}: the I1 to the configured port`);
    if (mode === 'independent') {
      // The probe answered (R1): the exchange the daemon then starts (protect) goes there too.
      b.engine.handleDatagram(ms(0), { src: i1.src, dst: i1.dst, bytes: i1.bytes });
      const r1 = b.engine.pollTransmit()!;
      a.handleDatagram(ms(1), { src: r1.src, dst: r1.dst, bytes: r1.bytes, port: 6000 });
      assert.equal(a.protect(ms(2), b.ulid, id.ulid), true, 'known to run shim6 now');
      const next = a.pollTransmit()!;
      assert.equal(next.bytes[2]! & 0x7f, 1, 'an I1 for the exchange');
      assert.equal(next.port, 6000, 'the exchange to the configured port');
    }
  }
});

test('a configured peer\'s port (peers[].port) is where traffic\'s exchange goes too (the heuristic), in integrated and independent mode alike', () => {
  for (const mode of ['integrated', 'independent'] as const) {
    const { a, b, id } = configuredOn6000(mode);
    assert.equal(a.encapsulate(ms(0), { srcUlid: id.ulid, dstUlid: b.ulid, nextHeader: 17, payload: new Uint8Array(1) }).kind, 'no-context');
    const i1 = a.pollTransmit();
    assert.ok(i1 !== undefined && (i1.bytes[2]! & 0x7f) === 1, `${mode}: an I1 for the traffic`);
    assert.equal(i1.port, 6000, `${mode}: the I1 to the configured port`);
  }
});

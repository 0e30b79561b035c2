import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../shim/engine/index.ts';
import { encodeMessage, decodeMessage, findOption, type R1Message, type R2Message } from '../../shim/wire/index.ts';
import { ms } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';

const B = '2001:db8:b1::1';
const engineB = () => new Engine({ localLocators: [{ address: B }] }, new SimRng(42));
const addr = (i: number) => `2001:db8:${(i >> 16) & 0xffff}:${i & 0xffff}::${(i % 97) + 1}`;

/** The engine's private indices, to prove nothing is kept (read-only peek). */
function internals(e: Engine): { tags: number; ulids: number; nonces: number; peerTags: number; heap: number } {
  const core = (e as unknown as { core: { table: { byTag: Map<unknown, unknown>; byUlid: Map<unknown, unknown>; byNonce: Map<unknown, unknown>; byPeerTag: Map<unknown, unknown> }; heap: { size: number } } }).core;
  return { tags: core.table.byTag.size, ulids: core.table.byUlid.size, nonces: core.table.byNonce.size, peerTags: core.table.byPeerTag.size, heap: core.heap.size };
}

test('stateless responder: 10,000 I1s from random addresses → 10,000 R1s (limits off), zero contexts, no per-I1 state', () => {
  const b = new Engine({ localLocators: [{ address: B }], replyLimit: 'off' }, new SimRng(42));
  const rng = new SimRng(7);
  const buf = new Uint8Array(6);
  for (let i = 0; i < 10_000; i++) {
    rng.fill(buf);
    const tag = ((buf[0]! & 0x7f) * 2 ** 40) + buf[1]! * 2 ** 32 + ((buf[2]! << 24) >>> 0) + (buf[3]! << 16) + (buf[4]! << 8) + buf[5]! + 1;
    const i1 = encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: i, options: [] });
    const r = b.handleDatagram(ms(i), { src: addr(i), dst: B, bytes: i1 });
    assert.equal(r.kind, 'consumed');
  }
  let r1s = 0;
  while (b.pollTransmit() !== undefined) r1s++;
  assert.equal(r1s, 10_000);
  assert.equal(b.contextCount, 0);
  assert.deepEqual(internals(b), { tags: 0, ulids: 0, nonces: 0, peerTags: 0, heap: 0 });
  assert.equal(b.pollTimeout(), undefined, 'no timer armed by an I1');
});

/** I1 at `t1` → R1; I2 echoing the R1 at `t2`: did B accept (R2 + context)? */
function i2AcceptedAfter(t1: number, t2: number, tamper = false): boolean {
  const b = engineB();
  const A = '2001:db8:a1::1';
  b.handleDatagram(ms(t1), { src: A, dst: B, bytes: encodeMessage({ type: 'I1', contextTag: 77, initiatorNonce: 5, options: [] }) });
  const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
  const v = findOption(r1, 'ResponderValidator')!.validator.slice();
  if (tamper) v[0]! ^= 1;
  const i2 = encodeMessage({ type: 'I2', contextTag: 77, initiatorNonce: 6, responderNonce: r1.responderNonce, options: [{ type: 'ResponderValidator', critical: false, validator: v }] });
  const r = b.handleDatagram(ms(t2), { src: A, dst: B, bytes: i2 });
  const out = b.pollTransmit();
  const accepted = r.kind === 'consumed' && out !== undefined && decodeMessage(out.bytes).type === 'R2';
  assert.equal(b.contextCount, accepted ? 1 : 0);
  return accepted;
}

test('a peer that sets up its context and closes it 5,000 times (one R1\'s validator, I2 then Close) leaves no removed context in memory: the timer heap stays bounded', () => {
  const b = engineB(); // rfc timers: a removed context's idle deadline is 600 s away
  const X = '2001:db8:e1::66';
  const now = ms(1000);
  b.handleDatagram(now, { src: X, dst: B, bytes: encodeMessage({ type: 'I1', contextTag: 0x1234, initiatorNonce: 1, options: [] }) });
  const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
  const validator = findOption(r1, 'ResponderValidator')!.validator;
  const i2 = encodeMessage({ type: 'I2', contextTag: 0x1234, initiatorNonce: 2, responderNonce: r1.responderNonce, options: [{ type: 'ResponderValidator', critical: false, validator }] });
  let most = 0;
  for (let i = 0; i < 5000; i++) {
    assert.equal(b.handleDatagram(now, { src: X, dst: B, bytes: i2 }).kind, 'consumed', `I2 #${i}`);
    const r2 = decodeMessage(b.pollTransmit()!.bytes) as R2Message;
    while (b.pollTransmit() !== undefined);
    assert.equal(b.handleDatagram(now, { src: X, dst: B, bytes: encodeMessage({ type: 'Close', contextTag: r2.contextTag, nonce: i, options: [] }) }).kind, 'consumed', `Close #${i}`);
    while (b.pollTransmit() !== undefined);
    while (b.pollEvent() !== undefined);
    most = Math.max(most, internals(b).heap);
  }
  assert.equal(b.contextCount, 0);
  assert.ok(most <= 2 * 1 + 64 + 1, `the timer heap held up to ${most} entries, each keeping a removed context until its idle deadline`);
});

test('validators: current secret accepted, previous secret accepted (≥ VALIDATOR_MIN_LIFETIME), older rejected, forged rejected', () => {
  assert.equal(i2AcceptedAfter(1_000, 1_500), true, 'current secret');
  assert.equal(i2AcceptedAfter(29_900, 59_800), true, 'previous secret, 29.9 s old (made at the end of an epoch)');
  assert.equal(i2AcceptedAfter(0, 59_999), true, 'previous secret, ~60 s old');
  assert.equal(i2AcceptedAfter(0, 60_000), false, 'two rotations ago');
  assert.equal(i2AcceptedAfter(1_000, 1_500, true), false, 'one bit flipped');
});

test('validator binds the locators: the same I2 from another source address is rejected', () => {
  const b = engineB();
  b.handleDatagram(ms(0), { src: '2001:db8:a1::1', dst: B, bytes: encodeMessage({ type: 'I1', contextTag: 9, initiatorNonce: 1, options: [] }) });
  const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
  const i2 = encodeMessage({ type: 'I2', contextTag: 9, initiatorNonce: 1, responderNonce: r1.responderNonce, options: [findOption(r1, 'ResponderValidator')!] });
  assert.deepEqual(b.handleDatagram(ms(10), { src: '2001:db8:a1::2', dst: B, bytes: i2 }), { kind: 'drop', reason: 'bad-validator' });
  assert.equal(b.contextCount, 0);
});

test('malformed bytes are drops with the WireError code, never exceptions', () => {
  const b = engineB();
  const rng = new SimRng(3);
  const good = encodeMessage({ type: 'I1', contextTag: 1, initiatorNonce: 1, options: [] });
  for (let i = 0; i < 2000; i++) {
    const bytes = good.slice();
    const n = 1 + (i % 4);
    const pos = new Uint8Array(n * 2);
    rng.fill(pos);
    for (let k = 0; k < n; k++) bytes[pos[k]! % bytes.length] = pos[n + k]!;
    const r = b.handleDatagram(ms(i), { src: '2001:db8:a1::1', dst: B, bytes: bytes.subarray(0, 1 + (pos[0]! % bytes.length)) });
    assert.ok(r.kind === 'drop' || r.kind === 'consumed');
  }
  const bad = good.slice();
  bad[4]! ^= 0xff;
  assert.deepEqual(b.handleDatagram(ms(1), { src: '2001:db8:a1::1', dst: B, bytes: bad }), { kind: 'drop', reason: 'ECHECKSUM' });
});

test('encodeR1 (the fast path) is byte for byte what the wire codec encodes, and decodes', async () => {
  const { encodeR1, r1Validator, r1bisValidator } = await import('../../shim/engine/responder.ts');
  const rng = new SimRng(11);
  const b = new Uint8Array(64);
  for (let i = 0; i < 500; i++) {
    rng.fill(b);
    const dv = new DataView(b.buffer);
    const inputs = { initiatorTag: dv.getUint32(0) * 2 ** 15 + (dv.getUint16(4) >>> 1), peerUlid: addr(dv.getUint32(8)), localUlid: addr(dv.getUint32(12)), peerLocator: addr(dv.getUint32(16)), localLocator: B, fii: dv.getUint32(20), port: dv.getUint16(6) };
    const secret = b.subarray(32, 64);
    const [rn, inn] = [dv.getUint32(24), dv.getUint32(28)];
    const fast = encodeR1(secret, rn, inn, inputs);
    const slow = encodeMessage({ type: 'R1', initiatorNonce: inn, responderNonce: rn, options: [{ type: 'ResponderValidator', critical: false, validator: r1Validator(secret, rn, inputs) }] });
    assert.deepEqual(new Uint8Array(fast), slow);
    const m = decodeMessage(fast) as R1Message;
    assert.equal(m.initiatorNonce, inn);
    assert.equal(m.responderNonce, rn);
  }
  // Fixed-width address slots keep the encoding injective; R1 and R1bis inputs never collide.
  const secret = new Uint8Array(32).fill(9);
  const base = { initiatorTag: 5, peerUlid: '2001:db8::1', localUlid: '2001:db8::2', peerLocator: '2001:db8::1', localLocator: '2001:db8::2', fii: 0, port: 5533 };
  const v = (o: Partial<typeof base>) => Buffer.from(r1Validator(secret, 1, { ...base, ...o })).toString('hex');
  const all = [v({}), v({ peerUlid: '2001:db8::10' }), v({ localUlid: '2001:db8::' }), v({ fii: 1 }), v({ initiatorTag: 6 }), v({ port: 5534 }),
    Buffer.from(r1Validator(secret, 2, base)).toString('hex'), Buffer.from(r1bisValidator(secret, 1, { packetTag: 5, peerLocator: base.peerLocator, localLocator: base.localLocator, port: 5533 })).toString('hex')];
  assert.equal(new Set(all).size, all.length);
  assert.equal(v({}), v({}), 'deterministic: the scratch buffer leaves nothing behind');
});

// The cost of CGA Signature verification for messages not yet proven
// (docs/security.md "CGA verification cost"): keys outside 1024–4096 bits or
// with an exponent that is even, < 3 or > 2^32 − 1 are refused from their DER
// header before any RSA work; an I2 checked once is answered from the outcome
// cache however often it is replayed under its validator; and the RSA work
// messages may cost is bounded per source /64 and globally (verifyLimit), so a
// benign handshake from elsewhere still gets through during a flood.
import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Engine, State, type EngineConfig } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, type I1Message, type R2Message, type Shim6Option } from '../../shim/wire/index.ts';
import { checkCgaSignature, generateCga, rsaKeyShape, signCgaLocators, verifyCgaSignature } from '../../shim/wire/cga.ts';
import { ms, type Millis } from '../../shim/time.ts';
import { hbaVerifier, type LocatorClaim } from '../../shim/engine/verify.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import { SimRng } from '../helpers/rng.ts';
import { askR1 as askR1To, bytesFrom, cgaPeer, i2 } from '../helpers/cga-handshake.ts';

const B = '2001:db8:b1::1';
/** An I1 from `src` to B, and the R1's validator and responder nonce. */
const askR1 = (b: Engine, now: Millis, src: string, tag: number): ReturnType<typeof askR1To> => askR1To(b, now, src, B, tag);
const engineB = (extra: Partial<EngineConfig> = {}) => new Engine({ localLocators: [{ address: B }], ...extra }, new SimRng(42));

const b64u = (n: bigint): string => { let h = n.toString(16); if (h.length % 2) h = '0' + h; return Buffer.from(h, 'hex').toString('base64url'); };
const big = (b: Uint8Array): bigint => BigInt('0x' + Buffer.from(b).toString('hex'));
const spkiOf = (k: crypto.KeyObject): Uint8Array => new Uint8Array(k.export({ type: 'spki', format: 'der' }));

/** A public key with modulus `n` and exponent `e` as OpenSSL takes it (n need not be a real RSA modulus: nothing here signs with it). */
const publicKey = (n: bigint, e: bigint): Uint8Array => spkiOf(crypto.createPublicKey({ key: { kty: 'RSA', n: b64u(n), e: b64u(e) }, format: 'jwk' }));
/** An odd number of exactly `bits` bits, from `seed`. */
function oddOfBits(bits: number, seed: number): bigint {
  const v = big(bytesFrom(seed)(Math.ceil(bits / 8)));
  return (v >> BigInt(Math.ceil(bits / 8) * 8 - bits)) | (1n << BigInt(bits - 1)) | 1n;
}

const modinv = (a: bigint, m: bigint): bigint | undefined => {
  let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
  while (r1 !== 0n) { const q = r0 / r1; [r0, r1] = [r1, r0 - q * r1]; [s0, s1] = [s1, s0 - q * s1]; }
  return r0 === 1n ? ((s0 % m) + m) % m : undefined;
};
/**
 * A real 2048-bit RSA key pair whose public exponent is about as long as the
 * modulus (a small private exponent: signing is cheap, verifying is not) —
 * the key of the review's I2 flood.
 */
function hugeExponentKey(): { privateKey: crypto.KeyObject; spki: Uint8Array; e: bigint } {
  for (;;) {
    const p = big(new Uint8Array(crypto.generatePrimeSync(1024)));
    const q = big(new Uint8Array(crypto.generatePrimeSync(1024)));
    const n = p * q; const phi = (p - 1n) * (q - 1n);
    const d = big(new Uint8Array(crypto.randomBytes(32))) | 1n;
    const e = modinv(d, phi);
    if (e === undefined || e >= n || e < (1n << 1024n)) continue;
    const privateKey = crypto.createPrivateKey({ format: 'jwk', key: {
      kty: 'RSA', n: b64u(n), e: b64u(e), d: b64u(d), p: b64u(p), q: b64u(q),
      dp: b64u(d % (p - 1n)), dq: b64u(d % (q - 1n)), qi: b64u(modinv(q, p)!),
    } });
    return { privateKey, spki: spkiOf(crypto.createPublicKey(privateKey)), e };
  }
}

const LOCATORS = ['2001:db8:c1::1', '2001:db8:c2::2'];

test('key bounds: modulus 1024–4096 bits, exponent odd and 3..2^32−1, read from the DER; anything else is not RSA', () => {
  const n2048 = oddOfBits(2048, 1);
  assert.equal(rsaKeyShape(publicKey(n2048, 65537n)), 'ok');
  assert.equal(rsaKeyShape(publicKey(n2048, 3n)), 'ok');
  assert.equal(rsaKeyShape(publicKey(n2048, 0xffff_ffffn)), 'ok', '2^32 − 1: the largest exponent taken');
  assert.equal(rsaKeyShape(publicKey(n2048, 0x1_0000_0001n)), 'bad-exponent', '2^32 + 1');
  assert.equal(rsaKeyShape(publicKey(n2048, 65536n)), 'bad-exponent', 'even');
  assert.equal(rsaKeyShape(publicKey(n2048, 1n)), 'bad-exponent', '1: odd, below 3 (a signature is then its own message)');
  assert.equal(rsaKeyShape(publicKey(n2048, oddOfBits(2040, 2))), 'bad-exponent', 'an exponent nearly as long as the modulus');
  assert.equal(rsaKeyShape(publicKey(oddOfBits(1024, 3), 65537n)), 'ok');
  assert.equal(rsaKeyShape(publicKey(oddOfBits(1023, 3), 65537n)), 'key-too-short');
  assert.equal(rsaKeyShape(publicKey(oddOfBits(1023, 3), 65537n), 512), 'ok', 'minKeyBits lowers the floor');
  assert.equal(rsaKeyShape(publicKey(oddOfBits(4096, 4), 65537n)), 'ok');
  assert.equal(rsaKeyShape(publicKey(oddOfBits(4097, 4), 65537n)), 'key-too-long');
  assert.equal(rsaKeyShape(publicKey(oddOfBits(16384, 5), 65537n)), 'key-too-long');
  const ec = spkiOf(crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey);
  assert.equal(rsaKeyShape(ec), 'not-rsa');
  const good = publicKey(n2048, 65537n);
  assert.equal(rsaKeyShape(good.subarray(0, good.length - 1)), 'not-rsa', 'truncated');
  assert.equal(rsaKeyShape(Uint8Array.from([...good, 0])), 'not-rsa', 'trailing octet');
  assert.equal(rsaKeyShape(new Uint8Array(0)), 'not-rsa');
});

test('a valid signature by a key with an exponent over 1024 bits proves nothing: refused as bad-exponent before any RSA work', () => {
  const k = hugeExponentKey();
  const cga = generateCga({ subnetPrefix: '2001:db8:66::/64', publicKey: k.spki, sec: 0, randomBytes: bytesFrom(7) });
  const signature = signCgaLocators(k.privateKey, 1, LOCATORS);
  // OpenSSL itself accepts the signature: only the bound refuses it.
  assert.ok(crypto.verify('sha1', Buffer.from('x'), crypto.createPublicKey({ key: Buffer.from(k.spki), format: 'der', type: 'spki' }), crypto.sign('sha1', Buffer.from('x'), k.privateKey)));
  const verify = mock.method(crypto, 'verify');
  try {
    const args = { params: cga.params, generation: 1, locators: LOCATORS, signature, ulid: cga.address };
    assert.equal(checkCgaSignature(args), 'bad-exponent');
    assert.equal(verifyCgaSignature(args), false);
    assert.equal(verify.mock.callCount(), 0, 'no RSA verification ran');
  } finally { verify.mock.restore(); }
});




function drain(b: Engine): string[] {
  const out: string[] = [];
  for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) out.push(decodeMessage(t.bytes).type);
  while (b.pollEvent() !== undefined);
  return out;
}

test('an I2 whose PDS key has a huge exponent is dropped and counted (guard.cga.keyBadExponent), with no RSA work', () => {
  const b = engineB();
  const attacker = cgaPeer('2001:db8:66::', publicKey(oddOfBits(3072, 8), oddOfBits(3070, 9)), 10);
  const r1 = askR1(b, ms(0), attacker.ulid, 0x66);
  const verify = mock.method(crypto, 'verify');
  try {
    const sig = bytesFrom(11)(384); sig[0] = 0;
    const r = b.handleDatagram(ms(1), { src: attacker.ulid, dst: B, bytes: i2(0x66, r1, attacker, sig) });
    assert.deepEqual(r, { kind: 'drop', reason: 'locator-unverified' });
    assert.equal(verify.mock.callCount(), 0);
  } finally { verify.mock.restore(); }
  assert.deepEqual(drain(b), []);
  const g = b.status().guard.cga;
  assert.equal(g.keyBadExponent, 1);
  assert.equal(g.verified, 0);
  assert.equal(b.status().contexts.length, 0);
});

const KEY = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
const KEY_SPKI = spkiOf(KEY.publicKey);

test('copies of one I2 under one validator are verified once: the outcome cache answers the rest', () => {
  const b = engineB();
  const attacker = cgaPeer('2001:db8:66::', KEY_SPKI, 12);
  const r1 = askR1(b, ms(0), attacker.ulid, 0x67);
  const bad = signCgaLocators(KEY.privateKey, 2, [attacker.ulid, attacker.extra]); // signs another generation
  const bytes = i2(0x67, r1, attacker, bad);
  const verify = mock.method(crypto, 'verify');
  try {
    for (let i = 0; i < 200; i++) {
      const r = b.handleDatagram(ms(1 + i), { src: attacker.ulid, dst: B, bytes });
      assert.deepEqual(r, { kind: 'drop', reason: 'locator-unverified' });
    }
    assert.equal(verify.mock.callCount(), 1, 'one RSA verification for 200 copies');
  } finally { verify.mock.restore(); }
  const g = b.status().guard.cga;
  assert.deepEqual([g.verified, g.badSignature, g.cached, g.limited], [1, 1, 199, 0]);
  assert.deepEqual(drain(b), []);
  assert.equal(b.status().contexts.length, 0);
  // The good I2 under the same validator is verified (a cache entry for another signature does not answer it).
  const good = signCgaLocators(KEY.privateKey, 1, [attacker.ulid, attacker.extra]);
  assert.equal(b.handleDatagram(ms(500), { src: attacker.ulid, dst: B, bytes: i2(0x67, r1, attacker, good) }).kind, 'consumed');
  assert.deepEqual(drain(b), ['R2']);
});

test('the outcome cache answers only the very inputs it checked: a good signature replayed over a longer list, another generation or another ULID is checked again, and fails', () => {
  const v = hbaVerifier();
  const peer = cgaPeer('2001:db8:67::', KEY_SPKI, 15);
  const other = cgaPeer('2001:db8:68::', KEY_SPKI, 16);
  const V = '2001:db8:53::53';
  const cga = (address: string): LocatorClaim => ({ address, method: VerificationMethod.CGA });
  const signature = signCgaLocators(KEY.privateKey, 1, [peer.ulid, peer.extra]);
  const verify = mock.method(crypto, 'verify');
  try {
    assert.deepEqual(v.verify(peer.ulid, [cga(peer.ulid), cga(peer.extra)], peer.params, { generation: 1, signature }), [true, true], 'the signed list');
    assert.deepEqual(v.verify(peer.ulid, [cga(peer.ulid), cga(peer.extra)], peer.params, { generation: 1, signature }), [true, true], 'again');
    assert.equal(verify.mock.callCount(), 1, 'the copy answered from the cache');
    assert.deepEqual(v.verify(peer.ulid, [cga(peer.ulid), cga(peer.extra), cga(V)], peer.params, { generation: 1, signature }), [true, false, false], 'a third party appended');
    assert.deepEqual(v.verify(peer.ulid, [cga(peer.ulid), cga(V)], peer.params, { generation: 1, signature }), [true, false], 'a third party in place of the signed locator');
    assert.deepEqual(v.verify(peer.ulid, [cga(peer.ulid), cga(peer.extra)], peer.params, { generation: 2, signature }), [true, false], 'another generation');
    assert.deepEqual(v.verify(other.ulid, [cga(other.ulid), cga(peer.extra)], other.params, { generation: 1, signature }), [true, false], 'another ULID and PDS');
    assert.equal(verify.mock.callCount(), 5, 'each of them checked anew');
  } finally { verify.mock.restore(); }
});

test('the verification budget: distinct forged I2s from one /64 cost at most burst + rate·t RSA verifications; a benign CGA handshake from another /64 gets through', () => {
  const b = engineB();
  const attacker = cgaPeer('2001:db8:66::', KEY_SPKI, 13);
  const r1 = askR1(b, ms(0), attacker.ulid, 0x68);
  const rnd = bytesFrom(14);
  const verify = mock.method(crypto, 'verify');
  const reasons = new Map<string, number>();
  let benign: string[] = [];
  try {
    // 2000 I2s over 2 s, each with a fresh random signature (the cache cannot help).
    for (let i = 0; i < 2000; i++) {
      const r = b.handleDatagram(ms(1 + i), { src: attacker.ulid, dst: B, bytes: i2(0x68, r1, attacker, rnd(128)) });
      const why = r.kind === 'drop' ? r.reason : r.kind;
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
      if (i === 1000) {
        const peer = cgaPeer('2001:db8:77::', KEY_SPKI, 15);
        const r1b = askR1(b, ms(1 + i), peer.ulid, 0x77);
        const r = b.handleDatagram(ms(1 + i), { src: peer.ulid, dst: B, bytes: i2(0x77, r1b, peer, signCgaLocators(KEY.privateKey, 1, [peer.ulid, peer.extra])) });
        assert.equal(r.kind, 'consumed');
        benign = drain(b);
      }
    }
    // per /64: burst 10 + 10/s × 2 s; plus the benign one.
    assert.ok(verify.mock.callCount() <= 10 + 20 + 1, `${verify.mock.callCount()} RSA verifications`);
  } finally { verify.mock.restore(); }
  assert.deepEqual(benign, ['R2']);
  const g = b.status().guard.cga;
  assert.ok(g.limited >= 2000 - 30, `limited ${g.limited}`);
  assert.equal(reasons.get('cga-limited'), g.limited);
  assert.equal((reasons.get('locator-unverified') ?? 0) + g.limited, 2000);
  assert.equal(b.status().contexts.length, 1, 'only the benign context');
});

test('the global budget: forged I2s from 100 /64s cost at most global burst + rate·t verifications in all', () => {
  const b = engineB();
  const peers = Array.from({ length: 100 }, (_, i) => cgaPeer(`2001:db8:${(0x100 + i).toString(16)}::`, KEY_SPKI, 100 + i));
  const r1s = peers.map((p, i) => askR1(b, ms(0), p.ulid, 0x1000 + i));
  const rnd = bytesFrom(16);
  const verify = mock.method(crypto, 'verify');
  try {
    // 5000 I2s over 1 s, round robin over the prefixes.
    for (let i = 0; i < 5000; i++) {
      const k = i % peers.length;
      b.handleDatagram(ms(1 + i / 5), { src: peers[k]!.ulid, dst: B, bytes: i2(0x1000 + k, r1s[k]!, peers[k]!, rnd(128)) });
    }
    assert.ok(verify.mock.callCount() <= 100 + 100, `${verify.mock.callCount()} RSA verifications`);
    assert.ok(verify.mock.callCount() >= 100, 'the global burst is used');
    assert.equal(b.status().guard.cga.verified, verify.mock.callCount());
  } finally { verify.mock.restore(); }
  assert.equal(b.status().guard.cga.limited, 5000 - b.status().guard.cga.verified);
  assert.equal(b.status().contexts.length, 0);
});

test('verifyLimit: off verifies every message; bad values are EVERIFY_LIMIT', () => {
  const b = engineB({ verifyLimit: 'off' });
  const attacker = cgaPeer('2001:db8:66::', KEY_SPKI, 17);
  const r1 = askR1(b, ms(0), attacker.ulid, 0x69);
  const rnd = bytesFrom(18);
  for (let i = 0; i < 50; i++) b.handleDatagram(ms(1), { src: attacker.ulid, dst: B, bytes: i2(0x69, r1, attacker, rnd(128)) });
  assert.deepEqual([b.status().guard.cga.verified, b.status().guard.cga.limited], [50, 0]);
  assert.throws(() => engineB({ verifyLimit: { perPrefix: { rate: 0, burst: 1 } } as never }), (e: Error & { code?: string }) => e.code === 'EVERIFY_LIMIT');
});

test('Update Requests in a context of the sender\'s own: forged signatures cost at most the /64\'s budget, dropped as cga-limited without an Error', () => {
  const b = engineB();
  const peer = cgaPeer('2001:db8:66::', KEY_SPKI, 19);
  const r1 = askR1(b, ms(0), peer.ulid, 0x6a);
  b.handleDatagram(ms(1), { src: peer.ulid, dst: B, bytes: i2(0x6a, r1, peer, signCgaLocators(KEY.privateKey, 1, [peer.ulid, peer.extra])) });
  const r2 = decodeMessage(b.pollTransmit()!.bytes);
  while (b.pollTransmit() !== undefined);
  assert.equal(r2.type, 'R2');
  const tag = (r2 as R2Message).contextTag; // B's context tag: what an Update Request to B carries
  assert.equal(b.status().contexts.length, 1);
  const before = b.status().guard.cga;
  const rnd = bytesFrom(20);
  const verify = mock.method(crypto, 'verify');
  const reasons = new Map<string, number>();
  let errors = 0;
  try {
    for (let i = 0; i < 1000; i++) {
      const list: Shim6Option = { ...peer.list, generation: 2 + i } as Shim6Option;
      const bytes = encodeMessage({ type: 'UpdateRequest', contextTag: tag, requestNonce: i, options: [list, { type: 'CgaSignature', critical: false, signature: rnd(128) }] });
      const r = b.handleDatagram(ms(100 + i), { src: peer.ulid, dst: B, bytes });
      const why = r.kind === 'drop' ? r.reason : r.kind;
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
      for (let t = b.pollTransmit(); t !== undefined; t = b.pollTransmit()) if (decodeMessage(t.bytes).type === 'Error') errors++;
    }
    // One second: burst 10 + 10/s (and a token or so of refill since the I2).
    assert.ok(verify.mock.callCount() <= 10 + 11, `${verify.mock.callCount()} RSA verifications`);
  } finally { verify.mock.restore(); }
  const g = b.status().guard.cga;
  assert.equal(reasons.get('cga-limited'), g.limited - before.limited);
  assert.equal(reasons.get('locator-unverified'), g.verified - before.verified, 'the verified ones were refused (Error code 2, rate-limited)');
  assert.ok(errors <= g.verified - before.verified, 'no Error for a request left unverified');
  assert.equal(b.status().contexts[0]!.peerLocators.filter((l) => l.verified).length, 2, 'the context\'s locators are as they were');
});

test('R2s that echo our nonce with forged CGA Signatures cost one RSA verification per I1/I2 we sent; the peer\'s R2 to the next I2 still establishes', () => {
  const A = '2001:db8:a1::1';
  const peer = cgaPeer('2001:db8:66::', KEY_SPKI, 23);
  const a = new Engine({ localLocators: [{ address: A }] }, new SimRng(9));
  // A starts an exchange (DNS, configuration or host-based discovery: the same I1); whoever
  // answers it (the responder, or an on-path observer) knows the nonce R2s must echo.
  a.prime(ms(0), { ulid: peer.ulid, locators: [], ttl: 3600, source: 'dns' });
  const i1 = decodeMessage(a.pollTransmit()!.bytes) as I1Message;
  a.handleDatagram(ms(10), { src: peer.ulid, dst: A, bytes: encodeMessage({ type: 'R1', initiatorNonce: i1.initiatorNonce, responderNonce: 7, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(12) }] }) });
  const sentI2 = (): number => { let n = 0; for (let t = a.pollTransmit(); t !== undefined; t = a.pollTransmit()) if (decodeMessage(t.bytes).type === 'I2') n++; return n; };
  assert.equal(sentI2(), 1);
  const r2 = (signature: Uint8Array): Uint8Array => encodeMessage({ type: 'R2', contextTag: 0x4242, initiatorNonce: i1.initiatorNonce, options: [
    peer.list, { type: 'CgaParameterDataStructure', critical: false, pds: peer.params }, { type: 'CgaSignature', critical: false, signature },
  ] });
  const forged = bytesFrom(77);
  const reasons = new Map<string, number>();
  const verify = mock.method(crypto, 'verify');
  try {
    for (let n = 0; n < 2000; n++) { // 2,000 in 200 ms
      const r = a.handleDatagram(ms(20 + n / 10), { src: peer.ulid, dst: A, bytes: r2(forged(128)) });
      const why = r.kind === 'drop' ? r.reason : r.kind;
      reasons.set(why, (reasons.get(why) ?? 0) + 1);
    }
    assert.equal(verify.mock.callCount(), 1, 'one RSA verification for the one I2 sent');
  } finally { verify.mock.restore(); }
  assert.deepEqual([...reasons], [['locator-unverified', 1], ['cga-limited', 1999]]);
  assert.deepEqual([a.status().guard.cga.verified, a.status().guard.cga.limited], [1, 1999]);
  const real = r2(signCgaLocators(KEY.privateKey, 1, [peer.ulid, peer.extra]));
  assert.deepEqual(a.handleDatagram(ms(300), { src: peer.ulid, dst: A, bytes: real }), { kind: 'drop', reason: 'cga-limited' }, 'this I2\'s check is spent');
  assert.equal(a.status().contexts[0]!.state, State.I2_SENT, 'nothing changed');
  // The I2's retransmission gives the peer's R2 to it its check.
  for (let t = ms(300); sentI2() === 0; t = ms(t + 50)) a.handleTimeout(t);
  assert.deepEqual(a.handleDatagram(ms(5000), { src: peer.ulid, dst: A, bytes: real }), { kind: 'consumed' });
  assert.equal(a.status().contexts[0]!.state, State.ESTABLISHED);
});

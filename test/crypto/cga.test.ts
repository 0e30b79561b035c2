// CGA (RFC 3972): the Appendix A vector end to end, parameter codec, generation
// with a seeded modifier search, verification failures by reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fc from 'fast-check';
import {
  cgaHash1, cgaHash2, checkCga, decodeCgaParams, encodeCgaParams, generateCga, verifyCga, derSequenceLength,
  DEFAULT_MAX_ITERATIONS,
} from '../../shim/wire/cga.ts';
import { WireError } from '../../shim/wire/errors.ts';
import { parseIpv6 } from '../../shim/wire/ipv6.ts';
import { UsageError } from '../../shim/errors.ts';
import { fixedBytes, flipped, hex, toHex } from '../helpers/octets.ts';
import { fuzzParams, randomBytes } from '../helpers/rng.ts';

// RFC 3972 Appendix A, copied octet for octet from the RFC text.
const RFC_KEY = hex(`
  305c 300d 0609 2a86 4886 f70d 0101 0105 0003 4b00 3048 0241
  00c2 c2f1 3730 5454 f10b d9ce a368 44b5 30e9 211a 4b26 2b16
  467c b7df ba1f 595c 0194 f275 be5a 4d38 6f2c 3c23 8250 8773
  c786 7f9b 3b9e 63a0 9c7b c48f 7a54 ebef af02 0301 0001`);
const RFC_MODIFIER_START = hex('89a8 a8b2 e858 d8b8 f263 3f44 d2d4 ce9a');
const RFC_HASH1_INPUT = hex(`
  89a8 a8b2 e858 d8b8 f263 3f44 d2d4 ce9b fe80 0000 0000 0000 00
  305c 300d 0609 2a86 4886 f70d 0101 0105 0003 4b00 3048 0241
  00c2 c2f1 3730 5454 f10b d9ce a368 44b5 30e9 211a 4b26 2b16
  467c b7df ba1f 595c 0194 f275 be5a 4d38 6f2c 3c23 8250 8773
  c786 7f9b 3b9e 63a0 9c7b c48f 7a54 ebef af02 0301 0001`);
const RFC_ADDRESS = 'fe80::3c4a:5bf6:ffb4:ca6c';

test('RFC 3972 Appendix A: the published parameters verify fe80::3c4a:5bf6:ffb4:ca6c', () => {
  assert.equal(RFC_KEY.length, 94);
  assert.equal(derSequenceLength(RFC_KEY, 0), 94);
  assert.equal(toHex(cgaHash1(RFC_HASH1_INPUT)), 'fd4a5bf6ffb4ca6c');
  assert.equal(toHex(cgaHash2(RFC_HASH1_INPUT)), '000001ca680b83888d0912dffcce');
  assert.equal(checkCga(RFC_ADDRESS, RFC_HASH1_INPUT), 'ok');
  const p = decodeCgaParams(RFC_HASH1_INPUT);
  assert.equal(toHex(p.modifier), '89a8a8b2e858d8b8f2633f44d2d4ce9b');
  assert.equal(toHex(p.subnetPrefix), 'fe80000000000000');
  assert.equal(p.collisionCount, 0);
  assert.deepEqual(p.publicKey, RFC_KEY);
  assert.deepEqual(p.extensions, []);
  assert.deepEqual(encodeCgaParams(p), RFC_HASH1_INPUT);
});

test('RFC 3972 Appendix A: the first modifier gives Hash2 = 436b 9a70 …, which fails Sec 1', () => {
  const first = RFC_HASH1_INPUT.slice();
  first.set(RFC_MODIFIER_START, 0);
  assert.equal(toHex(cgaHash2(first)), '436b9a70dbfddbf1926e6e6629c0');
});

test('RFC 3972 Appendix A: generation from modifier …ce9a finds …ce9b after 2 tries and the same address', () => {
  const g = generateCga({ subnetPrefix: 'fe80::/64', publicKey: RFC_KEY, sec: 1, randomBytes: fixedBytes(RFC_MODIFIER_START) });
  assert.equal(g.address, RFC_ADDRESS);
  assert.equal(g.iterations, 2);
  assert.deepEqual(g.params, RFC_HASH1_INPUT);
});

test('verification fails for each RFC 3972 §5 step, with its reason', () => {
  const cc3 = RFC_HASH1_INPUT.slice(); cc3[24] = 3;
  assert.equal(checkCga(RFC_ADDRESS, cc3), 'collision-count');
  assert.equal(checkCga('2001:db8::3c4a:5bf6:ffb4:ca6c', RFC_HASH1_INPUT), 'prefix-mismatch');
  assert.equal(checkCga('fe80::3c4a:5bf6:ffb4:ca6d', RFC_HASH1_INPUT), 'hash1-mismatch');
  // Sec and the u/g bits are ignored by the Hash1 comparison: Sec 0 passes, Sec 2 fails at Hash2.
  assert.equal(checkCga('fe80::1c4a:5bf6:ffb4:ca6c', RFC_HASH1_INPUT), 'ok');
  assert.equal(checkCga('fe80::1f4a:5bf6:ffb4:ca6c', RFC_HASH1_INPUT), 'ok');
  assert.equal(checkCga('fe80::5c4a:5bf6:ffb4:ca6c', RFC_HASH1_INPUT), 'hash2-mismatch');
  assert.equal(checkCga('fe80::7c4a:5bf6:ffb4:ca6c', RFC_HASH1_INPUT), 'unsupported-sec');
  assert.equal(checkCga(RFC_ADDRESS, RFC_HASH1_INPUT.subarray(0, 60)), 'malformed');
  const tamperedKey = flipped(RFC_HASH1_INPUT, 60);
  assert.equal(checkCga(RFC_ADDRESS, tamperedKey), 'hash1-mismatch');
  const tamperedModifier = flipped(RFC_HASH1_INPUT, 3, 0x80);
  assert.equal(verifyCga(RFC_ADDRESS, tamperedModifier), false);
});

test('generateCga with Sec 0 and 1 verifies; Sec 1 leaves 16 zero bits of Hash2', () => {
  const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
  const spki = new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
  for (const sec of [0, 1]) {
    for (let i = 0; i < 3; i++) {
      const g = generateCga({ subnetPrefix: '2001:db8:7::', publicKey: spki, sec, randomBytes: randomBytes(`cga-${sec}-${i}`) });
      assert.equal(checkCga(g.address, g.params), 'ok', g.address);
      // On the octets, not the text: an interface ID that starts with a zero group prints as '2001:db8:7::…'.
      const octets = parseIpv6(g.address);
      assert.deepEqual([...octets.subarray(0, 8)], [...parseIpv6('2001:db8:7::').subarray(0, 8)], g.address);
      assert.equal(octets[8]! >> 5, sec);
      if (sec === 1) assert.equal(toHex(cgaHash2(g.params)).slice(0, 4), '0000');
      else assert.equal(g.iterations, 0);
    }
  }
});

test('generateCga is deterministic for a seeded randomBytes, and honours collisionCount and extensions', () => {
  const a = generateCga({ subnetPrefix: 'fe80::', publicKey: RFC_KEY, sec: 1, randomBytes: randomBytes('x') });
  const b = generateCga({ subnetPrefix: 'fe80::', publicKey: RFC_KEY, sec: 1, randomBytes: randomBytes('x') });
  assert.deepEqual(a, b);
  const c = generateCga({
    subnetPrefix: 'fe80::', publicKey: RFC_KEY, sec: 0, randomBytes: randomBytes('y'), collisionCount: 2,
    extensions: [{ type: 0x7777, data: hex('0102') }],
  });
  assert.equal(verifyCga(c.address, c.params), true);
  const d = decodeCgaParams(c.params);
  assert.equal(d.collisionCount, 2);
  assert.deepEqual(d.extensions, [{ type: 0x7777, data: hex('0102') }]);
});

test('the modifier search is bounded: maxIterations ends it with ECGA_SEARCH', () => {
  assert.ok(DEFAULT_MAX_ITERATIONS >= 1 << 20);
  assert.throws(
    () => generateCga({ subnetPrefix: 'fe80::', publicKey: RFC_KEY, sec: 2, randomBytes: randomBytes('z'), maxIterations: 1000 }),
    (e: unknown) => e instanceof UsageError && e.code === 'ECGA_SEARCH',
  );
  for (const sec of [-1, 3, 7, 1.5]) {
    assert.throws(() => generateCga({ subnetPrefix: 'fe80::', publicKey: RFC_KEY, sec, randomBytes: randomBytes('z') }),
      (e: unknown) => e instanceof UsageError && e.code === 'ESEC');
  }
  for (const subnetPrefix of ['fe80::1', '2001:db8::/48', 'nonsense']) {
    assert.throws(() => generateCga({ subnetPrefix, publicKey: RFC_KEY, sec: 0, randomBytes: randomBytes('z') }),
      (e: unknown) => e instanceof UsageError && e.code === 'EPREFIX');
  }
});

test('decodeCgaParams: DER header forms and structural faults give WireError codes', () => {
  const code = (b: Uint8Array): string => {
    try { decodeCgaParams(b); return 'ok'; } catch (e) { assert.ok(e instanceof WireError); return e.code; }
  };
  const base = RFC_HASH1_INPUT;
  assert.equal(code(base.subarray(0, 24)), 'ETRUNCATED');
  assert.equal(code(base.subarray(0, 26)), 'ETRUNCATED');
  assert.equal(code(base.subarray(0, 100)), 'ETRUNCATED');
  const notSeq = base.slice(); notSeq[25] = 0x31;
  assert.equal(code(notSeq), 'EFIELD');
  const indefinite = base.slice(); indefinite[26] = 0x80;
  assert.equal(code(indefinite), 'ELENGTH');
  // Long-form length for a short key is not DER.
  const nonMinimal = Uint8Array.of(...base.subarray(0, 25), 0x30, 0x81, 0x02, 0x05, 0x00);
  assert.equal(code(nonMinimal), 'EFIELD');
  const minimalLong = Uint8Array.of(...base.subarray(0, 25), 0x30, 0x81, 0x80, ...new Uint8Array(0x80));
  assert.equal(code(minimalLong), 'ok');
  assert.equal(code(Uint8Array.of(...base, 0x00, 0x12, 0x00)), 'ETRUNCATED');
  assert.equal(code(Uint8Array.of(...base, 0x00, 0x99, 0x00, 0x03, 1, 2)), 'ETRUNCATED');
  assert.equal(code(Uint8Array.of(...base, 0x00, 0x12, 0x00, 0x05, 0x80, 0, 0, 0, 1)), 'ELENGTH');
  assert.equal(code(Uint8Array.of(...base, 0x00, 0x99, 0x00, 0x00)), 'ok');
});

test('encodeCgaParams refuses what it cannot represent', () => {
  const p = decodeCgaParams(RFC_HASH1_INPUT);
  for (const bad of [
    { ...p, modifier: new Uint8Array(15) },
    { ...p, subnetPrefix: new Uint8Array(9) },
    { ...p, collisionCount: 256 },
    { ...p, publicKey: RFC_KEY.subarray(0, 50) },
    { ...p, publicKey: Uint8Array.of(...RFC_KEY, 0) },
    { ...p, extensions: [{ type: 0x10000, data: new Uint8Array(0) }] },
  ]) {
    assert.throws(() => encodeCgaParams(bad), (e: unknown) => e instanceof UsageError && e.code === 'ECGA_PARAMS');
  }
});

test('property: decodeCgaParams(encodeCgaParams(p)) = p, for DER keys of every length form', (t) => {
  const derSeq = fc.uint8Array({ maxLength: 300 }).map((c) => {
    const n = c.length;
    const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
    return Uint8Array.of(0x30, ...len, ...c);
  });
  const ext = fc.record({ type: fc.integer({ min: 0, max: 0xffff }).filter((x) => x !== 0x12), data: fc.uint8Array({ maxLength: 40 }) }, { noNullPrototype: true });
  const params = fc.record({
    modifier: fc.uint8Array({ minLength: 16, maxLength: 16 }),
    subnetPrefix: fc.uint8Array({ minLength: 8, maxLength: 8 }),
    collisionCount: fc.integer({ min: 0, max: 255 }),
    publicKey: derSeq,
    extensions: fc.array(ext, { maxLength: 4 }),
  }, { noNullPrototype: true });
  fc.assert(fc.property(params, (p) => {
    const bytes = encodeCgaParams(p);
    assert.deepEqual(decodeCgaParams(bytes), p);
    assert.deepEqual(encodeCgaParams(decodeCgaParams(bytes)), bytes);
  }), fuzzParams(t, { seed: 3972, numRuns: 500 }));
});

// HBA (RFC 5535): set generation for 1..8 prefixes, membership verification with
// the prefix substitution, tampering, the HBA-only Extended Modifier, the digest.
// RFC 5535 has no vectors; we build them from the procedure and cross-check the
// CGA path against RFC 3972 Appendix A.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  checkHbaAddress, checkHbaSet, encodeExtendedModifier, generateHbaSet, hbaDigest, hbaDigestForUlid,
  hbaPublicKeyIncluded, verifyHbaAddress, verifyHbaSet,
} from '../../shim/wire/hba.ts';
import {
  cgaHash2, checkCga, decodeCgaParams, decodeMultiPrefixExtension, encodeCgaParams, encodeMultiPrefixExtension, findMultiPrefix,
  prefix64, verifyCga,
} from '../../shim/wire/cga.ts';
import { UsageError } from '../../shim/errors.ts';
import { fixedBytes, flipped, hex, toHex } from '../helpers/octets.ts';
import { randomBytes } from '../helpers/rng.ts';

const prefixes = (n: number): string[] => Array.from({ length: n }, (_, i) => `2001:db8:${(i + 1).toString(16)}::/64`);
const rsaSpki = (): Uint8Array => {
  const { publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
  return new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
};

test('HBA-only sets of 1..8 prefixes: every member verifies against every member’s parameters', () => {
  for (let n = 1; n <= 8; n++) {
    const set = generateHbaSet({ prefixes: prefixes(n), sec: 0, randomBytes: randomBytes(`hba-${n}`) });
    assert.equal(set.members.length, n);
    assert.equal(set.publicKeyIncluded, false);
    const addresses = set.members.map((m) => m.address);
    for (const [i, m] of set.members.entries()) {
      assert.equal(m.prefix, prefixes(n)[i]);
      assert.ok(m.address.startsWith(`2001:db8:${(i + 1).toString(16)}:0:`), m.address);
      // RFC 5535 §7.1: each member is a plain CGA of its own structure.
      assert.equal(checkCga(m.address, m.params), 'ok');
      assert.deepEqual(verifyHbaSet(addresses, m.params), addresses.map(() => true));
    }
    // Interface identifiers differ per prefix (they hash the prefix).
    assert.equal(new Set(addresses.map((a) => a.split(':').slice(-4).join(':'))).size, n);
  }
});

test('HBA/CGA set with a public key and Sec 1: P flag set, 16 zero bits of Hash2, membership verifies', () => {
  const spki = rsaSpki();
  const set = generateHbaSet({ prefixes: prefixes(3), sec: 1, publicKey: spki, randomBytes: randomBytes('hba-cga') });
  assert.equal(set.publicKeyIncluded, true);
  assert.deepEqual(set.publicKey, spki);
  for (const m of set.members) {
    const p = decodeCgaParams(m.params);
    assert.deepEqual(p.publicKey, spki);
    const mp = findMultiPrefix(p);
    assert.equal(mp?.publicKeyIncluded, true);
    assert.deepEqual(mp?.prefixes.map(toHex), ['20010db800010000', '20010db800020000', '20010db800030000']);
    assert.equal(toHex(cgaHash2(m.params)).slice(0, 4), '0000');
    assert.equal(hbaPublicKeyIncluded(m.params), true);
    assert.equal(verifyHbaAddress(set.members[0]!.address, m.params), true);
  }
});

test('HBA Sec 1 without a key, HBA generation is deterministic for a seed', () => {
  const a = generateHbaSet({ prefixes: prefixes(2), sec: 1, randomBytes: randomBytes('s1') });
  const b = generateHbaSet({ prefixes: prefixes(2), sec: 1, randomBytes: randomBytes('s1') });
  assert.deepEqual(a, b);
  assert.ok(a.iterations > 0);
  assert.deepEqual(verifyHbaSet(a.members.map((m) => m.address), a.members[1]!.params), [true, true]);
});

test('the procedure by hand (RFC 5535 §6) gives the same set: modifier, Extended Modifier, Multi-Prefix, Hash1', () => {
  const modifier = hex('00112233445566778899aabbccddeeff');
  const nonce = hex('ff'.repeat(48));
  const set = generateHbaSet({ prefixes: ['2001:db8:a::', '2001:db8:b::'], sec: 0, randomBytes: fixedBytes(modifier, nonce) });
  const key = encodeExtendedModifier(nonce);
  // SPKI: SEQUENCE { rsaEncryption NULL, BIT STRING { SEQUENCE { INTEGER 00ff…ff (49), INTEGER 65537 } } }
  assert.equal(toHex(key), '304c300d06092a864886f70d0101010500033b003038023100' + 'ff'.repeat(48) + '0203010001');
  assert.deepEqual(set.publicKey, key);
  const ext = encodeMultiPrefixExtension({ publicKeyIncluded: false, prefixes: [prefix64('2001:db8:a::'), prefix64('2001:db8:b::')] });
  assert.equal(toHex(ext.data), '00000000' + '20010db8000a0000' + '20010db8000b0000');
  const params0 = encodeCgaParams({ modifier, subnetPrefix: prefix64('2001:db8:a::'), collisionCount: 0, publicKey: key, extensions: [ext] });
  assert.deepEqual(set.members[0]!.params, params0);
  // Ext Len on the wire = 4 + 8n = 20 (RFC 5535 §6 step 1).
  assert.equal(toHex(params0.subarray(25 + key.length, 25 + key.length + 4)), '00120014');
  const h1 = crypto.createHash('sha1').update(params0).digest();
  const iid = Buffer.from(h1.subarray(0, 8));
  iid[0] = (iid[0]! & 0x1c);
  assert.equal(set.members[0]!.address.split(':').slice(4).map((g) => g.padStart(4, '0')).join(''), iid.toString('hex'));
  assert.deepEqual(decodeMultiPrefixExtension(ext).prefixes.map(toHex), ['20010db8000a0000', '20010db8000b0000']);
});

test('an Extended Modifier with leading zero octets stays minimal DER and still verifies', () => {
  const nonce = new Uint8Array(48); nonce[5] = 0x01;
  const key = encodeExtendedModifier(nonce);
  // The modulus INTEGER drops the five leading zero octets: 02 2b 01 00…00 (43 octets), then e = 65537.
  assert.ok(toHex(key).endsWith('022b01' + '00'.repeat(42) + '0203010001'), toHex(key));
  assert.equal(key.length, 78 - 6);
  const set = generateHbaSet({ prefixes: prefixes(2), sec: 0, randomBytes: fixedBytes(new Uint8Array(16), nonce) });
  assert.deepEqual(verifyHbaSet(set.members.map((m) => m.address), set.members[0]!.params), [true, true]);
});

test('tampering: other prefix, other IID, changed parameters, cross-set — each fails with its reason', () => {
  const set = generateHbaSet({ prefixes: prefixes(4), sec: 1, randomBytes: randomBytes('tamper') });
  const [m0, m1] = set.members;
  assert.ok(m0 && m1);
  // A prefix outside the Multi-Prefix extension, same IID.
  const foreign = m1.address.replace(/^2001:db8:2:/, '2001:db8:99:');
  assert.equal(checkHbaAddress(foreign, m0.params), 'prefix-not-in-set');
  // m1's IID on m0's prefix: prefix listed, but Hash1 is of the other prefix.
  const swapped = `2001:db8:1:0:${m1.address.split(':').slice(4).join(':')}`;
  assert.equal(checkHbaAddress(swapped, m0.params), 'hash1-mismatch');
  const higherSec = m1.address.split(':');
  higherSec[4] = (parseInt(higherSec[4]!, 16) ^ 0x4000).toString(16); // Sec 1 → 3
  assert.equal(checkHbaAddress(higherSec.join(':'), m0.params), 'unsupported-sec');
  // Every single-bit flip of the parameters breaks membership (or structure).
  for (let i = 0; i < m0.params.length; i++) {
    if (i >= 16 && i < 24) continue; // the Subnet Prefix field is replaced by the address's prefix (RFC 5535 §7.2)
    const t = flipped(m0.params, i, 1 << (i % 8));
    assert.notEqual(checkHbaAddress(m1.address, t), 'ok', `octet ${i}`);
  }
  const cc = m0.params.slice(); cc[24] = 3;
  assert.equal(checkHbaAddress(m1.address, cc), 'collision-count');
  assert.equal(checkHbaAddress(m1.address, m0.params.subarray(0, 40)), 'malformed');
  // Another set's structure does not vouch for this set.
  const other = generateHbaSet({ prefixes: prefixes(4), sec: 1, randomBytes: randomBytes('other') });
  assert.equal(verifyHbaAddress(m1.address, other.members[0]!.params), false);
  // A plain CGA structure (no Multi-Prefix) is not an HBA set.
  const rfc = hex('89a8a8b2e858d8b8f2633f44d2d4ce9bfe8000000000000000305c300d06092a864886f70d0101010500034b003048024100c2c2f1373054' +
    '54f10bd9cea36844b530e9211a4b262b16467cb7dfba1f595c0194f275be5a4d386f2c3c2382508773c7867f9b3b9e63a09c7bc48f7a54ebefaf0203010001');
  assert.equal(verifyCga('fe80::3c4a:5bf6:ffb4:ca6c', rfc), true);
  assert.equal(checkHbaAddress('fe80::3c4a:5bf6:ffb4:ca6c', rfc), 'no-multi-prefix');
  const twoMp = Uint8Array.of(...m0.params, 0x00, 0x12, 0x00, 0x04, 0, 0, 0, 0);
  assert.equal(checkHbaAddress(m0.address, twoMp), 'no-multi-prefix');
});

test('checkHbaSet computes Hash2 once and still judges each address by its own Sec', () => {
  const set = generateHbaSet({ prefixes: prefixes(3), sec: 1, randomBytes: randomBytes('mixed') });
  const zeros = toHex(cgaHash2(set.members[0]!.params)).match(/^0*/)![0].length;
  const asSec = (a: string, sec: number): string => {
    const g = a.split(':');
    g[4] = ((parseInt(g[4]!, 16) & 0x1fff) | (sec << 13)).toString(16);
    return g.join(':');
  };
  const addrs = [asSec(set.members[0]!.address, 0), set.members[1]!.address, asSec(set.members[2]!.address, 2)];
  const expectSec2 = zeros >= 8 ? 'ok' : 'hash2-mismatch';
  assert.deepEqual(checkHbaSet(addrs, set.members[0]!.params), ['ok', 'ok', expectSec2]);
});

test('generateHbaSet input checks', () => {
  const rb = randomBytes('in');
  const bad = (o: Parameters<typeof generateHbaSet>[0], code: string): void => {
    assert.throws(() => generateHbaSet(o), (e: unknown) => e instanceof UsageError && e.code === code);
  };
  bad({ prefixes: [], sec: 0, randomBytes: rb }, 'EPREFIX');
  bad({ prefixes: ['2001:db8:1::/64', '2001:db8:1::'], sec: 0, randomBytes: rb }, 'EPREFIX');
  bad({ prefixes: ['2001:db8:1::1'], sec: 0, randomBytes: rb }, 'EPREFIX');
  bad({ prefixes: prefixes(2), sec: 3, randomBytes: rb }, 'ESEC');
  bad({ prefixes: prefixes(2), sec: 2, randomBytes: rb, maxIterations: 10 }, 'ECGA_SEARCH');
});

test('hbaDigest is SHA-256 of the structure; hbaDigestForUlid matches it from any member', () => {
  const set = generateHbaSet({ prefixes: prefixes(3), sec: 0, randomBytes: randomBytes('digest') });
  const ulid = set.members[1]!;
  const d = hbaDigest(ulid.params);
  assert.equal(toHex(d), crypto.createHash('sha256').update(ulid.params).digest('hex'));
  assert.equal(d.length, 32);
  for (const m of set.members) assert.deepEqual(hbaDigestForUlid(m.params, ulid.address), d);
  assert.notDeepEqual(hbaDigest(set.members[0]!.params), d);
});

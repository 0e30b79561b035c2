// The Shim6 CGA Signature (RFC 5533 §5.15.5, RFC 3972 §6): signed octets,
// sign/verify with real RSA keys, and every way it must fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { cgaSignatureInput, generateCga, signCgaLocators, verifyCgaSignature } from '../../shim/wire/cga.ts';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { UsageError } from '../../shim/errors.ts';
import { flipped, toHex } from '../helpers/octets.ts';
import { randomBytes } from '../helpers/rng.ts';

const keys = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
const spki = new Uint8Array(keys.publicKey.export({ format: 'der', type: 'spki' }));
const ulid = generateCga({ subnetPrefix: '2001:db8:1::/64', publicKey: spki, sec: 0, randomBytes: randomBytes('sig') });
const locators = ['2001:db8:2::10', '2001:db8:3::20'];

test('signed octets: type tag 0x4A30…6D48 ‖ generation u32 ‖ locators in list order', () => {
  const input = cgaSignatureInput(0x01020304, locators);
  assert.equal(toHex(input.subarray(0, 16)), '4a305662485857 4b3655416f506a6d48'.replace(/ /g, ''));
  assert.equal(toHex(input.subarray(16, 20)), '01020304');
  assert.equal(toHex(input.subarray(20, 36)), '20010db8000200000000000000000010');
  assert.equal(toHex(input.subarray(36)), '20010db8000300000000000000000020');
  assert.equal(cgaSignatureInput(0, []).length, 20);
  for (const g of [-1, 2 ** 32, 1.5]) {
    assert.throws(() => cgaSignatureInput(g, locators), (e: unknown) => e instanceof UsageError && e.code === 'EGENERATION');
  }
});

test('sign → verify (KeyObject, PEM, PKCS#8 DER) and the signature is RSASSA-PKCS1-v1_5/SHA-1', () => {
  const sig = signCgaLocators(keys.privateKey, 7, locators);
  assert.equal(sig.length, 128);
  assert.ok(verifyCgaSignature({ params: ulid.params, generation: 7, locators, signature: sig, ulid: ulid.address }));
  const pem = keys.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  const der = new Uint8Array(keys.privateKey.export({ format: 'der', type: 'pkcs8' }));
  assert.deepEqual(signCgaLocators(pem, 7, locators), sig);
  assert.deepEqual(signCgaLocators(der, 7, locators), sig);
  // Independent check with node's verifier over the documented octets.
  assert.ok(crypto.verify('sha1', cgaSignatureInput(7, locators), { key: keys.publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, sig));
});

test('tampered generation, locator, order, signature, parameters or ULID fail', () => {
  const sig = signCgaLocators(keys.privateKey, 7, locators);
  const base = { params: ulid.params, generation: 7, locators, signature: sig, ulid: ulid.address };
  assert.equal(verifyCgaSignature({ ...base, generation: 8 }), false);
  assert.equal(verifyCgaSignature({ ...base, locators: ['2001:db8:2::11', locators[1]!] }), false);
  assert.equal(verifyCgaSignature({ ...base, locators: [...locators].reverse() }), false);
  assert.equal(verifyCgaSignature({ ...base, locators: locators.slice(0, 1) }), false);
  const s2 = flipped(sig, 50, 4);
  assert.equal(verifyCgaSignature({ ...base, signature: s2 }), false);
  assert.equal(verifyCgaSignature({ ...base, signature: sig.subarray(0, 100) }), false);
  const other = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 });
  assert.equal(verifyCgaSignature({ ...base, signature: signCgaLocators(other.privateKey, 7, locators) }), false);
  const p2 = flipped(ulid.params, 0); // the modifier: the ULID no longer matches
  assert.equal(verifyCgaSignature({ ...base, params: p2 }), false);
  const { ulid: _u, ...withoutUlid } = base;
  assert.equal(verifyCgaSignature({ ...withoutUlid, params: p2 }), true, 'modifier is not part of the signature; ULID check is what catches it');
  assert.equal(verifyCgaSignature({ ...base, ulid: '2001:db8:1::1' }), false);
  assert.equal(verifyCgaSignature({ ...base, params: ulid.params.subarray(0, 30) }), false);
});

test('keys below 1024 bits, non-RSA keys and HBA-only parameter sets are refused', () => {
  const small = crypto.generateKeyPairSync('rsa', { modulusLength: 512 });
  const smallSpki = new Uint8Array(small.publicKey.export({ format: 'der', type: 'spki' }));
  const sg = generateCga({ subnetPrefix: '2001:db8:1::', publicKey: smallSpki, sec: 0, randomBytes: randomBytes('small') });
  const sig = signCgaLocators(small.privateKey, 1, locators);
  assert.equal(verifyCgaSignature({ params: sg.params, generation: 1, locators, signature: sig }), false);
  assert.equal(verifyCgaSignature({ params: sg.params, generation: 1, locators, signature: sig, minKeyBits: 512 }), true);

  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecSpki = new Uint8Array(ec.publicKey.export({ format: 'der', type: 'spki' }));
  const eg = generateCga({ subnetPrefix: '2001:db8:1::', publicKey: ecSpki, sec: 0, randomBytes: randomBytes('ec') });
  const ecSig = new Uint8Array(crypto.sign('sha1', cgaSignatureInput(1, locators), ec.privateKey));
  assert.equal(verifyCgaSignature({ params: eg.params, generation: 1, locators, signature: ecSig }), false);
  assert.throws(() => signCgaLocators(ec.privateKey, 1, locators), (e: unknown) => e instanceof UsageError && e.code === 'EKEY');

  // HBA/CGA set (P = 1) signs; the same key bytes under P = 0 are a nonce and do not.
  const set = generateHbaSet({ prefixes: ['2001:db8:1::/64', '2001:db8:2::/64'], sec: 0, publicKey: spki, randomBytes: randomBytes('hc') });
  const m = set.members[0]!;
  const hsig = signCgaLocators(keys.privateKey, 3, locators);
  assert.ok(verifyCgaSignature({ params: m.params, generation: 3, locators, signature: hsig, ulid: m.address }));
  const pZero = m.params.slice();
  pZero[25 + spki.length + 4] = 0; // the P flag octet of the Multi-Prefix extension
  assert.equal(verifyCgaSignature({ params: pZero, generation: 3, locators, signature: hsig }), false);
});

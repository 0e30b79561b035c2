// Seeded fuzz of every wire decoder: at least 100,000 random and mutated inputs.
// A decoder may return a value or throw WireError with a known code; anything else
// (TypeError, RangeError, a hang) fails. Inputs whose checksum we reseal after
// mutating reach the body and option decoders, not just the checksum check.
// What decodes must re-encode and decode to the same value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { rsaKeyShape } from '../../shim/wire/cga.ts';
import { decodeMessage, decodePayloadHeader, encodeMessage, WireError } from '../../shim/wire/index.ts';
import { resealChecksum } from '../helpers/octets.ts';
import { demoMessages } from '../../shim/wire/demo.ts';
import { anyMessage } from './arbitraries.ts';
import { SimRng, fuzzRuns, fuzzSeed } from '../helpers/rng.ts';

/** Seeded floats in [0, 1) (test/helpers/rng.ts). */
function rng(seed: number): () => number {
  const r = new SimRng(seed);
  return () => r.float();
}

const CODES = new Set(['ETRUNCATED', 'ELENGTH', 'ECHECKSUM', 'ETYPE', 'EFIELD', 'ECRITICAL_OPTION', 'EOPTION']);
const KNOWN_TYPES = [1, 2, 3, 4, 5, 6, 60, 61, 64, 65, 66, 67, 68];


/** Every leaf of a decoded value is a defined, non-NaN value. */
function assertDefined(v: unknown, where: string): void {
  if (v === undefined || (typeof v === 'number' && !Number.isInteger(v))) assert.fail(`undefined or non-integer in ${where}`);
  if (v instanceof Uint8Array || v === null || typeof v !== 'object') return;
  for (const x of Object.values(v)) assertDefined(x, where);
}

test('fuzz: 120,000 random and mutated inputs through every decoder see only WireError', (t) => {
  const r = rng(fuzzSeed(t, 0x5133));
  const int = (n: number): number => Math.floor(r() * n);
  const seeds = [...demoMessages(), ...fc.sample(anyMessage, { seed: fuzzSeed(t, 5533), numRuns: 400 })].map(encodeMessage);
  const outcomes = new Map<string, number>();
  let inputs = 0;

  const feed = (b: Uint8Array): void => {
    inputs++;
    for (const [name, decode] of [['message', decodeMessage], ['payload', decodePayloadHeader]] as const) {
      let outcome = 'ok';
      let value: unknown;
      try {
        value = decode(b);
      } catch (e) {
        if (!(e instanceof WireError) || !CODES.has(e.code)) {
          assert.fail(`${name} decoder threw ${String(e)} on ${Buffer.from(b).toString('hex')}`);
        }
        outcome = e.code;
      }
      if (outcome === 'ok') {
        // A read past the input would show up as undefined or NaN somewhere in the value.
        assertDefined(value, `${name} of ${Buffer.from(b).toString('hex')}`);
        if (name === 'message') {
          const m = value as ReturnType<typeof decodeMessage>;
          assert.deepEqual(decodeMessage(encodeMessage(m)), m, 're-encoding a decoded message changed it');
        }
      }
      const k = `${name}:${outcome}`;
      outcomes.set(k, (outcomes.get(k) ?? 0) + 1);
    }
  };

  // 1. Pure random bytes, random lengths.
  for (let i = 0; i < fuzzRuns(20_000); i++) {
    const b = new Uint8Array(int(300));
    for (let j = 0; j < b.length; j++) b[j] = int(256);
    feed(b);
  }
  // 2. Random bodies behind a plausible header: known type, consistent Hdr Ext Len, checksum resealed.
  for (let i = 0; i < fuzzRuns(30_000); i++) {
    const hel = int(12);
    const b = new Uint8Array((hel + 1) * 8 + (r() < 0.1 ? int(8) : 0));
    for (let j = 0; j < b.length; j++) b[j] = r() < 0.5 ? 0 : int(256);
    b[0] = 59;
    b[1] = hel;
    b[2] = KNOWN_TYPES[int(KNOWN_TYPES.length)]!;
    b[3] = b[3]! & 0xfe;
    if (r() < 0.5) { b[16] = 0; b[17] = int(20); } // a small option type at the first option position
    resealChecksum(b);
    feed(b);
  }
  // 3. Mutations of valid messages: bit flips, octet writes, truncation, extension,
  //    length-field edits; resealed most of the time.
  for (let i = 0; i < fuzzRuns(70_000); i++) {
    const src = seeds[int(seeds.length)]!;
    let b: Uint8Array = src.slice();
    const edits = 1 + int(4);
    for (let e = 0; e < edits; e++) {
      const kind = int(6);
      if (kind === 0 && b.length > 0) b[int(b.length)]! ^= 1 << int(8);
      else if (kind === 1 && b.length > 0) b[int(b.length)] = int(256);
      else if (kind === 2) b = b.subarray(0, int(b.length + 1));
      else if (kind === 3) { const x = new Uint8Array(b.length + 1 + int(16)); x.set(b); b = x; }
      else if (kind === 4 && b.length > 1) b[1] = int(256);
      else if (kind === 5 && b.length >= 20) { const o = 16 + 8 * int((b.length - 16) >> 3); if (o + 3 < b.length) b[o + 3] = int(256); }
    }
    if (r() < 0.8) resealChecksum(b);
    feed(b);
  }

  assert.ok(inputs >= 100_000, `only ${inputs} inputs`);
  // The fuzz must reach deep: decodes that succeed, and failures beyond the checksum.
  for (const k of ['message:ok', 'message:ECHECKSUM', 'message:ETYPE', 'message:ELENGTH', 'message:ETRUNCATED', 'message:EOPTION', 'message:ECRITICAL_OPTION', 'message:EFIELD', 'payload:ok']) {
    assert.ok((outcomes.get(k) ?? 0) > 0, `no input reached ${k}: ${JSON.stringify([...outcomes])}`);
  }
});

test('fuzz: the CGA key-shape reader (rsaKeyShape, DER from a peer) takes random and mutated SubjectPublicKeyInfos without throwing, and never calls a key OpenSSL cannot read "ok"', (t) => {
  const r = rng(fuzzSeed(t, 0x5335));
  const real = [1024, 2048].map((bits) => new Uint8Array(generateKeyPairSync('rsa', { modulusLength: bits }).publicKey.export({ type: 'spki', format: 'der' })));
  const outcomes = new Set(['ok', 'not-rsa', 'key-too-short', 'key-too-long', 'bad-exponent']);
  const counts: Record<string, number> = {};
  for (let i = 0; i < fuzzRuns(20_000); i++) {
    let b: Uint8Array;
    if (i % 4 === 0) {
      b = Uint8Array.from({ length: Math.floor(r() * 600) }, () => Math.floor(r() * 256));
    } else {
      b = Uint8Array.from(real[i % 2]!);
      for (let k = 1 + Math.floor(r() * 4); k > 0; k--) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      if (r() < 0.2) b = b.subarray(0, Math.floor(r() * b.length));
    }
    const shape = rsaKeyShape(b);
    assert.ok(outcomes.has(shape), `unknown outcome ${shape}`);
    counts[shape] = (counts[shape] ?? 0) + 1;
    if (shape === 'ok') {
      // What the reader passes must be an RSA key OpenSSL parses with the bounds the reader saw.
      const key = createPublicKey({ key: Buffer.from(b), format: 'der', type: 'spki' });
      assert.equal(key.asymmetricKeyType, 'rsa');
      const d = key.asymmetricKeyDetails!;
      assert.ok(d.modulusLength! >= 1024 && d.modulusLength! <= 4096 && d.publicExponent! % 2n === 1n && d.publicExponent! <= 0xffff_ffffn, `${d.modulusLength} bits, e ${d.publicExponent}`);
    }
  }
  t.diagnostic(`outcomes: ${JSON.stringify(counts)}`);
  assert.ok((counts.ok ?? 0) > 0 && (counts['not-rsa'] ?? 0) > 0, 'both accepted and refused inputs were met');
});

// Round-trip properties (fast-check, fixed seed): for every message type and every
// option, decode(encode(x)) equals x, encodingLength matches, the header is a
// multiple of 8 and its checksum verifies; the JSON form round-trips too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, decodePayloadHeader, encodeMessage, encodePayloadHeader, encodingLength, shim6Checksum, type Shim6Message } from '../../shim/wire/index.ts';
import { messageFromJson, toJson } from '../../shim/wire/json.ts';
import { anyMessage, messageArb, optionArb, tag, u8 } from './arbitraries.ts';
import { fuzzParams } from '../helpers/rng.ts';

const SEED = 5533;

function roundTrips(m: Shim6Message): void {
  const bytes = encodeMessage(m);
  assert.equal(bytes.length, encodingLength(m));
  assert.equal(bytes.length % 8, 0);
  assert.equal((bytes[1]! + 1) * 8, bytes.length);
  assert.equal(bytes[0], 59);
  assert.equal(shim6Checksum(bytes, bytes.length), 0);
  assert.deepEqual(decodeMessage(bytes), m);
}

for (const [name, arb] of Object.entries(messageArb)) {
  test(`round trip: ${name}`, (t) => {
    fc.assert(fc.property(arb, roundTrips), fuzzParams(t, { seed: SEED, numRuns: 300 }));
  });
}

for (const [name, arb] of Object.entries(optionArb)) {
  test(`round trip: option ${name} (inside an I2, which allows every option)`, (t) => {
    fc.assert(fc.property(arb, fc.array(arb, { maxLength: 2 }), (o, more) => {
      roundTrips({ type: 'I2', contextTag: 1, initiatorNonce: 2, responderNonce: 3, options: [o, ...more] });
    }), fuzzParams(t, { seed: SEED, numRuns: 300 }));
  });
}

test('round trip: payload extension header', (ctx) => {
  fc.assert(fc.property(u8, tag, (nh, t) => {
    assert.deepEqual(decodePayloadHeader(encodePayloadHeader(nh, t)), { nextHeader: nh, contextTag: t, headerLength: 8 });
  }), fuzzParams(ctx, { seed: SEED, numRuns: 500 }));
});

test('round trip: JSON form (bytes as hex) of every message', (t) => {
  fc.assert(fc.property(anyMessage, (m) => {
    const json = JSON.stringify(toJson(m));
    assert.deepEqual(messageFromJson(json), m);
    assert.deepEqual(decodeMessage(encodeMessage(messageFromJson(json))), m);
  }), fuzzParams(t, { seed: SEED, numRuns: 500 }));
});

// Golden bytes per message: each hex string was built by hand from the RFC 5533 §5 /
// RFC 5534 §5 layouts (field by field, checksum computed separately), not by our
// encoder. Both directions are checked: encode(msg) gives the bytes, decode(bytes)
// gives the message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, decodePayloadHeader, encodeMessage, encodePayloadHeader, encodingLength, isPayloadHeader, writePayloadHeader, type Shim6Message } from '../../shim/wire/index.ts';

const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));
const b = (h: string): Uint8Array => hex(h);

interface Golden { name: string; msg: Shim6Message; bytes: string }

const GOLDEN: Golden[] = [
  {
    // The tshark canary (docs/wire.md "pcap"): checksum 0x9e73.
    name: 'I1 (canary)',
    msg: { type: 'I1', contextTag: 0x123456789abc, initiatorNonce: 0x11111111, options: [] },
    bytes: '3b 01 01 00 9e73 123456789abc 11111111',
  },
  {
    name: 'I1 with ULID Pair and critical Forked Instance Identifier',
    msg: {
      type: 'I1', contextTag: 1, initiatorNonce: 2, options: [
        { type: 'UlidPair', critical: false, senderUlid: '2001:db8::1', receiverUlid: '2001:db8::2' },
        { type: 'ForkedInstanceIdentifier', critical: true, forkedInstanceId: 0xdeadbeef },
      ],
    },
    bytes: '3b 07 01 00 ca9f 000000000001 00000002' +
      ' 000c 0024 00000000 20010db8000000000000000000000001 20010db8000000000000000000000002' +
      ' 000f 0004 deadbeef',
  },
  {
    name: 'R1 with Responder Validator',
    msg: { type: 'R1', initiatorNonce: 0x11111111, responderNonce: 0x22222222, options: [{ type: 'ResponderValidator', critical: false, validator: b('aabbccdd') }] },
    bytes: '3b 02 02 00 e4f7 0000 11111111 22222222  0002 0004 aabbccdd',
  },
  {
    name: 'I2 with validator, Locator List (HBA+CGA), Locator Preferences, Keepalive Timeout',
    msg: {
      type: 'I2', contextTag: 2 ** 47 - 1, initiatorNonce: 0xffffffff, responderNonce: 0x01020304, options: [
        { type: 'ResponderValidator', critical: false, validator: b('aabbccdd') },
        { type: 'LocatorList', critical: false, generation: 7, locators: [{ address: '2001:db8:a::1', verificationMethod: 1 }, { address: '2001:db8:b::1', verificationMethod: 2 }] },
        { type: 'LocatorPreferences', critical: false, generation: 7, elementLength: 1, elements: [{ flags: 0x01 }, { flags: 0x02 }] },
        { type: 'KeepaliveTimeout', critical: false, timeoutSeconds: 10 },
      ],
    },
    bytes: '3b 0c 03 00 6356 7fffffffffff ffffffff 01020304 00000000' +
      ' 0002 0004 aabbccdd' +
      // Locator List: Length 44 = gen 4 + N 1 + methods 2 + internal padding 5 + 2 × 16.
      ' 0004 002c 00000007 02 01 02 0000000000 20010db8000a00000000000000000001 20010db8000b00000000000000000001' +
      ' 0006 0007 00000007 01 01 02 0000000000' +
      ' 0014 0004 0000 000a',
  },
  {
    name: 'R2 with CGA Parameter Data Structure and CGA Signature (option padding 7 and 1)',
    msg: {
      type: 'R2', contextTag: 0x0bcdef012345, initiatorNonce: 0x33333333, options: [
        { type: 'CgaParameterDataStructure', critical: false, pds: b('0102030405') },
        { type: 'CgaSignature', critical: false, signature: b('a1a2a3') },
      ],
    },
    bytes: '3b 04 04 00 eebd 0bcdef012345 33333333  0008 0005 0102030405 00000000000000  000a 0003 a1a2a3 00',
  },
  {
    name: 'R1bis',
    msg: { type: 'R1bis', packetContextTag: 0x0bcdef012345, responderNonce: 0x44444444, options: [{ type: 'ResponderValidator', critical: false, validator: b('aabbccdd') }] },
    bytes: '3b 02 05 00 a1c1 0bcdef012345 44444444  0002 0004 aabbccdd',
  },
  {
    name: 'I2bis (32 octets, packet tag at octet 26)',
    msg: { type: 'I2bis', contextTag: 0x123456789abc, initiatorNonce: 0x55555555, responderNonce: 0x44444444, packetContextTag: 0x0bcdef012345, options: [] },
    bytes: '3b 03 06 00 6a4c 123456789abc 55555555 44444444 000000000000 0bcdef012345',
  },
  {
    name: 'Update Request with a one-locator Locator List (internal padding 6)',
    msg: { type: 'UpdateRequest', contextTag: 42, requestNonce: 0x66666666, options: [{ type: 'LocatorList', critical: false, generation: 8, locators: [{ address: '2001:db8:c::1', verificationMethod: 1 }] }] },
    bytes: '3b 05 40 00 8914 00000000002a 66666666  0004 001c 00000008 01 01 000000000000 20010db8000c00000000000000000001',
  },
  {
    name: 'Update Ack',
    msg: { type: 'UpdateAck', contextTag: 42, requestNonce: 0x66666666, options: [] },
    bytes: '3b 01 41 00 b707 00000000002a 66666666',
  },
  {
    name: 'Keepalive',
    msg: { type: 'Keepalive', contextTag: 42, options: [] },
    bytes: '3b 01 42 00 82d4 00000000002a 00000000',
  },
  {
    name: 'Probe (Precvd 1 | Psent 1, state Exploring in the top bits of octet 13)',
    msg: {
      type: 'Probe', contextTag: 42, state: 'Exploring',
      sent: [{ source: '2001:db8:a::1', destination: '2001:db8:b::1', nonce: 0x77777777, data: 5 }],
      received: [{ source: '2001:db8:b::1', destination: '2001:db8:a::1', nonce: 0x88888888, data: 6 }],
      options: [],
    },
    bytes: '3b 0b 43 00 b96c 00000000002a 11 40 0000' +
      ' 20010db8000a00000000000000000001 20010db8000b00000000000000000001 77777777 00000005' +
      ' 20010db8000b00000000000000000001 20010db8000a00000000000000000001 88888888 00000006',
  },
  {
    name: 'Error (code 1 in octet 3 above the S bit, pointer, packet in error)',
    msg: { type: 'Error', errorCode: 1, pointer: 16, offendingPacket: b('0001020304050607'), options: [] },
    bytes: '3b 01 44 02 74dc 0010 0001020304050607',
  },
  {
    name: 'Close (type 60: receiver context tag, nonce)',
    msg: { type: 'Close', contextTag: 42, nonce: 0x99999999, options: [] },
    bytes: '3b 01 3c 00 55a1 00000000002a 99999999',
  },
  {
    name: 'CloseAck (type 61: the other side\'s tag, nonce echoed)',
    msg: { type: 'CloseAck', contextTag: 43, nonce: 0x99999999, options: [] },
    bytes: '3b 01 3d 00 54a0 00000000002b 99999999',
  },
];

for (const g of GOLDEN) {
  test(`golden: ${g.name}`, () => {
    const want = hex(g.bytes);
    const got = encodeMessage(g.msg);
    assert.equal(Buffer.from(got).toString('hex'), Buffer.from(want).toString('hex'));
    assert.equal(encodingLength(g.msg), want.length);
    assert.deepEqual(decodeMessage(want), g.msg);
  });
}

test('golden: payload extension header (P=1, Hdr Ext Len 0, 47-bit tag)', () => {
  const want = hex('06 00 92 3456789abc');
  assert.deepEqual(encodePayloadHeader(6, 0x123456789abc), want);
  assert.ok(isPayloadHeader(want));
  assert.deepEqual(decodePayloadHeader(want), { nextHeader: 6, contextTag: 0x123456789abc, headerLength: 8 });
  assert.ok(!isPayloadHeader(hex(GOLDEN[0]!.bytes)));
  // In place, after other octets, overwriting whatever was there.
  const buf = new Uint8Array(12).fill(0xff);
  writePayloadHeader(buf, 2, 6, 0x123456789abc);
  assert.deepEqual(buf, hex('ffff 06 00 92 3456789abc ffff'));
  assert.throws(() => writePayloadHeader(buf, 5, 6, 1), { code: 'ELENGTH' });
});

test('golden: reserved fields and R bits are ignored on receipt (RFC 5533 §5.4)', () => {
  // Canary I1 with Reserved1 = 0x7f and the R bit set: checksum recomputed by hand (0x9e73 - 0xfe - 0x8000).
  const msg = decodeMessage(hex('3b 01 01 fe 1d75 923456789abc 11111111'));
  assert.deepEqual(msg, { type: 'I1', contextTag: 0x123456789abc, initiatorNonce: 0x11111111, options: [] });
});

test('golden: octets after the header are ignored (Next Header 59)', () => {
  const msg = decodeMessage(hex('3b 01 01 00 9e73 123456789abc 11111111 deadbeef'));
  assert.equal(msg.type, 'I1');
});

// Malformed and unusual input: each case asserts the WireError code (never the text),
// and where it matters the offset and option type the engine needs for an Error message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  decodeMessage, decodePayloadHeader, encodeMessage, encodingLength, shim6Checksum, tryDecodeMessage, WireError,
  type Shim6Message,
} from '../../shim/wire/index.ts';

const hex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h.replace(/\s+/g, ''), 'hex'));

/** Bytes with the checksum recomputed (the checksum itself is pinned by the golden tests). */
function sealed(h: string): Uint8Array {
  const b = hex(h);
  b[4] = 0;
  b[5] = 0;
  const c = shim6Checksum(b, (b[1]! + 1) * 8);
  b[4] = c >>> 8;
  b[5] = c & 0xff;
  return b;
}

function rejects(bytes: Uint8Array, code: string, extra: { offset?: number; optionType?: number } = {}): void {
  assert.throws(() => decodeMessage(bytes), (e: unknown) => {
    assert.ok(e instanceof WireError, `not a WireError: ${String(e)}`);
    assert.equal(e.code, code);
    if (extra.offset !== undefined) assert.equal(e.offset, extra.offset);
    if (extra.optionType !== undefined) assert.equal(e.optionType, extra.optionType);
    return true;
  });
}

const I1 = '3b 01 01 00 0000 123456789abc 11111111';

test('ETRUNCATED: shorter than 8 octets, or than Hdr Ext Len says', () => {
  rejects(new Uint8Array(0), 'ETRUNCATED');
  rejects(hex('3b 01 01 00 9e73 1234'), 'ETRUNCATED');
  rejects(hex('3b 01 01 00 9e73 123456789abc 111111'), 'ETRUNCATED', { offset: 1 });
  rejects(sealed(I1).subarray(0, 15), 'ETRUNCATED');
});

test('ECHECKSUM: any flipped bit in the header', () => {
  const good = sealed(I1);
  for (let bit = 0; bit < good.length * 8; bit++) {
    const b = good.slice();
    b[bit >> 3]! ^= 0x80 >> (bit & 7);
    // A flip in octet 1 (Hdr Ext Len) may make the header longer than the input, and a flip of the P bit makes it a payload header.
    const r = tryDecodeMessage(b);
    assert.equal(r.ok, false, `bit ${bit}`);
    if (!r.ok && bit >= 24) assert.equal(r.error.code, 'ECHECKSUM', `bit ${bit}`);
  }
});

test('ETYPE: unknown message type (offset of the type octet), P bit, S bit', () => {
  rejects(sealed('3b 01 07 00 0000 123456789abc 11111111'), 'ETYPE', { offset: 2 });
  rejects(sealed('3b 01 7f 00 0000 123456789abc 11111111'), 'ETYPE', { offset: 2 });
  rejects(sealed('3b 01 81 00 0000 123456789abc 11111111'), 'ETYPE', { offset: 2 });
  rejects(sealed('3b 01 01 01 0000 123456789abc 11111111'), 'ETYPE', { offset: 3 });
});

test('ELENGTH: below the minimum Hdr Ext Len of the type', () => {
  rejects(sealed('3b 00 01 00 0000 0000'), 'ELENGTH'); // I1 needs 1
  rejects(sealed('3b 01 03 00 0000 123456789abc 11111111'), 'ELENGTH'); // I2 needs 2
  rejects(sealed('3b 02 06 00 0000 123456789abc 11111111 22222222 00000000'), 'ELENGTH'); // I2bis needs 3
  rejects(sealed('3b 05 43 00 0000 00000000002a 01 00 0000' + '00'.repeat(32)), 'ELENGTH'); // Probe needs 56 octets
  rejects(sealed('3b 00 44 00 0000 0000'), 'ELENGTH'); // Error needs 1
  rejects(sealed('3b 00 3c 00 0000 0000'), 'ELENGTH'); // Close needs 1
});

test('Probe: reports beyond the header, Psent 0, state 3', () => {
  const report = '00'.repeat(40);
  rejects(sealed('3b 06 43 00 0000 00000000002a 12 00 0000' + report), 'ELENGTH'); // Psent 2 + Precvd 1, one report of room
  // Psent 2 with room for one, and octets after the header: the second report must not be read from them.
  rejects(sealed('3b 06 43 00 0000 00000000002a 02 00 0000' + report + report), 'ELENGTH');
  rejects(sealed('3b 06 43 00 0000 00000000002a 10 00 0000' + report), 'EFIELD', { offset: 12 });
  rejects(sealed('3b 06 43 00 0000 00000000002a 01 c0 0000' + report), 'EFIELD', { offset: 13 });
  const ok = decodeMessage(sealed('3b 06 43 00 0000 00000000002a 01 bf ffff' + report));
  assert.equal(ok.type === 'Probe' && ok.state, 'InboundOk'); // reserved bits below the state ignored
});

test('ECRITICAL_OPTION: unknown type with C=1 carries the option type and points at it', () => {
  rejects(sealed(`3b 02 01 00 0000 123456789abc 11111111  ${(99 * 2 + 1).toString(16).padStart(4, '0')} 0004 01020304`), 'ECRITICAL_OPTION', { offset: 16, optionType: 99 });
});

test('ECRITICAL_OPTION: a known option not allowed in this message, with C=1', () => {
  // Keepalive Timeout (10) is not an I1 option (RFC 5533 §5.4).
  rejects(sealed('3b 02 01 00 0000 123456789abc 11111111  0015 0004 0000000a'), 'ECRITICAL_OPTION', { offset: 16, optionType: 10 });
  // ... and Responder Validator is not a Keepalive option; the second option is the critical one.
  rejects(sealed('3b 03 42 00 0000 00000000002a 00000000  00c8 0000 00000000  0003 0001 ff000000'), 'ECRITICAL_OPTION', { offset: 24, optionType: 1 });
});

test('C=0: unknown and not-allowed options are kept as Unknown, in order, and the rest is processed', () => {
  const msg = decodeMessage(sealed('3b 04 01 00 0000 123456789abc 11111111  00c8 0003 010203 00  0014 0004 0000000a  000e 0004 00000005'));
  assert.deepEqual(msg, {
    type: 'I1', contextTag: 0x123456789abc, initiatorNonce: 0x11111111, options: [
      { type: 'Unknown', critical: false, optionType: 100, data: hex('010203') },
      { type: 'Unknown', critical: false, optionType: 10, data: hex('0000000a') },
      { type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: 5 },
    ],
  });
});

test('EOPTION: Length past the header, or contents that do not fill the declared Length', () => {
  rejects(sealed('3b 02 02 00 0000 0000 11111111 22222222  0002 0005 aabbccdd'), 'EOPTION', { offset: 16 }); // 5 + 4 + pad > 8
  rejects(sealed('3b 06 01 00 0000 000000000001 00000002  000c 0023 00000000' + '00'.repeat(32)), 'EOPTION'); // ULID Pair Length 35
  rejects(sealed('3b 02 01 00 0000 000000000001 00000002  000e 0003 000000 00'), 'EOPTION'); // FII Length 3
  // Locator List with N = 1 but Length 12 (no room for the locator).
  rejects(sealed('3b 03 40 00 0000 00000000002a 66666666  0004 000c 00000008 01 01 000000000000 00000000'), 'EOPTION');
  // Locator Preferences with element length 0, and with a partial element.
  rejects(sealed('3b 02 40 00 0000 00000000002a 66666666  0006 0005 00000008 00 000000'), 'EOPTION');
  rejects(sealed('3b 03 40 00 0000 00000000002a 66666666  0006 0008 00000008 02 010203 00000000 00000000'), 'EOPTION');
});

test('Locator Preferences with element length > 3 keep the extra octets', () => {
  const msg = decodeMessage(sealed('3b 04 40 00 0000 00000000002a 66666666  0006 000d 00000008 04 01020304 05060708 00000000000000'));
  assert.deepEqual(msg.options, [{
    type: 'LocatorPreferences', critical: false, generation: 8, elementLength: 4,
    elements: [{ flags: 1, priority: 2, weight: 3, extra: hex('04') }, { flags: 5, priority: 6, weight: 7, extra: hex('08') }],
  }]);
});

test('payload header errors', () => {
  assert.throws(() => decodePayloadHeader(hex('06 00 92 34')), { code: 'ETRUNCATED' });
  assert.throws(() => decodePayloadHeader(hex('06 00 12 3456789abc')), { code: 'ETYPE' });
  assert.throws(() => decodePayloadHeader(hex('06 01 92 3456789abc')), { code: 'ELENGTH' });
});

test('tryDecodeMessage returns the error instead of throwing', () => {
  const r = tryDecodeMessage(hex('3b'));
  assert.equal(r.ok, false);
  assert.equal(!r.ok && r.error.code, 'ETRUNCATED');
  const ok = tryDecodeMessage(sealed(I1));
  assert.equal(ok.ok && ok.message.type, 'I1');
});

test('encoder rejects values the format cannot hold, naming the field (EFIELD / ELENGTH / ETYPE)', () => {
  const bad = (m: unknown, code: string): void => {
    assert.throws(() => encodeMessage(m as Shim6Message), { code });
    assert.throws(() => encodingLength(m as Shim6Message), { code });
  };
  bad({ type: 'I1', contextTag: 2 ** 47, initiatorNonce: 0, options: [] }, 'EFIELD');
  bad({ type: 'I1', contextTag: 1.5, initiatorNonce: 0, options: [] }, 'EFIELD');
  bad({ type: 'R1', initiatorNonce: -1, responderNonce: 0, options: [] }, 'EFIELD');
  bad({ type: 'R1', initiatorNonce: 2 ** 32, responderNonce: 0, options: [] }, 'EFIELD');
  bad({ type: 'I1', contextTag: 1, initiatorNonce: 0, options: [{ type: 'KeepaliveTimeout', critical: false, timeoutSeconds: 1 }] }, 'EFIELD');
  bad({ type: 'I1', contextTag: 1, initiatorNonce: 0, options: [{ type: 'Unknown', critical: false, optionType: 0x8000, data: new Uint8Array(0) }] }, 'EFIELD');
  bad({ type: 'Nope', options: [] }, 'ETYPE');
  bad({ type: 'Keepalive', contextTag: 1 }, 'EFIELD');
  const report = { source: '::1', destination: '::2', nonce: 0, data: 0 };
  bad({ type: 'Probe', contextTag: 1, state: 'Operational', sent: [], received: [], options: [] }, 'EFIELD');
  bad({ type: 'Probe', contextTag: 1, state: 'Operational', sent: new Array(16).fill(report), received: [], options: [] }, 'EFIELD');
  bad({ type: 'Probe', contextTag: 1, state: 'Lost', sent: [report], received: [], options: [] }, 'EFIELD');
  bad({ type: 'Error', errorCode: 128, pointer: 0, offendingPacket: new Uint8Array(8), options: [] }, 'EFIELD');
  bad({ type: 'LocatorPrefs', options: [] }, 'ETYPE');
  bad({
    type: 'UpdateRequest', contextTag: 1, requestNonce: 1,
    options: [{ type: 'LocatorPreferences', critical: false, generation: 1, elementLength: 2, elements: [{ flags: 0 }] }],
  }, 'EFIELD');
  // The largest header is 2048 octets (Hdr Ext Len 255).
  bad({ type: 'R1', initiatorNonce: 0, responderNonce: 0, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(2030) }] }, 'ELENGTH');
  assert.throws(() => encodeMessage({ type: 'I1', contextTag: 1, initiatorNonce: 0, options: [{ type: 'UlidPair', critical: false, senderUlid: 'nope', receiverUlid: '::1' }] }), { code: 'EADDRESS' });
});

test('Error: a short packet in error is padded with zeros to 8 octets', () => {
  const bytes = encodeMessage({ type: 'Error', errorCode: 0, pointer: 2, offendingPacket: hex('3b0107'), options: [] });
  assert.equal(bytes.length, 16);
  const msg = decodeMessage(bytes);
  assert.deepEqual(msg.type === 'Error' && msg.offendingPacket, hex('3b01070000000000'));
});

test('decoding a Node Buffer gives plain, independent Uint8Arrays', () => {
  const buf = Buffer.from(encodeMessage({ type: 'R1', initiatorNonce: 1, responderNonce: 2, options: [{ type: 'ResponderValidator', critical: false, validator: hex('aabbccdd') }] }));
  const msg = decodeMessage(buf);
  const v = msg.type === 'R1' && msg.options[0]?.type === 'ResponderValidator' ? msg.options[0].validator : undefined;
  assert.ok(v !== undefined && !Buffer.isBuffer(v) && v instanceof Uint8Array);
  buf[20] = 0;
  assert.deepEqual(v, hex('aabbccdd'));
});

test('encoder requires critical to be a boolean', () => {
  assert.throws(() => encodeMessage({ type: 'R1', initiatorNonce: 1, responderNonce: 2, options: [{ type: 'ResponderValidator', validator: hex('aa') } as never] }), { code: 'EFIELD' });
});

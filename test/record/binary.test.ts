// Capability record RDATA (docs/capability-record.md): golden bytes built by hand from the
// layout table, every decoder error by code, the "ignore the RR" outcomes,
// fast-check round trips, and the checks callers run (AAAA, hba-digest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  checkHbaDigest, decodeCapabilityRecord, recordPort, encodeCapabilityRecord, capabilityRecordLength, ignoreReason, validateAgainstAaaa,
  IgnoredCapabilityRecord, checkCapabilityRecordAt, recordFromOctets, recordUlidOctets, recordWithoutParams, type CapabilityRecord,
} from '../../shim/wire/capability-record.ts';
import { WireError } from '../../shim/wire/errors.ts';
import { UsageError } from '../../shim/errors.ts';
import { generateHbaSet, hbaDigest } from '../../shim/wire/hba.ts';
import { hex, toHex } from '../helpers/octets.ts';
import { fuzzParams, randomBytes } from '../helpers/rng.ts';
import { arbRecord, arbRecordWithUnknownMandatory } from './arbitrary.ts';
import { GOLDEN, GOLDEN_HEX } from './golden.ts';

const code = (rdata: Uint8Array, strict = false): string => {
  try { decodeCapabilityRecord(rdata, { strict }); return 'ok'; } catch (e) {
    assert.ok(e instanceof WireError, String(e));
    return ignoreReason(e) ?? e.code;
  }
};
const withHeader = (h: string, rest = ''): Uint8Array => hex(h + rest);
const ONE_LOC = '01000100' + '20010db8000000000000000000000001' + '000a0100' + '20010db8000000000000000000000001';

test('golden RDATA: decode and encode agree with the hand-built bytes', () => {
  const bytes = hex(GOLDEN_HEX);
  assert.equal(bytes.length, 20 + 40 + 6 + 37 + 6 + 6);
  assert.deepEqual(decodeCapabilityRecord(bytes), GOLDEN);
  assert.equal(toHex(encodeCapabilityRecord(GOLDEN)), GOLDEN_HEX);
  assert.equal(capabilityRecordLength(GOLDEN), bytes.length);
});

test('minimal record: one locator, no parameters, CGA ULID flag', () => {
  const r = decodeCapabilityRecord(hex('01400100' + '20010db8000000000000000000000001' + '000a0100' + '20010db8000000000000000000000001'));
  assert.deepEqual(r, {
    hbaSet: false, cgaUlid: true, ulid: '2001:db8::1',
    locators: [{ address: '2001:db8::1', flags: 0, priority: 10, weight: 1 }], mandatory: [], unknownParams: [],
  });
});

test('header and locator faults', () => {
  assert.equal(code(new Uint8Array(0)), 'ETRUNCATED');
  assert.equal(code(hex('01')), 'ETRUNCATED');
  assert.equal(code(hex(ONE_LOC).subarray(0, 39)), 'ETRUNCATED');
  assert.equal(code(hex('01000000' + '00'.repeat(16))), 'EFIELD');
  assert.equal(code(hex('01002100' + '00'.repeat(16 + 33 * 20))), 'EFIELD');
  assert.equal(code(hex('01002000' + '00'.repeat(16) + Array.from({ length: 32 }, (_, i) => '00000000' + i.toString(16).padStart(32, '0')).join(''))), 'ok');
  assert.equal(code(hex('01000200' + '00'.repeat(16) + ('00000000' + '20010db8000000000000000000000001').repeat(2))), 'ERECORD');
  assert.equal(code(hex('01000200' + '00'.repeat(16) + '00000000' + '20010db8000000000000000000000001')), 'ETRUNCATED');
  // Duplicates are found wherever they are, and addresses that differ in their last octet only are not duplicates.
  const loc = (last: string): string => '00000000' + '20010db80000000000000000000000' + last;
  assert.equal(code(hex('01000300' + '00'.repeat(16) + loc('01') + loc('02') + loc('01'))), 'ERECORD');
  assert.equal(code(hex('01000300' + '00'.repeat(16) + loc('01') + loc('02') + loc('03'))), 'ok');
  assert.match(String((() => { try { decodeCapabilityRecord(hex('01000300' + '00'.repeat(16) + loc('01') + loc('02') + loc('02'))); } catch (e) { return (e as Error).message; } })()), /2001:db8::2 listed twice/);
});

test('unknown version is an ignore outcome, whatever follows', () => {
  for (const v of ['00', '02', 'ff']) {
    assert.equal(code(hex(v)), 'UNSUPPORTED_VERSION');
    assert.equal(code(hex(v + ONE_LOC.slice(2))), 'UNSUPPORTED_VERSION');
  }
  try { decodeCapabilityRecord(hex('02')); assert.fail('no throw'); } catch (e) {
    assert.ok(e instanceof IgnoredCapabilityRecord);
    assert.equal(e.code, 'ERECORD');
    assert.equal(e.value, 2);
  }
});

test('reserved octets and unknown record flags: ignored by default, rejected in strict mode', () => {
  const loose = hex('013f01ff' + '20010db8000000000000000000000001' + '000a01ee' + '20010db8000000000000000000000001');
  const r = decodeCapabilityRecord(loose);
  assert.equal(r.hbaSet, false);
  assert.equal(r.cgaUlid, false);
  assert.equal(code(loose, true), 'EFIELD');
  assert.equal(code(hex('01c00100' + '20010db8000000000000000000000001' + '000a01ee' + '20010db8000000000000000000000001'), true), 'EFIELD');
  assert.equal(code(hex('01c00100' + '20010db8000000000000000000000001' + 'ff0a0100' + '20010db8000000000000000000000001'), true), 'ok');
});

test('parameter faults', () => {
  const p = (params: string): string => code(withHeader(ONE_LOC, params));
  assert.equal(p('00'), 'ETRUNCATED');
  assert.equal(p('000200'), 'ETRUNCATED');
  assert.equal(p('00020003159d'), 'ETRUNCATED');
  assert.equal(p('00020002159d' + '00020002159d'), 'ERECORD');    // same key twice
  assert.equal(p('00070000' + '00020002159d'), 'ERECORD');        // decreasing
  assert.equal(p('00020001' + '15'), 'ERECORD');                  // port length
  assert.equal(p('000200020000'), 'ERECORD');                     // port 0
  assert.equal(p('00010021' + '01' + '11'.repeat(31) + '00'), 'ok');
  assert.equal(p('00010020' + '01' + '11'.repeat(31)), 'ERECORD'); // SHA-256 needs 32
  assert.equal(p('00010002' + '0011'), 'ERECORD');                // alg 0
  assert.equal(p('00010001' + '05'), 'ERECORD');                  // no digest
  assert.equal(p('00010003' + '05aabb'), 'ok');                      // unknown alg kept
  assert.equal(p('00000000'), 'ERECORD');                         // empty mandatory
  assert.equal(p('00000001' + '00'), 'ERECORD');                  // odd
  assert.equal(p('00000002' + '0000'), 'ERECORD');                // lists itself
  assert.equal(p('00000004' + '00020001' + '00020002159d'), 'ERECORD'); // not increasing
  assert.equal(p('00000002' + '0002'), 'ERECORD');                // mandatory key absent
  assert.equal(p('00000002' + '0002' + '00020002159d'), 'ok');
  assert.equal(p('00000002' + '0009' + '00090000'), 'UNKNOWN_MANDATORY_KEY');
  assert.equal(p('00000002' + '0009'), 'ERECORD');                // unknown and absent: malformed first
  assert.equal(p('00090000' + 'ffff0001ff'), 'ok');                  // unknown, not mandatory: kept
  assert.deepEqual(decodeCapabilityRecord(withHeader(ONE_LOC, '00090000' + 'ffff0001ff')).unknownParams, [
    { key: 9, value: new Uint8Array(0) }, { key: 0xffff, value: hex('ff') },
  ]);
});

test('encodeCapabilityRecord refuses records a reader would reject, naming the field', () => {
  const bad = (r: CapabilityRecord, field: string): void => {
    assert.throws(() => encodeCapabilityRecord(r), (e: unknown) => e instanceof UsageError && e.code === 'ECAPABILITY_RECORD' && e.field === field);
  };
  bad({ ...GOLDEN, ulid: 'nope' }, 'ulid');
  bad({ ...GOLDEN, locators: [] }, 'locators');
  bad({ ...GOLDEN, locators: Array.from({ length: 33 }, (_, i) => ({ address: `2001:db8::${i + 1}`, flags: 0, priority: 0, weight: 0 })) }, 'locators');
  bad({ ...GOLDEN, locators: [GOLDEN.locators[0]!, { ...GOLDEN.locators[1]!, address: '2001:db8:1:0::1' }] }, 'locators[1].address');
  bad({ ...GOLDEN, locators: [{ ...GOLDEN.locators[0]!, priority: 256 }] }, 'locators[0].priority');
  bad({ ...GOLDEN, mandatory: [0] }, 'mandatory');
  bad({ ...GOLDEN, mandatory: [2, 1] }, 'mandatory');
  bad({ ...GOLDEN, mandatory: [9] }, 'mandatory');
  bad({ ...GOLDEN, hbaDigest: { alg: 1, digest: new Uint8Array(20) } }, 'hbaDigest.digest');
  bad({ ...GOLDEN, hbaDigest: { alg: 0, digest: new Uint8Array(20) } }, 'hbaDigest.alg');
  bad({ ...GOLDEN, port: 0 }, 'port');
  bad({ ...GOLDEN, unknownParams: [{ key: 2, value: new Uint8Array(2) }] }, 'unknownParams[0].key');
  bad({ ...GOLDEN, unknownParams: [{ key: 9, value: new Uint8Array(0) }, { key: 8, value: new Uint8Array(0) }] }, 'unknownParams[1].key');
  bad({ ...GOLDEN, unknownParams: [{ key: 9, value: new Uint8Array(70000) }] }, 'record');
  // Shapes, as JSON input could get them wrong.
  const json = (x: unknown): CapabilityRecord => x as CapabilityRecord;
  bad(json(null), 'record');
  bad(json({ ...GOLDEN, hbaSet: 1 }), 'hbaSet');
  bad(json({ ...GOLDEN, cgaUlid: 'yes' }), 'cgaUlid');
  bad(json({ ...GOLDEN, locators: undefined }), 'locators');
  bad(json({ ...GOLDEN, mandatory: 2 }), 'mandatory');
  bad(json({ ...GOLDEN, unknownParams: {} }), 'unknownParams');
  bad(json({ ...GOLDEN, locators: [null] }), 'locators[0]');
  bad(json({ ...GOLDEN, hbaDigest: { alg: 1, digest: 'ab' } }), 'hbaDigest.digest');
  bad(json({ ...GOLDEN, unknownParams: [{ key: 9, value: [1, 2] }] }), 'unknownParams[0].value');
});

test('property: encode → decode is the identity on valid records', (t) => {
  fc.assert(fc.property(arbRecord, (r) => {
    assert.deepEqual(decodeCapabilityRecord(encodeCapabilityRecord(r)), r);
  }), fuzzParams(t, { seed: 5533, numRuns: 1000 }));
});

test('property: RecordOctets keep the record; without its parameters, its header and locators in at most 660 octets', (t) => {
  fc.assert(fc.property(arbRecord, (r) => {
    const rdata = encodeCapabilityRecord(r);
    const octets = checkCapabilityRecordAt(rdata, 0, rdata.length);
    assert.equal(octets.length, rdata.length);
    assert.deepEqual(recordFromOctets(octets), r);
    assert.deepEqual([...Buffer.from(recordUlidOctets(octets), 'latin1')], [...rdata.subarray(4, 20)]);
    const kept = recordWithoutParams(octets);
    assert.ok(kept.length <= 20 + 32 * 20);
    const { hbaDigest: _digest, port: _port, ...fixed } = r;
    assert.deepEqual(recordFromOctets(kept), { ...fixed, mandatory: [], unknownParams: [] });
  }), fuzzParams(t, { seed: 660, numRuns: 500 }));
});

test('property: a mandatory unknown key makes the reader ignore the RR', (t) => {
  fc.assert(fc.property(arbRecordWithUnknownMandatory, (r) => {
    assert.throws(() => decodeCapabilityRecord(encodeCapabilityRecord(r)),
      (e: unknown) => e instanceof IgnoredCapabilityRecord && e.reason === 'UNKNOWN_MANDATORY_KEY' && r.mandatory.includes(e.value));
  }), fuzzParams(t, { seed: 65300, numRuns: 300 }));
});

test('validateAgainstAaaa: the ULID must be in the AAAA RRset (any spelling)', () => {
  assert.equal(validateAgainstAaaa(GOLDEN, ['2001:db8:9::1', '2001:0db8:0001:0000:0000:0000:0000:0001']), true);
  assert.equal(validateAgainstAaaa(GOLDEN, [hex('20010db8000100000000000000000001')]), true);
  assert.equal(validateAgainstAaaa(GOLDEN, ['2001:db8:2::1', 'garbage', hex('20010db8')]), false);
  assert.equal(validateAgainstAaaa(GOLDEN, []), false);
});

test('checkHbaDigest against a real HBA set, from any member’s parameters', () => {
  const set = generateHbaSet({ prefixes: ['2001:db8:1::/64', '2001:db8:2::/64'], sec: 0, randomBytes: randomBytes('rec') });
  const [m0, m1] = set.members;
  assert.ok(m0 && m1);
  const r: CapabilityRecord = {
    ...GOLDEN, ulid: m0.address,
    locators: set.members.map((m, i) => ({ address: m.address, flags: 0, priority: i, weight: 1 })),
    hbaDigest: { alg: 1, digest: hbaDigest(m0.params) },
  };
  assert.equal(checkHbaDigest(r, m0.params), 'match');
  assert.equal(checkHbaDigest(r, m1.params), 'match');
  const other = generateHbaSet({ prefixes: ['2001:db8:1::/64', '2001:db8:2::/64'], sec: 0, randomBytes: randomBytes('rec2') });
  assert.equal(checkHbaDigest(r, other.members[0]!.params), 'mismatch');
  const { hbaDigest: _d, ...noDigest } = r;
  assert.equal(checkHbaDigest(noDigest, m0.params), 'absent');
  assert.equal(checkHbaDigest({ ...r, hbaDigest: { alg: 9, digest: hex('00') } }, m0.params), 'unsupported-alg');
});

test('recordPort: the port parameter, else 5533', () => {
  assert.equal(recordPort(GOLDEN), 5533);
  assert.equal(recordPort({ ...GOLDEN, port: 6000 }), 6000);
  const { port: _p, ...noPort } = GOLDEN;
  assert.equal(recordPort(noPort), 5533);
});

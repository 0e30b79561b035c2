// The text forms of the capability record: presentation form, TXT fallback,
// RFC 3597 generic RDATA. Golden strings, round trips, and errors by code.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  capabilityTxtRdata, decodeCapabilityRecord, decodeCapabilityTxt, encodeCapabilityRecord, encodeCapabilityTxt,
  formatCapabilityRecord, fromGenericRdata, ignoreReason, parseCapabilityRecord, splitTxt, toGenericRdata,
} from '../../shim/wire/capability-record.ts';
import { WireError } from '../../shim/wire/errors.ts';
import { hex, toHex } from '../helpers/octets.ts';
import { arbRecord, arbRecordWithUnknownMandatory } from './arbitrary.ts';
import { GOLDEN, GOLDEN_HEX } from './golden.ts';
import { fuzzParams } from '../helpers/rng.ts';

const GOLDEN_TEXT = 'v1 hba ulid=2001:db8:1::1 loc=2001:db8:1::1/prio=10/weight=1 loc=2001:db8:2::1/prio=20/weight=1/flags=transient '
  + `mandatory=port hba-digest=sha256:${'11'.repeat(32)} port=5533 key7=abcd`;

const errCode = (f: () => unknown): string => {
  try { f(); return 'ok'; } catch (e) {
    assert.ok(e instanceof WireError, String(e));
    return ignoreReason(e) ?? e.code;
  }
};

test('presentation form: golden text both ways', () => {
  assert.equal(formatCapabilityRecord(GOLDEN), GOLDEN_TEXT);
  assert.deepEqual(parseCapabilityRecord(GOLDEN_TEXT), GOLDEN);
});

test('presentation form: lenient input, canonical output', () => {
  const text = '  v1\tport=5533  key7=ABCD loc=2001:0db8:1:0::1/weight=1/prio=10 hba-digest=sha256:' + '11'.repeat(32)
    + ' ulid=2001:db8:1:0:0:0:0:1 hba mandatory=port loc=2001:db8:2::1/flags=transient/weight=1/prio=20 ';
  assert.deepEqual(parseCapabilityRecord(text), GOLDEN);
  const r = parseCapabilityRecord('v1 cga ulid=::1 loc=::1 loc=::2/flags=broken+transient+0x80 mandatory=key9,hba-digest key9= hba-digest=alg7:00ff');
  assert.deepEqual(r.locators, [{ address: '::1', flags: 0, priority: 0, weight: 0 }, { address: '::2', flags: 0x83, priority: 0, weight: 0 }]);
  assert.deepEqual(r.mandatory, [1, 9]);
  assert.deepEqual(r.hbaDigest, { alg: 7, digest: hex('00ff') });
  assert.deepEqual(r.unknownParams, [{ key: 9, value: new Uint8Array(0) }]);
  assert.equal(formatCapabilityRecord(r),
    'v1 cga ulid=::1 loc=::1/prio=0/weight=0 loc=::2/prio=0/weight=0/flags=broken+transient+0x80 mandatory=hba-digest,key9 hba-digest=alg7:00ff key9=');
});

test('presentation form: each malformed token is ESYNTAX and named', () => {
  const cases: [string, string][] = [
    ['', ''],
    ['v2 ulid=::1 loc=::1', 'v2'],
    ['ulid=::1 loc=::1', 'ulid=::1'],
    ['v1 loc=::1', ''],
    ['v1 ulid=::1', ''],
    ['v1 ulid=::1 ulid=::2 loc=::1', 'ulid=::2'],
    ['v1 ulid=nope loc=::1', 'ulid=nope'],
    ['v1 ulid=::1 loc=::1/prio=256', 'loc=::1/prio=256'],
    ['v1 ulid=::1 loc=::1/prio=01', 'loc=::1/prio=01'],
    ['v1 ulid=::1 loc=::1/prio', 'loc=::1/prio'],
    ['v1 ulid=::1 loc=::1/prio=1/prio=2', 'loc=::1/prio=1/prio=2'],
    ['v1 ulid=::1 loc=::1/colour=red', 'loc=::1/colour=red'],
    ['v1 ulid=::1 loc=::1/flags=shiny', 'loc=::1/flags=shiny'],
    ['v1 ulid=::1 loc=::1/flags=0x100', 'loc=::1/flags=0x100'],
    ['v1 ulid=::1 loc=::1 hba=1', 'hba=1'],
    ['v1 ulid=::1 loc=::1 hba hba', 'hba'],
    ['v1 ulid=::1 loc=::1 port=0', ''],
    ['v1 ulid=::1 loc=::1 port=65536', 'port=65536'],
    ['v1 ulid=::1 loc=::1 port=x', 'port=x'],
    ['v1 ulid=::1 loc=::1 key1=00', 'key1=00'],
    ['v1 ulid=::1 loc=::1 key65536=00', 'key65536=00'],
    ['v1 ulid=::1 loc=::1 key9=0', 'key9=0'],
    ['v1 ulid=::1 loc=::1 key9=zz', 'key9=zz'],
    ['v1 ulid=::1 loc=::1 colour=red', 'colour=red'],
    ['v1 ulid=::1 loc=::1 extra', 'extra'],
    ['v1 ulid=::1 loc=::1 hba-digest=sha256:00', ''],
    ['v1 ulid=::1 loc=::1 hba-digest=md5:00', 'hba-digest=md5:00'],
    ['v1 ulid=::1 loc=::1 hba-digest=alg256:00', 'hba-digest=alg256:00'],
    ['v1 ulid=::1 loc=::1 mandatory=port', ''],
    ['v1 ulid=::1 loc=::1 port=1 mandatory=port,port', 'mandatory=port,port'],
    ['v1 ulid=::1 loc=::1 mandatory=nonsense', 'mandatory=nonsense'],
    ['v1 ulid=::1 loc=::1 loc=::1', ''],
    [`v1 ulid=::1 ${Array.from({ length: 33 }, (_, i) => `loc=::${i + 1}`).join(' ')}`, ''],
  ];
  for (const [text, token] of cases) {
    try {
      parseCapabilityRecord(text);
      assert.fail(`parsed: ${text}`);
    } catch (e) {
      assert.ok(e instanceof WireError, `${text}: ${String(e)}`);
      assert.equal(e.code, 'ESYNTAX', text);
      if (token !== '') {
        assert.ok(e.message.includes(JSON.stringify(token)), `${text}: ${e.message}`);
        assert.equal(e.offset, text.lastIndexOf(token), text);
      }
    }
  }
});

test('property: format → parse is the identity (also for records a reader would ignore)', (t) => {
  fc.assert(fc.property(fc.oneof(arbRecord, arbRecordWithUnknownMandatory), (r) => {
    const text = formatCapabilityRecord(r);
    assert.deepEqual(parseCapabilityRecord(text), r);
    assert.equal(formatCapabilityRecord(parseCapabilityRecord(text)), text);
  }), fuzzParams(t, { seed: 140, numRuns: 1000 }));
});

test('TXT fallback: golden string, splitting into 255-octet strings, byte strings', () => {
  const txt = encodeCapabilityTxt(GOLDEN);
  assert.equal(txt, `v=shim6cap1 b64=${Buffer.from(GOLDEN_HEX, 'hex').toString('base64')}`);
  assert.equal(encodeCapabilityTxt(hex(GOLDEN_HEX)), txt);
  assert.deepEqual(decodeCapabilityTxt(txt), GOLDEN);
  const big = { ...GOLDEN, locators: Array.from({ length: 32 }, (_, i) => ({ address: `2001:db8:${(i + 1).toString(16)}::1`, flags: 0, priority: i, weight: 1 })) };
  const parts = splitTxt(encodeCapabilityTxt(big));
  assert.ok(parts.length >= 4);
  assert.ok(parts.every((p) => p.length <= 255));
  assert.deepEqual(decodeCapabilityTxt(parts), big);
  assert.deepEqual(decodeCapabilityTxt(parts.map((p) => new Uint8Array(Buffer.from(p, 'latin1')))), big);
  assert.deepEqual(decodeCapabilityTxt(`${txt} future=1`), GOLDEN);
  assert.deepEqual(splitTxt(''), ['']);
});

test('TXT fallback: errors', () => {
  const b64 = Buffer.from(GOLDEN_HEX, 'hex').toString('base64');
  assert.equal(errCode(() => capabilityTxtRdata('')), 'ESYNTAX');
  assert.equal(errCode(() => capabilityTxtRdata('v=spf1 -all')), 'ESYNTAX');
  assert.equal(errCode(() => capabilityTxtRdata(`v=shim6cap2 b64=${b64}`)), 'UNSUPPORTED_VERSION');
  assert.equal(errCode(() => capabilityTxtRdata('v=shim6cap1')), 'ESYNTAX');
  assert.equal(errCode(() => capabilityTxtRdata(`v=shim6cap1 b64=${b64} b64=${b64}`)), 'ESYNTAX');
  assert.equal(errCode(() => capabilityTxtRdata('v=shim6cap1 b64=AQ*A')), 'ESYNTAX');
  assert.equal(errCode(() => capabilityTxtRdata('v=shim6cap1 b64=AQA')), 'ESYNTAX');
  assert.equal(errCode(() => capabilityTxtRdata('v=shim6cap1 b64=AR==')), 'ESYNTAX'); // not canonical: AQ==
  assert.equal(errCode(() => capabilityTxtRdata('v=shim6cap1 b64=AQ== junk')), 'ESYNTAX');
  assert.equal(errCode(() => decodeCapabilityTxt('v=shim6cap1 b64=AQ==')), 'ETRUNCATED');
  assert.equal(errCode(() => decodeCapabilityTxt('v=shim6cap1 b64=Ag==')), 'UNSUPPORTED_VERSION');
  assert.equal(errCode(() => decodeCapabilityTxt('v=shim6cap1 b64=')), 'ETRUNCATED');
});

test('property: TXT round trip', (t) => {
  fc.assert(fc.property(arbRecord, (r) => {
    assert.deepEqual(decodeCapabilityTxt(splitTxt(encodeCapabilityTxt(r))), r);
  }), fuzzParams(t, { seed: 1035, numRuns: 500 }));
});

test('RFC 3597 generic RDATA', () => {
  assert.equal(toGenericRdata(hex('01020304')), '\\# 4 01020304');
  assert.equal(toGenericRdata(new Uint8Array(0)), '\\# 0');
  assert.deepEqual(fromGenericRdata('\\# 0'), new Uint8Array(0));
  assert.deepEqual(fromGenericRdata('\\# 4 0102 03FF'), hex('010203ff'));
  assert.deepEqual(fromGenericRdata('  \\#   4\t01 02 03 04 '), hex('01020304'));
  assert.equal(toHex(fromGenericRdata(toGenericRdata(encodeCapabilityRecord(GOLDEN)))), GOLDEN_HEX);
  assert.deepEqual(decodeCapabilityRecord(fromGenericRdata(toGenericRdata(hex(GOLDEN_HEX)))), GOLDEN);
  for (const bad of ['', '# 1 00', '\\#', '\\# x 00', '\\# 2 00', '\\# 1 0', '\\# 1 0g', '\\# 01 00', '\\# 1 00 00', '\\# 65536 00', '\\# -1']) {
    assert.equal(errCode(() => fromGenericRdata(bad)), 'ESYNTAX', bad);
  }
});

test('property: generic RDATA round trip on any octets', (t) => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 700 }), (b) => {
    assert.deepEqual(fromGenericRdata(toGenericRdata(b)), b);
  }), fuzzParams(t, { seed: 3597, numRuns: 500 }));
});

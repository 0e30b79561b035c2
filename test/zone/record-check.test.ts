// `zone record` output is a valid zone for BIND's and Knot's own validators;
// a broken RFC 3597 length fails named-checkzone, kzonecheck AND `zone check`,
// the latter on the right line; `zone check` finds each rule's violation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { needs } from '../helpers/prereq.ts';
import { shim6 } from '../helpers/cli.ts';
import { kzonecheck, namedCheckzone, shim6Async, shim6BadStdout, tempDir, writeZone, zoneHeader } from './zonefile.ts';
import { checkZoneText } from '../../zone-tools/zone-check.ts';
import { unescapeToken } from '../../zone-tools/master-file.ts';
import { hostZoneLines } from '../../zone-tools/zone-lines.ts';
import { recordInput, type RecordFlags } from '../../zone-tools/commands.ts';
import { buildHostRecord } from '../../zone-tools/record-input.ts';
import { UsageError } from '../../shim/errors.ts';
import { READ_BOUNDS } from '../../shim/read-bounded.ts';
import { encodeCapabilityRecord, toGenericRdata, type CapabilityRecord } from '../../shim/wire/capability-record.ts';

const Z = 'example.';

function record(args: string[]): string {
  const r = shim6(['zone', 'record', ...args]);
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('zone record: comment, RFC 3597 line, AAAA set, TXT fallback; accepted by named-checkzone, kzonecheck and zone check', (t) => {
  if (!needs(t, { commands: ['named-checkzone', 'kzonecheck'] })) return;
  const dir = tempDir(t);
  const params = path.join(dir, 'hba.json');
  const h = shim6(['zone', 'hba', '--prefix', '2001:db8:1::/64', '--prefix', '2001:db8:2::/64', '--sec', '0', '--out', params]);
  assert.equal(h.status, 0, h.stderr);
  const lines = [
    record(['--name', 'a.example.', '--ulid', '2001:db8:1::a', '--locator', '2001:db8:1::a/0/10', '--locator', '2001:db8:2::a/1/5/transient', '--txt']),
    record(['--name', 'b.example', '--ulid', '2001:db8:1::b', '--locator', '2001:db8:3::b/2/0/broken+transient', '--ttl', '60', '--port', '6000', '--aaaa', 'ulid']),
    record(['--name', 'c.example.', '--hba', params, '--txt']),
  ];
  const a = lines[0]!.split('\n');
  assert.match(a[0]!, /^; a\.example\. shim6 capability: v1 ulid=2001:db8:1::a loc=2001:db8:1::a\/prio=0\/weight=10 loc=2001:db8:2::a\/prio=1\/weight=5\/flags=transient$/);
  assert.match(a[1]!, /^a\.example\. 3600 IN TYPE65300 \\# 60 01000200[0-9a-f]{112}$/);
  assert.deepEqual(a.slice(2, 4), ['a.example. 3600 IN AAAA 2001:db8:1::a', 'a.example. 3600 IN AAAA 2001:db8:2::a']);
  assert.match(a[4]!, /^_shim6\.a\.example\. 3600 IN TXT "v=shim6cap1 b64=[A-Za-z0-9+/=]+"$/);
  assert.match(lines[1]!, /b\.example\. 60 IN AAAA 2001:db8:1::b\n/);
  assert.doesNotMatch(lines[1]!, /AAAA 2001:db8:3::b/, '--aaaa ulid publishes the ULID only');
  assert.match(lines[2]!, / v1 hba ulid=2001:db8:1:0:[0-9a-f:]+ loc=.* hba-digest=sha256:[0-9a-f]{64}/);
  const file = writeZone(dir, 'ok.zone', zoneHeader(Z) + lines.join(''));
  for (const [tool, r] of [['named-checkzone', namedCheckzone(Z, file)], ['kzonecheck', kzonecheck(Z, file)]] as const) {
    assert.equal(r.status, 0, `${tool}: ${r.output}`);
  }
  const c = shim6(['zone', 'check', file]);
  assert.equal(c.status, 0, c.stdout + c.stderr);
  assert.match(c.stderr, /3 capability record\(s\), 2 TXT fallback\(s\), no problems/);
});

test('a bad RFC 3597 length fails named-checkzone, kzonecheck and zone check (on its line)', (t) => {
  if (!needs(t, { commands: ['named-checkzone', 'kzonecheck'] })) return;
  const dir = tempDir(t);
  const good = record(['--name', 'host.example.', '--ulid', '2001:db8:1::1', '--locator', '2001:db8:1::1']);
  const bad = good.replace('\\# 40 ', '\\# 41 ');
  assert.notEqual(bad, good);
  const text = zoneHeader(Z) + bad;
  const line = text.split('\n').findIndex((l) => l.includes('\\# 41')) + 1;
  const file = writeZone(dir, 'bad.zone', text);
  assert.notEqual(namedCheckzone(Z, file).status, 0, 'named-checkzone must reject it');
  assert.notEqual(kzonecheck(Z, file).status, 0, 'kzonecheck must reject it');
  const c = shim6(['zone', 'check', file]);
  assert.equal(c.status, 1);
  assert.equal(c.stdout.trim(), `${file}:${line}: RFC 3597 length 41 does not match the 40 octets of hex data`);
});

test('RFC 3597 forms named-checkzone and kzonecheck load, zone check reads too: a length with leading zeros, an AAAA in generic form', (t) => {
  if (!needs(t, { commands: ['named-checkzone', 'kzonecheck'] })) return;
  const dir = tempDir(t);
  const hex = Buffer.from(encodeCapabilityRecord(REC)).toString('hex'); // ULID 2001:db8::1, 40 octets
  const aaaa = '20010db8000000000000000000000001';
  const cases: [string, string][] = [
    ['leading-zero.zone', `h 3600 IN AAAA 2001:db8::1\nh 3600 IN TYPE65300 \\# 040 ${hex}\n`], // was "bad RDATA length"
    ['generic-aaaa.zone', `h 3600 IN AAAA \\# 16 ${aaaa}\nh 3600 IN TYPE65300 \\# 40 ${hex}\n`], // was "ULID not in the AAAA RRset"
    ['both.zone', `h 3600 IN AAAA \\# 0016 ${aaaa}\nh 3600 IN TYPE28 \\# 16 ${aaaa.replace(/1$/, '2')}\nh 3600 IN TYPE65300 \\# 00040 ${hex}\n`],
  ];
  for (const [name, body] of cases) {
    const file = writeZone(dir, name, zoneHeader(Z) + body);
    assert.equal(namedCheckzone(Z, file).status, 0, `${name}: named-checkzone loads it: ${namedCheckzone(Z, file).output}`);
    assert.equal(kzonecheck(Z, file).status, 0, `${name}: kzonecheck loads it: ${kzonecheck(Z, file).output}`);
    const res = checkZoneText(readFileSync(file, 'utf8'), file);
    assert.deepEqual(res.problems, [], name);
    assert.equal(res.records, 1, name);
  }
  // A generic AAAA of another length is no address: the ULID is not in the RRset.
  const short = checkZoneText(zoneHeader(Z) + `h 3600 IN AAAA \\# 4 20010db8\nh 3600 IN TYPE65300 \\# 40 ${hex}\n`, 'z');
  assert.deepEqual(short.problems.map((p) => p.message), ['ULID 2001:db8::1 is not in the AAAA RRset of h.example.: there is no AAAA at that name (readers ignore the RR)']);
});

function rdataHex(r: CapabilityRecord): string {
  return toGenericRdata(encodeCapabilityRecord(r));
}

const REC: CapabilityRecord = { hbaSet: false, cgaUlid: false, ulid: '2001:db8::1', locators: [{ address: '2001:db8::1', flags: 0, priority: 0, weight: 0 }], mandatory: [], unknownParams: [] };

test('zone check: one finding per rule, each with its line', () => {
  const good = rdataHex(REC);
  const goodHex = good.split(' ').slice(2).join('');
  const withByte = (i: number, v: number): string => {
    const b = Buffer.from(goodHex, 'hex');
    b[i] = v;
    return `\\# ${b.length} ${b.toString('hex')}`;
  };
  const cases: [string, RegExp][] = [
    [`h IN TYPE65300 ${withByte(0, 2)}`, /version 2 is not 1/],
    [`h IN TYPE65300 ${withByte(1, 0x01)}`, /unknown flag bits/],
    [`h IN TYPE65300 ${withByte(3, 0x01)}`, /reserved octet not zero/],
    [`h IN TYPE65300 ${withByte(2, 0)}`, /locator count 0/],
    [`h IN TYPE65300 ${withByte(20, 0x10)}`, /unknown flag bits 0x10/],
    // params: port (key 2) then key 1: out of order.
    [`h IN TYPE65300 \\# 52 ${goodHex}000200021234000100020a0b`, /not strictly increasing/],
    [`h IN TYPE65300 0100`, /RFC 3597 generic form/],
    [`h IN TYPE65300 \\# 2 01zz`, /generic RDATA/],
    [`other IN TYPE65300 ${good}`, /not in the AAAA RRset of other\.example\.: there is no AAAA/],
    [`h IN TYPE65300 ${rdataHex({ ...REC, ulid: '2001:db8::99' })}`, /ULID 2001:db8::99 is not in the AAAA RRset/],
    [`h IN TYPE65300 ${rdataHex({ ...REC, locators: [{ address: 'fe80::1', flags: 0, priority: 0, weight: 0 }] })}`, /fe80::1 is link-local/],
    [`h IN TYPE65300 ${rdataHex({ ...REC, locators: [{ address: 'ff02::1', flags: 0, priority: 0, weight: 0 }] })}`, /multicast/],
    [`_shim6.h IN TXT "v=shim6cap1 b64=AQ=="`, /_shim6 TXT: capability record: header needs 20 octets/],
    [`_shim6.h IN TXT "v=other"`, /_shim6 TXT: .*must start with "v=shim6cap1"/],
  ];
  for (const [line, want] of cases) {
    const text = `$ORIGIN example.\n$TTL 60\n; comment\nh IN AAAA 2001:db8::1\n${line}\n`;
    const res = checkZoneText(text, 'z');
    const errors = res.problems.filter((p) => p.severity === 'error');
    assert.equal(errors.length, 1, `${line}: ${JSON.stringify(errors)}`);
    assert.equal(errors[0]!.line, 5, line);
    assert.match(errors[0]!.message, want, line);
  }
});

test('zone check: class IN for the _shim6 TXT too, and only an AAAA of class IN holds the ULID (BIND refuses another class in an IN zone)', () => {
  const txt = `"v=shim6cap1 b64=${Buffer.from(encodeCapabilityRecord(REC)).toString('base64')}"`;
  const text = [
    '$ORIGIN example.',          // 1
    '$TTL 60',                   // 2
    'h IN AAAA 2001:db8::1',     // 3
    `_shim6.h CH TXT ${txt}`,    // 4: a TXT fallback in class CH
    'k CH AAAA 2001:db8::1',     // 5: k's only AAAA is no IN AAAA
    `k IN TYPE65300 ${rdataHex(REC)}`, // 6
  ].join('\n') + '\n';
  const res = checkZoneText(text, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.message]), [
    [4, '_shim6 TXT in class CH; it must be IN'],
    [6, 'ULID 2001:db8::1 is not in the AAAA RRset of k.example.: there is no AAAA at that name (readers ignore the RR)'],
  ]);
});

test('zone check: a TTL over 2^31-1 is read as 0 with a warning, as BIND loads it and readers take it (RFC 2181 §8); over 32 bits it is an error, and the record is still checked', () => {
  const rr = rdataHex(REC); // ULID 2001:db8::1
  const text = [
    '$ORIGIN example.',                                // 1
    '$TTL 3000000000',                                 // 2: BIND: "setting $TTL to 0"
    'h 4294967295 IN AAAA 2001:db8::1',                // 3: the ULID's AAAA: still counts
    `h 2147483648 IN TYPE65300 ${rr}`,                 // 4
    `k 4294967296 IN TYPE65300 ${rr}`,                 // 5: BIND and Knot refuse the zone; k has no AAAA
  ].join('\n') + '\n';
  const res = checkZoneText(text, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.severity, p.message]), [
    [2, 'warning', 'TTL 3000000000 is over 2147483647 (RFC 2181 §8): BIND loads it as 0, readers take it as 0'],
    [3, 'warning', 'TTL 4294967295 is over 2147483647 (RFC 2181 §8): BIND loads it as 0, readers take it as 0'],
    [4, 'warning', 'TTL 2147483648 is over 2147483647 (RFC 2181 §8): BIND loads it as 0, readers take it as 0'],
    [5, 'error', 'TTL 4294967296 does not fit in 32 bits (BIND and Knot refuse the zone)'],
    [5, 'error', 'ULID 2001:db8::1 is not in the AAAA RRset of k.example.: there is no AAAA at that name (readers ignore the RR)'],
  ]);
  assert.equal(res.records, 2);
});

test('zone check: the same capability RR twice is one RR to BIND and Knot (a warning); two different ones are an error', () => {
  const rr = rdataHex(REC);
  const text = [
    '$ORIGIN example.',                             // 1
    '$TTL 60',                                      // 2
    'h IN AAAA 2001:db8::1',                        // 3
    `h IN TYPE65300 ${rr}`,                         // 4
    `H.example. 300 IN TYPE65300 ${rr.toUpperCase()}`, // 5: the same RDATA, spelt otherwise
    `h IN TYPE65300 ${rdataHex({ ...REC, locators: [...REC.locators, { address: '2001:db8::2', flags: 0, priority: 1, weight: 0 }] })}`, // 6
  ].join('\n') + '\n';
  const res = checkZoneText(text, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.severity, p.message]), [
    [5, 'warning', 'the TYPE65300 RR of line 4 again: servers keep one'],
    [6, 'error', 'second TYPE65300 RR at h.example. (first at line 4); one RR holds the whole locator set'],
  ]);
});

test('zone check: an owner spelt with escapes or in other letter case is the same name (RFC 1035 §5.1, RFC 4343), as BIND reads it', (t) => {
  // h\046x, h\.x and H\.X are one owner: one octet, 0x2e, inside the first label.
  const rr = rdataHex(REC);
  const body = [
    'h\\046x IN AAAA 2001:db8::1',                  // the ULID's AAAA
    `H\\.X IN TYPE65300 ${rr}`,                      // its record: the ULID is in that RRset
    `h\\.x IN TYPE65300 ${rdataHex({ ...REC, locators: [...REC.locators, { address: '2001:db8::2', flags: 0, priority: 1, weight: 0 }] })}`,
  ].join('\n') + '\n';
  const res = checkZoneText(`$ORIGIN example.\n$TTL 60\n${body}`, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.severity, p.message.replace(/ at .* \(/, ' at X (')]), [
    [5, 'error', 'second TYPE65300 RR at X (first at line 4); one RR holds the whole locator set'],
  ]);
  if (!needs(t, { commands: ['named-checkzone'] })) return;
  // BIND agrees that the three lines name one owner: with `-D` it prints the zone, each owner in one
  // spelling (the letter case of an RRset's first line).
  const dir = tempDir(t);
  const file = writeZone(dir, 'escaped.zone', zoneHeader(Z) + body);
  const dump = execFileSync('named-checkzone', ['-D', '-q', Z, file], { encoding: 'utf8' });
  const owners = new Set(dump.split('\n').filter((l) => /^h.*\sIN\s+(AAAA|TYPE65300)\s/i.test(l)).map((l) => l.split(/\s+/)[0]!.toLowerCase()));
  assert.deepEqual([...owners], ['h\\.x.example.'], dump);
});

test('zone check: one TXT fallback per host too (a host whose DNS takes no unknown type publishes only it)', () => {
  const txt = (r: CapabilityRecord): string => `"v=shim6cap1 b64=${Buffer.from(encodeCapabilityRecord(r)).toString('base64')}"`;
  const other: CapabilityRecord = { ...REC, locators: [...REC.locators, { address: '2001:db8::2', flags: 0, priority: 1, weight: 0 }] };
  const text = [
    '$ORIGIN example.',          // 1
    '$TTL 60',                   // 2
    'h IN AAAA 2001:db8::1',     // 3
    `_shim6.h IN TXT ${txt(REC)}`,   // 4
    `_shim6.h IN TXT ${txt(other)}`, // 5: readers would take either, as the server orders them
    `_shim6.h IN TXT ${txt(REC)}`,   // 6: the same again
  ].join('\n') + '\n';
  const res = checkZoneText(text, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.severity, p.message]), [
    [5, 'error', 'second _shim6 TXT fallback at _shim6.h.example. (first at line 4); one record holds the whole locator set'],
    [6, 'warning', 'the _shim6 TXT fallback of line 4 again: readers find the same record'],
  ]);
});

test('zone check: a record at or below a delegation (NS), or below a DNAME, is never served: an error (named-checkzone says nothing)', (t) => {
  const txt = `"v=shim6cap1 b64=${Buffer.from(encodeCapabilityRecord(REC)).toString('base64')}"`;
  const text = [
    '$ORIGIN example.',                       // 1
    '$TTL 60',                                // 2
    '@ IN SOA ns hm ( 1 3600 600 86400 300 )', // 3
    '@ IN NS ns',                             // 4: the apex's NS: no cut
    'ns IN AAAA 2001:db8::53',                // 5
    'sub IN NS ns.other.',                    // 6: a delegation
    'h.sub IN AAAA 2001:db8::1',              // 7
    `h.sub IN TYPE65300 ${rdataHex(REC)}`,    // 8: below it
    `_shim6.h.sub IN TXT ${txt}`,             // 9
    'sub IN AAAA 2001:db8::1',                // 10
    `sub IN TYPE65300 ${rdataHex(REC)}`,      // 11: at it
    'h IN AAAA 2001:db8::1',                  // 12
    `h IN TYPE65300 ${rdataHex(REC)}`,        // 13: fine
    `_shim6.h IN TXT ${txt}`,                 // 14: fine
    'd IN DNAME other.example.',              // 15: BIND loads what is below it too (Knot refuses)
    `h.d IN TYPE65300 ${rdataHex(REC)}`,      // 16: below it
    'h.d IN AAAA 2001:db8::1',                // 17
    'd IN AAAA 2001:db8::1',                  // 18: the DNAME's owner itself is served
    `d IN TYPE65300 ${rdataHex(REC)}`,        // 19: fine
  ].join('\n') + '\n';
  const below = (owner: string, cut: string): string => `${owner} is at or below the delegation ${cut} (NS): the zone's servers answer with a referral there, readers never see this record`;
  const res = checkZoneText(text, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.message]), [
    [8, below('h.sub.example.', 'sub.example.')],
    [9, below('_shim6.h.sub.example.', 'sub.example.')],
    [11, below('sub.example.', 'sub.example.')],
    [16, 'h.d.example. is below the DNAME at d.example.: readers\' questions are redirected (RFC 6672), they never see this record'],
  ]);
  // The same records with the apex given by --origin and no SOA; a fragment with neither knows no delegation.
  const noSoa = text.split('\n').filter((l) => !l.includes('SOA')).join('\n');
  assert.equal(checkZoneText(noSoa, 'z', { origin: 'example.' }).problems.length, 4);
  assert.deepEqual(checkZoneText(noSoa, 'z').problems.map((p) => p.message.split(' ')[0]), ['h.d.example.']);
  if (!needs(t, { commands: ['named-checkzone'] })) return;
  const file = writeZone(tempDir(t), 'cut.zone', text);
  const r = namedCheckzone(Z, file);
  assert.equal(r.status, 0, `named-checkzone loads it: ${r.output}`);
});

test('zone check: master-file syntax real zones use; duplicates and TXT/RR disagreement', () => {
  const rr = rdataHex(REC);
  const hex = rr.split(' ').slice(2).join('');
  const text = [
    '$TTL 1h',                                       // 1
    '$ORIGIN example.',                              // 2
    '@ IN SOA ns hm ( 1 ; serial',                   // 3
    '   3600 600 86400 300 )',                       // 4
    'h 300 IN AAAA 2001:db8::1 ; the ULID',          // 5
    `  IN 300 TYPE65300 ( \\# 40`,                   // 6: blank owner, class before TTL, parentheses
    `      ${hex.slice(0, 30)}`,                     // 7
    `      ${hex.slice(30)} )`,                      // 8
    `h.example. IN TYPE65300 ${rdataHex({ ...REC, locators: [{ ...REC.locators[0]!, priority: 5 }] })}`, // 9: second RR at the same owner
    '$ORIGIN sub.example.',                          // 10
    '@ IN AAAA 2001:db8::1',                         // 11
    `@ IN TYPE65300 ${rr}`,                          // 12: sub.example. — fine
    `_shim6 IN TXT "v=shim6cap1 b64=${Buffer.from(encodeCapabilityRecord({ ...REC, locators: [{ address: '2001:db8::2', flags: 0, priority: 0, weight: 0 }] })).toString('base64')}"`, // 13 differs
  ].join('\n');
  const res = checkZoneText(text, 'z');
  assert.deepEqual(res.problems.map((p) => [p.line, p.message.replace(/ \(.*$/, '')]), [
    [9, 'second TYPE65300 RR at h.example.'],
    [13, '_shim6 TXT differs from the TYPE65300 RR at line 12'],
  ]);
  assert.equal(res.records, 3);
  assert.equal(res.txts, 1);
});

test('zone check: a \\DDD escape over 255 is a problem on its line, anywhere (named-checkzone and kzonecheck refuse the zone)', () => {
  // The reviewer's case: `& 0xff` read \321 in the _shim6 TXT as 0x41 ("A"), the zone was "no problems".
  const host = buildHostRecord({ name: 'h.example.', ulid: '2001:db8::1', locators: ['2001:db8::1'], txt: true });
  const lines = hostZoneLines(host).map((l) => l.replace('b64=A', 'b64=\\321'));
  assert.ok(lines.some((l) => l.includes('\\321')));
  const text = zoneHeader(Z) + [
    ...lines,                              // 6..9: comment, RR, AAAA, TXT (line 9)
    'a\\999 IN AAAA 2001:db8::2',            // 10: in an owner name
    'x IN TXT "ok\\255" "bad\\256"',         // 11: in a quoted string of any TXT
    'y IN TXT ok\\255\\000\\1234',           // 12: \123 then "4": fine
  ].join('\n') + '\n';
  const res = checkZoneText(text, 'e.zone');
  assert.deepEqual(res.problems.map((p) => [p.line, p.severity, p.message]), [
    [9, 'error', 'escape \\321 is over 255 (\\DDD is one octet)'],
    [10, 'error', 'escape \\999 is over 255 (\\DDD is one octet)'],
    [11, 'error', 'escape \\256 is over 255 (\\DDD is one octet)'],
  ]);
  assert.equal(res.txts, 1);
  assert.deepEqual([...unescapeToken('a\\255\\000\\"é')!], [0x61, 255, 0, 0x22, 0xc3, 0xa9]);
  assert.equal(unescapeToken('b64=\\321'), undefined);
});

test('zone check: $INCLUDE is followed and problems name the included file', (t) => {
  const dir = tempDir(t);
  writeZone(dir, 'inc.zone', `h IN AAAA 2001:db8::1\nh IN TYPE65300 \\# 3 0102\n`);
  const main = writeZone(dir, 'main.zone', `$ORIGIN example.\n$TTL 60\n$INCLUDE inc.zone\n`);
  const res = checkZoneText(readFileSync(main, 'utf8'), main);
  assert.deepEqual(res.problems.map((p) => `${path.basename(p.file)}:${p.line}`), ['inc.zone:2']);
});

test('record inputs: each bad value is a UsageError naming its field (EMISSING for one left out)', () => {
  const base = { name: 'h.example.', ulid: '2001:db8::1', locators: ['2001:db8::1'] };
  const cases: [Partial<Record<keyof RecordFlags, unknown>>, string, string?][] = [
    [{ ulid: undefined }, '--ulid', 'EMISSING'],
    [{ locator: ['2001:db8::1/300'] }, '--locator'],
    [{ locator: ['2001:db8::1/0/0/lost'] }, '--locator'],
    [{ locator: ['2001:db8::1/0/0/0/9'] }, '--locator'],
    [{ locator: [] }, '--locator', 'EMISSING'],
    [{ locator: ['2001:db8::1', '2001:db8::1'] }, '--locator'],
    [{ name: 'h..example.' }, '--name'],
    [{ ulid: 'x' }, '--ulid'],
    [{ ttl: '-1' }, '--ttl'],
    [{ port: '0' }, '--port'],
    [{ aaaa: 'some' }, 'aaaa'],
    [{ rrType: '70000' }, 'rr-type'],
    [{ hba: '/nonexistent.json' }, '--hba'],
    // A reader asks _shim6.<host> TXT, which the wildcard itself answers (NODATA): _shim6.*.example. is never read.
    [{ name: '*.example.', txt: true }, '--txt'],
  ];
  for (const [patch, field, code = 'EINVALID'] of cases) {
    const flags: RecordFlags = { name: base.name, ulid: base.ulid, locator: base.locators, ...patch } as RecordFlags;
    if ('ulid' in patch && patch.ulid === undefined) delete flags.ulid;
    assert.throws(() => buildHostRecord(recordInput(flags)), (e: unknown) => e instanceof UsageError && e.code === code && e.field === field, JSON.stringify(patch));
  }
  // A wildcard's record itself is read (the server makes it at every name it covers).
  assert.equal(buildHostRecord(recordInput({ name: '*.example.', ulid: base.ulid, locator: base.locators })).name, '*.example.');
});

test('zone CLI: usage errors exit 2 and name the flag and the value on stderr', async () => {
  const cases: [string[], RegExp][] = [
    [['zone', 'record', '--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '2001:db8::1/300'], /--locator: invalid value "2001:db8::1\/300"/],
    [['zone', 'check', '/nonexistent.zone'], /FILE: invalid value "\/nonexistent.zone": no such file/],
    [['zone', 'hba', '--prefix', '2001:db8::/48', '--out', '/tmp/x'], /--prefix: invalid value "2001:db8::\/48"/],
  ];
  const results = await Promise.all(cases.map(([args]) => shim6Async(args)));
  for (const [i, [args, want]] of cases.entries()) {
    const r = results[i]!;
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, want, args.join(' '));
  }
});

test('zone record/update: non-global locators and ULIDs are refused at input (exit 2), by zone check\'s rules', async (t) => {
  const key = writeZone(tempDir(t), 'k.key', `k:${Buffer.alloc(32, 7).toString('base64')}\n`);
  const base = { name: 'h.example.', ulid: '2001:db8::1', locator: ['2001:db8::1'] };
  const cases: [Partial<RecordFlags>, string, RegExp][] = [
    [{ locator: ['2001:db8::1', '::1'] }, '--locator', /::1 is the loopback address/],
    [{ locator: ['fe80::1/1'] }, '--locator', /fe80::1 is link-local/],
    [{ locator: ['::ffff:192.0.2.1'] }, '--locator', /is IPv4-mapped/],
    [{ locator: ['ff02::1'] }, '--locator', /is a multicast address/],
    [{ locator: ['::'] }, '--locator', /is the unspecified address/],
    [{ ulid: 'fe80::1', locator: ['2001:db8::1'] }, '--ulid', /fe80::1 is link-local/],
    [{ ulid: '::1' }, '--ulid', /loopback/],
    // zone check refuses a locator with flag bits other than BROKEN and TRANSIENT: so does the input.
    [{ locator: ['2001:db8::1/0/0/4'] }, '--locator', /flags 0x04: unknown bits \(0x01 broken, 0x02 transient\)/],
    [{ locator: ['2001:db8::1/0/0/0x83'] }, '--locator', /flags 0x83: unknown bits/],
  ];
  for (const [patch, field, why] of cases) {
    assert.throws(() => buildHostRecord(recordInput({ ...base, ...patch })), (e: unknown) => e instanceof UsageError && e.code === 'EINVALID' && e.field === field && why.test(e.message), JSON.stringify(patch));
  }
  const [rec, upd] = await Promise.all([
    shim6Async(['zone', 'record', '--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '::1', '--locator', 'fe80::1']),
    // Refused before anything is sent (port 9: nothing would answer).
    shim6Async(['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'example.', '--key', key, '--name', 'h.example.', '--ulid', 'fe80::1', '--locator', '2001:db8::1']),
  ]);
  assert.equal(rec.status, 2, rec.stderr);
  assert.match(rec.stderr, /^shim6: error EINVALID: --locator: invalid value "::1": ::1 is the loopback address/);
  assert.equal(rec.stdout, '');
  assert.equal(upd.status, 2, upd.stderr);
  assert.match(upd.stderr, /^shim6: error EINVALID: --ulid: invalid value "fe80::1": fe80::1 is link-local/);
  // Every flag spelling the input takes gives a record zone check accepts.
  const flags = record(['--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '2001:db8::1/0/0/3', '--locator', '2001:db8::2/0/0/0x02', '--locator', '2001:db8::3/0/0/broken', '--txt']);
  const c = checkZoneText(zoneHeader(Z) + flags, 'flags.zone');
  assert.deepEqual(c.problems, []);
});

test('--rr-type: only the private-use range 65280..65534 (RFC 6895 §3.1), in every zone command', async () => {
  for (const ok of ['65280', '65300', 'TYPE65534', 'type65400']) {
    assert.equal(buildHostRecord(recordInput({ name: 'h.example.', ulid: '2001:db8::1', locator: ['2001:db8::1'], rrType: ok })).rrType, Number(ok.replace(/type/i, '')));
  }
  for (const bad of ['1', '16', '28', '65279', '65535', 'TYPE16', '0']) {
    assert.throws(() => recordInput({ name: 'h.example.', ulid: '2001:db8::1', locator: ['2001:db8::1'], rrType: bad }),
      (e: unknown) => e instanceof UsageError && e.field === 'rr-type' && /private-use type 65280\.\.65534/.test(e.message), bad);
  }
  const rec = ['--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '2001:db8::1'];
  const runs = await Promise.all([
    shim6Async(['zone', 'record', ...rec, '--rr-type', '28']),
    shim6Async(['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'example.', '--key', '/nonexistent', ...rec, '--rr-type', '1']),
    shim6Async(['zone', 'check', '--rr-type', '16', '/dev/null']),
    shim6Async(['zone', 'show', 'h.example.', '--server', '127.0.0.1:9', '--rr-type', '16', '--timeout', '0.1']),
  ]);
  for (const r of runs) {
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /^shim6: error EINVALID: --rr-type: invalid value "\d+": must be a private-use type 65280\.\.65534/);
  }
});

/** A host name of `n` characters (no final dot) in labels of at most 61. */
function longName(n: number): string {
  const labels: string[] = [];
  let left = n;
  while (left > 0) {
    const l = Math.min(61, left - (left > 61 ? 1 : 0));
    labels.push('h'.repeat(l));
    left -= l + 1;
  }
  const name = labels.join('.');
  assert.equal(name.length, n);
  return name;
}

test('long names: the _shim6 TXT owner must fit in 255 octets; --name error, zone check reports the owner', async (t) => {
  const dir = tempDir(t);
  const key = writeZone(dir, 'k.key', `k:${Buffer.alloc(32, 7).toString('base64')}\n`);
  const rec = ['--ulid', '2001:db8::1', '--locator', '2001:db8::1'];
  const [fits, long, noTxt, upd, show] = await Promise.all([
    shim6Async(['zone', 'record', '--name', longName(246), ...rec, '--txt']),
    shim6Async(['zone', 'record', '--name', longName(253), ...rec, '--txt']),
    shim6Async(['zone', 'record', '--name', longName(253), ...rec]),
    // The update deletes the TXT RRset at _shim6.<name> even without --txt: refused before anything is sent.
    shim6Async(['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'hhh.', '--key', key, '--name', `${longName(247)}`, ...rec]),
    shim6Async(['zone', 'show', `${longName(250)}.${longName(20)}`, '--server', '127.0.0.1:9']),
  ]);
  assert.equal(fits.status, 0, fits.stderr);
  assert.equal(long.status, 2, long.stderr);
  assert.match(long.stderr, /^shim6: error EINVALID: --name: invalid value "h+(\.h+)*\.": the TXT fallback's owner _shim6\.<name> would be 262 octets, over the 255 of a DNS name .*at most 246 characters\n$/);
  assert.equal(long.stdout, '');
  assert.equal(noTxt.status, 0, noTxt.stderr);
  assert.equal(upd.status, 2, upd.stderr);
  assert.match(upd.stderr, /^shim6: error EINVALID: --name: .* would be 256 octets/);
  assert.equal(show.status, 2, show.stderr);
  assert.match(show.stderr, /^shim6: error EINVALID: NAME: invalid value "h+.*": 273 octets, over the 255 of a DNS name\n$/);

  // zone check: the over-long owner is a problem on its line (once per owner).
  const host = `${longName(240)}.example.`;
  const zone = `$ORIGIN example.\n${host} IN AAAA 2001:db8::1\n_shim6.${host} IN TXT "x"\n_shim6.${host} IN TXT "y"\n`;
  const res = checkZoneText(zone, 'z');
  assert.deepEqual(res.problems.filter((p) => /octets/.test(p.message)).map((p) => [p.line, p.message.replace(/owner \S+/, 'owner O')]),
    [[3, 'owner O is 257 octets, over the 255 of a DNS name (RFC 1035 §2.3.4)']]);
});

test('a full or closed stdout is one error line, exit 1, no stack trace', async (t) => {
  const dir = tempDir(t);
  const rows = Array.from({ length: 3000 }, (_, i) => `h${i}.example.,2001:db8::${(i + 1).toString(16)},2001:db8::${(i + 1).toString(16)}`);
  const inv = writeZone(dir, 'inv.csv', `name,ulid,locators\n${rows.join('\n')}\n`);
  const rec = ['zone', 'record', '--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '2001:db8::1'];
  const runs = await Promise.all([shim6BadStdout(rec, 'full'), shim6BadStdout(['zone', 'bulk', inv], 'closed'), shim6BadStdout(['zone', 'bulk', inv], 'full')]);
  for (const [i, r] of runs.entries()) {
    assert.equal(r.status, 1, `${i}: ${r.stderr}`);
    const lines = r.stderr.split('\n').filter((l) => l !== '' && !/^\d+ hosts, no failures$/.test(l));
    assert.deepEqual(lines.length, 1, `${i}: ${r.stderr}`);
    assert.match(lines[0]!, /^shim6: error (ENOSPC|EPIPE): cannot write to stdout/, `${i}`);
  }
});

test('input files are read up to a bound per kind: /dev/zero is ETOOLARGE, not all the memory there is', async (t) => {
  const dir = tempDir(t);
  // A regular file one octet over the zone bound, first: the old code read it whole (and /dev/zero forever).
  const big = path.join(dir, 'big.zone');
  writeFileSync(big, Buffer.alloc(READ_BOUNDS.zone + 1, 0x20));
  const overBig = await shim6Async(['zone', 'check', big]);
  assert.equal(overBig.status, 2, overBig.stderr);
  assert.match(overBig.stderr, /^shim6: error ETOOLARGE: FILE: ".*big\.zone" is larger than 32 MiB, the bound for a zone file and its \$INCLUDEs, in all; not read\n$/);
  const key = ['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'example.', '--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '2001:db8::1'];
  const [keyZero, bulkZero] = await Promise.all([
    shim6Async([...key, '--key', '/dev/zero']),
    shim6Async(['zone', 'bulk', '/dev/zero']),
  ]);
  // (A zone file must be a regular file: /dev/zero is refused before any read, see the FIFO test.)
  for (const [r, re] of [[keyZero, /^shim6: error ETOOLARGE: --key: "\/dev\/zero" is larger than 1 MiB, the bound for a key file; not read\n$/],
    [bulkZero, /^shim6: error ETOOLARGE: FILE: "\/dev\/zero" is larger than 32 MiB, the bound for an inventory; not read\n$/]] as const) {
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, re);
  }
  // The budget is shared: two included files that fit alone but not together.
  const half = Buffer.alloc(READ_BOUNDS.zone / 2 + 1, 0x20);
  writeFileSync(path.join(dir, 'a.zone'), half);
  writeFileSync(path.join(dir, 'b.zone'), half);
  const two = writeZone(dir, 'two.zone', '$INCLUDE a.zone\n$INCLUDE b.zone\n');
  const both = await shim6Async(['zone', 'check', '--origin', 'example.', two]);
  assert.equal(both.status, 1, both.stderr);
  assert.match(both.stdout, /^.*two\.zone:2: \$INCLUDE b\.zone: ".*b\.zone" is larger than 32 MiB, the bound for a zone file and its \$INCLUDEs, in all/);
});

test('zone check reads only regular files: a FIFO (which blocked it for ever) or a device, given or $INCLUDEd, is refused, not opened for reading', async (t) => {
  const dir = tempDir(t);
  const fifo = path.join(dir, 'p.zone');
  execFileSync('mkfifo', [fifo]);
  const inc = writeZone(dir, 'inc.zone', `$ORIGIN example.\nh IN AAAA 2001:db8::1\n$INCLUDE ${fifo}\n$INCLUDE /dev/zero\n$INCLUDE ${dir}\nh IN AAAA 2001:db8::2\n`);
  // Deadlines only: the old code blocked in open() on the FIFO until the child was killed.
  const [included, given, device] = await Promise.all([
    shim6Async(['zone', 'check', inc]), shim6Async(['zone', 'check', fifo]), shim6Async(['zone', 'check', '/dev/zero']),
  ]);
  assert.equal(included.status, 1, included.stderr);
  const notRegular = (f: string): string => `${JSON.stringify(f)} is not a regular file (a FIFO, a device, a directory…); not read`;
  assert.equal(included.stdout, [
    `${inc}:3: $INCLUDE ${fifo}: ${notRegular(fifo)}`,
    `${inc}:4: $INCLUDE /dev/zero: ${notRegular('/dev/zero')}`,
    `${inc}:5: $INCLUDE ${dir}: ${notRegular(dir)}`,
  ].join('\n') + '\n');
  for (const [r, f] of [[given, fifo], [device, '/dev/zero']] as const) {
    assert.equal(r.status, 2, r.stderr);
    assert.equal(r.stderr, `shim6: error EINVALID: FILE: ${notRegular(f)}\n`);
  }
  // stdin (`-`) is still read, a pipe included.
  const piped = await shim6Async(['zone', 'check', '--origin', 'example.', '-'], 'h IN AAAA 2001:db8::1\n');
  assert.equal(piped.status, 0, piped.stderr);
});

test('zone show NAME and --expect*, update --interface and check --origin: bad values are refused (exit 2) before any query', async (t) => {
  const key = writeZone(tempDir(t), 'k.key', `k:${Buffer.alloc(32, 7).toString('base64')}\n`);
  // Port 9 on loopback answers nothing: the old code asked it, timed out and said exit 1.
  const show = ['zone', 'show', 'h.example.', '--server', '127.0.0.1:9', '--timeout', '0.2'];
  const cases: [string[], RegExp][] = [
    [[...show, '--expect', 'v2 foo'], /^shim6: error EINVALID: --expect: invalid value "v2 foo": /],
    [[...show, '--expect-ulid', 'zz'], /^shim6: error EINVALID: --expect-ulid: invalid value "zz": not an IPv6 address\n$/],
    [[...show, '--expect-locator', '2001:db8::1', '--expect-locator', '2001:db8::g'], /^shim6: error EINVALID: --expect-locator: invalid value "2001:db8::g": not an IPv6 address\n$/],
    // A 64-octet label passed the length check and made the encoder throw a RangeError at query time (EINTERNAL, exit 1).
    [['zone', 'show', `${'a'.repeat(64)}.example.`, '--server', '127.0.0.1:9', '--timeout', '0.2'], /^shim6: error EINVALID: NAME: invalid value "a{64}\.example\.": a label is longer than 63 octets\n$/],
    [['zone', 'show', 'a\\256.example.', '--server', '127.0.0.1:9', '--timeout', '0.2'], /^shim6: error EINVALID: NAME: invalid value "a\\\\256\.example\.": escape \\256 is over 255\n$/],
    [['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'example.', '--key', key, '--name', 'h.example.', '--from-host', '--interface', 'nosuch0'],
      /^shim6: error EINVALID: --interface: invalid value "nosuch0": no such interface\n$/],
    // Without --from-host it was ignored: the update went out with the --locator given, from every interface.
    [['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'example.', '--key', key, '--name', 'h.example.', '--ulid', '2001:db8::1', '--locator', '2001:db8::1', '--interface', 'lo', '--timeout', '0.2'],
      /^shim6: error EINVALID: --interface goes with --from-host, which is missing \(shim6 zone update --from-host --interface NAME …\)\n$/],
    // A ULID or locator left out is a flag missing (EMISSING), and zone record takes no --from-host.
    [['zone', 'record', '--name', 'h.example.'], /^shim6: error EMISSING: --ulid: a ULID is required \(or --hba\)\n$/],
    [['zone', 'record', '--name', 'h.example.', '--ulid', '2001:db8::1'], /^shim6: error EMISSING: --locator: at least one locator is required\n$/],
    [['zone', 'update', '--server', '127.0.0.1:9', '--zone', 'example.', '--key', key, '--name', 'h.example.'], /^shim6: error EMISSING: --ulid: a ULID is required \(or --hba, or --from-host\)\n$/],
    [['zone', 'check', '--origin', 'bad..origin', '/dev/null'], /^shim6: error EINVALID: --origin: invalid value "bad\.\.origin": has an empty label\n$/],
    [['zone', 'check', '--origin', `${'a'.repeat(64)}.example.`, '/dev/null'], /--origin: .*: a label is longer than 63 octets/],
  ];
  const results = await Promise.all(cases.map(([args]) => shim6Async(args)));
  for (const [i, [args, want]] of cases.entries()) {
    assert.equal(results[i]!.status, 2, `${args.join(' ')}: ${results[i]!.stderr}`);
    assert.match(results[i]!.stderr, want, args.join(' '));
  }
  const empty = writeZone(tempDir(t), 'empty.zone', '');
  for (const origin of ['example', 'example.', '.', '0/25.2.0.192.in-addr.arpa.']) {
    const ok = await shim6Async(['zone', 'check', '--origin', origin, empty]);
    assert.equal(ok.status, 0, `${origin}: ${ok.stderr}`);
  }
});

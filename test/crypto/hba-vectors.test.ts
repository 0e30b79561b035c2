// HBA known-answer vectors. RFC 5535 publishes none, so these were built from
// its §6 procedure and are checked two ways: against fixed values (a regression
// guard, first cross-checked by hand with Python's hashlib) and, on every run,
// against an independent implementation of RFC 3972 §3–4 / RFC 5535 §6 in
// Python (hashlib), fed only the raw parameter octets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateHbaSet } from '../../shim/wire/hba.ts';
import { needs } from '../helpers/prereq.ts';
import { parseIpv6 } from '../../shim/wire/ipv6.ts';
import { fixedBytes, hex, toHex } from '../helpers/octets.ts';
import { randomBytes } from '../helpers/rng.ts';

test('HBA-only, Sec 1, 3 prefixes, modifier 0011…eeff, Extended Modifier ff…ff: fixed vector', () => {
  const set = generateHbaSet({
    prefixes: ['2001:db8:a::/64', '2001:db8:b::/64', '2001:db8:c::/64'], sec: 1,
    randomBytes: fixedBytes(hex('00112233445566778899aabbccddeeff'), hex('ff'.repeat(48))),
  });
  assert.equal(set.iterations, 16697);
  assert.equal(toHex(set.members[0]!.params.subarray(0, 16)), '00112233445566778899aabbccde3037');
  assert.deepEqual(set.members.map((m) => m.address), [
    '2001:db8:a:0:3072:f7e8:d487:da5b',
    '2001:db8:b:0:2070:ed52:d8e7:73eb',
    '2001:db8:c:0:24b5:e692:cf50:b565',
  ]);
});

// Reads lines "params-hex sec prefix-hex…", prints one line of addresses (hex) per input.
const PYTHON = `
import hashlib, sys
for line in sys.stdin:
    f = line.split()
    p, sec, prefixes = bytes.fromhex(f[0]), int(f[1]), [bytes.fromhex(x) for x in f[2:]]
    mod, cc, tail = p[:16], p[24:25], p[25:]
    assert sec == 0 or hashlib.sha1(mod + bytes(9) + tail).digest()[:2 * sec] == bytes(2 * sec)
    out = []
    for pre in prefixes:
        h = bytearray(hashlib.sha1(mod + pre + cc + tail).digest()[:8])
        h[0] = (h[0] & 0x1c) | (sec << 5)
        out.append((pre + bytes(h)).hex())
    print(' '.join(out))
`;

test('an independent Python implementation derives the same HBA sets (1..4 prefixes, Sec 0 and 1)', (t) => {
  if (!needs(t, { commands: ['python3'] })) return;
  const cases = [];
  for (let n = 1; n <= 4; n++) {
    for (const sec of [0, 1]) {
      const prefixes = Array.from({ length: n }, (_, i) => `2001:db8:${(0x100 + i * 7).toString(16)}::/64`);
      cases.push(generateHbaSet({ prefixes, sec, randomBytes: randomBytes(`py-${n}-${sec}`) }));
    }
  }
  const input = cases.map((s) => {
    const sec = parseInt(s.members[0]!.address.split(':')[4]!, 16) >> 13;
    return [toHex(s.members[0]!.params), sec, ...s.members.map((m) => toHex(m.params.subarray(16, 24)))].join(' ');
  }).join('\n');
  const r = spawnSync('python3', ['-c', PYTHON], { input, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.equal(lines.length, cases.length);
  cases.forEach((s, i) => {
    assert.deepEqual(lines[i]!.split(' '), s.members.map((m) => toHex(parseIpv6(m.address))));
  });
});


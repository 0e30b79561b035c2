// IPv6 text <-> octets (shim/wire/ipv6.ts) against independent oracles in the same
// process: the WHATWG URL parser (RFC 5952-style canonical host form) and net.isIPv6.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { canonicalIpv6, formatIpv6, isIpv6, parseIpv6, WireError } from '../../shim/wire/index.ts';
import { formatIpv6Octets, ipv6OctetsAt, octetsText } from '../../shim/wire/ipv6.ts';
import { fuzzParams } from '../helpers/rng.ts';

const urlForm = (text: string): string => new URL(`http://[${text}]/`).hostname.slice(1, -1);
const octets = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  // Mostly-zero addresses: many runs to choose between.
  fc.array(fc.constantFrom(0, 0, 0, 1, 0xff), { minLength: 16, maxLength: 16 }).map((a) => Uint8Array.from(a)),
);

test('RFC 5952 examples', () => {
  assert.equal(canonicalIpv6('2001:0db8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
  assert.equal(canonicalIpv6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1'); // first of equal runs
  assert.equal(canonicalIpv6('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1'); // a single 0 group is not compressed
  assert.equal(canonicalIpv6('2001:DB8::AB'), '2001:db8::ab');
  assert.equal(canonicalIpv6('::'), '::');
  assert.equal(canonicalIpv6('::1'), '::1');
  assert.equal(canonicalIpv6('1::'), '1::');
  assert.equal(canonicalIpv6('::ffff:192.0.2.1'), '::ffff:c000:201');
});

test('formatIpv6 agrees with the WHATWG URL serializer; parse(format(x)) = x', (t) => {
  fc.assert(fc.property(octets, (b) => {
    const text = formatIpv6(b);
    assert.equal(text, urlForm(text));
    assert.deepEqual(parseIpv6(text), b);
  }), fuzzParams(t, { seed: 5952, numRuns: 3000 }));
});

test('Ipv6Octets: read in place from a Buffer or a Uint8Array, equal exactly when the octets are, formatted as formatIpv6; not a view', (t) => {
  fc.assert(fc.property(octets, octets, fc.nat(7), fc.boolean(), (a, b, at, asBuffer) => {
    const whole = new Uint8Array(at + 32);
    whole.set(a, at);
    whole.set(b, at + 16);
    const container = asBuffer ? Buffer.from(whole) : whole;
    const oa = ipv6OctetsAt(container, at), ob = ipv6OctetsAt(container, at + 16);
    assert.equal(oa.length, 16);
    assert.equal(oa === ob, a.every((x, i) => x === b[i]));
    assert.equal(formatIpv6Octets(oa), formatIpv6(a));
    container.fill(0xee); // the receive slot is reused: the octets were copied out
    assert.equal(formatIpv6Octets(ob), formatIpv6(b));
  }), fuzzParams(t, { seed: 16, numRuns: 2000 }));
  assert.throws(() => ipv6OctetsAt(new Uint8Array(20), 5), WireError);
  assert.throws(() => octetsText(new Uint8Array(4), 2, 5), RangeError);
});

test('parseIpv6 reads the uncompressed, upper-case form too', (t) => {
  fc.assert(fc.property(octets, (b) => {
    const full = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16).toUpperCase().padStart(4, '0')).join(':');
    assert.deepEqual(parseIpv6(full), b);
  }), fuzzParams(t, { seed: 5952, numRuns: 1000 }));
});

test('parseIpv6 accepts exactly what net.isIPv6 accepts (hex-and-colon strings)', (t) => {
  const chars = fc.constantFrom(...'0123456789abcdefABCDEF::::g'.split(''));
  fc.assert(fc.property(fc.array(chars, { maxLength: 41 }).map((a) => a.join('')), (s) => {
    assert.equal(isIpv6(s), isIPv6(s), s);
  }), fuzzParams(t, { seed: 5952, numRuns: 20000 }));
  for (const s of ['::', '1::', '::1', '1::2', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7::', '::2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9', '1::2::3', ':1::', '1:', ':', ':::', '12345::', '1:2:3:4:5:6:7:8::', 'fffff::']) {
    assert.equal(isIpv6(s), isIPv6(s), s);
  }
});

test('bad text and short buffers throw WireError', () => {
  assert.throws(() => parseIpv6('fe80::1%eth0'), (e: unknown) => e instanceof WireError && e.code === 'EADDRESS');
  assert.throws(() => parseIpv6(''), { code: 'EADDRESS' });
  assert.throws(() => formatIpv6(new Uint8Array(15)), { code: 'ETRUNCATED' });
  assert.throws(() => formatIpv6(new Uint8Array(16), 1), { code: 'ETRUNCATED' });
});

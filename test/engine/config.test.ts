// Engine configuration: the two timer profiles, per-value overrides, and the
// values that cannot work rejected with stable UsageError codes; 47-bit
// context tags unique per host (RFC 5533 §7.1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, FAST_PROFILE, RFC_PROFILE, resolveConfig } from '../../shim/engine/index.ts';
import { UsageError } from '../../shim/errors.ts';
import { decodeMessage } from '../../shim/wire/index.ts';
import { ms } from '../../shim/time.ts';
import { SimRng } from '../helpers/rng.ts';

const L = [{ address: '2001:db8:a1::1' }];
const code = (c: string) => (e: unknown) => e instanceof UsageError && e.code === c;

test('profiles and overrides: rfc = RFC 5533 §14 / RFC 5534 §7 values, fast below them, one value overridden', () => {
  assert.equal(resolveConfig({ localLocators: L }).timers.sendTimeout, 15_000);
  assert.deepEqual(resolveConfig({ localLocators: L, profile: 'rfc' }).timers, RFC_PROFILE);
  assert.deepEqual(resolveConfig({ localLocators: L, profile: 'fast' }).timers, FAST_PROFILE);
  assert.equal(RFC_PROFILE.i1Timeout, 4000);
  assert.equal(RFC_PROFILE.maxUpdateTimeout, 120_000);
  const t = resolveConfig({ localLocators: L, profile: 'fast', timers: { i1Timeout: ms(250) } }).timers;
  assert.deepEqual(t, { ...FAST_PROFILE, i1Timeout: 250 });
});

test('bad configuration → UsageError with a stable code', () => {
  assert.throws(() => resolveConfig({ localLocators: L, profile: 'lan' as never }), code('EPROFILE'));
  assert.throws(() => resolveConfig({ localLocators: L, timers: { nope: 1 } as never }), code('ETIMER'));
  assert.throws(() => resolveConfig({ localLocators: L, timers: { sendTimeout: -1 as never } }), code('ETIMER'));
  assert.throws(() => resolveConfig({ localLocators: L, timers: { validatorLifetime: ms(29_999) } }), code('ETIMER'));
  // A hold shorter than a daemon restart would end the context of every peer that restarts (icmp.ts peer-gone).
  assert.throws(() => resolveConfig({ localLocators: L, timers: { peerGoneTimeout: ms(999) } }), code('ETIMER'));
  assert.equal(resolveConfig({ localLocators: L, timers: { peerGoneTimeout: ms(1000) } }).timers.peerGoneTimeout, 1000);
  assert.deepEqual([RFC_PROFILE.peerGoneTimeout, FAST_PROFILE.peerGoneTimeout], [60_000, 60_000], 'a minute: over a daemon restart (systemd waits 5 s) on a busy host');
  assert.throws(() => resolveConfig({ localLocators: [] }), code('ENO_LOCATORS'));
});

test('context tags: 47 bits, random, unique on the host', () => {
  const e = new Engine({ localLocators: L }, new SimRng(97));
  const tags = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    e.prime(ms(0), { ulid: `2001:db8:ff:${i.toString(16)}::1`, locators: [], ttl: 60, source: 'configured' });
    const i1 = decodeMessage(e.pollTransmit()!.bytes);
    assert.equal(i1.type, 'I1');
    const tag = (i1 as { contextTag: number }).contextTag;
    assert.ok(Number.isInteger(tag) && tag >= 0 && tag < 2 ** 47);
    tags.add(tag);
  }
  assert.equal(tags.size, 2000);
  assert.ok([...tags].some((t) => t >= 2 ** 46), 'the top bit is used');
  assert.equal(new Set(e.status().contexts.map((c) => c.contextTag)).size, 2000);
});

// The lab's readers of a daemon's JSON log (lab/daemons.ts): which pair a
// context was on at a moment (the demo's pair_at_failure), and where it came from.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contextSource, pairAt, type LogRecord } from '../../lab/daemons.ts';

const B = '2001:db8:1::b';
const P = { local: '2001:db8:1::a', peer: B };
const Q = { local: '2001:db8:2::a', peer: '2001:db8:2::b' };
const rec = (ms: number, msg: string, extra: Record<string, unknown> = {}): LogRecord =>
  ({ ts: new Date(Date.UTC(2026, 11, 5, 8, 0, 0, ms)).toISOString(), level: 'info', component: 'engine', msg, peerUlid: B, ...extra });
const at = (ms: number): number => Date.UTC(2026, 11, 5, 8, 0, 0, ms);

test('pairAt: the pair of the last establishment or pair change before the moment; none before the context or after it ended', () => {
  const log = [
    rec(100, 'prime', { peerUlid: undefined, ulid: B }),
    rec(200, 'context-established', { pair: P }),
    rec(500, 'locator-pair-changed', { old: P, new: Q }),
    rec(600, 'locator-pair-changed', { peerUlid: '2001:db8:1::c', old: Q, new: P }), // another peer's context
    rec(900, 'context-closed'),
  ];
  assert.equal(pairAt(log, B, at(150)), null);
  assert.deepEqual(pairAt(log, B, at(300)), P);
  assert.deepEqual(pairAt(log, B, at(500)), P, 'a change at the very moment is not before it');
  assert.deepEqual(pairAt(log, B, at(800)), Q);
  assert.equal(pairAt(log, B, at(1000)), null);
});

test('contextSource: where the first context with the peer came from', () => {
  assert.equal(contextSource([], B), null);
  assert.equal(contextSource([rec(100, 'prime', { peerUlid: undefined, ulid: B }), rec(200, 'context-established', { pair: P })], B), 'dns');
  assert.equal(contextSource([rec(200, 'context-established', { pair: P })], B, [{ ulid: B }]), 'config');
  assert.equal(contextSource([rec(200, 'context-established', { pair: P })], B), null);
});

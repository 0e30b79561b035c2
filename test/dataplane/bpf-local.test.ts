// The kernel decapsulation's own addresses (shim6_local, bpf-encap.ts `globalAddresses`): from
// /proc/net/if_inet6, the global unicast ones only — no link-local, loopback, multicast or
// DAD-failed address, which the ingress program must never take a payload to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { globalAddresses } from '../../shim/dataplane/bpf-encap.ts';

test('globalAddresses: scope global, not DAD-failed, never multicast; other lines ignored', () => {
  const text = [
    '20010db80001000008c3db868ad66d8c 03 40 00 80     labp', // global, permanent
    '20010db80002000000000000000000aa 04 40 00 40     labq', // global, tentative (still ours)
    '20010db80002000000000000000000bb 04 40 00 08     labq', // DAD failed: not ours
    'fe800000000000000000000000000001 03 40 20 80     labp', // link-local
    '00000000000000000000000000000001 01 80 10 80       lo', // loopback
    'ff020000000000000000000000000001 03 80 00 80     labp', // never listed there, never taken
    'garbage',
    '',
  ].join('\n');
  assert.deepEqual(globalAddresses(text), ['20010db80001000008c3db868ad66d8c', '20010db80002000000000000000000aa']);
});

test('globalAddresses: this namespace\'s file parses (whatever it holds)', () => {
  for (const a of globalAddresses()) assert.match(a, /^[0-9a-f]{32}$/);
});

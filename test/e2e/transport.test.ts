// The daemon's UDP transport (issue 6, data plane): the native batched socket by
// default, Node's dgram when the config says `udp: dgram`; a bad value names the key.
// Real sockets on an ephemeral loopback port; a datagram really goes through each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openKernelPath, openTransport } from '../../shim/daemon/daemon.ts';
import { defaultConfig, parseConfigText } from '../../shim/daemon/config.ts';
import { NativeUdpTransport } from '../../shim/dataplane/udp-native.ts';
import { DgramTransport, type Datagram } from '../../shim/dataplane/udp.ts';
import { Logger } from '../../shim/log.ts';
import { UsageError } from '../../shim/errors.ts';
import { within } from '../helpers/wait.ts';

const quiet = new Logger({ level: 'error' });

async function roundTrip(udp: 'native' | 'dgram'): Promise<{ kind: string; got: Datagram }> {
  const t = openTransport({ ...defaultConfig(), port: 0, udp }, 1480, quiet);
  try {
    const got = new Promise<Datagram>((resolve) => t.onDatagram((d) => resolve({ ...d, bytes: d.bytes.slice() })));
    const port = await t.bind('::1');
    assert.ok(t.send('::1', '::1', port, new Uint8Array([5, 5, 3, 3])));
    t.flush?.();
    const d = await within(got, 'the datagram');
    return { kind: t instanceof NativeUdpTransport ? 'native' : t instanceof DgramTransport ? 'dgram' : '?', got: d };
  } finally {
    await t.close();
  }
}

test('udp: native (default) → NativeUdpTransport; udp: dgram → DgramTransport; both carry a datagram', async () => {
  assert.equal(defaultConfig().udp, 'native');
  for (const udp of ['native', 'dgram'] as const) {
    const r = await roundTrip(udp);
    assert.equal(r.kind, udp);
    assert.deepEqual([...r.got.bytes], [5, 5, 3, 3]);
    assert.equal(r.got.dst, '::1');
  }
});

test('udp: a value other than native or dgram is a config error naming the key', () => {
  assert.equal(parseConfigText('udp: dgram\n').udp, 'dgram');
  assert.throws(() => parseConfigText('udp: tcp\n'), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && e.field === 'udp');
});

test('timers.keepaliveTimeoutMax: 0 (no cap, as in rfc) is accepted; other durations still start at 1', () => {
  assert.equal(parseConfigText('timers: { profile: fast, keepaliveTimeoutMax: 0 }\n').timers.overrides.keepaliveTimeoutMax, 0);
  assert.throws(() => parseConfigText('timers: { profile: fast, sendTimeout: 0 }\n'), (e: unknown) => e instanceof UsageError && e.field === 'timers.sendTimeout');
});

test('dataPath: auto by default; kernel and tun accepted; any other value is a config error naming the key; tun opens no kernel path', () => {
  assert.equal(defaultConfig().dataPath, 'auto');
  for (const v of ['auto', 'kernel', 'tun'] as const) assert.equal(parseConfigText(`dataPath: ${v}\n`).dataPath, v);
  assert.throws(() => parseConfigText('dataPath: bpf\n'), (e: unknown) => e instanceof UsageError && e.code === 'ECONFIG' && e.field === 'dataPath');
  assert.equal(openKernelPath({ ...defaultConfig(), dataPath: 'tun' }, quiet), undefined);
});

// The stop gives the host its DNS back first (docs/operations.md "DNS hand-over": "on stop …,
// first, while the stub still answers"), before it waits up to 3 s for its peers' Close Acks: a
// second Ctrl-C or SIGTERM in that wait ends the process at once, and the host's resolv.conf then
// named a dead stub until the next start. The daemon here is the real stop() over fakes that
// record the order of what it does; its peer never acknowledges the Close.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon } from '../../shim/daemon/daemon.ts';
import { defaultConfig } from '../../shim/daemon/config.ts';

test('a stop gives the DNS hand-over back before it waits for the Close Acks', async () => {
  const order: string[] = [];
  const engine = { contextCount: 1, traffic: () => [{ localUlid: '2001:db8:1::1', peerUlid: '2001:db8:2::1', contextTag: 1, bytesIn: 0, bytesOut: 0 }], close: () => { order.push('close'); } };
  const daemon = Object.assign(Object.create(Daemon.prototype) as object, {
    stopping: false, stopped: false, config: defaultConfig(), events: [], restored: new Map(), restoredPeers: new Map(),
    // The data plane off: no routes, no cache file to write (what is checked is the order only).
    opts: { dataPlaneOff: {} },
    log: { info: (msg: string) => { order.push(msg); }, warn: () => {}, error: () => {} },
    engine, driver: { command: (fn: (e: typeof engine, now: number) => unknown) => fn(engine, 0), close: async () => {} },
    handover: { restore: () => { order.push('DNS given back'); } },
    capture: { stop: () => {} },
  }) as unknown as Daemon;
  await daemon.stop();
  assert.deepEqual(order.filter((o) => o === 'DNS given back' || o === 'close' || o === 'contexts closed'), ['DNS given back', 'close', 'contexts closed'],
    'the host\'s DNS back first, then the Close and its wait');
});

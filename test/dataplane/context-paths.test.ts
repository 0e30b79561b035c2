// The kernel path's reading clock (shim/dataplane/context-paths.ts): while the last reading saw a
// context's packets both ways, the next one comes at the busy interval (the Send Timer starts at a
// reading, so a failure is seen up to one interval late); otherwise at the normal interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ContextPaths } from '../../shim/dataplane/context-paths.ts';
import type { KernelCounters } from '../../shim/dataplane/kernel-path.ts';
import type { Millis } from '../../shim/time.ts';
import { DEADLINE_MS, waitFor } from '../helpers/wait.ts';

test('kernel path readings: at the busy interval while packets flow both ways, at the normal one (60 s here) once only one way moved', async (t) => {
  const c: KernelCounters = { outPackets: 0, inPackets: 0 };
  let readings = 0;
  /** What the next reading shows: both ways, one way, or nothing. */
  let next: 'both' | 'out' = 'both';
  const kernel = {
    watch: () => true, unwatch: () => {},
    refresh: () => {
      readings++;
      c.outPackets++;
      if (next === 'both') c.inPackets++;
      return Promise.resolve();
    },
    read: () => ({ ...c }),
  };
  const fed: Array<{ sent: boolean; received: boolean }> = [];
  const paths = new ContextPaths({
    kernel, kernelTraffic: (_now, _l, _p, seen) => { fed.push(seen); return true; },
    pollMs: 60_000, busyPollMs: 5,
    clock: () => performance.now() as Millis, flush: () => {}, drop: () => {}, fed: () => {},
  });
  t.after(() => paths.close());
  assert.equal(paths.established('fd00::a', 'fd00::b', { local: 'fd00::a', peer: 'fd00::b' }), true, 'on the kernel path');
  // The first reading comes at the normal interval: take it now (as the driver does before a timeout).
  await paths.readNow();
  // A reading that saw both ways: the clock comes back within the busy interval, again and again.
  paths.wake(undefined);
  await waitFor(() => readings >= 6, 'readings at the busy interval while packets flow both ways', DEADLINE_MS);
  assert.ok(fed.some((s) => s.received) && fed.some((s) => s.sent));
  next = 'out';
  const at = readings;
  await waitFor(() => readings >= at + 1, 'the reading that sees one way only', DEADLINE_MS);
  const after = readings;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(readings, after, 'one way only: the next reading waits for the normal interval (60 s)');
});

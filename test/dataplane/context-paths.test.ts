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

test('idle contexts cost a reading nothing: with 2,000 established contexts on the kernel path and one sending, each reading reads only the contexts whose counters moved, and only the sending one gets liveness Keepalives', async (t) => {
  const N = 2000;
  const peer = (i: number): string => `fd00:1::${(i + 1).toString(16)}`;
  const counters = new Map<string, KernelCounters>();
  let last = new Map<string, string>();
  let moved: Array<readonly [string, string]> = [];
  let readings = 0, reads = 0;
  // A kernel hook as NftKernelPath is one: `moved` names the contexts whose counters changed (or were first read).
  const kernel = {
    watch: (l: string, p: string) => { counters.set(`${l} ${p}`, { outPackets: 0, inPackets: 0 }); return true; },
    unwatch: (l: string, p: string) => { counters.delete(`${l} ${p}`); },
    refresh: () => {
      readings++;
      counters.get(`fd00::a ${peer(0)}`)!.outPackets++; // the one context that sends
      const now = new Map([...counters].map(([k, v]) => [k, `${v.outPackets} ${v.inPackets}`]));
      moved = [...now].filter(([k, v]) => last.get(k) !== v).map(([k]) => k.split(' ') as [string, string]);
      last = now;
      return Promise.resolve();
    },
    read: (l: string, p: string) => { reads++; return counters.get(`${l} ${p}`); },
    moved: () => moved,
  };
  const keepalives: string[] = [];
  const paths = new ContextPaths({
    kernel, kernelTraffic: () => true, pollMs: 5, livenessMs: 20, liveness: (_l, p) => { keepalives.push(p); },
    clock: () => performance.now() as Millis, flush: () => {}, drop: () => {}, fed: () => {},
  });
  t.after(() => paths.close());
  for (let i = 0; i < N; i++) assert.equal(paths.established('fd00::a', peer(i), { local: 'fd00::a', peer: peer(i) }), true);
  paths.wake(undefined);
  await waitFor(() => readings >= 40, '40 readings', DEADLINE_MS);
  // Counted work, not time: the first reading reads every context once (first counters), then one per reading.
  assert.ok(reads <= N + readings, `${reads} counter reads in ${readings} readings of ${N} contexts`);
  assert.ok(keepalives.length > 0 && keepalives.every((p) => p === peer(0)), `liveness Keepalives only to the sending context: ${keepalives.length} sent, to ${new Set(keepalives).size} peers`);
  assert.ok(keepalives.length <= readings, `${keepalives.length} Keepalives in ${readings} readings`);
});

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

/**
 * A kernel hook with the sums (`total`) and, unless `tripwire` is false, a tripwire whose calls the
 * test makes (`trip`): what the kernel would do at the first packet after the quiet time.
 */
function sleepyKernel(opts: { tripwire: boolean; quietMs: number }) {
  const c: KernelCounters = { outPackets: 0, inPackets: 0 };
  const s = { readings: 0, total: 0 };
  let onTrip: (() => void) | undefined;
  const kernel = {
    watch: () => true, unwatch: () => {},
    refresh: () => { s.readings++; return Promise.resolve(); },
    read: () => ({ ...c }),
    total: () => s.total,
    ...(opts.tripwire ? { tripwire: { quietMs: opts.quietMs, onTrip: (cb: () => void) => { onTrip = cb; } } } : {}),
  };
  /** `n` packets out (and in, with `both`) are counted; the tripwire calls back (as the kernel would, were the quiet time over). */
  const packets = (n: number, both = false): void => {
    c.outPackets += n;
    if (both) c.inPackets += n;
    s.total += both ? 2 * n : n;
  };
  return { kernel, s, packets, trip: () => onTrip?.() };
}

/** Readings taken while `ms` pass: the clock's own timers only (nothing else happens meanwhile). */
async function readingsDuring(s: { readings: number }, ms: number): Promise<number> {
  const at = s.readings;
  await new Promise((r) => setTimeout(r, ms));
  return s.readings - at;
}

test('idle with the tripwire: the readings stop once the sums have not moved for the quiet time; the tripwire brings them back at once, and the engine\'s deadlines still bring one each', async (t) => {
  const k = sleepyKernel({ tripwire: true, quietMs: 30 });
  const fed: Array<{ sent: boolean; received: boolean }> = [];
  // The engine's one deadline, as the driver hands it over (`wake`) and, once it ran (`ticked`), the next (none).
  let deadline: number | undefined;
  const paths: ContextPaths = new ContextPaths({
    kernel: k.kernel, kernelTraffic: (_now, _l, _p, seen) => { fed.push(seen); return true; }, pollMs: 10,
    ticked: () => { if (deadline !== undefined && performance.now() >= deadline) { deadline = undefined; paths.wake(undefined); } },
    clock: () => performance.now() as Millis, flush: () => {}, drop: () => {}, fed: () => {},
  });
  const engineDeadlineIn = (ms: number): void => { deadline = performance.now() + ms; paths.wake(deadline); };
  t.after(() => paths.close());
  assert.equal(paths.established('fd00::a', 'fd00::b', { local: 'fd00::a', peer: 'fd00::b' }), true, 'on the kernel path');
  paths.wake(undefined);
  assert.equal(paths.pollingStatus().polling, 'on-traffic');
  await waitFor(() => paths.pollingStatus().asleep, 'asleep: the sums did not move for the quiet time', DEADLINE_MS);
  assert.equal(paths.pollingStatus().sleeps, 1);
  // 50 intervals: none of them reads.
  assert.equal(await readingsDuring(k.s, 500), 0, 'asleep, no reading');
  // A packet: the tripwire calls, a reading comes at once and tells the engine.
  const before = k.s.readings;
  k.packets(1);
  k.trip();
  await waitFor(() => k.s.readings > before && fed.length === 1, 'the reading the tripwire brought', DEADLINE_MS);
  assert.deepEqual(fed, [{ sent: true, received: false }]);
  assert.equal(paths.pollingStatus().asleep, false);
  assert.equal(paths.pollingStatus().wakeups, 1);
  // The readings go on at the interval while packets flow…
  const flowing = setInterval(() => k.packets(1, true), 5);
  await waitFor(() => k.s.readings >= before + 10, 'readings while packets flow', DEADLINE_MS);
  assert.equal(paths.pollingStatus().asleep, false, 'never asleep while the sums move');
  clearInterval(flowing);
  // …and stop again once they do not.
  await waitFor(() => paths.pollingStatus().sleeps === 2, 'asleep again after the quiet time', DEADLINE_MS);
  // Asleep, the engine's next deadline still brings a reading (then its due timers run): one.
  const r = k.s.readings;
  engineDeadlineIn(20);
  await waitFor(() => deadline === undefined, 'the engine\'s deadline', DEADLINE_MS);
  assert.equal(k.s.readings, r + 1, 'one reading at the deadline');
  assert.equal(await readingsDuring(k.s, 300), 0, 'asleep again after it');
  // A reading at a deadline that finds the sums moved (no tripwire call yet): the readings come back.
  k.packets(1);
  engineDeadlineIn(5);
  await waitFor(() => k.s.readings >= r + 5, 'readings again after a deadline\'s reading saw the sums move', DEADLINE_MS);
  // The tripwire's calls while reading change nothing.
  k.trip();
  assert.equal(paths.pollingStatus().wakeups, 2);
});

test('idle without a tripwire (old kernel, nftables refused it): the readings go on at the fixed interval, traffic or not', async (t) => {
  const k = sleepyKernel({ tripwire: false, quietMs: 30 });
  const paths = new ContextPaths({
    kernel: k.kernel, kernelTraffic: () => true, pollMs: 10,
    clock: () => performance.now() as Millis, flush: () => {}, drop: () => {}, fed: () => {},
  });
  t.after(() => paths.close());
  assert.equal(paths.established('fd00::a', 'fd00::b', { local: 'fd00::a', peer: 'fd00::b' }), true);
  paths.wake(undefined);
  assert.equal(paths.pollingStatus().polling, 'fixed');
  // Many times the quiet time (and its margin) without a packet: still reading.
  await waitFor(() => k.s.readings >= 40, '40 readings of idle counters', DEADLINE_MS);
  assert.equal(paths.pollingStatus().asleep, false);
  assert.equal(paths.pollingStatus().sleeps, 0);
  assert.ok(await readingsDuring(k.s, 200) > 0, 'still reading');
});

test('idle with the tripwire: a context that sent and went quiet still gets its liveness Keepalive when due (one wake-up), then the clock sleeps', async (t) => {
  const k = sleepyKernel({ tripwire: true, quietMs: 20 });
  const keepalives: string[] = [];
  // The Keepalive is due an hour after the context went on the kernel path, whatever the machine's
  // speed: the clock jumps to 20 ms before then at the reading that puts it to sleep, so the timer
  // the sleeping clock sets next is the Keepalive's.
  const LIVENESS_MS = 3_600_000;
  let offset = 0;
  const clock = (): Millis => (performance.now() + offset) as Millis;
  let sleptWith: string[] | undefined;
  const paths: ContextPaths = new ContextPaths({
    kernel: k.kernel, kernelTraffic: () => true, pollMs: 10, livenessMs: LIVENESS_MS, liveness: (_l, p) => { keepalives.push(p); },
    clock, flush: () => {}, drop: () => {}, fed: () => {},
    ticked: () => {
      if (sleptWith !== undefined || !paths.pollingStatus().asleep) return;
      sleptWith = [...keepalives];
      offset += wentOnKernelPathAt + LIVENESS_MS - 20 - clock();
    },
  });
  t.after(() => paths.close());
  const wentOnKernelPathAt = clock();
  assert.equal(paths.established('fd00::a', 'fd00::b', { local: 'fd00::a', peer: 'fd00::b' }), true);
  paths.wake(undefined);
  await paths.readNow(); // first counters
  k.packets(3);
  await waitFor(() => sleptWith !== undefined, 'asleep after the packets sent', DEADLINE_MS);
  assert.deepEqual(sleptWith, [], 'not due yet when it fell asleep');
  await waitFor(() => keepalives.length === 1, 'the liveness Keepalive, due while asleep', DEADLINE_MS);
  assert.equal(paths.pollingStatus().asleep, true, 'still asleep: the reading that sent it saw nothing move');
  assert.equal(await readingsDuring(k.s, 300), 0, 'nothing else due: no reading');
});

// What the daemon writes into its TUN (a payload it decapsulated, a prompt's ACK) comes out of it
// into the kernel's inbound counter, and the engine counted it already: `status` leaves it out of
// what the kernel carried, each incoming packet counted once. REAP is told of it as before: the
// counter moved, so it was received.
test('what the daemon wrote into its TUN is left out of the kernel\'s inbound share once, and REAP still hears it was received', async (t) => {
  const c: KernelCounters = { outPackets: 0, inPackets: 0, outBytes: 0, inBytes: 0 };
  const kernel = { watch: () => true, unwatch: () => {}, refresh: () => Promise.resolve(), read: () => ({ ...c }) };
  const fed: Array<{ sent: boolean; received: boolean }> = [];
  const paths = new ContextPaths({
    kernel, kernelTraffic: (_now, _l, _p, seen) => { fed.push(seen); return true; },
    pollMs: 60_000, clock: () => performance.now() as Millis, flush: () => {}, drop: () => {}, fed: () => {},
  });
  t.after(() => paths.close());
  assert.equal(paths.established('fd00::a', 'fd00::b', { local: 'fd00::a', peer: 'fd00::b' }), true, 'on the kernel path');
  await paths.readNow();
  const carried = () => paths.list().find((p) => p.peerUlid === 'fd00::b')!.kernel!;
  // 10 packets (14,000 octets) the daemon decapsulated and wrote, then 1 of no context and 2 of another
  // local ULID's pair, of which the TUN took all but the last; the kernel counted those 10 and 5 native ones.
  paths.wroteIn([
    { peer: 'fd00::b', local: 'fd00::a', packets: 10, octets: 14_000 },
    { peer: undefined, local: undefined, packets: 1, octets: 100 },
    { peer: 'fd00::b', local: 'fd00::c', packets: 2, octets: 200 },
  ], 12);
  c.inPackets += 15; c.inBytes! += 14_000 + 5 * 1_000;
  c.outPackets += 3; c.outBytes! += 300;
  await paths.readNow();
  assert.deepEqual(carried(), { packetsIn: 5, bytesIn: 5_000, packetsOut: 3, bytesOut: 300 });
  assert.deepEqual(fed.at(-1), { sent: true, received: true }, 'REAP: received, from the same movement');
  // Written but not yet counted (the reading raced the write): left out of the next movement instead.
  paths.wroteIn([{ peer: 'fd00::b', local: 'fd00::a', packets: 4, octets: 4_000 }], 4);
  c.inPackets += 2; c.inBytes! += 2_000;
  await paths.readNow();
  assert.deepEqual(carried(), { packetsIn: 5, bytesIn: 5_000, packetsOut: 3, bytesOut: 300 });
  assert.deepEqual(fed.at(-1), { sent: false, received: true }, 'REAP: received, though all of it was the daemon\'s');
  c.inPackets += 3; c.inBytes! += 3_000;
  await paths.readNow();
  assert.deepEqual(carried(), { packetsIn: 6, bytesIn: 6_000, packetsOut: 3, bytesOut: 300 }, 'the two owed left out, the third native one counted');
  // A partial run: the TUN took 1 of a run of 3 (300 octets): 1 packet, 100 octets left out.
  paths.wroteIn([{ peer: 'fd00::b', local: 'fd00::a', packets: 3, octets: 300 }], 1);
  c.inPackets += 2; c.inBytes! += 1_100;
  await paths.readNow();
  assert.deepEqual(carried(), { packetsIn: 7, bytesIn: 7_000, packetsOut: 3, bytesOut: 300 });
});

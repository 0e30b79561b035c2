/**
 * The product's one clock ("now" for every driver: the engine's, the resolver's, the daemon's
 * timers and holds), in Millis. It is CLOCK_BOOTTIME, read through the native addon (clock.c):
 * monotonic — NTP and `date` never step it — and, unlike CLOCK_MONOTONIC (`performance.now()`,
 * `process.hrtime`), it counts the time the machine was suspended. On the monotonic clock a laptop
 * that slept ten hours woke with every DNS answer, capability record, negative-cache hold and
 * context lifetime as it was when the lid closed; on this one they have run out.
 *
 * Read per call, so it costs about what it replaced: ~42.5 ns a reading against `performance.now()`'s
 * ~41.5 ns and the engine driver's former `timeOrigin + performance.now()`'s ~48.5 ns (Node 20,
 * x86-64, `npm run bench -- clock`).
 *
 * Without the addon (not built: the resolver runs on `dgram` then) the clock falls back to
 * `performance.now()`, which stands still over a suspend: `clockSource` says which one runs, and
 * the resolver warns at its start. Values are milliseconds since boot with the addon, since the process
 * started without it: only differences mean anything, and only within one process.
 *
 * Timers (`setTimeout`) run on CLOCK_MONOTONIC and do not fire during a suspend: one armed for an
 * hour fires after an hour awake, however long the machine slept. `deadlineTimer` waits for a
 * deadline on this clock instead (a CLOCK_BOOTTIME timerfd, which the kernel fires at the resume);
 * the engine driver's timer is one, and a driver also checks its deadline whenever it is woken
 * (engine-driver.ts `arm`).
 *
 * Must not know: what the time is used for. Not for the protocol core, which takes `now` as an
 * argument (shim/time.ts holds the unit).
 */
import { performance } from 'node:perf_hooks';
import { loadAddon } from '../native/addon.ts';
import { timerDelay, type Millis } from './time.ts';

/** Which clock `bootClock` reads: `boottime` (the addon), or `monotonic` (the fallback without it). */
export type ClockSource = 'boottime' | 'monotonic';

let source: { source: ClockSource; why?: string } | undefined;

/** Where `fill` puts the reading: the addon's slot for this thread (a placeholder until the first reading). */
let at = new Float64Array(1);

/** Takes a reading into `at`; the clock is picked at the first (importing this module loads nothing). */
let fill = (): void => {
  try {
    const [read, slot] = loadAddon().bootClockOpen();
    at = new Float64Array(slot);
    fill = read;
    source = { source: 'boottime' };
  } catch (e) {
    fill = () => { at[0] = performance.now(); };
    source = { source: 'monotonic', why: (e as Error).message };
  }
  fill();
};

/** Which clock runs in this process, and why not CLOCK_BOOTTIME when not. */
export function clockSource(): { source: ClockSource; why?: string } {
  if (source === undefined) fill();
  return source!;
}

/** Now, in ms: CLOCK_BOOTTIME (suspend counts), or CLOCK_MONOTONIC without the addon. */
export const bootClock = (): Millis => { fill(); return at[0] as Millis; };

/** One timer for a deadline (ms on its clock): `set` (re)arms it, `set(undefined)` disarms it. */
export interface DeadlineTimer {
  set(at: number | undefined): void;
  close(): void;
}

/**
 * A timer that calls `onFire` at a deadline on bootClock: a CLOCK_BOOTTIME timerfd through the
 * addon, which fires at once after a resume if the deadline passed during the suspend. With an
 * injected `clock` (tests), or without the addon, a Node timer for the same deadline (its delay at
 * most MAX_TIMER_MS: a further deadline fires early, and the caller finds nothing due). `ref`:
 * whether it keeps the event loop alive while armed, as a Node timer does unless unref'd.
 */
export function deadlineTimer(onFire: () => void, opts: { clock?: () => number; ref?: boolean } = {}): DeadlineTimer {
  const ref = opts.ref ?? true;
  if (opts.clock === undefined && clockSource().source === 'boottime') {
    const a = loadAddon();
    const h = a.bootTimerOpen(onFire);
    return {
      set: (at) => { a.bootTimerSet(h, at ?? 0, ref); },
      close: () => a.bootTimerClose(h),
    };
  }
  const clock = opts.clock ?? bootClock;
  let timer: NodeJS.Timeout | undefined;
  return {
    set: (at) => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      if (at === undefined) return;
      timer = setTimeout(() => { timer = undefined; onFire(); }, timerDelay(at, clock()));
      if (!ref) timer.unref();
    },
    close: () => { if (timer) clearTimeout(timer); timer = undefined; },
  };
}

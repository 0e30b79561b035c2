/**
 * The product's one clock ("now" for every driver: the engine's, the resolver's, the daemon's
 * timers and holds), in Millis. It is CLOCK_BOOTTIME, read through the native addon (clock.c):
 * monotonic — NTP and `date` never step it — and, unlike CLOCK_MONOTONIC (`performance.now()`,
 * `process.hrtime`), it counts the time the machine was suspended. On the monotonic clock a laptop
 * that slept ten hours woke with every DNS answer, capability record, negative-cache hold and
 * context lifetime as it was when the lid closed; on this one they have run out.
 *
 * Read per call, so it costs what it replaced: one N-API call ~48 ns against `performance.now()`'s
 * ~50 ns (Node 20, x86-64; `node bench/clock.ts` measures both here).
 *
 * Without the addon (not built: the resolver runs on `dgram` then) the clock falls back to
 * `performance.now()`, which stands still over a suspend: `clockSource` says which one runs, and
 * the resolver warns at its start. Values are milliseconds since boot with the addon, since the process
 * started without it: only differences mean anything, and only within one process.
 *
 * Timers (`setTimeout`) run on CLOCK_MONOTONIC and do not fire during a suspend: a driver that
 * arms one for a deadline on this clock checks the deadline again whenever it is woken
 * (engine-driver.ts `arm`).
 *
 * Must not know: what the time is used for. Not for the protocol core, which takes `now` as an
 * argument (shim/time.ts holds the unit).
 */
import { performance } from 'node:perf_hooks';
import { loadAddon } from '../native/addon.ts';
import { ms, type Millis } from './time.ts';

/** Which clock `bootClock` reads: `boottime` (the addon), or `monotonic` (the fallback without it). */
export type ClockSource = 'boottime' | 'monotonic';

let source: { source: ClockSource; why?: string } | undefined;

/** The clock, picked at the first reading (importing this module loads nothing). */
let read = (): number => {
  try {
    const [fill, slot] = loadAddon().bootClockOpen();
    const at = new Float64Array(slot);
    read = () => { fill(); return at[0]!; };
    source = { source: 'boottime' };
  } catch (e) {
    read = () => performance.now();
    source = { source: 'monotonic', why: (e as Error).message };
  }
  return read();
};

/** Which clock runs in this process, and why not CLOCK_BOOTTIME when not. */
export function clockSource(): { source: ClockSource; why?: string } {
  if (source === undefined) read();
  return source!;
}

/** Now, in ms: CLOCK_BOOTTIME (suspend counts), or CLOCK_MONOTONIC without the addon. */
export const bootClock = (): Millis => ms(read());

/**
 * Time as the engine and the resolver see it: one branded unit, milliseconds,
 * always passed in from outside. Only drivers read a clock: the product's one clock is
 * shim/clock.ts `bootClock` (what intervals, rates, TTLs and deadlines are measured on). The wall
 * clock (`Date.now()`) is for what is written down or compared across processes and hosts: NTP may
 * step it back or forward by hours, and a bound measured on it would then hold for that long.
 */
export type Millis = number & { readonly __unit: 'ms' };

/** Brand a number of milliseconds. */
export const ms = (n: number): Millis => n as Millis;

/** Brand a number of seconds as milliseconds. */
export const seconds = (n: number): Millis => (n * 1000) as Millis;

/** The longest delay a Node timer holds (2^31−1 ms, 24.8 days): a longer one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The delay of a timer for deadline `at` on a clock reading `now` (ms, whole, at least 0), at most
 * MAX_TIMER_MS: a deadline further away wakes early, finds nothing due, and re-arms.
 */
export function timerDelay(at: number, now: number): number {
  return Math.min(MAX_TIMER_MS, Math.max(0, Math.ceil(at - now)));
}

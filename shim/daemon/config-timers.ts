/**
 * Timer profiles of the daemon's config (`timers.profile`): the engine's own
 * profiles (shim/engine/config.ts), so the file and the engine can never
 * disagree. `rfc` is exactly the RFC 5533 §14 / RFC 5534 §7 constants; `fast`
 * is the LAN/lab profile (RFC 5534 §7 allows a Send Timeout below 10 s off
 * the open Internet, advertised with the Keepalive Timeout option). Values in
 * milliseconds, except the counts (`*RetriesMax`, `initialProbes`).
 */
import { PROFILES as ENGINE_PROFILES, RFC_PROFILE, type Timers } from '../engine/config.ts';

/** Every timer key `timers.<key>` may override (the engine's `Timers`). */
export const TIMER_KEYS = Object.keys(RFC_PROFILE) as Array<keyof Timers>;
export type TimerKey = keyof Timers;
export type TimerProfileName = 'rfc' | 'fast';

/** True for keys that are counts rather than durations. */
export function isCountKey(k: TimerKey): boolean {
  return k.endsWith('RetriesMax') || k === 'initialProbes';
}

export const PROFILES: Record<TimerProfileName, Readonly<Record<TimerKey, number>>> = ENGINE_PROFILES;

/**
 * Timer profiles of the daemon's config (`timers.profile`): `rfc` is exactly the
 * RFC 5533 §14 / RFC 5534 §7 constants; `fast` is a LAN/lab profile (RFC 5534
 * §7 allows a Send Timeout below 10 s off the open Internet, advertised with the
 * Keepalive Timeout option). All values in milliseconds, except the counts
 * (`*RetriesMax`, `initialProbes`). Owns only these numbers.
 */
import {
  I1_TIMEOUT, I1_RETRIES_MAX, I2_TIMEOUT, I2_RETRIES_MAX, I2BIS_TIMEOUT, I2BIS_RETRIES_MAX,
  NO_R1_HOLDDOWN_TIME, UPDATE_TIMEOUT, MAX_UPDATE_TIMEOUT, INITIAL_PROBE_TIMEOUT, INITIAL_PROBES,
  MAX_PROBE_TIMEOUT, SEND_TIMEOUT,
} from '../constants.ts';

/** Every timer key `timers.<key>` may override. */
export const TIMER_KEYS = [
  'i1Timeout', 'i1RetriesMax', 'i2Timeout', 'i2RetriesMax', 'i2bisTimeout', 'i2bisRetriesMax',
  'noR1HolddownTime', 'updateTimeout', 'maxUpdateTimeout', 'initialProbeTimeout', 'initialProbes',
  'maxProbeTimeout', 'sendTimeout',
] as const;
export type TimerKey = (typeof TIMER_KEYS)[number];
export type TimerProfileName = 'rfc' | 'fast';

const RFC: Record<TimerKey, number> = {
  i1Timeout: I1_TIMEOUT,
  i1RetriesMax: I1_RETRIES_MAX,
  i2Timeout: I2_TIMEOUT,
  i2RetriesMax: I2_RETRIES_MAX,
  i2bisTimeout: I2BIS_TIMEOUT,
  i2bisRetriesMax: I2BIS_RETRIES_MAX,
  noR1HolddownTime: NO_R1_HOLDDOWN_TIME,
  updateTimeout: UPDATE_TIMEOUT,
  maxUpdateTimeout: MAX_UPDATE_TIMEOUT,
  initialProbeTimeout: INITIAL_PROBE_TIMEOUT,
  initialProbes: INITIAL_PROBES,
  maxProbeTimeout: MAX_PROBE_TIMEOUT,
  sendTimeout: SEND_TIMEOUT,
};

/**
 * The lab profile: sub-second retransmissions and a 600 ms Send Timeout, so a
 * silent black hole is noticed and explored within about a second on a LAN
 * whose RTT is well under 10 ms. Not for the open Internet.
 */
const FAST: Record<TimerKey, number> = {
  ...RFC,
  i1Timeout: 500,
  i2Timeout: 500,
  i2bisTimeout: 500,
  noR1HolddownTime: 5_000,
  updateTimeout: 500,
  maxUpdateTimeout: 8_000,
  initialProbeTimeout: 100,
  maxProbeTimeout: 2_000,
  sendTimeout: 600,
};

export const PROFILES: Record<TimerProfileName, Readonly<Record<TimerKey, number>>> = { rfc: RFC, fast: FAST };

/**
 * Moved (issue 21): octet helpers to test/helpers/octets.ts, seeded random
 * octets to test/helpers/rng.ts (`randomBytes`, the one seeded generator).
 * This re-export keeps tests written against the old paths working; import
 * the new ones and remove this file once nothing imports it.
 */
export { fixedBytes, flipped, hex, toHex } from '../helpers/octets.ts';
export { randomBytes as seededRandomBytes } from '../helpers/rng.ts';

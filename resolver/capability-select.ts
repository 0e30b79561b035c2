/**
 * Choosing which capability record primes the engine (docs/capability-record.md): the
 * record's ULID must be one of the owner's AAAA addresses, else it is ignored;
 * the codec has already rejected unknown versions, unknown mandatory keys and
 * malformed locators. The first record that passes wins. Both sides are octets
 * read from the answers (RecordOctets, Ipv6Octets): equal addresses are equal
 * strings, whatever text form the zone used, and nothing is formatted.
 * It must not know about DNS transport or the engine.
 */
import type { Ipv6Octets } from '../shim/wire/ipv6.ts';
import { RECORD_ULID_OFFSET, type RecordOctets } from '../shim/wire/capability-record.ts';

/** The first record whose ULID is one of `aaaa`, or undefined (whyNone says why). */
export function selectRecord(records: readonly RecordOctets[], aaaa: readonly Ipv6Octets[]): RecordOctets | undefined {
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    for (let j = 0; j < aaaa.length; j++) if (ulidIs(r, aaaa[j]!)) return r;
  }
  return undefined;
}

/** Why selectRecord found none. */
export function whyNone(records: readonly RecordOctets[]): string {
  return records.length === 0 ? 'no decodable record' : 'ULID not in the AAAA set';
}

/** Compared in place, character by character: no substring is made per record (once per new peer, on the lookup's way back). */
function ulidIs(r: RecordOctets, a: Ipv6Octets): boolean {
  for (let k = 0; k < 16; k++) if (r.charCodeAt(RECORD_ULID_OFFSET + k) !== a.charCodeAt(k)) return false;
  return true;
}

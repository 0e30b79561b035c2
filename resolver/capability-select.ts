/**
 * Choosing which capability record primes the engine (DESIGN.md §2): the
 * record's ULID must be one of the owner's AAAA addresses, else it is ignored;
 * the codec has already rejected unknown versions, unknown mandatory keys and
 * malformed locators. The first record that passes wins. Both sides are octets
 * read from the answers (RecordOctets, Ipv6Octets): equal addresses are equal
 * strings, whatever text form the zone used, and nothing is formatted.
 * It must not know about DNS transport or the engine.
 */
import type { Ipv6Octets } from '../shim/wire/ipv6.ts';
import { recordUlidOctets, type RecordOctets } from '../shim/wire/capability-record.ts';

export function selectRecord(records: readonly RecordOctets[], aaaa: readonly Ipv6Octets[]): { record?: RecordOctets; why: string } {
  for (const r of records) if (aaaa.includes(recordUlidOctets(r))) return { record: r, why: 'ok' };
  return { why: records.length === 0 ? 'no decodable record' : 'ULID not in the AAAA set' };
}

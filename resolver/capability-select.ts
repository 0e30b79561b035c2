/**
 * Choosing which decoded capability record primes the engine (DESIGN.md §2):
 * the record's ULID must be one of the owner's AAAA addresses
 * (`validateAgainstAaaa`), else it is ignored; the codec has already rejected
 * unknown versions, unknown mandatory keys and malformed locators. The first
 * record that passes wins.
 * It must not know about DNS transport or the engine.
 */
import type { Ipv6 } from '../shim/wire/ipv6.ts';
import { validateAgainstAaaa, type CapabilityRecord } from '../shim/wire/capability-record.ts';

export function selectRecord(records: readonly CapabilityRecord[], aaaa: readonly Ipv6[]): { record?: CapabilityRecord; why: string } {
  // Both sides come from formatIpv6 (RFC 5952 canonical text), so equal strings are equal addresses: the
  // common case needs no parsing. Anything else gets the codec's byte comparison.
  for (const r of records) if (aaaa.includes(r.ulid)) return { record: r, why: 'ok' };
  for (const r of records) if (validateAgainstAaaa(r, aaaa)) return { record: r, why: 'ok' };
  return { why: records.length === 0 ? 'no decodable record' : 'ULID not in the AAAA set' };
}

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
import { ownerIs, type ScannedResponse } from './answer-scan.ts';
import { RrType } from './message.ts';

/** The first record whose ULID is one of `aaaa`, or undefined (whyNone says why). */
export function selectRecord(records: readonly RecordOctets[], aaaa: readonly Ipv6Octets[]): RecordOctets | undefined {
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    for (let j = 0; j < aaaa.length; j++) if (ulidIs(r, aaaa[j]!)) return r;
  }
  return undefined;
}

/**
 * selectRecord against the AAAA RRs owned by `final` where they lie in an answer's
 * bytes: no address is copied out when the owner's addresses are wanted only for this.
 */
export function selectRecordAt(records: readonly RecordOctets[], bytes: Uint8Array, scan: ScannedResponse, final: string): RecordOctets | undefined {
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    for (const rr of scan.records) {
      if (rr.section === 0 && rr.type === RrType.AAAA && rr.rdLen === 16 && ownerIs(bytes, scan, rr.ownerOff, final) && ulidAt(r, bytes, rr.rdOff)) return r;
    }
  }
  return undefined;
}

/** Why selectRecord found none. */
export function whyNone(records: readonly RecordOctets[]): string {
  return records.length === 0 ? 'no decodable record' : 'ULID not in the AAAA set';
}

/** Whether `r`'s ULID is the 16 octets at `off` of `b`. */
function ulidAt(r: RecordOctets, b: Uint8Array, off: number): boolean {
  for (let k = 0; k < 16; k++) if (r.charCodeAt(RECORD_ULID_OFFSET + k) !== b[off + k]) return false;
  return true;
}

/** Compared in place, character by character: no substring is made per record (once per new peer, on the lookup's way back). */
function ulidIs(r: RecordOctets, a: Ipv6Octets): boolean {
  for (let k = 0; k < 16; k++) if (r.charCodeAt(RECORD_ULID_OFFSET + k) !== a.charCodeAt(k)) return false;
  return true;
}

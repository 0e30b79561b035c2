/**
 * The capability record (docs/capability-record.md), one import for its users (resolver,
 * zone tools, CLI): the binary codec (capability-record-codec.ts), the text
 * forms (capability-record-text.ts) and the checks that need more than the
 * record itself — the ULID-in-AAAA rule and the hba-digest match — which
 * callers run because only they hold the AAAA RRset or the peer's parameters.
 * Layout and rules: docs/capability-record.md.
 */
import { parseIpv6, type Ipv6 } from './ipv6.ts';
import { hbaDigestForUlid } from './hba.ts';
import { HBA_DIGEST_ALG_SHA256, SHIM6_UDP_PORT } from '../constants.ts';
import type { CapabilityRecord } from './capability-record-codec.ts';

export * from './capability-record-codec.ts';
export * from './capability-record-text.ts';

/**
 * docs/capability-record.md: the ULID must also be in the owner's AAAA RRset, else the RR
 * is ignored. True when it is. Addresses compare as octets (any text form);
 * unparsable entries in `aaaa` never match.
 */
export function validateAgainstAaaa(record: CapabilityRecord, aaaa: readonly (Ipv6 | Uint8Array)[]): boolean {
  const ulid = parseIpv6(record.ulid);
  return aaaa.some((a) => {
    let b: Uint8Array;
    if (typeof a === 'string') {
      try { b = parseIpv6(a); } catch { return false; }
    } else b = a;
    return b.length === 16 && b.every((x, i) => x === ulid[i]);
  });
}

/** Outcome of comparing a record's hba-digest with parameters received in-protocol. */
export type HbaDigestCheck = 'match' | 'mismatch' | 'absent' | 'unsupported-alg';

/**
 * Does `params` (a CGA Parameter Data Structure of any member of the peer's HBA
 * set) hash to the record's hba-digest? The digest is of the ULID's own
 * structure, so the ULID's prefix is put into the Subnet Prefix field first.
 */
export function checkHbaDigest(record: CapabilityRecord, params: Uint8Array): HbaDigestCheck {
  const d = record.hbaDigest;
  if (d === undefined) return 'absent';
  if (d.alg !== HBA_DIGEST_ALG_SHA256) return 'unsupported-alg';
  const got = hbaDigestForUlid(params, record.ulid);
  return got.length === d.digest.length && got.every((x, i) => x === d.digest[i]) ? 'match' : 'mismatch';
}

/** The peer shim's UDP port: the record's `port` parameter, else 5533 (docs/capability-record.md). */
export function recordPort(record: CapabilityRecord): number {
  return record.port ?? SHIM6_UDP_PORT;
}

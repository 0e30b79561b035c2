/**
 * Zone-file lines for one host (docs/capability-record.md): a comment with the record's
 * presentation form, the capability RR in RFC 3597 generic form
 * (`owner TTL IN TYPE65300 \# <len> <hex>`), the AAAA RRset, and optionally the
 * `_shim6` TXT fallback. Output is what both named-checkzone and kzonecheck accept.
 *
 * Owns: the spelling of those lines. Must not know: how the record was built,
 * files, sockets.
 */
import {
  encodeCapabilityRecord, encodeCapabilityTxt, formatCapabilityRecord, splitTxt, toGenericRdata, type CapabilityRecord,
} from '../shim/wire/capability-record.ts';
import { formatIpv6, parseIpv6 } from '../shim/wire/ipv6.ts';
import { CAPABILITY_RR_TYPE } from '../shim/constants.ts';

/** Label under the host name that holds the TXT fallback. */
export const TXT_LABEL = '_shim6';

/** One host's publication: what `zone record`, `zone update` and `zone bulk` share. */
export interface HostRecord {
  /** Absolute owner name (with the trailing dot). */
  name: string;
  ttl: number;
  record: CapabilityRecord;
  /** The AAAA RRset to publish (canonical, no duplicates, ULID included). */
  aaaa: string[];
  /** Also publish the TXT fallback. */
  txt: boolean;
  /** RR type number of the capability record (default 65300). */
  rrType: number;
}

/** `ulid` first, then every locator, canonical and without duplicates. */
export function defaultAaaaSet(record: CapabilityRecord, mode: 'all' | 'ulid' = 'all'): string[] {
  const all = [record.ulid, ...(mode === 'all' ? record.locators.map((l) => l.address) : [])];
  return [...new Set(all.map((a) => formatIpv6(parseIpv6(a))))];
}

/** The TXT fallback's owner for `name`. */
export function txtOwner(name: string): string {
  return `${TXT_LABEL}.${name}`;
}

/** TXT character-strings in master-file form: each quoted (base64 and the tag need no escapes). */
export function txtRdataText(strings: readonly string[]): string {
  return strings.map((s) => `"${s.replace(/["\\]/g, (c) => '\\' + c)}"`).join(' ');
}

/** The TXT fallback's character-strings for a record. */
export function txtStrings(record: CapabilityRecord): string[] {
  return splitTxt(encodeCapabilityTxt(record));
}

/** Master-file lines for one host (no trailing newline on the last). */
export function hostZoneLines(h: HostRecord): string[] {
  const rdata = encodeCapabilityRecord(h.record);
  const type = `TYPE${h.rrType}`;
  const lines = [
    `; ${h.name} shim6 capability: ${formatCapabilityRecord(h.record)}`,
    `${h.name} ${h.ttl} IN ${type} ${toGenericRdata(rdata)}`,
    ...h.aaaa.map((a) => `${h.name} ${h.ttl} IN AAAA ${a}`),
  ];
  if (h.txt) lines.push(`${txtOwner(h.name)} ${h.ttl} IN TXT ${txtRdataText(txtStrings(h.record))}`);
  return lines;
}

export { CAPABILITY_RR_TYPE };

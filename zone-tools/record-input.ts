/**
 * From what a user types (flags of `zone record` / `zone update`, or a row of a
 * `zone bulk` inventory) to a HostRecord: name, ULID, locators
 * `ADDR[/priority[/weight[/flags]]]`, TTL, port, HBA parameters.
 *
 * Owns: the syntax and validation of those inputs, with errors that name the
 * field and the value (UsageError 'EINVALID'). Must not know: files, sockets.
 */
import { UsageError } from '../shim/errors.ts';
import { formatIpv6, locatorProblem, parseIpv6 } from '../shim/wire/ipv6.ts';
import { recordProblem, type CapabilityLocator, type CapabilityRecord } from '../shim/wire/capability-record.ts';
import { CAPABILITY_MAX_LOCATORS, CAPABILITY_RR_TYPE, HBA_DIGEST_ALG_SHA256, KNOWN_LOCATOR_FLAGS, LocatorFlag } from '../shim/constants.ts';
import { defaultAaaaSet, txtOwner, type HostRecord } from './zone-lines.ts';
import { MAX_NAME_OCTETS, nameWireLength } from './dns-message.ts';
import { digestForUlid, type HbaParamsFile } from '../shim/wire/hba-params.ts';

/** Default TTL of published records (one hour). */
export const DEFAULT_TTL = 3600;

export interface RecordInput {
  name: string;
  ulid?: string | undefined;
  locators?: readonly string[] | undefined;
  ttl?: string | number | undefined;
  port?: string | number | undefined;
  txt?: boolean | undefined;
  hba?: HbaParamsFile | undefined;
  /** Which addresses go into the AAAA RRset: ULID and locators (default), or the ULID only. */
  aaaa?: 'all' | 'ulid' | undefined;
  rrType?: number | undefined;
  /** How the user named each input, for its errors (default RECORD_FLAGS). */
  fields?: RecordFields | undefined;
}

/** The names errors give the inputs: the flags of `zone record` / `zone update`, or an inventory's columns. */
export interface RecordFields {
  name: string; ulid: string; locator: string; ttl: string; port: string;
  /** What else gives a ULID, said when none is given. */
  ulidElse: string;
}
export const RECORD_FLAGS: RecordFields = { name: '--name', ulid: '--ulid', locator: '--locator', ttl: '--ttl', port: '--port', ulidElse: 'or --hba' };
export const INVENTORY_COLUMNS: RecordFields = { name: 'name', ulid: 'ulid', locator: 'locators', ttl: 'ttl', port: 'port', ulidElse: 'or an hba column' };

function bad(field: string, value: unknown, why: string): never {
  throw new UsageError('EINVALID', `${field}: invalid value ${JSON.stringify(value)}: ${why}`, field);
}

/** A required input left out. */
function missing(field: string, why: string): never {
  throw new UsageError('EMISSING', `${field}: ${why}`, field);
}

/** A host name as an absolute owner (trailing dot added). */
export function ownerName(text: string, field = '--name'): string {
  const name = text.endsWith('.') ? text : text + '.';
  if (name === '.' || name.length > 254) bad(field, text, 'not a host name');
  for (const label of name.slice(0, -1).split('.')) {
    if (label.length === 0 || label.length > 63 || !/^[A-Za-z0-9_*]([A-Za-z0-9_-]*[A-Za-z0-9_])?$/.test(label)) {
      bad(field, text, `label ${JSON.stringify(label)} is not a valid host name label`);
    }
  }
  return name;
}

/**
 * `name` (absolute, from ownerName) leaves room for its TXT fallback's owner
 * `_shim6.<name>` within 255 octets: a host name of 249 characters or more does
 * not. Needed with --txt, and by every update (it deletes that TXT RRset).
 */
export function checkTxtOwnerFits(name: string, field = '--name'): void {
  const octets = nameWireLength(txtOwner(name)) ?? Infinity;
  if (octets > MAX_NAME_OCTETS) {
    // `_shim6.` is 7 octets, and a name of L characters (no final dot, no escapes) is L + 2 on the wire.
    bad(field, name, `the TXT fallback's owner ${txtOwner('')}<name> would be ${octets} octets, over the ${MAX_NAME_OCTETS} of a DNS name (RFC 1035 §2.3.4): the host name can have at most ${MAX_NAME_OCTETS - 9} characters`);
  }
}

function address(text: string, field: string, original: string = text, what: 'ULID' | 'locator' = 'locator'): string {
  let canon: string;
  try { canon = formatIpv6(parseIpv6(text)); } catch { return bad(field, original, 'not an IPv6 address'); }
  // `zone check`'s rule (locatorProblem): what it would reject is refused here, before anything is published.
  const why = locatorProblem(canon);
  if (why !== undefined) bad(field, original, `${canon} ${why}; a ${what} must be a global address`);
  return canon;
}

function u8(text: string | undefined, field: string, original: string, what: string): number {
  if (text === undefined || text === '') return 0;
  if (!/^\d{1,3}$/.test(text) || Number(text) > 255) bad(field, original, `${what} must be 0..255`);
  return Number(text);
}

/** Locator flags: a number (`2`, `0x02`) or names joined by `+` (`broken+transient`). */
function locatorFlags(text: string | undefined, field: string, original: string): number {
  if (text === undefined || text === '') return 0;
  if (/^(0x[0-9a-f]{1,2}|\d{1,3})$/i.test(text)) {
    const v = Number(text);
    if (v > 255) bad(field, original, 'flags must be 0..255');
    // `zone check`'s rule, as for the addresses: what it would reject is refused here.
    if ((v & ~KNOWN_LOCATOR_FLAGS) !== 0) bad(field, original, `flags 0x${v.toString(16).padStart(2, '0')}: unknown bits (0x01 broken, 0x02 transient), which zone check refuses`);
    return v;
  }
  let flags = 0;
  for (const name of text.toLowerCase().split('+')) {
    if (name === 'broken') flags |= LocatorFlag.BROKEN;
    else if (name === 'transient') flags |= LocatorFlag.TRANSIENT;
    else bad(field, original, `unknown flag ${JSON.stringify(name)} (broken, transient or a number)`);
  }
  return flags;
}

/** `ADDR[/priority[/weight[/flags]]]` → a locator. */
export function parseLocatorSpec(text: string, field = '--locator'): CapabilityLocator {
  const parts = text.split('/');
  if (parts.length > 4) bad(field, text, 'expected ADDR[/priority[/weight[/flags]]]');
  return {
    address: address(parts[0] ?? '', field, text),
    priority: u8(parts[1], field, text, 'priority'),
    weight: u8(parts[2], field, text, 'weight'),
    flags: locatorFlags(parts[3], field, text),
  };
}

export function parseTtlValue(v: string | number | undefined, field = '--ttl'): number {
  if (v === undefined) return DEFAULT_TTL;
  const s = String(v);
  if (!/^\d{1,10}$/.test(s) || Number(s) > 0x7fffffff) bad(field, v, 'TTL must be 0..2147483647 seconds');
  return Number(s);
}

function portValue(v: string | number | undefined, field: string): number | undefined {
  if (v === undefined) return undefined;
  const s = String(v);
  if (!/^\d{1,5}$/.test(s) || Number(s) < 1 || Number(s) > 65535) bad(field, v, 'port must be 1..65535');
  return Number(s);
}

function hbaLocators(hba: HbaParamsFile, given: CapabilityLocator[], field: string): CapabilityLocator[] {
  const members = new Set(hba.members.map((m) => m.address));
  for (const g of given) if (!members.has(g.address)) bad(field, g.address, 'not an address of the HBA set');
  return hba.members.map((m) => given.find((g) => g.address === m.address) ?? { address: m.address, flags: 0, priority: 0, weight: 0 });
}

/** Build and validate one host's publication. */
export function buildHostRecord(input: RecordInput): HostRecord {
  const f = input.fields ?? RECORD_FLAGS;
  const name = ownerName(input.name, f.name);
  const given = (input.locators ?? []).map((l) => parseLocatorSpec(l, f.locator));
  let locators = given;
  let ulid = input.ulid === undefined ? undefined : address(input.ulid, f.ulid, input.ulid, 'ULID');
  const record: Partial<CapabilityRecord> = { hbaSet: false, cgaUlid: false, mandatory: [], unknownParams: [] };
  if (input.hba) {
    locators = hbaLocators(input.hba, given, f.locator);
    ulid ??= input.hba.members[0]!.address;
    const inSet = input.hba.members.some((m) => m.address === ulid);
    if (!inSet) bad(f.ulid, input.ulid, 'with an HBA set the ULID must be one of its addresses');
    record.hbaSet = true;
    record.cgaUlid = input.hba.publicKeyIncluded;
    record.hbaDigest = { alg: HBA_DIGEST_ALG_SHA256, digest: digestForUlid(input.hba, ulid) };
  }
  if (ulid === undefined) return missing(f.ulid, `a ULID is required (${f.ulidElse})`);
  if (locators.length === 0) missing(f.locator, 'at least one locator is required');
  if (locators.length > CAPABILITY_MAX_LOCATORS) bad(f.locator, locators.length, `at most ${CAPABILITY_MAX_LOCATORS} locators fit in one record`);
  const seen = new Set<string>();
  for (const l of locators) {
    if (seen.has(l.address)) bad(f.locator, l.address, 'listed twice');
    seen.add(l.address);
  }
  const port = portValue(input.port, f.port);
  const full: CapabilityRecord = { ...(record as CapabilityRecord), ulid, locators, ...(port !== undefined ? { port } : {}) };
  const problem = recordProblem(full);
  if (problem) bad(problem.field, '', problem.why);
  if (input.txt === true) {
    checkTxtOwnerFits(name, f.name);
    // RFC 4592: `*` is a wildcard only as the first label, so `_shim6.*.<zone>` is an ordinary name
    // no reader asks for: it asks for `_shim6.<host>`, which holds no TXT (the wildcard covers it, or nothing does).
    if (name.startsWith('*.')) bad('--txt', name, `a wildcard has no TXT fallback a reader finds: readers ask for ${txtOwner('<host>')}, and a * is a wildcard only as the first label (RFC 4592)`);
  }
  return {
    name,
    ttl: parseTtlValue(input.ttl, f.ttl),
    record: full,
    aaaa: defaultAaaaSet(full, input.aaaa ?? 'all'),
    txt: input.txt === true,
    rrType: input.rrType ?? CAPABILITY_RR_TYPE,
  };
}

/**
 * `shim6 zone check`: every capability RR (TYPE65300, RFC 3597 generic form) and
 * every `_shim6` TXT fallback in a master file, checked the way a careful
 * reader would: generic syntax and length (RFC 3597 §5), version, flags and
 * reserved octets, parameter key order, ULID in the owner's AAAA RRset
 * (docs/capability-record.md), locators that can be locators, one record per host, and
 * that the TXT fallback says the same as the record.
 *
 * Owns: those rules and their messages. Must not know: the CLI, sockets.
 */
import { WireError } from '../shim/wire/errors.ts';
import { formatIpv6, locatorProblem, parseIpv6 } from '../shim/wire/ipv6.ts';
import {
  capabilityTxtRdata, decodeCapabilityRecord, fromGenericRdata, ignoreReason, type CapabilityRecord,
} from '../shim/wire/capability-record.ts';
import { CAPABILITY_RR_TYPE, KNOWN_LOCATOR_FLAGS } from '../shim/constants.ts';
import { canonicalName, MAX_NAME_OCTETS, nameWireLength } from './dns-message.ts';
import { readMasterFile, unescapeToken, type Problem, type Token, type ZoneEntry } from './master-file.ts';
import { TXT_LABEL } from './zone-lines.ts';

export interface CheckOptions {
  origin?: string;
  rrType?: number;
  readFile?: (p: string) => string;
}

export interface CheckResult {
  /** At most MAX_PROBLEMS errors and MAX_PROBLEMS warnings, by file and line. */
  problems: Problem[];
  /** Problems found once the zone was read whole (the checks across records) beyond those kept: not listed. */
  omitted?: number;
  /** Capability RRs and TXT fallbacks found (checked or not). */
  records: number;
  txts: number;
  /** Where the check stopped, reading, at one error more than MAX_PROBLEMS: the rest of the zone was not read. */
  stopped?: { file: string; line: number };
}

/** Render a problem the way compilers do: `file:line: what is wrong`. */
export function formatProblem(p: Problem): string {
  return `${p.file}:${p.line}: ${p.severity === 'warning' ? 'warning: ' : ''}${p.message}`;
}

/** RDATA tokens in RFC 3597 generic form (`\# <length> <hex>`) → octets. Throws WireError ESYNTAX. */
function genericRdata(rdata: readonly Token[]): Uint8Array {
  // A length with leading zeros (`\# 040`) is a length to BIND and Knot: read it as one.
  return fromGenericRdata(rdata.map((t, i) => (i === 1 ? t.text.replace(/^0+(?=\d)/, '') : t.text)).join(' '));
}

function isGeneric(rdata: readonly Token[]): boolean {
  return rdata[0]?.text === '\\#' && !rdata[0].quoted;
}

function aaaaOf(e: ZoneEntry): string | undefined {
  // An AAAA of another class is no address of the owner's IN AAAA RRset (and BIND refuses it in an IN zone).
  if (e.class !== 'IN') return undefined;
  try {
    // RFC 3597 §5: a known type may be written in the generic form too (`AAAA \# 16 …`).
    if ((e.type === 'AAAA' || e.type === 'TYPE28') && isGeneric(e.rdata)) {
      const b = genericRdata(e.rdata);
      return b.length === 16 ? formatIpv6(b) : undefined;
    }
    if (e.type === 'AAAA') return formatIpv6(parseIpv6(e.rdata[0]?.text ?? ''));
  } catch { /* a bad AAAA is the validators' business, not ours */ }
  return undefined;
}

/**
 * `aaaa` holds the owner's AAAA addresses in canonical form, so the ULID test
 * (validateAgainstAaaa's rule: the same 16 octets) is one lookup, not a scan per
 * record: a zone with many records and AAAAs at one owner stays linear.
 */
function recordProblems(r: CapabilityRecord, aaaa: Addresses | undefined, owner: string): string[] {
  const out: string[] = [];
  if (!hasAddress(aaaa, formatIpv6(parseIpv6(r.ulid)))) {
    out.push(aaaa === undefined
      ? `ULID ${r.ulid} is not in the AAAA RRset of ${owner}: there is no AAAA at that name (readers ignore the RR)`
      : `ULID ${r.ulid} is not in the AAAA RRset of ${owner} (readers ignore the RR)`);
  }
  for (const l of r.locators) {
    const why = locatorProblem(l.address);
    if (why) out.push(`locator ${l.address} ${why}`);
    const unknown = l.flags & ~KNOWN_LOCATOR_FLAGS;
    if (unknown !== 0) out.push(`locator ${l.address} has unknown flag bits 0x${unknown.toString(16).padStart(2, '0')}`);
  }
  return out;
}

function decodeProblem(e: unknown): string {
  const reason = ignoreReason(e);
  if (reason === 'UNSUPPORTED_VERSION') return `${(e as Error).message} (this checker and every reader know only version 1)`;
  if (e instanceof WireError) return e.message;
  throw e;
}

/** What is kept of a capability RR or TXT until the whole zone is read (not its tokens). */
interface Found {
  file: string;
  line: number;
  /** As written (made absolute). */
  owner: string;
  rdata: Uint8Array | undefined;
  record: CapabilityRecord | undefined;
}

function found(e: ZoneEntry): Found {
  return { file: e.file, line: e.line, owner: e.owner, rdata: undefined, record: undefined };
}

function checkCapabilityEntry(e: ZoneEntry, problem: (line: number, m: string, sev?: Problem['severity']) => void): Found {
  const f = found(e);
  if (e.class !== 'IN') problem(e.line, `capability record in class ${e.class}; it must be IN`);
  if (!isGeneric(e.rdata)) {
    problem(e.line, `${e.type} must be written in RFC 3597 generic form "\\# <length> <hex>"`);
    return f;
  }
  const lenTok = e.rdata[1];
  const hexDigits = e.rdata.slice(2).map((t) => t.text).join('');
  if (lenTok && /^\d+$/.test(lenTok.text) && /^[0-9a-fA-F]*$/.test(hexDigits) && hexDigits.length % 2 === 0 && hexDigits.length / 2 !== Number(lenTok.text)) {
    problem(lenTok.line, `RFC 3597 length ${lenTok.text} does not match the ${hexDigits.length / 2} octets of hex data`);
    return f;
  }
  try {
    f.rdata = genericRdata(e.rdata);
  } catch (err) {
    problem(lenTok?.line ?? e.line, `RFC 3597 generic RDATA: ${decodeProblem(err)}`);
    return f;
  }
  try {
    f.record = decodeCapabilityRecord(f.rdata, { strict: true });
  } catch (err) {
    problem(e.line, decodeProblem(err));
  }
  return f;
}

function checkTxtEntry(e: ZoneEntry, problem: (line: number, m: string) => void): Found {
  const f = found(e);
  if (e.class !== 'IN') problem(e.line, `${TXT_LABEL} TXT in class ${e.class}; it must be IN`);
  const octets = e.rdata.map((t) => unescapeToken(t.text));
  // A `\DDD` over 255 is no octet: tokenize reported it on its line; there is no TXT to check.
  if (octets.some((o) => o === undefined)) return f;
  const strings = octets.map((o) => Buffer.from(o!).toString('latin1'));
  try {
    f.rdata = capabilityTxtRdata(strings);
    f.record = decodeCapabilityRecord(f.rdata, { strict: true });
  } catch (err) {
    problem(e.line, `${TXT_LABEL} TXT: ${decodeProblem(err)}`);
  }
  return f;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * `zone check` reports at most this many errors per zone (a file and its $INCLUDEs), then stops
 * reading, and at most this many warnings (the rest are counted): the problems are all kept until
 * sorted, and a 32 MiB file of one-token lines has 16 million of them (docs/zone-tools.md "Input bounds").
 */
export const MAX_PROBLEMS = 1000;

/** An owner's AAAA addresses (canonical): one as a string, more as a set (most owners have one or two). */
type Addresses = string | Set<string>;

function hasAddress(a: Addresses | undefined, address: string): boolean {
  return typeof a === 'string' ? a === address : a !== undefined && a.has(address);
}

/**
 * Names whose descendants are not the zone's data to a reader (canonical): NS owners that are no
 * apex (delegations, RFC 1034 §4.2.1; the cut itself too) and DNAME owners (RFC 6672 §2.3: the
 * names below); with their lengths, so most suffixes of an owner are not looked up.
 */
interface Cuts { names: ReadonlyMap<string, 'NS' | 'DNAME'>; lengths: ReadonlySet<number> }

/**
 * The cut that hides `owner` from readers: the nearest of its names (itself, then each parent) that
 * is a delegation, or a parent that owns a DNAME; undefined when there is none. `owner` is canonical.
 * One scan of the owner for its label starts (a `\.` inside a label is no label end), and a suffix is
 * looked up only when a cut has its length; an owner over 4 × 255 characters (no DNS name: reported
 * already) is not walked.
 */
function cutAbove(owner: string, cuts: Cuts): { name: string; type: 'NS' | 'DNAME' } | undefined {
  if (cuts.names.size === 0 || owner.length > 4 * MAX_NAME_OCTETS) return undefined;
  for (let at = 0; at < owner.length;) {
    if (cuts.lengths.has(owner.length - at)) {
      const name = owner.slice(at);
      const type = cuts.names.get(name);
      if (type === 'NS' || (type === 'DNAME' && at > 0)) return { name, type };
    }
    while (at < owner.length && owner[at] !== '.') at += owner[at] === '\\' ? 2 : 1;
    at++;
  }
  return undefined;
}

/**
 * Check master-file text. `file` is used in messages and for $INCLUDE. The zone is read
 * entry by entry (master-file.ts readMasterFile); what is kept is what the checks need once
 * all of it is read (each owner's AAAA addresses, each capability RR and `_shim6` TXT, without
 * their tokens), and at most MAX_PROBLEMS errors and as many warnings: at one error more while
 * reading, the check stops (`stopped`); past them once the zone is read, they are counted (`omitted`).
 */
export function checkZoneText(text: string, file: string, opts: CheckOptions = {}): CheckResult {
  const problems: Problem[] = [];
  let stopped: CheckResult['stopped'];
  const type = `TYPE${opts.rrType ?? CAPABILITY_RR_TYPE}`;
  const aaaa = new Map<string, Addresses>();
  const records = new Map<string, Found>();
  const all: Found[] = [];
  const txts: Found[] = [];
  /** The first `_shim6` TXT fallback of each owner (readers take any one of an RRset: one record per host). */
  const txtOf = new Map<string, Found>();
  const longOwners = new Set<string>();
  /** Owners of NS RRsets and of SOAs (apexes; --origin is one): an NS owner that is no apex is a delegation. */
  const nsOwners = new Set<string>();
  const dnameOwners = new Set<string>();
  const apexes = new Set<string>(opts.origin === undefined ? [] : [canonicalName(opts.origin)]);
  let errors = 0, warnings = 0, omitted = 0, reading = true;
  const add = (p: Problem): void => {
    if (stopped) return;
    const warning = p.severity === 'warning';
    if ((warning ? warnings : errors) < MAX_PROBLEMS) {
      problems.push(p);
      if (warning) warnings++; else errors++;
    } else if (reading && !warning) stopped = { file: p.file, line: p.line };
    else omitted++;
  };
  const entry = (e: ZoneEntry): void => {
    const problem = (line: number, message: string, severity: Problem['severity'] = 'error'): void => add({ file: e.file, line, message, severity });
    const owner = canonicalName(e.owner);
    // RFC 1035 §2.3.4; reported once per owner (`_shim6.` makes a long host name's TXT owner too long).
    if (owner.length >= MAX_NAME_OCTETS && !longOwners.has(owner)) {
      const octets = nameWireLength(owner);
      if (octets !== undefined && octets > MAX_NAME_OCTETS) {
        longOwners.add(owner);
        problem(e.line, `owner ${e.owner} is ${octets} octets, over the ${MAX_NAME_OCTETS} of a DNS name (RFC 1035 §2.3.4)`);
      }
    }
    if (e.type === 'NS') nsOwners.add(owner);
    else if (e.type === 'DNAME') dnameOwners.add(owner);
    else if (e.type === 'SOA') apexes.add(owner);
    const a = aaaaOf(e);
    if (a !== undefined) {
      const have = aaaa.get(owner);
      if (have === undefined) aaaa.set(owner, a);
      else if (typeof have === 'string') { if (have !== a) aaaa.set(owner, new Set([have, a])); } else have.add(a);
    } else if (e.type === type) {
      const f = checkCapabilityEntry(e, problem);
      all.push(f);
      const prev = records.get(owner);
      // The same RDATA again is the same RR: BIND and Knot keep one (RFC 2181 §5: an RRset has no duplicates).
      if (prev?.rdata && f.rdata && sameBytes(prev.rdata, f.rdata)) problem(e.line, `the ${type} RR of line ${prev.line} again: servers keep one`, 'warning');
      else if (prev) problem(e.line, `second ${type} RR at ${e.owner} (first at line ${prev.line}); one RR holds the whole locator set`);
      else records.set(owner, f);
    } else if (e.type === 'TXT' && owner.split('.')[0]?.toLowerCase() === TXT_LABEL) {
      const t = checkTxtEntry(e, problem);
      txts.push(t);
      const prev = txtOf.get(owner);
      if (prev?.rdata && t.rdata && sameBytes(prev.rdata, t.rdata)) problem(e.line, `the ${TXT_LABEL} TXT fallback of line ${prev.line} again: readers find the same record`, 'warning');
      else if (prev?.rdata && t.rdata) problem(e.line, `second ${TXT_LABEL} TXT fallback at ${e.owner} (first at line ${prev.line}); one record holds the whole locator set`);
      else if (t.rdata) txtOf.set(owner, t);
    }
  };
  readMasterFile(text, file, { entry, problem: add, stopped: () => stopped !== undefined }, {
    ...(opts.origin !== undefined ? { origin: opts.origin } : {}),
    ...(opts.readFile ? { readFile: opts.readFile } : {}),
  });
  reading = false;
  // What needs the whole zone (the AAAA RRsets, the RR a TXT must equal, the delegations); not after a stop: the zone was not all read.
  // Without an apex (no SOA, no --origin) an NS owner may be the apex: only DNAMEs are cuts then.
  const cutNames = new Map<string, 'NS' | 'DNAME'>([...dnameOwners].map((n) => [n, 'DNAME']));
  if (apexes.size > 0) for (const n of nsOwners) if (!apexes.has(n)) cutNames.set(n, 'NS');
  const cuts: Cuts = { names: cutNames, lengths: new Set([...cutNames.keys()].map((n) => n.length)) };
  const occluded = (f: Found): void => {
    const owner = canonicalName(f.owner);
    const cut = cutAbove(owner, cuts);
    if (cut === undefined) return;
    add({
      file: f.file, line: f.line, severity: 'error', message: cut.type === 'NS'
        ? `${owner} is at or below the delegation ${cut.name} (NS): the zone's servers answer with a referral there, readers never see this record`
        : `${owner} is below the DNAME at ${cut.name}: readers' questions are redirected (RFC 6672), they never see this record`,
    });
  };
  for (const f of stopped ? [] : all) {
    occluded(f);
    if (!f.record) continue;
    for (const m of recordProblems(f.record, aaaa.get(canonicalName(f.owner)), f.owner)) add({ file: f.file, line: f.line, message: m, severity: 'error' });
    if ((f.record.hbaSet || f.record.cgaUlid) && !f.record.hbaDigest) add({ file: f.file, line: f.line, message: 'HBA/CGA flag set but no hba-digest parameter', severity: 'warning' });
  }
  for (const t of stopped ? [] : txts) {
    occluded(t);
    const host = canonicalName(t.owner).slice(TXT_LABEL.length + 1);
    if (t.record) for (const m of recordProblems(t.record, aaaa.get(host), host)) add({ file: t.file, line: t.line, message: `${TXT_LABEL} TXT: ${m}`, severity: 'error' });
    const rec = records.get(host);
    if (rec?.rdata && t.rdata && !sameBytes(rec.rdata, t.rdata)) {
      add({ file: t.file, line: t.line, message: `${TXT_LABEL} TXT differs from the ${type} RR at line ${rec.line}`, severity: 'error' });
    }
  }
  problems.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
  return { problems, records: all.length, txts: txts.length, ...(stopped ? { stopped } : {}), ...(omitted > 0 ? { omitted } : {}) };
}

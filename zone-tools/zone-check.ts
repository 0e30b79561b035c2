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
import { formatIpv6, parseIpv6 } from '../shim/wire/ipv6.ts';
import {
  capabilityTxtRdata, decodeCapabilityRecord, fromGenericRdata, ignoreReason, type CapabilityRecord,
} from '../shim/wire/capability-record.ts';
import { CAPABILITY_RR_TYPE, LocatorFlag } from '../shim/constants.ts';
import { canonicalName, MAX_NAME_OCTETS, nameWireLength } from './dns-message.ts';
import { parseMasterFile, unescapeToken, type Problem, type Token, type ZoneEntry } from './master-file.ts';
import { TXT_LABEL } from './zone-lines.ts';

export interface CheckOptions {
  origin?: string;
  rrType?: number;
  readFile?: (p: string) => string;
}

export interface CheckResult {
  problems: Problem[];
  /** Capability RRs and TXT fallbacks found (checked or not). */
  records: number;
  txts: number;
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

/** Why an address cannot serve as a locator, or undefined. */
export function locatorProblem(addr: string): string | undefined {
  const b = parseIpv6(addr);
  if (b.every((x) => x === 0)) return 'is the unspecified address';
  if (b.slice(0, 15).every((x) => x === 0) && b[15] === 1) return 'is the loopback address';
  if (b[0] === 0xff) return 'is a multicast address';
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return 'is link-local (not routable between sites)';
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return 'is IPv4-mapped';
  return undefined;
}

const NO_AAAA: ReadonlySet<string> = new Set();

/**
 * `aaaa` holds the owner's AAAA addresses in canonical form, so the ULID test
 * (validateAgainstAaaa's rule: the same 16 octets) is one lookup, not a scan per
 * record: a zone with many records and AAAAs at one owner stays linear.
 */
function recordProblems(r: CapabilityRecord, aaaa: ReadonlySet<string>, owner: string): string[] {
  const out: string[] = [];
  if (!aaaa.has(formatIpv6(parseIpv6(r.ulid)))) {
    out.push(aaaa.size === 0
      ? `ULID ${r.ulid} is not in the AAAA RRset of ${owner}: there is no AAAA at that name (readers ignore the RR)`
      : `ULID ${r.ulid} is not in the AAAA RRset of ${owner} (readers ignore the RR)`);
  }
  for (const l of r.locators) {
    const why = locatorProblem(l.address);
    if (why) out.push(`locator ${l.address} ${why}`);
    const unknown = l.flags & ~(LocatorFlag.BROKEN | LocatorFlag.TRANSIENT);
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

interface Found {
  entry: ZoneEntry;
  rdata: Uint8Array | undefined;
  record: CapabilityRecord | undefined;
}

function checkCapabilityEntry(e: ZoneEntry, problem: (line: number, m: string, sev?: Problem['severity']) => void): Found {
  const found: Found = { entry: e, rdata: undefined, record: undefined };
  if (e.class !== 'IN') problem(e.line, `capability record in class ${e.class}; it must be IN`);
  if (!isGeneric(e.rdata)) {
    problem(e.line, `${e.type} must be written in RFC 3597 generic form "\\# <length> <hex>"`);
    return found;
  }
  const lenTok = e.rdata[1];
  const hexDigits = e.rdata.slice(2).map((t) => t.text).join('');
  if (lenTok && /^\d+$/.test(lenTok.text) && /^[0-9a-fA-F]*$/.test(hexDigits) && hexDigits.length % 2 === 0 && hexDigits.length / 2 !== Number(lenTok.text)) {
    problem(lenTok.line, `RFC 3597 length ${lenTok.text} does not match the ${hexDigits.length / 2} octets of hex data`);
    return found;
  }
  try {
    found.rdata = genericRdata(e.rdata);
  } catch (err) {
    problem(lenTok?.line ?? e.line, `RFC 3597 generic RDATA: ${decodeProblem(err)}`);
    return found;
  }
  try {
    found.record = decodeCapabilityRecord(found.rdata, { strict: true });
  } catch (err) {
    problem(e.line, decodeProblem(err));
  }
  return found;
}

function checkTxtEntry(e: ZoneEntry, problem: (line: number, m: string) => void): Found {
  const found: Found = { entry: e, rdata: undefined, record: undefined };
  const octets = e.rdata.map((t) => unescapeToken(t.text));
  // A `\DDD` over 255 is no octet: tokenize reported it on its line; there is no TXT to check.
  if (octets.some((o) => o === undefined)) return found;
  const strings = octets.map((o) => Buffer.from(o!).toString('latin1'));
  try {
    found.rdata = capabilityTxtRdata(strings);
    found.record = decodeCapabilityRecord(found.rdata, { strict: true });
  } catch (err) {
    problem(e.line, `${TXT_LABEL} TXT: ${decodeProblem(err)}`);
  }
  return found;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Check master-file text. `file` is used in messages and for $INCLUDE. */
export function checkZoneText(text: string, file: string, opts: CheckOptions = {}): CheckResult {
  const parsed = parseMasterFile(text, file, {
    ...(opts.origin !== undefined ? { origin: opts.origin } : {}),
    ...(opts.readFile ? { readFile: opts.readFile } : {}),
  });
  const problems = [...parsed.problems];
  const type = `TYPE${opts.rrType ?? CAPABILITY_RR_TYPE}`;
  const aaaa = new Map<string, Set<string>>();
  for (const e of parsed.entries) {
    const a = aaaaOf(e);
    if (a === undefined) continue;
    const k = canonicalName(e.owner);
    const set = aaaa.get(k);
    if (set) set.add(a); else aaaa.set(k, new Set([a]));
  }
  const records = new Map<string, Found>();
  const txts: Found[] = [];
  let count = 0;
  const longOwners = new Set<string>();
  for (const e of parsed.entries) {
    const problem = (line: number, message: string, severity: Problem['severity'] = 'error'): void => {
      problems.push({ file: e.file, line, message, severity });
    };
    const owner = canonicalName(e.owner);
    // RFC 1035 §2.3.4; reported once per owner (`_shim6.` makes a long host name's TXT owner too long).
    if (owner.length >= MAX_NAME_OCTETS && !longOwners.has(owner)) {
      const octets = nameWireLength(owner);
      if (octets !== undefined && octets > MAX_NAME_OCTETS) {
        longOwners.add(owner);
        problem(e.line, `owner ${e.owner} is ${octets} octets, over the ${MAX_NAME_OCTETS} of a DNS name (RFC 1035 §2.3.4)`);
      }
    }
    if (e.type === type) {
      count++;
      const f = checkCapabilityEntry(e, problem);
      const prev = records.get(owner);
      if (prev) problem(e.line, `second ${type} RR at ${e.owner} (first at line ${prev.entry.line}); one RR holds the whole locator set`);
      else records.set(owner, f);
      if (f.record) {
        for (const m of recordProblems(f.record, aaaa.get(owner) ?? NO_AAAA, e.owner)) problem(e.line, m);
        if ((f.record.hbaSet || f.record.cgaUlid) && !f.record.hbaDigest) problem(e.line, 'HBA/CGA flag set but no hba-digest parameter', 'warning');
      }
    } else if (e.type === 'TXT' && owner.split('.')[0]?.toLowerCase() === TXT_LABEL) {
      const f = checkTxtEntry(e, problem);
      txts.push(f);
      const host = owner.slice(TXT_LABEL.length + 1);
      if (f.record) for (const m of recordProblems(f.record, aaaa.get(host) ?? NO_AAAA, host)) problem(e.line, `${TXT_LABEL} TXT: ${m}`);
    }
  }
  for (const t of txts) {
    const host = canonicalName(t.entry.owner).slice(TXT_LABEL.length + 1);
    const rec = records.get(host);
    if (rec?.rdata && t.rdata && !sameBytes(rec.rdata, t.rdata)) {
      problems.push({ file: t.entry.file, line: t.entry.line, message: `${TXT_LABEL} TXT differs from the ${type} RR at line ${rec.entry.line}`, severity: 'error' });
    }
  }
  problems.sort((a, b) => (a.file === b.file ? a.line - b.line : a.file < b.file ? -1 : 1));
  return { problems, records: count, txts: txts.length };
}

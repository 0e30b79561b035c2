/**
 * Fetching a peer's capability record (docs/capability-record.md) through the rest of the
 * resolver chain (so it is cached and coalesced like any other question): the
 * TYPE65300 RRset at the final name, and — only when configured and only after
 * a NODATA — the `_shim6.<name>` TXT fallback. Decoding is the wire codec's
 * (shim/wire/capability-record.ts); this module turns DNS outcomes into one
 * CapResult with a TTL (RFC 2308 §5 for the negative ones). Records and
 * addresses stay octets (RecordOctets, Ipv6Octets): checked, compared, never
 * formatted here.
 * It must not know about sockets, the engine or when to prime.
 */
import { WireError } from '../shim/wire/errors.ts';
import { ipv6OctetsAt, type Ipv6Octets } from '../shim/wire/ipv6.ts';
import { capabilityTxtRdata, checkCapabilityRecordAt, type RecordOctets } from '../shim/wire/capability-record.ts';
import type { Millis } from '../shim/time.ts';
import type { Handler } from './chain.ts';
import { buildQuery, DEFAULT_EDNS_SIZE } from './answer-build.ts';
import { cacheTtl, chainEnd, ownerIs, rrsetAt, scanResponse, type ScannedResponse } from './answer-scan.ts';
import { CLASS_IN, Flag, MAX_NAME_OCTETS, questionKey, Rcode, RrType, type ParsedQuery } from './message.ts';
import type { QueryListener, UpstreamResult } from './upstream.ts';

export type CapSource = 'dns' | 'txt';

export type CapResult =
  | { kind: 'found'; records: RecordOctets[]; invalid: readonly string[]; ttl: number; source: CapSource }
  | { kind: 'invalid'; invalid: readonly string[]; ttl: number; source: CapSource }
  | { kind: 'absent'; ttl: number; source: 'nodata' | 'nxdomain' | 'txt-nodata' }
  | { kind: 'error'; reason: string };

export interface CapFetchOptions {
  /** The capability RR type (TYPE65300 by default, configurable). */
  rrType: number;
  /** Query `_shim6.<name>` TXT after a TYPE65300 NODATA. */
  txtFallback: boolean;
  /** Negative TTL when a negative answer carries no SOA (s). */
  defaultNegativeTtl: number;
}

interface Looked { bytes: Uint8Array; scan: ScannedResponse }

/**
 * One internal question through `handler`; undefined when resolution failed.
 * The query is built from the name (no EDNS, RD) and its parse is known, so it
 * is not parsed again.
 */
export async function lookupVia(handler: Handler, clock: () => Millis, nameKey: string, qtype: number): Promise<Looked | undefined> {
  const query = buildQuery(0, nameKey, qtype, CLASS_IN, { dnssecOk: false });
  const key = questionKey(nameKey, qtype, CLASS_IN, false, false);
  const q: ParsedQuery = {
    id: 0, flags: Flag.RD | Flag.AD, nameKey, key, questionEnd: 12 + nameKey.length + 4, qtype, qclass: CLASS_IN,
    edns: true, ednsVersion: 0, udpSize: DEFAULT_EDNS_SIZE, dnssecOk: false, checkingDisabled: false, recursionDesired: true, authenticData: true,
  };
  const a = await handler({ query, q, key, now: clock(), transport: 'internal' });
  if (a.failed || (a.rcode !== Rcode.NOERROR && a.rcode !== Rcode.NXDOMAIN)) return undefined;
  try {
    return { bytes: a.bytes, scan: a.scan ?? scanResponse(a.bytes) };
  } catch {
    return undefined;
  }
}

/** The AAAA addresses at the end of `nameKey`'s CNAME chain in an answer (none when the answer stops mid-chain). */
export function aaaaAddresses(bytes: Uint8Array, scan: ScannedResponse, nameKey: string): Ipv6Octets[] {
  const final = chainEnd(bytes, scan, nameKey, RrType.AAAA);
  return final === undefined ? [] : aaaaAt(bytes, scan, final);
}

/** The AAAA addresses owned by `final` (the end of a chain already followed). */
export function aaaaAt(bytes: Uint8Array, scan: ScannedResponse, final: string): Ipv6Octets[] {
  const out: Ipv6Octets[] = [];
  // The RRset's records straight from the scan (rrsetAt would make an array of them first).
  for (const r of scan.records) if (r.section === 0 && r.type === RrType.AAAA && r.rdLen === 16 && ownerIs(bytes, scan, r.ownerOff, final)) out.push(ipv6OctetsAt(bytes, r.rdOff));
  return out;
}

export async function fetchAaaa(handler: Handler, clock: () => Millis, nameKey: string): Promise<Ipv6Octets[] | undefined> {
  const r = await lookupVia(handler, clock, nameKey, RrType.AAAA);
  return r && r.scan.rcode === Rcode.NOERROR ? aaaaAddresses(r.bytes, r.scan, nameKey) : r ? [] : undefined;
}

/**
 * Sends one internal question straight to the upstreams (no answer cache: the
 * capability stage caches what it decodes); `listener` is called exactly once.
 */
export type RawLookup = (nameKey: string, qtype: number, listener: QueryListener) => void;

/** A NODATA for the capability type, when the TXT fallback is configured: look it up next. */
export interface TxtNext { kind: 'txt'; final: string; nodataTtl: number }

/**
 * The outcome of the capability lookup of `nameKey` from its upstream answer
 * (or failure). Never throws. `txt`: ask `fetchTxt` next.
 */
export function capabilityOutcome(err: Error | undefined, r: UpstreamResult | undefined, nameKey: string, opts: CapFetchOptions): CapResult | TxtNext {
  if (err || !r) return { kind: 'error', reason: err?.message ?? 'capability lookup failed' };
  const rcode = r.scan.rcode;
  if (rcode !== Rcode.NOERROR && rcode !== Rcode.NXDOMAIN) return { kind: 'error', reason: `capability lookup: rcode ${rcode}` };
  try {
    if (rcode === Rcode.NXDOMAIN) return { kind: 'absent', ttl: negativeTtl(r, opts), source: 'nxdomain' };
    const final = chainEnd(r.bytes, r.scan, nameKey, opts.rrType);
    // A chain that stops in its middle says nothing about its end, and a middle name's record is nobody's.
    if (final === undefined) return { kind: 'error', reason: CHAIN_CUT };
    const found = decodeRecords(r.bytes, r.scan, final, opts.rrType);
    if (found) return found;
    if (!opts.txtFallback) return { kind: 'absent', ttl: negativeTtl(r, opts), source: 'nodata' };
    return { kind: 'txt', final, nodataTtl: negativeTtl(r, opts) };
  } catch (e) {
    return { kind: 'error', reason: (e as Error).message };
  }
}

/**
 * RFC 2308 §5: min(SOA TTL, MINIMUM), 0 included (an SOA that says "do not cache"); the default
 * only for a negative answer without an SOA.
 */
function negativeTtl(r: Looked, opts: CapFetchOptions): number {
  const c = cacheTtl(r.bytes, r.scan);
  if (c !== undefined) return c.ttl;
  return r.scan.records.some((x) => x.section === 1 && x.type === RrType.SOA) ? 0 : opts.defaultNegativeTtl;
}

/**
 * The TYPE65300 RRset at `final` checked record by record where it lies in the
 * answer's bytes (the pool's receive slot: no RRset array or view is made), each
 * valid record's octets copied out; undefined when there is none. Its TTL is the smallest.
 */
function decodeRecords(bytes: Uint8Array, scan: ScannedResponse, final: string, rrType: number): CapResult | undefined {
  let records: RecordOctets[] | undefined;
  let invalid: string[] | undefined; // made only when a record fails: the usual RRset decodes whole
  let ttl = Infinity;
  for (const rr of scan.records) {
    if (rr.section !== 0 || rr.type !== rrType || !ownerIs(bytes, scan, rr.ownerOff, final)) continue;
    records ??= [];
    if (rr.ttl < ttl) ttl = rr.ttl;
    try {
      records.push(checkCapabilityRecordAt(bytes, rr.rdOff, rr.rdLen));
    } catch (err) {
      invalid = ignored(err, invalid);
    }
  }
  return records && rrsetResult(records, invalid, ttl, 'dns');
}

/**
 * The TXT fallback (docs/capability-record.md "TXT fallback"): `_shim6.<host> TXT "v=shim6cap1 b64=…"`,
 * only after a TYPE65300 NODATA. Never throws.
 */
export async function fetchTxt(handler: Handler, clock: () => Millis, final: string, opts: CapFetchOptions, nodataTtl: number): Promise<CapResult> {
  try {
    return await fetchTxtOnce(handler, clock, final, opts, nodataTtl);
  } catch (err) {
    return { kind: 'error', reason: (err as Error).message };
  }
}

async function fetchTxtOnce(handler: Handler, clock: () => Millis, final: string, opts: CapFetchOptions, nodataTtl: number): Promise<CapResult> {
  const txtName = '\x06_shim6' + final;
  // Longer than a name may be (RFC 1035 §2.3.4): no such name exists, and the question would be malformed.
  if (txtName.length > MAX_NAME_OCTETS) return { kind: 'absent', ttl: nodataTtl, source: 'txt-nodata' };
  const r = await lookupVia(handler, clock, txtName, RrType.TXT);
  if (!r) return { kind: 'error', reason: 'TXT fallback lookup failed' };
  const end = r.scan.rcode === Rcode.NOERROR ? chainEnd(r.bytes, r.scan, txtName, RrType.TXT) : txtName;
  if (end === undefined) return { kind: 'error', reason: CHAIN_CUT };
  const rrs = r.scan.rcode === Rcode.NOERROR ? rrsetAt(r.bytes, r.scan, end, RrType.TXT) : [];
  const caps = rrs.map((rr) => ({ ttl: rr.ttl, text: txtText(r.bytes, rr.rdOff, rr.rdLen) })).filter((x) => x.text.startsWith('v=shim6cap'));
  if (caps.length === 0) return { kind: 'absent', ttl: Math.min(nodataTtl, cacheTtl(r.bytes, r.scan)?.ttl ?? nodataTtl), source: 'txt-nodata' };
  return checkAll(caps, (c) => { const rdata = capabilityTxtRdata(c.text); return checkCapabilityRecordAt(rdata, 0, rdata.length); }, 'txt');
}

/** RFC 1035 §3.3.14: TXT RDATA is one or more <character-string>s; one record's strings are joined. */
function txtText(b: Uint8Array, off: number, len: number): string {
  let s = '';
  for (let o = off; o < off + len;) {
    const n = b[o]!;
    const end = Math.min(o + 1 + n, off + len);
    s += Buffer.from(b.subarray(o + 1, end)).toString('latin1');
    o = end;
  }
  return s;
}

/** Check each item (one closure per RRset, none per record); the RRset's TTL is its smallest. */
function checkAll<T extends { ttl: number }>(items: readonly T[], check: (it: T) => RecordOctets, source: CapSource): CapResult {
  const records: RecordOctets[] = [];
  let invalid: string[] | undefined;
  let ttl = Infinity;
  for (const it of items) {
    if (it.ttl < ttl) ttl = it.ttl;
    try {
      records.push(check(it));
    } catch (err) {
      invalid = ignored(err, invalid);
    }
  }
  return rrsetResult(records, invalid, ttl, source);
}

/**
 * A record that failed to decode: its WireError's code joins `invalid` (made only then: the
 * usual RRset decodes whole). A record of unknown version or with unknown mandatory keys is
 * ignored, as any malformed one; anything but a WireError is a bug and goes on.
 */
function ignored(err: unknown, invalid: string[] | undefined): string[] {
  if (!(err instanceof WireError)) throw err;
  (invalid ??= []).push(err.code);
  return invalid;
}

/** The outcome of an RRset: found when a record decoded, else invalid. */
function rrsetResult(records: RecordOctets[], invalid: string[] | undefined, ttl: number, source: CapSource): CapResult {
  return records.length > 0 ? { kind: 'found', records, invalid: invalid ?? NO_ERRORS, ttl, source } : { kind: 'invalid', invalid: invalid ?? NO_ERRORS, ttl, source };
}

const NO_ERRORS: readonly string[] = Object.freeze([]);
const CHAIN_CUT = 'the answer stops in the middle of a CNAME chain';

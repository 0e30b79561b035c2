/**
 * `shim6 zone show`: fetch a host's capability RR (and, after a NODATA, its
 * `_shim6` TXT fallback, docs/capability-record.md) plus its AAAA RRset from a server, decode
 * them, and compare with what the operator expects.
 *
 * Owns: the queries and the comparison. Must not know: the CLI's output format
 * beyond the returned values.
 */
import crypto from 'node:crypto';
import { formatIpv6, parseIpv6 } from '../shim/wire/ipv6.ts';
import { WireError } from '../shim/wire/errors.ts';
import {
  decodeCapabilityRecord, decodeCapabilityTxt, formatCapabilityRecord, parseCapabilityRecord, validateAgainstAaaa,
  type CapabilityRecord,
} from '../shim/wire/capability-record.ts';
import { ProtocolError } from '../shim/errors.ts';
import { canonicalName, decodeMessage, decodeName, FLAG_RD, MAX_NAME_OCTETS, nameWireLength, decodeTxtRdata, encodeMessage, rcodeName, rcodeOf, RrClass, RrType } from './dns-message.ts';
import { exchange, type ExchangeOptions, type ServerAddress } from './dns-transport.ts';
import { txtOwner } from './zone-lines.ts';
import { MAX_CNAME_LINKS } from '../resolver/answer-scan.ts';

export interface Lookup {
  rcode: number;
  /** Where the name's CNAME chain in the answer ends (the name itself when it is no alias): the records' owner. */
  owner: string;
  records: { ttl: number; rdata: Uint8Array }[];
}

/**
 * One question; the answers of that type at the end of the name's CNAME chain in the answer,
 * as a peer's stub reads them (at most MAX_CNAME_LINKS links, as the stub: a longer chain or a
 * loop stops where the walk is, which holds none). RD is set: the server asked may be the
 * recursive resolver of /etc/resolv.conf (the default), which refuses a question without it
 * (systemd-resolved, unbound) or answers it from its cache alone; an authoritative server ignores it.
 */
export async function lookup(server: ServerAddress, name: string, type: number, opts: ExchangeOptions = {}): Promise<Lookup> {
  const id = crypto.randomInt(0, 0x10000);
  const q = encodeMessage({ id, flags: FLAG_RD, questions: [{ name: canonicalName(name), type, class: RrClass.IN }], answers: [], authorities: [], additionals: [] });
  const bytes = await exchange(server, q, opts);
  const m = decodeMessage(bytes);
  if (m.id !== id) throw new ProtocolError('EDNS_ANSWER', `${server.host} answered another query`);
  let owner = canonicalName(name);
  for (let hop = 0; hop < MAX_CNAME_LINKS && type !== RrType.CNAME; hop++) {
    const i = m.answers.findIndex((rr) => rr.type === RrType.CNAME && canonicalName(rr.name) === owner);
    if (i < 0) break;
    // The target may be compressed: read where the RDATA lies in the message (answers' spans come first).
    const target = canonicalName(decodeName(bytes, m.spans[i]!.end - m.answers[i]!.rdata.length).name);
    if (target === owner) break;
    owner = target;
  }
  return {
    rcode: rcodeOf(m.flags),
    owner,
    records: m.answers.filter((rr) => rr.type === type && canonicalName(rr.name) === owner).map((rr) => ({ ttl: rr.ttl, rdata: rr.rdata })),
  };
}

export interface ShownRecord {
  /** Where the record came from. */
  source: 'rr' | 'txt';
  ttl: number;
  rdata: Uint8Array;
  record: CapabilityRecord | undefined;
  /** Why the RR could not be decoded (or is to be ignored). */
  error: string | undefined;
  ulidInAaaa: boolean;
}

export interface ShowResult {
  name: string;
  /** The owner of the records: the end of the name's CNAME chain (the name itself when it is no alias). */
  owner: string;
  aaaa: string[];
  records: ShownRecord[];
}

function decodeOne(source: 'rr' | 'txt', ttl: number, rdata: Uint8Array, aaaa: string[]): ShownRecord {
  try {
    const record = source === 'rr' ? decodeCapabilityRecord(rdata) : decodeCapabilityTxt(decodeTxtRdata(rdata));
    return { source, ttl, rdata, record, error: undefined, ulidInAaaa: validateAgainstAaaa(record, aaaa) };
  } catch (e) {
    if (!(e instanceof WireError)) throw e;
    return { source, ttl, rdata, record: undefined, error: e.message, ulidInAaaa: false };
  }
}

/** Fetch and decode. `txt`: also ask for the TXT fallback when the RR is absent. */
export async function fetchCapability(server: ServerAddress, name: string, rrType: number, txt: boolean, opts: ExchangeOptions = {}): Promise<ShowResult> {
  const [rr, aaaaAnswer] = await Promise.all([lookup(server, name, rrType, opts), lookup(server, name, RrType.AAAA, opts)]);
  if (rr.rcode !== 0 && rr.rcode !== 3) throw new ProtocolError(`EDNS_${rcodeName(rr.rcode)}`, `${server.host} answered ${rcodeName(rr.rcode)} for ${name} TYPE${rrType}`);
  const aaaa = aaaaAnswer.records.filter((r) => r.rdata.length === 16).map((r) => formatIpv6(r.rdata));
  const records = rr.records.map((r) => decodeOne('rr', r.ttl, r.rdata, aaaa));
  // A name of more than 246 characters has no room for `_shim6.` (255 octets): no such TXT can exist.
  if (records.length === 0 && txt && (nameWireLength(txtOwner(rr.owner)) ?? Infinity) <= MAX_NAME_OCTETS) {
    const t = await lookup(server, txtOwner(rr.owner), RrType.TXT, opts);
    for (const r of t.records) {
      const strings = decodeTxtRdata(r.rdata).join('');
      if (strings.startsWith('v=shim6cap')) records.push(decodeOne('txt', r.ttl, r.rdata, aaaa));
    }
  }
  return { name: canonicalName(name), owner: rr.owner, aaaa, records };
}

/** What `--expect` / `--expect-ulid` / `--expect-locator` ask for. */
export interface Expectation {
  text?: string;
  ulid?: string;
  locators?: string[];
}

/** Differences between what the server has and what is expected ([] = match). */
export function compare(shown: ShowResult, exp: Expectation): string[] {
  const usable = shown.records.filter((r) => r.record);
  if (usable.length === 0) return [`no usable capability record at ${shown.owner}`];
  const r = usable[0]!.record!;
  const diffs: string[] = [];
  if (exp.text !== undefined) {
    const want = formatCapabilityRecord(parseCapabilityRecord(exp.text));
    const got = formatCapabilityRecord(r);
    if (want !== got) diffs.push(`record differs:\n  expected: ${want}\n  found:    ${got}`);
  }
  if (exp.ulid !== undefined) {
    const want = canonicalAddr(exp.ulid);
    if (want !== r.ulid) diffs.push(`ULID differs: expected ${want}, found ${r.ulid}`);
  }
  if (exp.locators !== undefined) {
    const want = exp.locators.map(canonicalAddr).sort();
    const got = r.locators.map((l) => l.address).sort();
    if (want.join(' ') !== got.join(' ')) diffs.push(`locators differ: expected ${want.join(' ')}, found ${got.join(' ')}`);
  }
  if (!usable[0]!.ulidInAaaa) diffs.push(`ULID ${r.ulid} is not in the AAAA RRset of ${shown.owner} (readers ignore the record)`);
  return diffs;
}

function canonicalAddr(a: string): string {
  try { return formatIpv6(parseIpv6(a)); } catch { return a; }
}

/**
 * `shim6 zone update`: replace one host's capability RR, AAAA RRset and `_shim6`
 * TXT with ONE RFC 2136 UPDATE, signed with TSIG (RFC 8945, hmac-sha256), so the
 * server applies all of it or none (RFC 2136 §3.7). The answer's TSIG is checked
 * before its rcode is believed.
 *
 * A prerequisite (RFC 2136 §2.4) on the capability RRset makes the update
 * conditional: the server applies it only while that RRset is exactly the one
 * given (§2.4.2 "RRset exists (value dependent)", NXRRSET otherwise) or, given
 * none, while there is no such RRset (§2.4.3, YXRRSET otherwise). An update
 * built on what the server held then can never apply over a newer one: the
 * daemon's publisher sends every update that way, reading the RRset first with
 * `readRrset` (a plain query to the same server).
 *
 * Owns: the update message (§2.4.2/§2.4.3 prerequisites, §2.5.2 "delete an RRset",
 * §2.5.1 "add to an RRset"), the meaning of the server's answer, and reading the
 * RRset a prerequisite names. Must not know: the CLI, key files.
 */
import crypto from 'node:crypto';
import { ProtocolError, UsageError } from '../shim/errors.ts';
import { encodeCapabilityRecord } from '../shim/wire/capability-record.ts';
import { parseIpv6 } from '../shim/wire/ipv6.ts';
import {
  canonicalName, decodeMessage, DnsFormatError, encodeMessage, encodeTxtRdata, opcodeOf, Opcode, rcodeName, rcodeOf, RrClass, RrType,
  FLAG_AA, FLAG_QR, type DnsMessage, type ResourceRecord,
} from './dns-message.ts';
import { exchange, TransportError, type ExchangeOptions, type ServerAddress } from './dns-transport.ts';
import { signMessage, verifyResponse, type TsigKey } from './tsig.ts';
import { txtOwner, txtStrings, type HostRecord } from './zone-lines.ts';
import { checkTxtOwnerFits } from './record-input.ts';
import { hostPort } from '../shim/log.ts';

/** True when `name` is `zone` or below it. */
export function inZone(name: string, zone: string): boolean {
  const n = canonicalName(name);
  const z = canonicalName(zone);
  return z === '.' || n === z || n.endsWith('.' + z);
}

function deleteRrset(name: string, type: number): ResourceRecord {
  return { name, type, class: RrClass.ANY, ttl: 0, rdata: new Uint8Array(0) };
}

/**
 * The prerequisite section for "the `type` RRset at `name` is exactly `rrset`":
 * §2.4.2 (every RR of the set, class of the zone, TTL 0) or, for an empty set,
 * §2.4.3 (one RR, class NONE, TTL 0, no RDATA).
 */
export function rrsetPrerequisite(name: string, type: number, rrset: readonly Uint8Array[]): ResourceRecord[] {
  if (rrset.length === 0) return [{ name, type, class: RrClass.NONE, ttl: 0, rdata: new Uint8Array(0) }];
  return uniqueRdata(rrset).map((rdata) => ({ name, type, class: RrClass.IN, ttl: 0, rdata }));
}

/** The RDATAs as a set: duplicates dropped, in octet order (so equal sets compare equal). */
export function uniqueRdata(rrset: readonly Uint8Array[]): Uint8Array[] {
  const byHex = new Map(rrset.map((r) => [Buffer.from(r).toString('hex'), r]));
  return [...byHex.keys()].sort().map((k) => byHex.get(k)!);
}

/** Two RRsets (as RDATAs) hold the same members. */
export function sameRrset(a: readonly Uint8Array[], b: readonly Uint8Array[]): boolean {
  const ha = uniqueRdata(a).map((r) => Buffer.from(r).toString('hex'));
  const hb = uniqueRdata(b).map((r) => Buffer.from(r).toString('hex'));
  return ha.length === hb.length && ha.every((h, i) => h === hb[i]);
}

/**
 * The UPDATE message (unsigned) for one host. `prerequisite`: the capability
 * RRset (RDATAs) the server must hold for the update to apply, `[]` for "none";
 * undefined sends no prerequisite (the update applies whatever is there).
 */
export function buildUpdate(zone: string, host: HostRecord, id: number, aaaa = true, prerequisite?: readonly Uint8Array[]): DnsMessage {
  if (!inZone(host.name, zone)) {
    throw new UsageError('EINVALID', `--name: invalid value ${JSON.stringify(host.name)}: not inside zone ${canonicalName(zone)}`, 'name');
  }
  // Every update deletes the TXT RRset at _shim6.<name>: that owner must be a name (the daemon's publisher too).
  checkTxtOwnerFits(host.name);
  const add = (name: string, type: number, rdata: Uint8Array): ResourceRecord => ({ name, type, class: RrClass.IN, ttl: host.ttl, rdata });
  const updates: ResourceRecord[] = [
    deleteRrset(host.name, host.rrType),
    // Without `aaaa` the host's AAAA RRset is left as it is (the daemon's dnsUpdate by default).
    ...(aaaa ? [deleteRrset(host.name, RrType.AAAA)] : []),
    // A stale TXT fallback would contradict the new record: it goes either way.
    deleteRrset(txtOwner(host.name), RrType.TXT),
    add(host.name, host.rrType, encodeCapabilityRecord(host.record)),
    ...(aaaa ? host.aaaa.map((a) => add(host.name, RrType.AAAA, parseIpv6(a))) : []),
  ];
  if (host.txt) updates.push(add(txtOwner(host.name), RrType.TXT, encodeTxtRdata(txtStrings(host.record))));
  return {
    id,
    flags: Opcode.UPDATE << 11,
    questions: [{ name: canonicalName(zone), type: RrType.SOA, class: RrClass.IN }],
    answers: prerequisite === undefined ? [] : rrsetPrerequisite(host.name, host.rrType, prerequisite),
    authorities: updates,
    additionals: [],
  };
}

const TSIG_ERRORS: Readonly<Record<number, string>> = {
  16: 'BADSIG: the server does not accept the signature (wrong secret for this key name?)',
  17: 'BADKEY: the server does not know this key name or algorithm, or no ACL of this zone allows updates with this key',
  18: 'BADTIME: the clocks differ by more than the fudge',
  22: 'BADTRUNC',
};

/** What the server said, once the answer is authenticated. */
export interface UpdateOutcome {
  rcode: number;
  rcodeName: string;
  /** The server's answer was signed with our key and verified. */
  verified: boolean;
}

export interface UpdateOptions extends ExchangeOptions {
  /** Seconds since the epoch, for TSIG Time Signed (default: the clock). */
  now?: number;
  /** Replace the AAAA RRset too (default true). */
  aaaa?: boolean;
  /**
   * Apply only while the server's capability RRset is exactly these RDATAs
   * (`[]`: while it has none); else the server answers NXRRSET (YXRRSET) and
   * nothing changes. Default: no prerequisite.
   */
  prerequisite?: readonly Uint8Array[];
}

/**
 * The server refused the update in an answer signed with our key: the update
 * was processed and not applied (an unsigned refusal proves neither).
 */
export class UpdateRefused extends ProtocolError {}

/** RFC 2136 §2.4: the server refused because a prerequisite did not hold. */
export function isPrerequisiteFailure(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError && (err.rcode === 'NXRRSET' || err.rcode === 'YXRRSET');
}

/**
 * Send the update and interpret the answer. Resolves on NOERROR; otherwise
 * throws ProtocolError with code `DNS_<RCODE>` or `TSIG_<ERROR>` and a message
 * that says what to check.
 */
export async function sendUpdate(server: ServerAddress, zone: string, host: HostRecord, key: TsigKey, opts: UpdateOptions = {}): Promise<UpdateOutcome> {
  const id = crypto.randomInt(0, 0x10000);
  const unsigned = encodeMessage(buildUpdate(zone, host, id, opts.aaaa ?? true, opts.prerequisite));
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const signed = signMessage(unsigned, key, now);
  const where = hostPort(server.host, server.port);
  const inDoubt = `the update of ${host.name} may or may not have been applied: check with \`shim6 zone show ${host.name} --server ${where}\``;
  let answer: Uint8Array;
  try {
    answer = await exchange(server, signed.bytes, opts);
  } catch (e) {
    // A failure after the update may have reached the server: it may have applied it (a UDP try,
    // the TCP message, may have arrived and only the answer been lost; a TC answer means it did).
    if (e instanceof TransportError && e.mayHaveArrived) throw new TransportError(e.code, `${e.message}: ${inDoubt}`, true);
    throw e;
  }
  // An answer that cannot be read says nothing of what the server did with the update.
  let m: ReturnType<typeof decodeMessage>;
  let check: ReturnType<typeof verifyResponse>;
  try {
    m = decodeMessage(answer);
    check = verifyResponse(answer, key, signed.mac, Math.floor(Date.now() / 1000));
  } catch (e) {
    if (e instanceof DnsFormatError) throw new DnsFormatError(`${where} answered the update with a malformed message (${e.message}): ${inDoubt}`);
    throw e;
  }
  if ((m.flags & FLAG_QR) === 0 || opcodeOf(m.flags) !== Opcode.UPDATE || m.id !== id) {
    throw new ProtocolError('EDNS_ANSWER', `${where} answered with something that is not the answer to our UPDATE: ${inDoubt}`);
  }
  const rcode = rcodeOf(m.flags);
  if (check.status === 'server-error') {
    const what = TSIG_ERRORS[check.error] ?? `TSIG error ${check.error}`;
    const name = (TSIG_ERRORS[check.error] ?? `E${check.error}`).split(':')[0]!;
    throw new ProtocolError(`ETSIG_${name}`, `update of ${host.name} refused by ${where}: ${rcodeName(rcode)}, TSIG ${what} (key ${key.name})`, rcodeName(rcode));
  }
  if (rcode === 9 && check.status === 'unsigned') {
    throw new ProtocolError('EDNS_NOTAUTH', `update of ${host.name} refused by ${where}: NOTAUTH (the server is not authoritative for zone ${canonicalName(zone)}, or refused key ${key.name})`, 'NOTAUTH');
  }
  const prereq = prerequisiteHint(rcode, host, opts.prerequisite);
  if (check.status === 'unsigned' && rcode !== 0) {
    // A refusal needs no proof to be acted on: report it, saying it was not signed.
    throw new ProtocolError(`EDNS_${rcodeName(rcode)}`, `update of ${host.name} refused by ${where}: ${rcodeName(rcode)}${prereq} (unsigned answer)`, rcodeName(rcode));
  }
  if (check.status !== 'ok') {
    const fate = rcode === 0 ? 'the server says NOERROR, but ' : `the server says ${rcodeName(rcode)}, and `;
    throw new ProtocolError('ETSIG_UNVERIFIED', `update of ${host.name} at ${where}: ${fate}its answer is ${check.status === 'unsigned' ? 'not signed' : `not authentic (${check.status})`}; do not trust it: ${inDoubt}`);
  }
  if (rcode !== 0) {
    const hint = rcode === 5 ? ' (updates not allowed for this key, or the zone is not a primary here)'
      : rcode === 10 ? ` (${host.name} is not in zone ${canonicalName(zone)})` : prereq;
    throw new UpdateRefused(`EDNS_${rcodeName(rcode)}`, `update of ${host.name} refused by ${where}: ${rcodeName(rcode)}${hint}`, rcodeName(rcode));
  }
  return { rcode, rcodeName: rcodeName(rcode), verified: true };
}

/** Why NXRRSET / YXRRSET, when the update carried a prerequisite. */
function prerequisiteHint(rcode: number, host: HostRecord, prerequisite: readonly Uint8Array[] | undefined): string {
  if (prerequisite === undefined || (rcode !== 7 && rcode !== 8)) return '';
  return prerequisite.length === 0
    ? ` (prerequisite failed: ${host.name} already has a TYPE${host.rrType} RRset; the update expected none)`
    : ` (prerequisite failed: the TYPE${host.rrType} RRset of ${host.name} is not the one the update expected)`;
}

/**
 * The `type` RRset at `name` as the server's answer to our query `id` gives it:
 * the RDATAs, as a set (`[]` for NODATA or NXDOMAIN). Checks that the bytes are
 * the answer to that question (QR, opcode QUERY, ID, the question echoed), that
 * the server is authoritative (AA) and that it answered NOERROR or NXDOMAIN;
 * anything else is DnsFormatError (malformed bytes) or ProtocolError:
 * `EDNS_ANSWER` (not our answer), `EDNS_NOTAUTH` (no AA), `EDNS_CNAME` (the
 * name is an alias: nothing can be published there), `EDNS_<RCODE>`.
 */
export function rrsetFromAnswer(answer: Uint8Array, id: number, name: string, type: number, where = 'the server'): Uint8Array[] {
  const m = decodeMessage(answer);
  const want = canonicalName(name);
  const q = m.questions[0];
  if ((m.flags & FLAG_QR) === 0 || opcodeOf(m.flags) !== Opcode.QUERY || m.id !== id || m.questions.length !== 1
    || canonicalName(q!.name) !== want || q!.type !== type || q!.class !== RrClass.IN) {
    throw new ProtocolError('EDNS_ANSWER', `${where} answered with something that is not the answer to our query for ${want} TYPE${type}`);
  }
  const rcode = rcodeOf(m.flags);
  if (rcode !== 0 && rcode !== 3) {
    throw new ProtocolError(`EDNS_${rcodeName(rcode)}`, `${where} answered ${rcodeName(rcode)} to the query for ${want} TYPE${type}`, rcodeName(rcode));
  }
  if ((m.flags & FLAG_AA) === 0) {
    throw new ProtocolError('EDNS_NOTAUTH', `${where} is not authoritative for ${want} (its answer to TYPE${type} has no AA bit): send updates to the zone's primary`);
  }
  const here = m.answers.filter((rr) => canonicalName(rr.name) === want);
  if (type !== RrType.CNAME && here.some((rr) => rr.type === RrType.CNAME)) {
    throw new ProtocolError('EDNS_CNAME', `${want} is an alias (CNAME) at ${where}: no TYPE${type} record can be published there`);
  }
  return uniqueRdata(here.filter((rr) => rr.type === type && rr.class === RrClass.IN).map((rr) => rr.rdata));
}

/** Ask `server` for the `type` RRset at `name` (a plain query: the server judges the prerequisite anyway). */
export async function readRrset(server: ServerAddress, name: string, type: number, opts: ExchangeOptions = {}): Promise<Uint8Array[]> {
  const id = crypto.randomInt(0, 0x10000);
  const q = encodeMessage({ id, flags: 0, questions: [{ name: canonicalName(name), type, class: RrClass.IN }], answers: [], authorities: [], additionals: [] });
  return rrsetFromAnswer(await exchange(server, q, opts), id, name, type, hostPort(server.host, server.port));
}

/**
 * Refuse, before an update is sent, a name where the server would drop what
 * we publish: RFC 2136 §3.4.2.2 has a server ignore every non-CNAME record
 * added at a CNAME owner, and a name at or below a zone cut (NS, other than at
 * the apex) is not the zone's data, yet both answer NOERROR, so the update
 * would look applied. One query to `server` for `name` (same transport and
 * timeout, signed with `key` so servers that only answer keyed clients
 * answer): a CNAME at the name is `EDNS_CNAME`, a referral to a cut inside
 * `zone` is `EDNS_DELEGATED` (ProtocolError, exit 1). Only positive evidence
 * refuses: any other answer (an error rcode, a TSIG error, no AA) lets the
 * update go, and the update's own answer reports it. The answer's TSIG is not
 * required to verify: a forged one can only refuse, as a dropped packet can.
 */
export async function checkOwner(server: ServerAddress, zone: string, name: string, type: number, key: TsigKey, opts: ExchangeOptions = {}): Promise<void> {
  const id = crypto.randomInt(0, 0x10000);
  const want = canonicalName(name);
  const apex = canonicalName(zone);
  const q = encodeMessage({ id, flags: 0, questions: [{ name: want, type, class: RrClass.IN }], answers: [], authorities: [], additionals: [] });
  const answer = await exchange(server, signMessage(q, key, Math.floor(Date.now() / 1000)).bytes, opts);
  const m = decodeMessage(answer);
  const where = hostPort(server.host, server.port);
  if ((m.flags & FLAG_QR) === 0 || opcodeOf(m.flags) !== Opcode.QUERY || m.id !== id) return;
  const rcode = rcodeOf(m.flags);
  if (rcode !== 0 && rcode !== 3) return;
  const alias = m.answers.find((rr) => rr.type === RrType.CNAME && canonicalName(rr.name) === want);
  if (alias) {
    throw new ProtocolError('EDNS_CNAME', `${want} is an alias (CNAME) at ${where}: a server drops the capability record and AAAA added at a CNAME owner; publish at the canonical name instead; nothing sent`);
  }
  if ((m.flags & FLAG_AA) !== 0) return;
  const cut = m.authorities.find((rr) => rr.type === RrType.NS && canonicalName(rr.name) !== apex
    && inZone(rr.name, apex) && inZone(want, rr.name));
  if (cut) {
    throw new ProtocolError('EDNS_DELEGATED', `${want} is at or below the delegation ${canonicalName(cut.name)} (NS) in zone ${apex} at ${where}: the zone holds no data there; update the child zone instead; nothing sent`);
  }
}

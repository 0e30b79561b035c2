/**
 * `shim6 zone update`: replace one host's capability RR, AAAA RRset and `_shim6`
 * TXT with ONE RFC 2136 UPDATE, signed with TSIG (RFC 8945, hmac-sha256), so the
 * server applies all of it or none (RFC 2136 §3.7). The answer's TSIG is checked
 * before its rcode is believed.
 *
 * Owns: the update message (§2.5.2 "delete an RRset", §2.5.1 "add to an RRset")
 * and the meaning of the server's answer. Must not know: the CLI, key files.
 */
import crypto from 'node:crypto';
import { ProtocolError, UsageError } from '../shim/errors.ts';
import { encodeCapabilityRecord } from '../shim/wire/capability-record.ts';
import { parseIpv6 } from '../shim/wire/ipv6.ts';
import {
  canonicalName, decodeMessage, encodeMessage, encodeTxtRdata, opcodeOf, Opcode, rcodeName, rcodeOf, RrClass, RrType,
  FLAG_QR, type DnsMessage, type ResourceRecord,
} from './dns-message.ts';
import { exchange, type ExchangeOptions, type ServerAddress } from './dns-transport.ts';
import { signMessage, verifyResponse, type TsigKey } from './tsig.ts';
import { txtOwner, txtStrings, type HostRecord } from './zone-lines.ts';
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

/** The UPDATE message (unsigned) for one host. */
export function buildUpdate(zone: string, host: HostRecord, id: number, aaaa = true): DnsMessage {
  if (!inZone(host.name, zone)) {
    throw new UsageError('EINVALID', `--name: invalid value ${JSON.stringify(host.name)}: not inside zone ${canonicalName(zone)}`, 'name');
  }
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
    answers: [],
    authorities: updates,
    additionals: [],
  };
}

const TSIG_ERRORS: Readonly<Record<number, string>> = {
  16: 'BADSIG: the server does not accept the signature (wrong secret for this key name?)',
  17: 'BADKEY: the server does not know this key name or algorithm',
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
}

/**
 * Send the update and interpret the answer. Resolves on NOERROR; otherwise
 * throws ProtocolError with code `DNS_<RCODE>` or `TSIG_<ERROR>` and a message
 * that says what to check.
 */
export async function sendUpdate(server: ServerAddress, zone: string, host: HostRecord, key: TsigKey, opts: UpdateOptions = {}): Promise<UpdateOutcome> {
  const id = crypto.randomInt(0, 0x10000);
  const unsigned = encodeMessage(buildUpdate(zone, host, id, opts.aaaa ?? true));
  const now = opts.now ?? Math.floor(Date.now() / 1000);
  const signed = signMessage(unsigned, key, now);
  const where = hostPort(server.host, server.port);
  const answer = await exchange(server, signed.bytes, opts);
  const m = decodeMessage(answer);
  if ((m.flags & FLAG_QR) === 0 || opcodeOf(m.flags) !== Opcode.UPDATE || m.id !== id) {
    throw new ProtocolError('EDNS_ANSWER', `${where} answered with something that is not the answer to our UPDATE`);
  }
  const rcode = rcodeOf(m.flags);
  const check = verifyResponse(answer, key, signed.mac, Math.floor(Date.now() / 1000));
  if (check.status === 'server-error') {
    const what = TSIG_ERRORS[check.error] ?? `TSIG error ${check.error}`;
    const name = (TSIG_ERRORS[check.error] ?? `E${check.error}`).split(':')[0]!;
    throw new ProtocolError(`ETSIG_${name}`, `update of ${host.name} refused by ${where}: ${rcodeName(rcode)}, TSIG ${what} (key ${key.name})`, rcodeName(rcode));
  }
  if (rcode === 9 && check.status === 'unsigned') {
    throw new ProtocolError('EDNS_NOTAUTH', `update of ${host.name} refused by ${where}: NOTAUTH (the server is not authoritative for zone ${canonicalName(zone)}, or refused key ${key.name})`, 'NOTAUTH');
  }
  if (check.status === 'unsigned' && rcode !== 0) {
    // A refusal needs no proof to be acted on: report it, saying it was not signed.
    throw new ProtocolError(`EDNS_${rcodeName(rcode)}`, `update of ${host.name} refused by ${where}: ${rcodeName(rcode)} (unsigned answer)`, rcodeName(rcode));
  }
  if (check.status !== 'ok') {
    const fate = rcode === 0 ? 'the server says NOERROR, but ' : `the server says ${rcodeName(rcode)}, and `;
    throw new ProtocolError('ETSIG_UNVERIFIED', `update of ${host.name} at ${where}: ${fate}its answer is ${check.status === 'unsigned' ? 'not signed' : `not authentic (${check.status})`}; do not trust it`);
  }
  if (rcode !== 0) {
    const hint = rcode === 5 ? ' (updates not allowed for this key, or the zone is not a primary here)'
      : rcode === 10 ? ` (${host.name} is not in zone ${canonicalName(zone)})` : '';
    throw new ProtocolError(`EDNS_${rcodeName(rcode)}`, `update of ${host.name} refused by ${where}: ${rcodeName(rcode)}${hint}`, rcodeName(rcode));
  }
  return { rcode, rcodeName: rcodeName(rcode), verified: true };
}

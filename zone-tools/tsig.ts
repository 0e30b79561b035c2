/**
 * TSIG (RFC 8945) with HMAC-SHA256: sign a request, verify the signed response.
 *
 * Owns: the TSIG RDATA layout, the digest input ("TSIG variables", §4.3.3) and
 * the response check (§5.3: request MAC ‖ response without TSIG ‖ variables).
 * Must not know: sockets or clocks (the signing time comes in), key files
 * (tsig-key.ts), what the message carries.
 */
import crypto from 'node:crypto';
import { canonicalName, concatBytes, decodeMessage, DnsFormatError, encodeName, encodeRecord, RrClass, RrType } from './dns-message.ts';

/** A TSIG key: name (absolute), algorithm (only hmac-sha256 is implemented), secret octets. */
export interface TsigKey {
  name: string;
  algorithm: 'hmac-sha256';
  secret: Uint8Array;
}

export const HMAC_SHA256 = 'hmac-sha256.';
/** RFC 8945 §5.2.3: recommended fudge. */
export const DEFAULT_FUDGE = 300;

export interface TsigFields {
  algorithm: string;
  /** Seconds since the epoch (48 bits). */
  timeSigned: number;
  fudge: number;
  mac: Uint8Array;
  originalId: number;
  error: number;
  otherData: Uint8Array;
}

function u16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

function u48(n: number): number[] {
  const hi = Math.floor(n / 0x100000000);
  return [...u16(hi), (n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** RFC 8945 §4.2: TSIG RDATA. */
export function encodeTsigRdata(f: TsigFields): Uint8Array {
  return concatBytes([
    encodeName(f.algorithm),
    Uint8Array.from([...u48(f.timeSigned), ...u16(f.fudge), ...u16(f.mac.length)]),
    f.mac,
    Uint8Array.from([...u16(f.originalId), ...u16(f.error), ...u16(f.otherData.length)]),
    f.otherData,
  ]);
}

/** Parse TSIG RDATA; throws DnsFormatError. */
export function decodeTsigRdata(rdata: Uint8Array): TsigFields {
  // The algorithm name is never compressed in TSIG (RFC 8945 §4.2).
  let o = 0;
  const labels: string[] = [];
  for (;;) {
    const len = rdata[o];
    if (len === undefined) throw new DnsFormatError('TSIG algorithm name truncated');
    o += 1;
    if (len === 0) break;
    if (len > 63 || o + len > rdata.length) throw new DnsFormatError('TSIG algorithm name malformed');
    labels.push(Buffer.from(rdata.subarray(o, o + len)).toString('latin1'));
    o += len;
  }
  const need = (n: number): void => { if (o + n > rdata.length) throw new DnsFormatError('TSIG RDATA truncated'); };
  const r16 = (): number => { need(2); const v = (rdata[o]! << 8) | rdata[o + 1]!; o += 2; return v; };
  const timeSigned = r16() * 0x100000000 + r16() * 0x10000 + r16();
  const fudge = r16();
  const macLen = r16();
  need(macLen);
  const mac = rdata.slice(o, o + macLen);
  o += macLen;
  const originalId = r16();
  const error = r16();
  const otherLen = r16();
  need(otherLen);
  const otherData = rdata.slice(o, o + otherLen);
  o += otherLen;
  if (o !== rdata.length) throw new DnsFormatError('TSIG RDATA has trailing octets');
  return { algorithm: labels.join('.').toLowerCase() + '.', timeSigned, fudge, mac, originalId, error, otherData };
}

/** RFC 8945 §4.3.3: the TSIG variables that follow the message in the digest. */
function tsigVariables(keyName: string, f: TsigFields): Uint8Array {
  return concatBytes([
    encodeName(canonicalName(keyName)),
    Uint8Array.from([...u16(RrClass.ANY), 0, 0, 0, 0]),
    encodeName(canonicalName(f.algorithm)),
    Uint8Array.from([...u48(f.timeSigned), ...u16(f.fudge), ...u16(f.error), ...u16(f.otherData.length)]),
    f.otherData,
  ]);
}

function hmac(key: TsigKey, parts: readonly Uint8Array[]): Uint8Array {
  const h = crypto.createHmac('sha256', key.secret);
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

function withArcount(message: Uint8Array, arcount: number): Uint8Array {
  const out = message.slice();
  out[10] = (arcount >> 8) & 0xff;
  out[11] = arcount & 0xff;
  return out;
}

/**
 * RFC 8945 §5.1: append a TSIG RR to `message` (encoded, without TSIG).
 * Returns the signed message and the request MAC (needed to verify the answer).
 */
export function signMessage(message: Uint8Array, key: TsigKey, timeSigned: number, fudge = DEFAULT_FUDGE): { bytes: Uint8Array; mac: Uint8Array } {
  const id = (message[0]! << 8) | message[1]!;
  const fields: TsigFields = { algorithm: HMAC_SHA256, timeSigned, fudge, mac: new Uint8Array(0), originalId: id, error: 0, otherData: new Uint8Array(0) };
  fields.mac = hmac(key, [message, tsigVariables(key.name, fields)]);
  const rr = encodeRecord({ name: canonicalName(key.name), type: RrType.TSIG, class: RrClass.ANY, ttl: 0, rdata: encodeTsigRdata(fields) });
  const arcount = ((message[10]! << 8) | message[11]!) + 1;
  return { bytes: concatBytes([withArcount(message, arcount), rr]), mac: fields.mac };
}

/** What the response's TSIG says. */
export type TsigCheck =
  | { status: 'ok'; fields: TsigFields }
  | { status: 'unsigned' }
  /** The server reports a TSIG error (BADSIG 16, BADKEY 17, BADTIME 18…) in the TSIG RR. */
  | { status: 'server-error'; error: number; fields: TsigFields }
  | { status: 'bad-mac' | 'wrong-key' | 'bad-time'; fields?: TsigFields };

/**
 * RFC 8945 §5.3: verify a response to a request that carried `requestMac`.
 * `now` in seconds checks Time Signed against the fudge.
 */
export function verifyResponse(response: Uint8Array, key: TsigKey, requestMac: Uint8Array, now: number): TsigCheck {
  const m = decodeMessage(response);
  const last = m.additionals[m.additionals.length - 1];
  const span = m.spans[m.spans.length - 1];
  if (!last || !span || last.type !== RrType.TSIG) return { status: 'unsigned' };
  const fields = decodeTsigRdata(last.rdata);
  if (canonicalName(last.name) !== canonicalName(key.name) || fields.algorithm !== HMAC_SHA256) return { status: 'wrong-key', fields };
  if (fields.error !== 0) return { status: 'server-error', error: fields.error, fields };
  // The digest covers the message as it was before TSIG was added: ARCOUNT − 1, original ID.
  const body = withArcount(response.subarray(0, span.start), m.additionals.length - 1);
  body[0] = (fields.originalId >> 8) & 0xff;
  body[1] = fields.originalId & 0xff;
  const expect = hmac(key, [Uint8Array.from(u16(requestMac.length)), requestMac, body, tsigVariables(key.name, fields)]);
  if (fields.mac.length !== expect.length || !crypto.timingSafeEqual(fields.mac, expect)) return { status: 'bad-mac', fields };
  if (Math.abs(now - fields.timeSigned) > fields.fudge) return { status: 'bad-time', fields };
  return { status: 'ok', fields };
}

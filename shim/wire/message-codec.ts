/**
 * Shim6 control messages (RFC 5533 §5.3–§5.14, RFC 5534 §5.1–§5.2, Close/CloseAck
 * of docs/wire.md) as one table: per type, the minimum Hdr Ext Len, the options it
 * allows, and the fixed-field layout (offsets from the start of the Shim6 header).
 * The input length, Hdr Ext Len and checksum are checked once on entry; the field
 * readers then cannot run out of bounds. Options go through options.ts.
 * Knows nothing about contexts, states or I/O.
 */
import { IPPROTO_NONE, MessageType, MIN_HDR_EXT_LEN, PROBE_MAX_REPORTS, PROBE_REPORT_LENGTH, ProbeStateCode } from '../constants.ts';
import { WireError } from './errors.ts';
import {
  checkTag, checkUint, copyBytes, Hdr, headerLength, P_BIT, readTag, readU16, readU32, S_BIT, shim6Checksum,
  writeTag, writeU16, writeU32,
} from './header.ts';
import { formatIpv6, writeIpv6 } from './ipv6.ts';
import type { ProbeReport, ProbeState, Shim6Message, Shim6MessageName, Shim6Option } from './messages.ts';
import { decodeOptions, optionMask, optionsLength, writeOptions } from './options.ts';

/** Largest Shim6 header: Hdr Ext Len 255. */
export const MAX_HEADER_LENGTH = headerLength(255);

type Msg<N extends Shim6MessageName> = Extract<Shim6Message, { type: N }>;

interface Layout<N extends Shim6MessageName> {
  readonly name: N;
  readonly code: number;
  /** RFC minimum Hdr Ext Len; shorter headers are dropped (ELENGTH). */
  readonly minHdrExtLen: number;
  readonly allowed: number;
  /** Octets before the options (including the 6-octet common header); validates fields. */
  fixedLength(m: Msg<N>): number;
  /** Decode a header of `end` octets whose length and checksum were checked. */
  decode(b: Uint8Array, end: number): Msg<N>;
  /** Write the type-specific fixed fields (the buffer is zeroed, the common header is written). */
  write(b: Uint8Array, m: Msg<N>): void;
}

// Option sets per message (RFC 5533 §5.4–§5.11, RFC 5534 §5.3 adds Keepalive Timeout to I2, I2bis, R2, Update).
const OPTS_I1 = optionMask('UlidPair', 'ForkedInstanceIdentifier');
const OPTS_R1 = optionMask('ResponderValidator');
const LOCATOR_OPTS = ['LocatorList', 'LocatorPreferences', 'CgaParameterDataStructure', 'CgaSignature', 'KeepaliveTimeout'] as const;
const OPTS_I2 = optionMask('ResponderValidator', 'UlidPair', 'ForkedInstanceIdentifier', ...LOCATOR_OPTS);
const OPTS_R2 = optionMask(...LOCATOR_OPTS);
const OPTS_UPDATE = optionMask(...LOCATOR_OPTS);
const OPTS_NONE = 0;

/** Shared layout of `tag(6..11) | u32(12..15)` messages: R2, Update Request/Ack, Close, CloseAck. */
function tagNonce<N extends 'R2' | 'UpdateRequest' | 'UpdateAck' | 'Close' | 'CloseAck'>(
  name: N, allowed: number, nonceField: 'initiatorNonce' | 'requestNonce' | 'nonce',
): Layout<N> {
  return {
    name, code: MessageType[name], minHdrExtLen: MIN_HDR_EXT_LEN[name], allowed,
    fixedLength(m) {
      checkTag(`${name}.contextTag`, (m as { contextTag: number }).contextTag);
      checkUint(`${name}.${nonceField}`, (m as unknown as Record<string, number>)[nonceField]!, 0xffff_ffff);
      return 16;
    },
    decode: (b, end) => ({
      type: name, contextTag: readTag(b, 6), [nonceField]: readU32(b, 12), options: decodeOptions(b, 16, end, allowed),
    }) as unknown as Msg<N>,
    write(b, m) {
      writeTag(b, 6, (m as { contextTag: number }).contextTag);
      writeU32(b, 12, (m as unknown as Record<string, number>)[nonceField]!);
    },
  };
}

const I1: Layout<'I1'> = {
  name: 'I1', code: MessageType.I1, minHdrExtLen: MIN_HDR_EXT_LEN.I1, allowed: OPTS_I1,
  fixedLength(m) {
    checkTag('I1.contextTag', m.contextTag);
    checkUint('I1.initiatorNonce', m.initiatorNonce, 0xffff_ffff);
    return 16;
  },
  decode: (b, end) => ({ type: 'I1', contextTag: readTag(b, 6), initiatorNonce: readU32(b, 12), options: decodeOptions(b, 16, end, OPTS_I1) }),
  write(b, m) {
    writeTag(b, 6, m.contextTag);
    writeU32(b, 12, m.initiatorNonce);
  },
};

const R1: Layout<'R1'> = {
  name: 'R1', code: MessageType.R1, minHdrExtLen: MIN_HDR_EXT_LEN.R1, allowed: OPTS_R1,
  fixedLength(m) {
    checkUint('R1.initiatorNonce', m.initiatorNonce, 0xffff_ffff);
    checkUint('R1.responderNonce', m.responderNonce, 0xffff_ffff);
    return 16;
  },
  decode: (b, end) => ({ type: 'R1', initiatorNonce: readU32(b, 8), responderNonce: readU32(b, 12), options: decodeOptions(b, 16, end, OPTS_R1) }),
  write(b, m) {
    writeU32(b, 8, m.initiatorNonce);
    writeU32(b, 12, m.responderNonce);
  },
};

const I2: Layout<'I2'> = {
  name: 'I2', code: MessageType.I2, minHdrExtLen: MIN_HDR_EXT_LEN.I2, allowed: OPTS_I2,
  fixedLength(m) {
    checkTag('I2.contextTag', m.contextTag);
    checkUint('I2.initiatorNonce', m.initiatorNonce, 0xffff_ffff);
    checkUint('I2.responderNonce', m.responderNonce, 0xffff_ffff);
    return 24;
  },
  decode: (b, end) => ({
    type: 'I2', contextTag: readTag(b, 6), initiatorNonce: readU32(b, 12), responderNonce: readU32(b, 16),
    options: decodeOptions(b, 24, end, OPTS_I2),
  }),
  write(b, m) {
    writeTag(b, 6, m.contextTag);
    writeU32(b, 12, m.initiatorNonce);
    writeU32(b, 16, m.responderNonce);
  },
};

const R1bis: Layout<'R1bis'> = {
  name: 'R1bis', code: MessageType.R1bis, minHdrExtLen: MIN_HDR_EXT_LEN.R1bis, allowed: OPTS_R1,
  fixedLength(m) {
    checkTag('R1bis.packetContextTag', m.packetContextTag);
    checkUint('R1bis.responderNonce', m.responderNonce, 0xffff_ffff);
    return 16;
  },
  decode: (b, end) => ({ type: 'R1bis', packetContextTag: readTag(b, 6), responderNonce: readU32(b, 12), options: decodeOptions(b, 16, end, OPTS_R1) }),
  write(b, m) {
    writeTag(b, 6, m.packetContextTag);
    writeU32(b, 12, m.responderNonce);
  },
};

const I2bis: Layout<'I2bis'> = {
  name: 'I2bis', code: MessageType.I2bis, minHdrExtLen: MIN_HDR_EXT_LEN.I2bis, allowed: OPTS_I2,
  fixedLength(m) {
    checkTag('I2bis.contextTag', m.contextTag);
    checkUint('I2bis.initiatorNonce', m.initiatorNonce, 0xffff_ffff);
    checkUint('I2bis.responderNonce', m.responderNonce, 0xffff_ffff);
    checkTag('I2bis.packetContextTag', m.packetContextTag);
    return 32;
  },
  // Octets 20..25 are Reserved2 (49 bits with the R bit of the packet tag at 26).
  decode: (b, end) => ({
    type: 'I2bis', contextTag: readTag(b, 6), initiatorNonce: readU32(b, 12), responderNonce: readU32(b, 16),
    packetContextTag: readTag(b, 26), options: decodeOptions(b, 32, end, OPTS_I2),
  }),
  write(b, m) {
    writeTag(b, 6, m.contextTag);
    writeU32(b, 12, m.initiatorNonce);
    writeU32(b, 16, m.responderNonce);
    writeTag(b, 26, m.packetContextTag);
  },
};

const Keepalive: Layout<'Keepalive'> = {
  name: 'Keepalive', code: MessageType.Keepalive, minHdrExtLen: MIN_HDR_EXT_LEN.Keepalive, allowed: OPTS_NONE,
  fixedLength(m) {
    checkTag('Keepalive.contextTag', m.contextTag);
    return 16;
  },
  decode: (b, end) => ({ type: 'Keepalive', contextTag: readTag(b, 6), options: decodeOptions(b, 16, end, OPTS_NONE) }),
  write: (b, m) => writeTag(b, 6, m.contextTag),
};

/** RFC 5534 §5.2: octet 13, top two bits. */
const PROBE_STATES: readonly ProbeState[] = (Object.keys(ProbeStateCode) as ProbeState[]).sort((a, b) => ProbeStateCode[a] - ProbeStateCode[b]);
const PROBE_REPORTS_AT = 16;

function readReports(b: Uint8Array, off: number, n: number): ProbeReport[] {
  const out = new Array<ProbeReport>(n);
  for (let i = 0; i < n; i++, off += PROBE_REPORT_LENGTH) {
    out[i] = { source: formatIpv6(b, off), destination: formatIpv6(b, off + 16), nonce: readU32(b, off + 32), data: readU32(b, off + 36) };
  }
  return out;
}

function writeReports(b: Uint8Array, off: number, reports: readonly ProbeReport[]): number {
  for (const r of reports) {
    writeIpv6(b, off, r.source);
    writeIpv6(b, off + 16, r.destination);
    writeU32(b, off + 32, r.nonce);
    writeU32(b, off + 36, r.data);
    off += PROBE_REPORT_LENGTH;
  }
  return off;
}

function checkReports(field: string, reports: readonly ProbeReport[], min: number): void {
  if (!Array.isArray(reports) || reports.length < min || reports.length > PROBE_MAX_REPORTS) {
    throw new WireError('EFIELD', `${field}: needs ${min}..15 reports (4-bit count, RFC 5534 §5.2)`);
  }
  for (const r of reports) {
    checkUint(`${field}.nonce`, r.nonce, 0xffff_ffff);
    checkUint(`${field}.data`, r.data, 0xffff_ffff);
  }
}

const Probe: Layout<'Probe'> = {
  // 56 octets minimum: the header and the report of this probe (RFC 5534 §5.2, Psent >= 1).
  name: 'Probe', code: MessageType.Probe, minHdrExtLen: MIN_HDR_EXT_LEN.Probe, allowed: OPTS_NONE,
  fixedLength(m) {
    checkTag('Probe.contextTag', m.contextTag);
    if (!PROBE_STATES.includes(m.state)) throw new WireError('EFIELD', `Probe.state: ${JSON.stringify(m.state)} is not one of ${PROBE_STATES.join(', ')}`);
    checkReports('Probe.sent', m.sent, 1);
    checkReports('Probe.received', m.received, 0);
    return PROBE_REPORTS_AT + PROBE_REPORT_LENGTH * (m.sent.length + m.received.length);
  },
  decode(b, end) {
    const precvd = b[12]! >>> 4;
    const psent = b[12]! & 0x0f;
    const sta = b[13]! >>> 6;
    if (psent === 0) throw new WireError('EFIELD', 'Probe Psent is 0; the first sent report is the probe itself', 12);
    const state = PROBE_STATES[sta];
    if (state === undefined) throw new WireError('EFIELD', `Probe state ${sta} is not defined`, 13);
    const optStart = PROBE_REPORTS_AT + PROBE_REPORT_LENGTH * (psent + precvd);
    if (optStart > end) throw new WireError('ELENGTH', `Probe with ${psent}+${precvd} reports needs ${optStart} octets, header has ${end}`, 1);
    return {
      type: 'Probe', contextTag: readTag(b, 6), state,
      sent: readReports(b, PROBE_REPORTS_AT, psent),
      received: readReports(b, PROBE_REPORTS_AT + PROBE_REPORT_LENGTH * psent, precvd),
      options: decodeOptions(b, optStart, end, OPTS_NONE),
    };
  },
  write(b, m) {
    writeTag(b, 6, m.contextTag);
    b[12] = (m.received.length << 4) | m.sent.length;
    b[13] = ProbeStateCode[m.state] << 6;
    writeReports(b, writeReports(b, PROBE_REPORTS_AT, m.sent), m.received);
  },
};

const ErrorLayout: Layout<'Error'> = {
  // The packet in error fills the header after octet 8, padded with zeros to 8 (RFC 5533 §5.14).
  name: 'Error', code: MessageType.Error, minHdrExtLen: MIN_HDR_EXT_LEN.Error, allowed: OPTS_NONE,
  fixedLength(m) {
    checkUint('Error.errorCode', m.errorCode, 0x7f);
    checkUint('Error.pointer', m.pointer, 0xffff);
    if (!(m.offendingPacket instanceof Uint8Array)) throw new WireError('EFIELD', 'Error.offendingPacket: not bytes');
    if (m.options.length !== 0) throw new WireError('EFIELD', 'Error.options: an Error message carries no options');
    return 8 + Math.max(8, (m.offendingPacket.length + 7) & ~7);
  },
  decode: (b, end) => ({
    type: 'Error', errorCode: b[3]! >>> 1, pointer: readU16(b, 6), offendingPacket: copyBytes(b, 8, end), options: [],
  }),
  write(b, m) {
    b[3] = m.errorCode << 1;
    writeU16(b, 6, m.pointer);
    b.set(m.offendingPacket, 8);
  },
};

const LAYOUTS = [
  I1, R1, I2, tagNonce('R2', OPTS_R2, 'initiatorNonce'), R1bis, I2bis,
  tagNonce('UpdateRequest', OPTS_UPDATE, 'requestNonce'), tagNonce('UpdateAck', OPTS_NONE, 'requestNonce'),
  Keepalive, Probe, ErrorLayout,
  tagNonce('Close', OPTS_NONE, 'nonce'), tagNonce('CloseAck', OPTS_NONE, 'nonce'),
] as const;

/** Layout by wire type code (sparse, codes < 128). */
const BY_CODE: (Layout<Shim6MessageName> | undefined)[] = new Array(128).fill(undefined);
const BY_NAME = new Map<string, Layout<Shim6MessageName>>();
for (const l of LAYOUTS as readonly Layout<Shim6MessageName>[]) {
  BY_CODE[l.code] = l;
  BY_NAME.set(l.name, l);
}

/** The message name of a wire type code, if this implementation knows it. */
export function messageName(code: number): Shim6MessageName | undefined {
  return BY_CODE[code]?.name;
}

/**
 * Decode one Shim6 control message from `bytes` (starting at the Next Header
 * octet). Octets after the header (Hdr Ext Len) are ignored: with Next Header 59
 * nothing follows. Throws only WireError.
 */
export function decodeMessage(bytes: Uint8Array): Shim6Message {
  const n = bytes.length;
  if (n < 8) throw new WireError('ETRUNCATED', `a Shim6 header needs at least 8 octets, got ${n}`, 0);
  const pType = bytes[Hdr.P_TYPE]!;
  if ((pType & P_BIT) !== 0) throw new WireError('ETYPE', 'P bit set: a payload extension header, not a control message', Hdr.P_TYPE);
  const end = headerLength(bytes[Hdr.HDR_EXT_LEN]!);
  if (end > n) throw new WireError('ETRUNCATED', `Hdr Ext Len says ${end} octets, input has ${n}`, Hdr.HDR_EXT_LEN);
  if (shim6Checksum(bytes, end) !== 0) throw new WireError('ECHECKSUM', 'Shim6 checksum does not verify', Hdr.CHECKSUM);
  if ((bytes[Hdr.TYPE_SPECIFIC_S]! & S_BIT) !== 0) throw new WireError('ETYPE', 'S bit set: a HIP packet, not Shim6', Hdr.TYPE_SPECIFIC_S);
  const layout = BY_CODE[pType];
  if (layout === undefined) throw new WireError('ETYPE', `unknown Shim6 message type ${pType}`, Hdr.P_TYPE);
  if (bytes[Hdr.HDR_EXT_LEN]! < layout.minHdrExtLen) {
    throw new WireError('ELENGTH', `${layout.name} needs Hdr Ext Len >= ${layout.minHdrExtLen}, got ${bytes[Hdr.HDR_EXT_LEN]}`, Hdr.HDR_EXT_LEN);
  }
  return layout.decode(bytes, end);
}

/** `decodeMessage` as a result value: never throws for malformed bytes. */
export function tryDecodeMessage(bytes: Uint8Array): { ok: true; message: Shim6Message } | { ok: false; error: WireError } {
  try {
    return { ok: true, message: decodeMessage(bytes) };
  } catch (error) {
    if (error instanceof WireError) return { ok: false, error };
    throw error;
  }
}

function layoutOf(msg: Shim6Message): Layout<Shim6MessageName> {
  const layout = BY_NAME.get((msg as { type: unknown }).type as string);
  if (layout === undefined) throw new WireError('ETYPE', `unknown message type ${JSON.stringify((msg as { type: unknown }).type)}`);
  if (!Array.isArray(msg.options)) throw new WireError('EFIELD', `${msg.type}.options: not an array`);
  return layout;
}

function lengths(msg: Shim6Message): { layout: Layout<Shim6MessageName>; fixed: number; total: number } {
  const layout = layoutOf(msg);
  const fixed = layout.fixedLength(msg);
  const total = fixed + optionsLength(msg.options, layout.allowed, msg.type);
  if (total > MAX_HEADER_LENGTH) throw new WireError('ELENGTH', `${msg.type} would be ${total} octets; a Shim6 header holds at most ${MAX_HEADER_LENGTH}`);
  return { layout, fixed, total };
}

/** Octets `encodeMessage(msg)` produces (validates the message like encodeMessage). */
export function encodingLength(msg: Shim6Message): number {
  return lengths(msg).total;
}

/**
 * Encode a control message: Next Header 59, Hdr Ext Len, type, fields, options
 * (padded), checksum. Throws WireError (EFIELD / ETYPE / ELENGTH) naming
 * the field when a value does not fit the format.
 */
export function encodeMessage(msg: Shim6Message): Uint8Array {
  const { layout, fixed, total } = lengths(msg);
  const b = new Uint8Array(total);
  b[Hdr.NEXT_HEADER] = IPPROTO_NONE;
  b[Hdr.HDR_EXT_LEN] = (total >>> 3) - 1;
  b[Hdr.P_TYPE] = layout.code;
  layout.write(b, msg);
  writeOptions(b, fixed, msg.options as Shim6Option[]);
  writeU16(b, Hdr.CHECKSUM, shim6Checksum(b, total));
  return b;
}

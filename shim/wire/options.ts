/**
 * Shim6 options (RFC 5533 §5.15, RFC 5534 §5.3): `Type(15) | C(1) | Length(16) |
 * contents | padding to 8`. Decoding goes through one table keyed by option type;
 * the caller passes the set of options its message type allows. Unknown or
 * not-allowed options are kept as `Unknown` when C = 0 and rejected with
 * ECRITICAL_OPTION when C = 1. After each option the decoded contents must
 * re-encode to exactly the declared Length (consumed = declared).
 * Knows nothing about message layouts.
 */
import { OptionType } from '../constants.ts';
import { WireError } from './errors.ts';
import { checkUint, copyBytes, readU16, readU32, writeU16, writeU32 } from './header.ts';
import { formatIpv6, writeIpv6 } from './ipv6.ts';
import type { LocatorPreference, Shim6Option, Shim6OptionName } from './messages.ts';

/** Codec of one known option's contents (without the 4-octet option header and padding). */
interface OptionCodec {
  readonly code: number;
  readonly name: Exclude<Shim6OptionName, 'Unknown'>;
  /** Decode `len` content octets at `off`; must not read beyond off+len (checks its own length first). */
  decode(b: Uint8Array, off: number, len: number, critical: boolean): Shim6Option;
  /** Length of the contents (the option's Length field); validates the fields. */
  length(o: Shim6Option): number;
  /** Write the contents at `off` (the buffer is zeroed). */
  write(b: Uint8Array, off: number, o: Shim6Option): void;
}

/** RFC 5533 §5.15: total octets of an option with contents `len`, padded to 8. */
export function paddedOptionLength(len: number): number {
  return (len + 11) & ~7;
}

function bad(what: string, off: number): WireError {
  return new WireError('EOPTION', what, off);
}

function bytesField(o: Shim6Option, field: string): Uint8Array {
  const v = (o as unknown as Record<string, unknown>)[field];
  if (!(v instanceof Uint8Array)) throw new WireError('EFIELD', `${o.type}.${field}: not bytes`);
  return v;
}

// Opaque options: the contents are the bytes. Written out one by one so that every
// decoded object has the same shape (no computed keys) on the hot path.
const responderValidator: OptionCodec = {
  code: OptionType.ResponderValidator, name: 'ResponderValidator',
  decode: (b, off, len, critical) => ({ type: 'ResponderValidator', critical, validator: copyBytes(b, off, off + len) }),
  length: (o) => bytesField(o, 'validator').length,
  write: (b, off, o) => b.set((o as Extract<Shim6Option, { type: 'ResponderValidator' }>).validator, off),
};

const cgaParameterDataStructure: OptionCodec = {
  code: OptionType.CgaParameterDataStructure, name: 'CgaParameterDataStructure',
  decode: (b, off, len, critical) => ({ type: 'CgaParameterDataStructure', critical, pds: copyBytes(b, off, off + len) }),
  length: (o) => bytesField(o, 'pds').length,
  write: (b, off, o) => b.set((o as Extract<Shim6Option, { type: 'CgaParameterDataStructure' }>).pds, off),
};

const cgaSignature: OptionCodec = {
  code: OptionType.CgaSignature, name: 'CgaSignature',
  decode: (b, off, len, critical) => ({ type: 'CgaSignature', critical, signature: copyBytes(b, off, off + len) }),
  length: (o) => bytesField(o, 'signature').length,
  write: (b, off, o) => b.set((o as Extract<Shim6Option, { type: 'CgaSignature' }>).signature, off),
};

/** RFC 5533 §5.15.2: padding after the verification methods so the locators start 8-aligned (option-relative). */
function locatorPad(n: number): number {
  return (8 - ((9 + n) & 7)) & 7;
}

const locatorList: OptionCodec = {
  code: OptionType.LocatorList, name: 'LocatorList',
  decode(b, off, len, critical) {
    if (len < 5) throw bad(`Locator List Length ${len} < 5`, off);
    const n = b[off + 4]!;
    const locStart = off + 5 + n + locatorPad(n);
    if (len !== locStart - off + 16 * n) throw bad(`Locator List Length ${len} does not match ${n} locators`, off);
    const locators = new Array<{ address: string; verificationMethod: number }>(n);
    for (let i = 0; i < n; i++) {
      locators[i] = { address: formatIpv6(b, locStart + 16 * i), verificationMethod: b[off + 5 + i]! };
    }
    return { type: 'LocatorList', critical, generation: readU32(b, off), locators };
  },
  length(o) {
    const l = o as Extract<Shim6Option, { type: 'LocatorList' }>;
    checkUint('LocatorList.generation', l.generation, 0xffff_ffff);
    const n = l.locators.length;
    checkUint('LocatorList.locators.length', n, 0xff);
    for (const e of l.locators) checkUint('LocatorList.verificationMethod', e.verificationMethod, 0xff);
    return 5 + n + locatorPad(n) + 16 * n;
  },
  write(b, off, o) {
    const l = o as Extract<Shim6Option, { type: 'LocatorList' }>;
    const n = l.locators.length;
    writeU32(b, off, l.generation);
    b[off + 4] = n;
    const locStart = off + 5 + n + locatorPad(n);
    for (let i = 0; i < n; i++) {
      const e = l.locators[i]!;
      b[off + 5 + i] = e.verificationMethod;
      writeIpv6(b, locStart + 16 * i, e.address);
    }
  },
};

const locatorPreferences: OptionCodec = {
  code: OptionType.LocatorPreferences, name: 'LocatorPreferences',
  decode(b, off, len, critical) {
    if (len < 5) throw bad(`Locator Preferences Length ${len} < 5`, off);
    const el = b[off + 4]!;
    if (el === 0 || (len - 5) % el !== 0) throw bad(`Locator Preferences Length ${len} is not 5 + a multiple of element length ${el}`, off);
    const n = (len - 5) / el;
    const elements = new Array<LocatorPreference>(n);
    for (let i = 0, p = off + 5; i < n; i++, p += el) {
      const e: LocatorPreference = { flags: b[p]! };
      if (el >= 2) e.priority = b[p + 1]!;
      if (el >= 3) e.weight = b[p + 2]!;
      if (el > 3) e.extra = copyBytes(b, p + 3, p + el);
      elements[i] = e;
    }
    return { type: 'LocatorPreferences', critical, generation: readU32(b, off), elementLength: el, elements };
  },
  length(o) {
    const l = o as Extract<Shim6Option, { type: 'LocatorPreferences' }>;
    checkUint('LocatorPreferences.generation', l.generation, 0xffff_ffff);
    const el = l.elementLength;
    if (!Number.isInteger(el) || el < 1 || el > 0xff) throw new WireError('EFIELD', `LocatorPreferences.elementLength: ${String(el)} is not in 1..255`);
    for (const e of l.elements) checkPreference(e, el);
    return 5 + el * l.elements.length;
  },
  write(b, off, o) {
    const l = o as Extract<Shim6Option, { type: 'LocatorPreferences' }>;
    writeU32(b, off, l.generation);
    b[off + 4] = l.elementLength;
    let p = off + 5;
    for (const e of l.elements) {
      b[p] = e.flags;
      if (e.priority !== undefined) b[p + 1] = e.priority;
      if (e.weight !== undefined) b[p + 2] = e.weight;
      if (e.extra !== undefined) b.set(e.extra, p + 3);
      p += l.elementLength;
    }
  },
};

/** An element must carry exactly the fields its element length implies (RFC 5533 §5.15.3). */
function checkPreference(e: LocatorPreference, el: number): void {
  checkUint('LocatorPreferences.flags', e.flags, 0xff);
  if ((e.priority !== undefined) !== (el >= 2)) throw preferenceShape(el, 'priority');
  if (e.priority !== undefined) checkUint('LocatorPreferences.priority', e.priority, 0xff);
  if ((e.weight !== undefined) !== (el >= 3)) throw preferenceShape(el, 'weight');
  if (e.weight !== undefined) checkUint('LocatorPreferences.weight', e.weight, 0xff);
  const extraLen = el > 3 ? el - 3 : 0;
  if (extraLen === 0 ? e.extra !== undefined : !(e.extra instanceof Uint8Array) || e.extra.length !== extraLen) {
    throw new WireError('EFIELD', `LocatorPreferences: element length ${el} needs extra of ${extraLen} octets`);
  }
}

function preferenceShape(el: number, field: string): WireError {
  return new WireError('EFIELD', `LocatorPreferences: element length ${el} ${el >= 2 ? 'requires' : 'forbids'} ${field}`);
}

const ulidPair: OptionCodec = {
  code: OptionType.UlidPair, name: 'UlidPair',
  decode(b, off, len, critical) {
    if (len !== 36) throw bad(`ULID Pair Length must be 36, got ${len}`, off);
    return { type: 'UlidPair', critical, senderUlid: formatIpv6(b, off + 4), receiverUlid: formatIpv6(b, off + 20) };
  },
  length: () => 36,
  write(b, off, o) {
    const u = o as Extract<Shim6Option, { type: 'UlidPair' }>;
    writeIpv6(b, off + 4, u.senderUlid);
    writeIpv6(b, off + 20, u.receiverUlid);
  },
};

const forkedInstanceIdentifier: OptionCodec = {
  code: OptionType.ForkedInstanceIdentifier, name: 'ForkedInstanceIdentifier',
  decode(b, off, len, critical) {
    if (len !== 4) throw bad(`Forked Instance Identifier Length must be 4, got ${len}`, off);
    return { type: 'ForkedInstanceIdentifier', critical, forkedInstanceId: readU32(b, off) };
  },
  length(o) {
    checkUint('ForkedInstanceIdentifier.forkedInstanceId', (o as Extract<Shim6Option, { type: 'ForkedInstanceIdentifier' }>).forkedInstanceId, 0xffff_ffff);
    return 4;
  },
  write: (b, off, o) => writeU32(b, off, (o as Extract<Shim6Option, { type: 'ForkedInstanceIdentifier' }>).forkedInstanceId),
};

const keepaliveTimeout: OptionCodec = {
  code: OptionType.KeepaliveTimeout, name: 'KeepaliveTimeout',
  decode(b, off, len, critical) {
    if (len !== 4) throw bad(`Keepalive Timeout Length must be 4, got ${len}`, off);
    return { type: 'KeepaliveTimeout', critical, timeoutSeconds: readU16(b, off + 2) };
  },
  length(o) {
    checkUint('KeepaliveTimeout.timeoutSeconds', (o as Extract<Shim6Option, { type: 'KeepaliveTimeout' }>).timeoutSeconds, 0xffff);
    return 4;
  },
  write: (b, off, o) => writeU16(b, off + 2, (o as Extract<Shim6Option, { type: 'KeepaliveTimeout' }>).timeoutSeconds),
};

const CODECS: readonly OptionCodec[] = [
  responderValidator,
  locatorList,
  locatorPreferences,
  cgaParameterDataStructure,
  cgaSignature,
  ulidPair,
  forkedInstanceIdentifier,
  keepaliveTimeout,
];

/** Option codecs by wire type (sparse array: types are small). */
const BY_CODE: (OptionCodec | undefined)[] = [];
const BY_NAME = new Map<Shim6OptionName, OptionCodec>();
for (const c of CODECS) {
  BY_CODE[c.code] = c;
  BY_NAME.set(c.name, c);
}

/** A set of allowed option types as a bit mask (all known types are < 31). */
export function optionMask(...names: Exclude<Shim6OptionName, 'Unknown'>[]): number {
  let m = 0;
  for (const n of names) m |= 1 << BY_NAME.get(n)!.code;
  return m;
}

/**
 * Decode the options in [start, end) of a header whose length was checked on entry.
 * `allowed` is the message type's option mask.
 */
export function decodeOptions(b: Uint8Array, start: number, end: number, allowed: number): Shim6Option[] {
  if (start === end) return [];
  const out: Shim6Option[] = [];
  let off = start;
  while (off < end) {
    if (end - off < 4) throw bad('truncated option header', off);
    const tc = readU16(b, off);
    const code = tc >>> 1;
    const critical = (tc & 1) === 1;
    const len = readU16(b, off + 2);
    const total = paddedOptionLength(len);
    if (total > end - off) throw bad(`option ${code} Length ${len} runs past the header`, off);
    const codec = code < 31 && (allowed & (1 << code)) !== 0 ? BY_CODE[code] : undefined;
    if (codec !== undefined) {
      const o = codec.decode(b, off + 4, len, critical);
      if (codec.length(o) !== len) throw bad(`option ${codec.name}: contents do not fill Length ${len}`, off);
      out.push(o);
    } else if (critical) {
      throw new WireError('ECRITICAL_OPTION', `critical option ${code} is unknown or not allowed here`, off, code);
    } else {
      out.push({ type: 'Unknown', critical, optionType: code, data: copyBytes(b, off + 4, off + 4 + len) });
    }
    off += total;
  }
  return out;
}

/** Contents length of one option; validates its fields and that the message type allows it. */
function contentLength(o: Shim6Option, allowed: number, msgName: string): number {
  if (typeof o.critical !== 'boolean') throw new WireError('EFIELD', `${msgName}.options: ${String(o.type)}.critical must be true or false`);
  if (o.type === 'Unknown') {
    checkUint('Unknown.optionType', o.optionType, 0x7fff);
    return bytesField(o, 'data').length;
  }
  const codec = BY_NAME.get(o.type);
  if (codec === undefined) throw new WireError('EFIELD', `options: unknown option type ${JSON.stringify((o as { type: unknown }).type)}`);
  if ((allowed & (1 << codec.code)) === 0) throw new WireError('EFIELD', `options: ${o.type} is not allowed in ${msgName} (RFC 5533 §5)`);
  return codec.length(o);
}

/** Total encoded octets of `options`, padded (validates them). */
export function optionsLength(options: readonly Shim6Option[], allowed: number, msgName: string): number {
  let n = 0;
  for (const o of options) n += paddedOptionLength(contentLength(o, allowed, msgName));
  return n;
}

/** Write `options` at `off` of a zeroed buffer sized by optionsLength; returns the end offset. */
export function writeOptions(b: Uint8Array, off: number, options: readonly Shim6Option[]): number {
  for (const o of options) {
    const code = o.type === 'Unknown' ? o.optionType : BY_NAME.get(o.type)!.code;
    const len = o.type === 'Unknown' ? o.data.length : BY_NAME.get(o.type)!.length(o);
    writeU16(b, off, (code << 1) | (o.critical ? 1 : 0));
    writeU16(b, off + 2, len);
    if (o.type === 'Unknown') b.set(o.data, off + 4);
    else BY_NAME.get(o.type)!.write(b, off + 4, o);
    off += paddedOptionLength(len);
  }
  return off;
}

/**
 * The JSON form of decoded Shim6 values, for the CLI and for debugging: the same
 * objects as messages.ts with every Uint8Array written as a lowercase hex string.
 * `messageFromJson` turns it back (hex → bytes) and leaves field validation to the
 * encoder, which names the bad field. Knows no offsets.
 */
import { WireError } from './errors.ts';
import type { Shim6Message } from './messages.ts';

/** Fields that hold bytes (hex strings in JSON). `data` is also a number in a ProbeReport: only strings are converted. */
const BYTE_FIELDS = new Set(['validator', 'pds', 'signature', 'data', 'extra', 'offendingPacket']);

/** Bytes as lowercase hex. */
export function toHex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/**
 * Hex text to bytes. Accepts an optional 0x prefix and whitespace or colons
 * between octets; anything else is WireError('ESYNTAX') naming `field`.
 */
export function fromHex(text: unknown, field = 'hex'): Uint8Array {
  if (typeof text !== 'string') throw new WireError('ESYNTAX', `${field}: expected a hex string, got ${JSON.stringify(text)}`);
  const clean = text.replace(/^0x/i, '').replace(/[\s:]/g, '');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(clean)) {
    throw new WireError('ESYNTAX', `${field}: ${JSON.stringify(text.length > 40 ? text.slice(0, 40) + '…' : text)} is not an even number of hex digits`);
  }
  return new Uint8Array(Buffer.from(clean, 'hex'));
}

/** A JSON-able copy of any decoded wire value (Uint8Array → hex). */
export function toJson(value: unknown): unknown {
  if (value instanceof Uint8Array) return toHex(value);
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = toJson(v);
    return out;
  }
  return value;
}

/** Turn hex strings of the named byte fields back into bytes, recursively; `path` names fields in errors. */
function revive(value: unknown, path: string, byteFields: ReadonlySet<string>): unknown {
  if (Array.isArray(value)) return value.map((v, i) => revive(v, `${path}[${i}]`, byteFields));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      const p = path === '' ? k : `${path}.${k}`;
      out[k] = byteFields.has(k) && typeof v === 'string' ? fromHex(v, p) : revive(v, p, byteFields);
    }
    return out;
  }
  return value;
}

/**
 * Parse JSON text (or take an object) and turn the hex strings of `byteFields`
 * into bytes: the JSON form of any wire value whose byte fields are known.
 */
export function fromJson(json: unknown, byteFields: Iterable<string>): unknown {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json) as unknown;
    } catch (e) {
      throw new WireError('ESYNTAX', `not JSON: ${(e as Error).message}`);
    }
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new WireError('ESYNTAX', 'expected a JSON object');
  }
  return revive(value, '', new Set(byteFields));
}

/**
 * A message from its JSON form (an object or JSON text). The result is shaped like
 * a Shim6Message; the encoder validates every field.
 */
export function messageFromJson(json: unknown): Shim6Message {
  return fromJson(json, BYTE_FIELDS) as Shim6Message;
}

/**
 * Text forms of the capability record (docs/capability-record.md):
 *
 * - the presentation form people read and write (zone tools, `shim6 decode --record`):
 *     v1 [hba] [cga] ulid=<ipv6> loc=<ipv6>[/prio=N][/weight=N][/flags=F] …
 *        [mandatory=<key>,…] [hba-digest=sha256:<hex>|alg<N>:<hex>] [port=N] [key<N>=<hex>]…
 *   `format` writes one canonical spelling (prio and weight always, flags when
 *   non-zero, parameters in key order); `parse` reads it back exactly, and also
 *   accepts parameters in any order, missing prio/weight/flags (0) and upper-case hex.
 *   F is `broken`, `transient` and/or `0x..` joined by `+`. Keys are named
 *   `mandatory`, `hba-digest`, `port`, or `key<N>` for N ≥ 3.
 * - the TXT fallback `v=shim6cap1 b64=<base64 RDATA>` (split into ≤ 255-octet strings);
 * - RFC 3597 generic RDATA `\# <len> <hex>`.
 *
 * Every parser throws only WireError: 'ESYNTAX' naming the token (offset = its
 * character index), or the binary decoder's errors for the bytes inside.
 * Must not know: DNS messages, zone files, owner names.
 */
import { WireError } from './errors.ts';
import { formatIpv6, parseIpv6 } from './ipv6.ts';
import {
  decodeCapabilityRecord, encodeCapabilityRecord, recordProblem, IgnoredCapabilityRecord,
  type CapabilityLocator, type CapabilityRecord, type DecodeRecordOptions,
} from './capability-record-codec.ts';
import { CAPABILITY_TXT_TAG, CapabilityParamKey, HBA_DIGEST_ALG_SHA256, LocatorFlag } from '../constants.ts';

const KEY_NAMES: ReadonlyMap<number, string> = new Map([
  [CapabilityParamKey.MANDATORY, 'mandatory'], [CapabilityParamKey.HBA_DIGEST, 'hba-digest'], [CapabilityParamKey.PORT, 'port'],
]);
const FLAG_NAMES: readonly [number, string][] = [[LocatorFlag.BROKEN, 'broken'], [LocatorFlag.TRANSIENT, 'transient']];

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.length).toString('hex');
const keyName = (k: number): string => KEY_NAMES.get(k) ?? `key${k}`;

/** The canonical presentation form of a record. */
export function formatCapabilityRecord(r: CapabilityRecord): string {
  const out = ['v1'];
  if (r.hbaSet) out.push('hba');
  if (r.cgaUlid) out.push('cga');
  out.push(`ulid=${formatIpv6(parseIpv6(r.ulid))}`);
  for (const l of r.locators) {
    let t = `loc=${formatIpv6(parseIpv6(l.address))}/prio=${l.priority}/weight=${l.weight}`;
    if (l.flags !== 0) t += `/flags=${formatFlags(l.flags)}`;
    out.push(t);
  }
  if (r.mandatory.length > 0) out.push(`mandatory=${r.mandatory.map(keyName).join(',')}`);
  if (r.hbaDigest) {
    const alg = r.hbaDigest.alg === HBA_DIGEST_ALG_SHA256 ? 'sha256' : `alg${r.hbaDigest.alg}`;
    out.push(`hba-digest=${alg}:${hex(r.hbaDigest.digest)}`);
  }
  if (r.port !== undefined) out.push(`port=${r.port}`);
  for (const p of r.unknownParams) out.push(`key${p.key}=${hex(p.value)}`);
  return out.join(' ');
}

function formatFlags(flags: number): string {
  const parts: string[] = [];
  let rest = flags;
  for (const [bit, name] of FLAG_NAMES) if (flags & bit) { parts.push(name); rest &= ~bit; }
  if (rest !== 0) parts.push(`0x${rest.toString(16).padStart(2, '0')}`);
  return parts.join('+');
}

interface Token { text: string; at: number }

/** A token as an error quotes it: at most 64 characters of it (a token may be a whole hostile line). */
function quoted(text: string): string {
  return text.length <= 64 ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, 64))}… (${text.length} characters)`;
}

function syntax(tok: Token, why: string): WireError {
  return new WireError('ESYNTAX', `capability record: ${why}: ${quoted(tok.text)}`, tok.at);
}

/** Parse the presentation form. Throws only WireError('ESYNTAX'). */
export function parseCapabilityRecord(text: string): CapabilityRecord {
  const tokens: Token[] = [...String(text).matchAll(/\S+/g)].map((m) => ({ text: m[0], at: m.index ?? 0 }));
  const first = tokens[0];
  if (first === undefined) throw new WireError('ESYNTAX', 'capability record: empty text', 0);
  if (first.text !== 'v1') throw syntax(first, 'must start with "v1"');
  const r: CapabilityRecord = { hbaSet: false, cgaUlid: false, ulid: '', locators: [], mandatory: [], unknownParams: [] };
  const seen = new Set<string>();
  for (const tok of tokens.slice(1)) {
    const eq = tok.text.indexOf('=');
    const name = eq < 0 ? tok.text : tok.text.slice(0, eq);
    const value = eq < 0 ? undefined : tok.text.slice(eq + 1);
    if (name !== 'loc' && seen.has(name)) throw syntax(tok, `"${name}" given twice`);
    seen.add(name);
    if (name === 'hba' || name === 'cga') {
      if (value !== undefined) throw syntax(tok, `"${name}" takes no value`);
      if (name === 'hba') r.hbaSet = true; else r.cgaUlid = true;
      continue;
    }
    if (value === undefined) throw syntax(tok, 'expected name=value');
    parseItem(r, name, value, tok);
  }
  if (r.ulid === '') throw new WireError('ESYNTAX', 'capability record: "ulid=" is missing', text.length);
  if (r.locators.length === 0) throw new WireError('ESYNTAX', 'capability record: no "loc=" given', text.length);
  r.unknownParams.sort((a, b) => a.key - b.key);
  const problem = recordProblem(r);
  if (problem) throw new WireError('ESYNTAX', `capability record ${problem.field}: ${problem.why}`, 0);
  return r;
}

function parseItem(r: CapabilityRecord, name: string, value: string, tok: Token): void {
  switch (name) {
    case 'ulid': r.ulid = address(value, tok); return;
    case 'loc': r.locators.push(parseLocator(value, tok)); return;
    case 'mandatory': r.mandatory = parseMandatory(value, tok); return;
    case 'hba-digest': {
      const m = /^(sha256|alg([1-9]\d{0,2})):((?:[0-9a-fA-F]{2})+)$/.exec(value);
      const alg = m === null ? NaN : m[1] === 'sha256' ? HBA_DIGEST_ALG_SHA256 : Number(m[2]);
      if (m === null || alg > 255) throw syntax(tok, 'hba-digest wants sha256:<hex> or alg<N>:<hex>');
      r.hbaDigest = { alg, digest: Uint8Array.from(Buffer.from(m[3]!, 'hex')) };
      return;
    }
    case 'port': r.port = decimal(value, 65535, tok); return;
  }
  const k = /^key(0|[1-9]\d{0,4})$/.exec(name);
  if (k === null) throw syntax(tok, 'unknown item');
  const key = Number(k[1]);
  if (key > 0xffff || KEY_NAMES.has(key)) throw syntax(tok, KEY_NAMES.has(key) ? `use "${KEY_NAMES.get(key)}="` : 'key above 65535');
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(value)) throw syntax(tok, 'value must be hex octets');
  r.unknownParams.push({ key, value: Uint8Array.from(Buffer.from(value, 'hex')) });
}

function parseLocator(value: string, tok: Token): CapabilityLocator {
  const [addr, ...attrs] = value.split('/');
  const loc: CapabilityLocator = { address: address(addr ?? '', tok), flags: 0, priority: 0, weight: 0 };
  const given = new Set<string>();
  for (const a of attrs) {
    const eq = a.indexOf('=');
    const k = a.slice(0, eq < 0 ? a.length : eq);
    const v = a.slice(eq + 1);
    if (eq < 0 || given.has(k)) throw syntax(tok, eq < 0 ? `locator attribute "${a}" needs a value` : `locator attribute "${k}" given twice`);
    given.add(k);
    if (k === 'prio') loc.priority = decimal(v, 255, tok);
    else if (k === 'weight') loc.weight = decimal(v, 255, tok);
    else if (k === 'flags') loc.flags = parseFlags(v, tok);
    else throw syntax(tok, `unknown locator attribute "${k}"`);
  }
  return loc;
}

function parseFlags(v: string, tok: Token): number {
  let flags = 0;
  for (const part of v.split('+')) {
    const named = FLAG_NAMES.find(([, n]) => n === part);
    if (named) flags |= named[0];
    else if (/^0x[0-9a-fA-F]{1,2}$/.test(part)) flags |= parseInt(part.slice(2), 16);
    else throw syntax(tok, `unknown locator flag "${part}"`);
  }
  return flags;
}

function parseMandatory(v: string, tok: Token): number[] {
  const keys = v.split(',').map((n) => {
    const known = [...KEY_NAMES].find(([, name]) => name === n);
    if (known) return known[0];
    const m = /^key(0|[1-9]\d{0,4})$/.exec(n);
    if (m === null || Number(m[1]) > 0xffff) throw syntax(tok, `unknown key "${n}" in mandatory`);
    return Number(m[1]);
  });
  keys.sort((a, b) => a - b);
  if (keys.some((k, i) => i > 0 && k === keys[i - 1])) throw syntax(tok, 'a key is listed twice in mandatory');
  return keys;
}

function decimal(v: string, max: number, tok: Token): number {
  if (!/^(0|[1-9]\d{0,5})$/.test(v) || Number(v) > max) throw syntax(tok, `expected a number 0..${max}, got "${v}"`);
  return Number(v);
}

function address(v: string, tok: Token): string {
  try { return formatIpv6(parseIpv6(v)); } catch { throw syntax(tok, `"${v}" is not an IPv6 address`); }
}

/** The TXT fallback's text: `v=shim6cap1 b64=<base64 RDATA>` (one logical string; see splitTxt). */
export function encodeCapabilityTxt(r: CapabilityRecord | Uint8Array): string {
  const rdata = r instanceof Uint8Array ? r : encodeCapabilityRecord(r);
  return `${CAPABILITY_TXT_TAG} b64=${Buffer.from(rdata.buffer, rdata.byteOffset, rdata.length).toString('base64')}`;
}

/** Split a TXT text into character-strings of at most 255 octets (readers concatenate them). */
export function splitTxt(text: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += 255) out.push(text.slice(i, i + 255));
  return out.length > 0 ? out : [''];
}

/**
 * The RDATA inside a TXT fallback. `txt` is the logical text or the RR's
 * character-strings (joined with nothing between them). Throws WireError:
 * 'ESYNTAX' for text that is not ours; IgnoredCapabilityRecord
 * ('UNSUPPORTED_VERSION') for `v=shim6capN`, N ≠ 1. Unknown `k=v` tokens are skipped.
 */
export function capabilityTxtRdata(txt: string | readonly (string | Uint8Array)[]): Uint8Array {
  const text = typeof txt === 'string' ? txt
    : txt.map((s) => (typeof s === 'string' ? s : Buffer.from(s.buffer, s.byteOffset, s.length).toString('latin1'))).join('');
  const tokens: Token[] = [...text.matchAll(/\S+/g)].map((m) => ({ text: m[0], at: m.index ?? 0 }));
  const first = tokens[0];
  if (first === undefined) throw new WireError('ESYNTAX', 'capability TXT: empty', 0);
  if (first.text !== CAPABILITY_TXT_TAG) {
    const v = /^v=shim6cap(\d{1,3})$/.exec(first.text);
    if (v !== null) throw new IgnoredCapabilityRecord('UNSUPPORTED_VERSION', Math.min(Number(v[1]), 255), first.at);
    throw syntax(first, `TXT must start with "${CAPABILITY_TXT_TAG}"`);
  }
  let b64: Token | undefined;
  for (const tok of tokens.slice(1)) {
    if (!tok.text.startsWith('b64=')) {
      if (!/^[a-z0-9-]+=/.test(tok.text)) throw syntax(tok, 'expected key=value');
      continue;
    }
    if (b64 !== undefined) throw syntax(tok, '"b64=" given twice');
    b64 = tok;
  }
  if (b64 === undefined) throw new WireError('ESYNTAX', 'capability TXT: "b64=" is missing', text.length);
  const data = b64.text.slice(4);
  if (data.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(data)) throw syntax(b64, 'not base64');
  const bytes = Buffer.from(data, 'base64');
  if (bytes.toString('base64') !== data) throw syntax(b64, 'not canonical base64');
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Decode the TXT fallback into a record (capabilityTxtRdata, then decodeCapabilityRecord). */
export function decodeCapabilityTxt(txt: string | readonly (string | Uint8Array)[], opts: DecodeRecordOptions = {}): CapabilityRecord {
  return decodeCapabilityRecord(capabilityTxtRdata(txt), opts);
}

/** RFC 3597 §5 generic RDATA: `\# <len> <hex>` (`\# 0` when empty). */
export function toGenericRdata(rdata: Uint8Array): string {
  return rdata.length === 0 ? '\\# 0' : `\\# ${rdata.length} ${hex(rdata)}`;
}

/** Parse RFC 3597 generic RDATA; the hex may be split into words. Throws WireError('ESYNTAX'). */
export function fromGenericRdata(text: string): Uint8Array {
  const tokens: Token[] = [...String(text).matchAll(/\S+/g)].map((m) => ({ text: m[0], at: m.index ?? 0 }));
  const [mark, len, ...words] = tokens;
  if (mark === undefined || mark.text !== '\\#') throw new WireError('ESYNTAX', 'generic RDATA must start with \\#', mark?.at ?? 0);
  if (len === undefined || !/^(0|[1-9]\d{0,4})$/.test(len.text) || Number(len.text) > 0xffff) {
    throw len === undefined ? new WireError('ESYNTAX', 'generic RDATA: length missing', text.length) : syntax(len, 'bad RDATA length');
  }
  for (const w of words) if (!/^[0-9a-fA-F]+$/.test(w.text)) throw syntax(w, 'not hex');
  const hexText = words.map((w) => w.text).join('');
  if (hexText.length % 2 !== 0) throw new WireError('ESYNTAX', 'generic RDATA: odd number of hex digits', words.at(-1)?.at ?? 0);
  if (hexText.length / 2 !== Number(len.text)) throw syntax(len, `length says ${len.text} octets, hex holds ${hexText.length / 2}`);
  return Uint8Array.from(Buffer.from(hexText, 'hex'));
}

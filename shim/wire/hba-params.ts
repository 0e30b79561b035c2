/**
 * The HBA parameters file (`zone hba --out PARAMS`, read by `zone record --hba`
 * and `zone hba verify`). JSON, documented in docs/zone-tools.md:
 *
 *   { "format": "shim6-hba-params/1", "sec": 1, "publicKeyIncluded": false,
 *     "publicKey": "<hex DER SubjectPublicKeyInfo or the HBA Extended Modifier>",
 *     "keyFile": "rsa.pem" (only with a key),
 *     "members": [ { "prefix": "2001:db8:1::/64", "address": "2001:db8:1::…",
 *                    "params": "<hex CGA Parameter Data Structure of this address>" } ] }
 *
 * Owns: generating a set into that form, reading it back strictly, and the
 * verification of one address. Must not know: the CLI, zone files.
 */
import crypto from 'node:crypto';
import { UsageError } from '../errors.ts';
import { checkHbaAddress, generateHbaSet, hbaDigestForUlid } from './hba.ts';
import { ownKeyProblem, type CgaCheck } from './cga.ts';
import { formatIpv6, parseIpv6 } from './ipv6.ts';
import { SHIM6_MIN_RSA_KEY_BITS } from '../constants.ts';

export const HBA_PARAMS_FORMAT = 'shim6-hba-params/1';

export interface HbaParamsMember {
  prefix: string;
  address: string;
  /** Hex of this member's CGA Parameter Data Structure. */
  params: string;
}

export interface HbaParamsFile {
  format: typeof HBA_PARAMS_FORMAT;
  sec: number;
  publicKeyIncluded: boolean;
  publicKey: string;
  keyFile?: string;
  members: HbaParamsMember[];
}

/** The DER SubjectPublicKeyInfo of an RSA key given as PEM (private or public). */
export function rsaPublicKeyDer(pem: string, source: string): Uint8Array {
  let key: crypto.KeyObject;
  try { key = crypto.createPublicKey(pem); } catch (e) {
    throw new UsageError('EKEY', `key: ${source} is not a PEM RSA key: ${(e as Error).message}`, 'key');
  }
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa') throw new UsageError('EKEY', `key: ${source} is a ${key.asymmetricKeyType} key; CGA needs RSA`, 'key');
  if (bits < SHIM6_MIN_RSA_KEY_BITS) throw new UsageError('EKEY', `key: ${source} has ${bits} bits; RFC 5533 wants at least ${SHIM6_MIN_RSA_KEY_BITS}`, 'key');
  const problem = ownKeyProblem(key);
  if (problem !== undefined) throw new UsageError('EKEY', `key: ${source} ${problem}`, 'key');
  return new Uint8Array(key.export({ type: 'spki', format: 'der' }));
}

export interface GenerateParamsOptions {
  prefixes: string[];
  sec: number;
  publicKey?: Uint8Array;
  keyFile?: string;
  randomBytes?: (n: number) => Uint8Array;
}

/** RFC 5535 §6: generate an HBA set (HBA/CGA when a key is given) as a parameters file. */
export function generateHbaParams(o: GenerateParamsOptions): HbaParamsFile {
  const set = generateHbaSet({
    prefixes: o.prefixes,
    sec: o.sec,
    ...(o.publicKey ? { publicKey: o.publicKey } : {}),
    randomBytes: o.randomBytes ?? ((n) => new Uint8Array(crypto.randomBytes(n))),
  });
  return {
    format: HBA_PARAMS_FORMAT,
    sec: o.sec,
    publicKeyIncluded: set.publicKeyIncluded,
    publicKey: Buffer.from(set.publicKey).toString('hex'),
    ...(o.keyFile !== undefined ? { keyFile: o.keyFile } : {}),
    members: set.members.map((m) => ({ prefix: m.prefix, address: m.address, params: Buffer.from(m.params).toString('hex') })),
  };
}

/**
 * Non-empty hex of whole octets. Not /^([0-9a-f]{2})+$/i: V8 keeps a backtrack
 * entry per repetition of a capturing group, and a value of some megabytes
 * overflows that stack (a RangeError instead of EHBA_PARAMS).
 */
function isHexOctets(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length % 2 === 0 && /^[0-9a-f]+$/i.test(v);
}

/** Read and check a parameters file's JSON. Throws UsageError('EHBA_PARAMS') naming `source`. */
export function parseHbaParams(text: string, source: string): HbaParamsFile {
  const bad = (why: string): never => { throw new UsageError('EHBA_PARAMS', `${source}: ${why}`, 'hba'); };
  let doc: unknown;
  try { doc = JSON.parse(text); } catch (e) { return bad(`not JSON: ${(e as Error).message}`); }
  const d = doc as Partial<HbaParamsFile> | null;
  if (!d || typeof d !== 'object') return bad('not a JSON object');
  if (d.format !== HBA_PARAMS_FORMAT) bad(`"format" must be ${JSON.stringify(HBA_PARAMS_FORMAT)}`);
  if (typeof d.sec !== 'number' || ![0, 1, 2].includes(d.sec)) bad('"sec" must be 0, 1 or 2');
  if (typeof d.publicKeyIncluded !== 'boolean') bad('"publicKeyIncluded" must be true or false');
  if (!isHexOctets(d.publicKey)) bad('"publicKey" must be hex');
  if (!Array.isArray(d.members) || d.members.length === 0) return bad('"members" must be a non-empty list');
  for (const [i, m] of d.members.entries()) {
    if (typeof m?.address !== 'string' || typeof m.prefix !== 'string' || !isHexOctets(m.params)) {
      bad(`members[${i}] needs "prefix", "address" and hex "params"`);
    }
    try { m.address = formatIpv6(parseIpv6(m.address)); } catch { bad(`members[${i}].address ${JSON.stringify(m.address)} is not an IPv6 address`); }
  }
  return d as HbaParamsFile;
}

export function memberParams(m: HbaParamsMember): Uint8Array {
  return new Uint8Array(Buffer.from(m.params, 'hex'));
}

/** RFC 5535 §7.2 for one address against the set (checked with the first member's parameters). */
export function verifyAgainstParams(address: string, p: HbaParamsFile): CgaCheck {
  return checkHbaAddress(address, memberParams(p.members[0]!));
}

/** The record's hba-digest for `ulid` (a member of the set). */
export function digestForUlid(p: HbaParamsFile, ulid: string): Uint8Array {
  return hbaDigestForUlid(memberParams(p.members[0]!), ulid);
}

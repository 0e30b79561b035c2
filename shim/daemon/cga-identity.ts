/**
 * The daemon's CGA identity (config `cga: { key, sec }`, RFC 5533 §5.15.4–5,
 * RFC 3972, RFC 5535 §3): the RSA private key that signs our Locator Lists,
 * and the ULID with the CGA Parameter Data Structure that ties it to that key —
 * a member of the HBA/CGA-compatible set in `hba` (`shim6 zone hba --key`), or,
 * without `hba`, a CGA generated on the prefix of the host's first address.
 *
 * Owns reading and checking the key file, and taking a generated CGA off the
 * host at stop (`removeCgaAddress`: wherever it is then). Errors name the file
 * and the reason (code ECGA_KEY); no message, log line or status field ever
 * holds the private key (`describeCga` shows its public facts only). Knows
 * nothing of the engine.
 */
import { spawnSync } from 'node:child_process';
import { createHmac, createPublicKey, createPrivateKey, type KeyObject } from 'node:crypto';
import { readBounded } from '../read-bounded.ts';
import { EnvironmentError, UsageError } from '../errors.ts';
import { SHIM6_MIN_RSA_KEY_BITS } from '../constants.ts';
import { generateCga, ownKeyProblem, prefix64, formatPrefix64 } from '../wire/cga.ts';
import type { HbaParamsFile } from '../wire/hba-params.ts';
import { canonicalIpv6, parseIpv6, type Ipv6 } from '../wire/ipv6.ts';

/** Hard upper bound on a key file (a 16384-bit PEM key is about 12 kB). */
const MAX_KEY_FILE = 64 * 1024;

/** A loaded CGA key: the private key, its public half (DER SPKI) and its size. */
export interface CgaKey {
  file: string;
  key: KeyObject;
  spki: Uint8Array;
  bits: number;
}

const keyError = (file: string, why: string): UsageError => new UsageError('ECGA_KEY', `cga.key: ${JSON.stringify(file)}: ${why}`, 'cga.key');

/**
 * Read and check the key file: an RSA private key in PEM (PKCS#1 or PKCS#8),
 * at least 1024 bits (RFC 5533 §16). A file the host will not let us read is
 * an EnvironmentError; a file that is not such a key is the config's mistake.
 */
export function loadCgaKey(file: string): CgaKey {
  let text: string;
  try {
    text = readBounded(file, '', 'key', MAX_KEY_FILE);
  } catch (err) {
    if (err instanceof UsageError) throw keyError(file, `is over ${MAX_KEY_FILE} bytes; a key file is at most that`);
    const e = err as NodeJS.ErrnoException;
    throw new EnvironmentError('ECGA_KEY', `cga.key: cannot read ${JSON.stringify(file)}: ${e.code ?? ''} ${e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : 'read failed'}`.replace(/ {2}/g, ' '), file);
  }
  if (!/-----BEGIN (RSA |ENCRYPTED )?PRIVATE KEY-----/.test(text)) {
    throw keyError(file, /-----BEGIN (RSA )?PUBLIC KEY-----/.test(text) ? 'holds a public key; the daemon needs the private key' : 'is not a PEM private key (make one with: openssl genrsa -out FILE 2048)');
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(text);
  } catch (err) {
    // OpenSSL's reason only (e.g. "bad decrypt", "unsupported"): it never quotes the key.
    const reason = String((err as { reason?: unknown }).reason ?? (err as Error).message).split('\n')[0]!.slice(0, 120);
    throw keyError(file, /ENCRYPTED/.test(text) ? 'is encrypted; the daemon needs an unencrypted key (readable by root only)' : `cannot be parsed (${reason})`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw keyError(file, `is a ${String(key.asymmetricKeyType)} key; CGA needs RSA (RFC 3972 §6)`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < SHIM6_MIN_RSA_KEY_BITS) throw keyError(file, `has ${bits} bits; RFC 5533 §16 wants at least ${SHIM6_MIN_RSA_KEY_BITS}`);
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  const problem = ownKeyProblem(key);
  if (problem !== undefined) throw keyError(file, problem);
  return { file, key, spki, bits };
}

/**
 * An HBA set usable with the key: made with it (`zone hba --key`), so the
 * Multi-Prefix extension's P flag is set and its public key is this key's.
 */
export function checkHbaMatchesKey(hba: HbaParamsFile, hbaFile: string, k: CgaKey): void {
  if (!hba.publicKeyIncluded || hba.publicKey.toLowerCase() !== Buffer.from(k.spki).toString('hex')) {
    throw new UsageError('ECGA_KEY', `cga.key: ${JSON.stringify(k.file)} is not the key of the HBA set in ${JSON.stringify(hbaFile)}${hba.publicKeyIncluded ? '' : ' (an HBA-only set, made without --key)'}; make a compatible set with: shim6 zone hba --key ${k.file} --prefix P/64 … --out ${hbaFile}`, 'cga.key');
  }
}

/** A CGA of ours (RFC 3972 §4): the address and its parameters. */
export interface GeneratedUlid {
  address: Ipv6;
  prefix: string;
  params: Uint8Array;
}

/**
 * A CGA on `onPrefixOf`'s /64 for the key. The modifier comes from an HMAC
 * keyed with the private key over the prefix: unpredictable to others (as a
 * random one), and the same after a restart, so the ULID (and the DNS record
 * that names it) stays put. Sec 1 costs about 2^16 SHA-1s (well under a second).
 */
export function generateCgaUlid(k: CgaKey, onPrefixOf: Ipv6, sec: 0 | 1): GeneratedUlid {
  const prefix = prefix64(parseIpv6(onPrefixOf).slice(0, 8));
  const secret = k.key.export({ type: 'pkcs8', format: 'der' });
  let counter = 0;
  const randomBytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) {
      const block = createHmac('sha256', secret).update(`shim6-cga-modifier/${formatPrefix64(prefix)}/${counter++}`).digest();
      out.set(block.subarray(0, Math.min(32, n - off)), off);
    }
    return out;
  };
  const g = generateCga({ subnetPrefix: prefix, publicKey: k.spki, sec, randomBytes });
  return { address: g.address, prefix: formatPrefix64(prefix), params: g.params };
}

/** What `shim6 status` shows of the identity: never the private key. */
export function describeCga(k: CgaKey, sec: number, ulidKind: 'hba-member' | 'cga'): Record<string, unknown> {
  return { keyFile: k.file, keyBits: k.bits, sec, ulid: ulidKind };
}

/** Where `address` is on the host: each interface holding it and its prefix length, from `ip -j -6 addr show` output. */
export function addressHolders(json: string, address: Ipv6): Array<{ ifname: string; prefixlen: number }> {
  let links: Array<{ ifname?: unknown; addr_info?: Array<{ family?: unknown; local?: unknown; prefixlen?: unknown }> }>;
  try {
    links = JSON.parse(json) as typeof links;
  } catch {
    return [];
  }
  if (!Array.isArray(links)) return [];
  const want = canonicalIpv6(address);
  const out: Array<{ ifname: string; prefixlen: number }> = [];
  for (const l of links) {
    if (typeof l?.ifname !== 'string') continue;
    for (const a of l.addr_info ?? []) {
      if (a.family !== 'inet6' || typeof a.local !== 'string' || typeof a.prefixlen !== 'number') continue;
      let local: Ipv6;
      try { local = canonicalIpv6(a.local); } catch { continue; }
      if (local === want) out.push({ ifname: l.ifname, prefixlen: a.prefixlen });
    }
  }
  return out;
}

/**
 * Take our generated CGA off the host at stop: it is looked up where it is now (the interface it
 * was put on may have been renamed, so the name at start no longer finds it) and deleted there.
 * Returns the failures (empty when it was removed or was not there any more).
 */
export function removeCgaAddress(address: Ipv6): string[] {
  const r = spawnSync('ip', ['-j', '-6', 'addr', 'show', 'to', `${address}/128`], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0) return [`ip addr show: ${String(r.stderr || r.error?.message || r.status).trim()}`];
  const failed: string[] = [];
  for (const h of addressHolders(String(r.stdout), address)) {
    const d = spawnSync('ip', ['-6', 'addr', 'del', `${address}/${h.prefixlen}`, 'dev', h.ifname], { encoding: 'utf8', timeout: 5000 });
    if (d.status !== 0) failed.push(`${h.ifname}: ${String(d.stderr || d.error?.message || d.status).trim()}`);
  }
  return failed;
}

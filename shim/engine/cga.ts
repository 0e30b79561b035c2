/**
 * Our side of CGA-based locator verification (RFC 5533 §5.15.2, §5.15.4,
 * §5.15.5, §7.2; RFC 3972 §6; RFC 5535 §3 HBA/CGA compatibility): which
 * verification method each of our locators is announced with, the private key
 * that signs the Locator List, and the CGA Signature option itself.
 *
 * The key comes in through the Engine config (no file I/O here). It must be the
 * RSA key whose public half is in our CGA Parameter Data Structure, so a peer
 * can check the signature against the PDS it already verified our ULID with.
 * The peer's side (checking signatures) lives in verify.ts.
 */
import { createPrivateKey, createPublicKey, KeyObject } from 'node:crypto';
import { UsageError } from '../errors.ts';
import { CGA_KEY_OFFSET, VerificationMethod } from '../constants.ts';
import { ownKeyProblem, scanCgaParams, signCgaLocators, verifyCga } from '../wire/cga.ts';
import { verifyHbaAddress } from '../wire/hba.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { LocalLocator } from './config.ts';

/** A private key as the config may carry it: KeyObject, PEM text, or PKCS#8 DER octets. */
export type CgaKeyInput = KeyObject | string | Uint8Array;

function parseKey(input: CgaKeyInput): KeyObject {
  try {
    if (input instanceof KeyObject) return input;
    if (typeof input === 'string') return createPrivateKey(input);
    return createPrivateKey({ key: Buffer.from(input), format: 'der', type: 'pkcs8' });
  } catch {
    throw new UsageError('ECGA_KEY', 'cgaKey is not a private key (PEM or PKCS#8 DER)', 'cgaKey');
  }
}

/**
 * Check and parse the configured key: RSA (RFC 3972 §6), private, and the
 * public key in `params` must be its public half. Explicit 'cga' locators need a key.
 */
export function resolveCgaKey(input: CgaKeyInput | undefined, params: Uint8Array | undefined, locators: readonly LocalLocator[]): KeyObject | undefined {
  if (input === undefined) {
    const l = locators.find((x) => x.verification === 'cga');
    if (l !== undefined) throw new UsageError('ENO_CGA_KEY', `locator ${l.address} is announced as CGA but no cgaKey is configured`, 'localLocators');
    return undefined;
  }
  const key = parseKey(input);
  if (key.type !== 'private' || key.asymmetricKeyType !== 'rsa') throw new UsageError('ECGA_KEY', 'cgaKey must be an RSA private key (RFC 3972 §6)', 'cgaKey');
  const problem = ownKeyProblem(key);
  if (problem !== undefined) throw new UsageError('ECGA_KEY', `cgaKey ${problem}`, 'cgaKey');
  if (params === undefined) throw new UsageError('ENO_CGA_PARAMS', 'cgaKey needs cgaParams (the PDS holding its public key)', 'cgaParams');
  let keyEnd: number;
  try { keyEnd = scanCgaParams(params).keyEnd; } catch { throw new UsageError('ECGA_PARAMS', 'cgaParams is not a CGA Parameter Data Structure', 'cgaParams'); }
  const spki = createPublicKey(key).export({ type: 'spki', format: 'der' });
  if (!spki.equals(Buffer.from(params.subarray(CGA_KEY_OFFSET, keyEnd)))) {
    throw new UsageError('ECGA_KEY_MISMATCH', 'the public key in cgaParams is not the public half of cgaKey', 'cgaKey');
  }
  return key;
}

/**
 * A locator's own PDS (LocalLocator.cgaParams) must prove its address — as a member of the HBA
 * set it describes (RFC 5535 §7.2) or as a CGA (RFC 3972 §5) — and, with a key, hold its public
 * half: else every context of that ULID would be refused by its peer, or its Locator List
 * signature would not check. Costs a few SHA-1s per such locator.
 */
export function checkLocatorParams(locators: readonly LocalLocator[], key: KeyObject | undefined): void {
  const spki = key === undefined ? undefined : Buffer.from(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  for (const l of locators) {
    const params = l.cgaParams;
    if (params === undefined) continue;
    if (!verifyHbaAddress(l.address, params) && !verifyCga(l.address, params)) {
      throw new UsageError('ECGA_PARAMS', `the cgaParams of locator ${l.address} do not prove it (RFC 5535 §7.2, RFC 3972 §5)`, 'localLocators');
    }
    if (spki !== undefined && !spki.equals(Buffer.from(params.subarray(CGA_KEY_OFFSET, scanCgaParams(params).keyEnd)))) {
      throw new UsageError('ECGA_KEY_MISMATCH', `the public key in the cgaParams of locator ${l.address} is not the public half of cgaKey`, 'localLocators');
    }
  }
}

/**
 * The verification method octet of each local locator (RFC 5533 §5.15.2):
 * explicit choice, else HBA when the PDS proves the address as a member of our
 * HBA set, else CGA when we can sign, else HBA (the peer will not accept it: LocalSet leaves
 * such a locator out of the list it sends).
 */
export function localMethods(locators: readonly LocalLocator[], pds: Uint8Array | undefined, key: KeyObject | undefined): number[] {
  return locators.map((l) => {
    if (l.verification === 'cga') return VerificationMethod.CGA;
    if (l.verification === 'hba') return VerificationMethod.HBA;
    if (key !== undefined && (pds === undefined || !verifyHbaAddress(l.address, pds))) return VerificationMethod.CGA;
    return VerificationMethod.HBA;
  });
}

/**
 * RFC 5533 §5.15.5: the CGA Signature over the list's generation and its
 * CGA-method locators in list order; undefined when no locator is CGA-method.
 */
export function signLocatorList(key: KeyObject | undefined, generation: number, addresses: readonly Ipv6[], methods: readonly number[]): Uint8Array | undefined {
  const cga = addresses.filter((_, i) => methods[i] === VerificationMethod.CGA);
  if (cga.length === 0 || key === undefined) return undefined;
  return signCgaLocators(key, generation, cga);
}

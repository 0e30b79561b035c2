/**
 * Peer locator verification (RFC 5533 §7.2) behind one small interface, so the
 * handshake and update code never touch SHA-1 or RSA: a locator is accepted
 * into Ls(peer) only if `verify` says the peer's CGA Parameter Data Structure
 * proves it. The ULID itself needs no proof — it is the identity the context is for.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import { VerificationMethod } from '../constants.ts';
import { verifyHbaSet } from '../wire/hba.ts';

/** What a verifier sees about one advertised locator. */
export interface LocatorClaim {
  address: Ipv6;
  /** RFC 5533 §5.15.2 verification method octet (1 HBA, 2 CGA). */
  method: number;
}

/** Proves locator ownership. Implementations must be pure (no I/O). */
export interface LocatorVerifier {
  /**
   * For each claim, true when `params` (the peer's CGA PDS) proves `address`.
   * `ulid` is the peer's ULID; a claim equal to it is always true.
   */
  verify(ulid: Ipv6, claims: readonly LocatorClaim[], params: Uint8Array | undefined): boolean[];
  /** RFC 5533 §7.13: does the PDS in a message correspond to the peer's ULID? */
  ownsUlid(ulid: Ipv6, params: Uint8Array): boolean;
}

/**
 * The default: HBA (RFC 5535) through shim/wire/hba.ts. CGA-method locators
 * need a CGA Signature over the list; we do not sign or check those yet, so
 * they are rejected (never used as a destination) — see docs/engine.md.
 */
export function hbaVerifier(): LocatorVerifier {
  return {
    verify(ulid, claims, params) {
      const hba = claims.filter((c) => c.address !== ulid && c.method === VerificationMethod.HBA).map((c) => c.address);
      const ok = params === undefined || hba.length === 0 ? [] : verifyHbaSet(hba, params);
      let k = 0;
      return claims.map((c) => {
        if (c.address === ulid) return true;
        if (c.method !== VerificationMethod.HBA) return false;
        return ok[k++] === true;
      });
    },
    ownsUlid(ulid, params) {
      return verifyHbaSet([ulid], params)[0] === true;
    },
  };
}

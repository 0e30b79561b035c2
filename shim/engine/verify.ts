/**
 * Peer locator verification (RFC 5533 §7.2) behind one small interface, so the
 * handshake and update code never touch SHA-1 or RSA: a locator is accepted
 * into Ls(peer) only if `verify` says the peer's CGA Parameter Data Structure
 * proves it — as a member of the peer's HBA set (RFC 5535 §7.2, method 1), or
 * through the CGA Signature over the Locator List (RFC 5533 §5.15.5, RFC 3972
 * §5–6, method 2). The ULID itself needs no proof — it is the identity the
 * context is for (and `ownsUlid` ties the PDS to it).
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import { VerificationMethod } from '../constants.ts';
import { verifyHbaSet } from '../wire/hba.ts';
import { verifyCga, verifyCgaSignature } from '../wire/cga.ts';

/** What a verifier sees about one advertised locator. */
export interface LocatorClaim {
  address: Ipv6;
  /** RFC 5533 §5.15.2 verification method octet (1 HBA, 2 CGA). */
  method: number;
}

/** The CGA Signature option of the message and the generation of its Locator List. */
export interface CgaProof {
  generation: number;
  signature: Uint8Array | undefined;
}

/** Proves locator ownership. Implementations must be pure (no I/O). */
export interface LocatorVerifier {
  /**
   * For each claim, true when `params` (the peer's CGA PDS) proves `address`.
   * `ulid` is the peer's ULID; a claim equal to it is always true. `proof`
   * carries the CGA Signature for CGA-method claims (RFC 5533 §5.15.5).
   */
  verify(ulid: Ipv6, claims: readonly LocatorClaim[], params: Uint8Array | undefined, proof?: CgaProof): boolean[];
  /** RFC 5533 §7.13: does the PDS in a message correspond to the peer's ULID? */
  ownsUlid(ulid: Ipv6, params: Uint8Array): boolean;
}

/**
 * CGA-method claims stand or fall together: the signature covers every
 * CGA-method locator of the list, in list order (the ULID too if it is marked
 * CGA), and the ULID must be a CGA of the PDS whose key made it (RFC 3972 §6).
 * An HBA-only PDS (Multi-Prefix P = 0) has no key, so it proves none.
 */
function cgaClaimsHold(ulid: Ipv6, claims: readonly LocatorClaim[], params: Uint8Array | undefined, proof: CgaProof | undefined): boolean {
  if (params === undefined || proof?.signature === undefined) return false;
  const locators = claims.filter((c) => c.method === VerificationMethod.CGA).map((c) => c.address);
  return verifyCgaSignature({ params, generation: proof.generation, locators, signature: proof.signature, ulid });
}

/** The default verifier: HBA through shim/wire/hba.ts, CGA signatures through shim/wire/cga.ts. */
export function hbaVerifier(): LocatorVerifier {
  return {
    verify(ulid, claims, params, proof) {
      const hba = claims.filter((c) => c.address !== ulid && c.method === VerificationMethod.HBA).map((c) => c.address);
      const ok = params === undefined || hba.length === 0 ? [] : verifyHbaSet(hba, params);
      const needCga = claims.some((c) => c.address !== ulid && c.method === VerificationMethod.CGA);
      const cga = needCga && cgaClaimsHold(ulid, claims, params, proof);
      let k = 0;
      return claims.map((c) => {
        if (c.address === ulid) return true;
        if (c.method === VerificationMethod.CGA) return cga;
        if (c.method !== VerificationMethod.HBA) return false;
        return ok[k++] === true;
      });
    },
    ownsUlid(ulid, params) {
      return verifyHbaSet([ulid], params)[0] === true || verifyCga(ulid, params);
    },
  };
}

/**
 * Peer locator verification (RFC 5533 §7.2) behind one small interface, so the
 * handshake and update code never touch SHA-1 or RSA: a locator is accepted
 * into Ls(peer) only if `verify` says the peer's CGA Parameter Data Structure
 * proves it — as a member of the peer's HBA set (RFC 5535 §7.2, method 1), or
 * through the CGA Signature over the Locator List (RFC 5533 §5.15.5, RFC 3972
 * §5–6, method 2). The ULID itself needs no proof — it is the identity the
 * context is for (and `ownsUlid` ties the PDS to it).
 *
 * Cost (docs/security.md "CGA verification cost"): HBA and the CGA address
 * checks cost hashes; a CGA Signature costs a key parse and an RSA
 * verification. The default verifier answers a signature it has checked before
 * from a bounded cache of outcomes (the answer is a pure function of the
 * message's PDS, list and signature, so the cache never changes an answer),
 * and asks the caller's `VerifyGate` before any RSA work, so the engine can
 * bound how many it runs per source /64 and in all.
 */
import { createHash, hash } from 'node:crypto';
import type { Ipv6 } from '../wire/ipv6.ts';
import { VerificationMethod } from '../constants.ts';
import { verifyHbaSet } from '../wire/hba.ts';
import { addressBytes, checkCgaSignature, verifyCga, type CgaSignatureCheck } from '../wire/cga.ts';

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

/** What became of one CGA Signature check: wire/cga.ts's outcome, or `cached` (answered from the outcome cache). */
export type CgaOutcome = CgaSignatureCheck | 'cached';

/** The engine's say over one message's verification work (core.ts `verifyGate`). */
export interface VerifyGate {
  /** Asked once before a key parse and RSA verification; false: the claims fail, unverified ('limited'). */
  admit(): boolean;
  /** Told what became of the message's CGA Signature check (for the counters). */
  outcome(o: CgaOutcome): void;
}

/** Proves locator ownership. Implementations must be pure (no I/O). */
export interface LocatorVerifier {
  /**
   * For each claim, true when `params` (the peer's CGA PDS) proves `address`.
   * `ulid` is the peer's ULID; a claim equal to it is always true. `proof`
   * carries the CGA Signature for CGA-method claims (RFC 5533 §5.15.5);
   * `gate`, when given, is asked before any public-key work.
   */
  verify(ulid: Ipv6, claims: readonly LocatorClaim[], params: Uint8Array | undefined, proof?: CgaProof, gate?: VerifyGate): boolean[];
  /** RFC 5533 §7.13: does the PDS in a message correspond to the peer's ULID? */
  ownsUlid(ulid: Ipv6, params: Uint8Array): boolean;
}

/** Outcomes kept: two generations of half this (a generation full: the older one is dropped whole, O(1)). */
export const CGA_OUTCOME_CACHE_MAX = 1024;

/** A bounded map of signature outcomes, by a SHA-256 of everything the outcome depends on. */
class OutcomeCache {
  private current = new Map<string, CgaSignatureCheck>();
  private previous = new Map<string, CgaSignatureCheck>();
  constructor(private readonly generation = CGA_OUTCOME_CACHE_MAX / 2) {}

  get(k: string): CgaSignatureCheck | undefined {
    return this.current.get(k) ?? this.previous.get(k);
  }

  set(k: string, v: CgaSignatureCheck): void {
    if (this.current.size >= this.generation) {
      this.previous = this.current;
      this.current = new Map();
    }
    this.current.set(k, v);
  }
}

/**
 * The cache key: SHA-256 over ULID ‖ generation ‖ length-prefixed PDS ‖
 * length-prefixed signature ‖ the signed locators (16 octets each) — an
 * injective encoding of the inputs of checkCgaSignature.
 */
function outcomeKey(ulid: Ipv6, params: Uint8Array, generation: number, signature: Uint8Array, locators: readonly Ipv6[]): string {
  const buf = Buffer.allocUnsafe(16 + 4 + 4 + params.length + 4 + signature.length + 16 * locators.length);
  buf.set(addressBytes(ulid), 0);
  let o = 16;
  o = buf.writeUInt32BE(generation >>> 0, o);
  o = buf.writeUInt32BE(params.length, o);
  buf.set(params, o); o += params.length;
  o = buf.writeUInt32BE(signature.length, o);
  buf.set(signature, o); o += signature.length;
  for (const l of locators) { buf.set(addressBytes(l), o); o += 16; }
  return typeof hash === 'function' ? hash('sha256', buf, 'base64') : createHash('sha256').update(buf).digest('base64');
}

/**
 * CGA-method claims stand or fall together: the signature covers every
 * CGA-method locator of the list, in list order (the ULID too if it is marked
 * CGA), and the ULID must be a CGA of the PDS whose key made it (RFC 3972 §6).
 * An HBA-only PDS (Multi-Prefix P = 0) has no key, so it proves none. A
 * 'limited' outcome (the gate said no) is not kept: the same message may be
 * verified once the budget allows.
 */
function cgaClaimsHold(cache: OutcomeCache, ulid: Ipv6, claims: readonly LocatorClaim[], params: Uint8Array | undefined, proof: CgaProof | undefined, gate: VerifyGate | undefined): boolean {
  if (params === undefined || proof?.signature === undefined) return false;
  const locators = claims.filter((c) => c.method === VerificationMethod.CGA).map((c) => c.address);
  let key: string;
  try { key = outcomeKey(ulid, params, proof.generation, proof.signature, locators); } catch { return false; }
  const known = cache.get(key);
  if (known !== undefined) {
    gate?.outcome('cached');
    return known === 'ok';
  }
  const admit = gate === undefined ? undefined : () => gate.admit();
  const out = checkCgaSignature({ params, generation: proof.generation, locators, signature: proof.signature, ulid, admit });
  gate?.outcome(out);
  if (out !== 'limited') cache.set(key, out);
  return out === 'ok';
}

/** The default verifier: HBA through shim/wire/hba.ts, CGA signatures through shim/wire/cga.ts (with an outcome cache per verifier). */
export function hbaVerifier(): LocatorVerifier {
  const cache = new OutcomeCache();
  return {
    verify(ulid, claims, params, proof, gate) {
      const hba = claims.filter((c) => c.address !== ulid && c.method === VerificationMethod.HBA).map((c) => c.address);
      const ok = params === undefined || hba.length === 0 ? [] : verifyHbaSet(hba, params);
      const needCga = claims.some((c) => c.address !== ulid && c.method === VerificationMethod.CGA);
      const cga = needCga && cgaClaimsHold(cache, ulid, claims, params, proof, gate);
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

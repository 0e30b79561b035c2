/**
 * Ls(local): the host's own locators, their preferences, the Locator List
 * generation we send (+1 per change, as RFC 5533 §5.15.2 says; the example in
 * §10.1 picks a random one) and the options that carry them (Locator List,
 * Locator Preferences, CGA PDS, CGA Signature, Keepalive Timeout). Knows
 * nothing about contexts. The list is signed once per generation (RSA is
 * costly), not per message. Each local ULID is proven by its own PDS: the
 * locator's `cgaParams` when it has one (a ULID kept from before a restart that
 * is not the engine's), else the engine's.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Shim6Option } from '../wire/messages.ts';
import type { KeyObject } from 'node:crypto';
import { LocatorFlag } from '../constants.ts';
import type { LocalLocator, Timers } from './config.ts';
import { advertisedKeepaliveSeconds, mustAdvertiseKeepalive } from './config.ts';
import { localMethods, signLocatorList } from './cga.ts';
import { verifyHbaAddress } from '../wire/hba.ts';
import { verifyCga } from '../wire/cga.ts';
import { MAX_PEER_LOCATORS } from './context.ts';

/**
 * Entries of our Locator List: as many as a peer keeps of it (MAX_PEER_LOCATORS). More would
 * reach no peer, and past about a hundred the Update Request, I2 or R2 carrying the list is more
 * than a Shim6 message holds (2,048 octets) and cannot be built at all. The caller orders the list
 * (the ULID first, then what matters most): a longer one is cut to its first entries.
 */
export const MAX_LOCAL_LOCATORS = MAX_PEER_LOCATORS;

export class LocalSet {
  locators: LocalLocator[];
  generation: number;
  /** The options of the current generation, by the PDS they carry (undefined: no PDS). */
  private readonly cached = new Map<Uint8Array | undefined, Shim6Option[]>();
  /** Whether the engine's PDS proves a local ULID (pdsFor), per ULID asked since the set last changed. */
  private readonly proves = new Map<Ipv6, boolean>();

  constructor(locators: LocalLocator[], readonly ulid: Ipv6, readonly pds: Uint8Array | undefined, private readonly timers: Timers, firstGeneration: number, private readonly key?: KeyObject) {
    this.locators = locators.slice(0, MAX_LOCAL_LOCATORS).map((l) => ({ ...l }));
    this.generation = firstGeneration >>> 0;
  }

  has(address: Ipv6): boolean {
    for (const l of this.locators) if (l.address === address) return true;
    return false;
  }

  /** Locators usable as a source: not BROKEN. */
  usable(): Ipv6[] {
    return this.locators.filter((l) => ((l.flags ?? 0) & LocatorFlag.BROKEN) === 0).map((l) => l.address);
  }

  /** Replace the set (a new generation; its first MAX_LOCAL_LOCATORS). Returns false when nothing changed. */
  replace(all: LocalLocator[]): boolean {
    const locators = all.length > MAX_LOCAL_LOCATORS ? all.slice(0, MAX_LOCAL_LOCATORS) : all;
    const same = locators.length === this.locators.length && locators.every((l, i) => {
      const o = this.locators[i]!;
      return o.address === l.address && (o.flags ?? 0) === (l.flags ?? 0) && (o.priority ?? 0) === (l.priority ?? 0) && (o.weight ?? 0) === (l.weight ?? 0)
        && sameParams(o.cgaParams, l.cgaParams);
    });
    if (same) return false;
    this.locators = locators.map((l) => ({ ...l }));
    this.bump();
    return true;
  }

  /** Mark one locator BROKEN (RFC 5533 §5.15.3). Returns false when unknown or already broken. */
  markBroken(address: Ipv6): boolean {
    const l = this.locators.find((x) => x.address === address);
    if (l === undefined || ((l.flags ?? 0) & LocatorFlag.BROKEN) !== 0) return false;
    l.flags = (l.flags ?? 0) | LocatorFlag.BROKEN;
    this.bump();
    return true;
  }

  private bump(): void {
    this.generation = (this.generation + 1) >>> 0;
    this.cached.clear();
    this.proves.clear();
  }

  /**
   * The PDS that proves `ulid`: its own (LocalLocator.cgaParams), else the engine's when it
   * proves it (an HBA member, or its CGA), else none. A peer refuses a message whose PDS does not
   * correspond to the ULID (RFC 5533 §7.13): a context whose local ULID is a host address outside
   * the set (a privacy address or a new prefix a discovered flow came from) sends no PDS, and the
   * peer proves that ULID as the handshake's source locator.
   */
  pdsFor(ulid: Ipv6): Uint8Array | undefined {
    const own = this.locators.find((l) => l.address === ulid)?.cgaParams;
    if (own !== undefined || this.pds === undefined) return own;
    let proven = this.proves.get(ulid);
    if (proven === undefined) {
      proven = verifyHbaAddress(ulid, this.pds) || verifyCga(ulid, this.pds);
      this.proves.set(ulid, proven);
    }
    return proven ? this.pds : undefined;
  }

  /**
   * Options announcing our locators in I2/I2bis/R2/Update Request of a context
   * whose local ULID is `ulid` (default: the engine's): the full list and
   * preferences when we have a PDS to prove them (HBA-method entries by the
   * PDS, CGA-method ones by a CGA Signature, RFC 5533 §7.11) — the PDS that
   * proves `ulid` (pdsFor), so the peer's check that it corresponds to the ULID
   * (§7.13) holds — plus the Keepalive Timeout when our Send Timeout is not the
   * default (RFC 5534 §5.3). Shared read-only array: callers copy before adding.
   */
  options(ulid: Ipv6 = this.ulid): readonly Shim6Option[] {
    const pds = this.pdsFor(ulid);
    const known = this.cached.get(pds);
    if (known !== undefined) return known;
    const out: Shim6Option[] = [];
    const listed = pds === undefined ? [] : this.provable(pds);
    if (pds !== undefined && listed.length > 0) {
      const methods = localMethods(listed, pds, this.key);
      const addresses = listed.map((l) => l.address);
      out.push({ type: 'LocatorList', critical: false, generation: this.generation, locators: addresses.map((address, i) => ({ address, verificationMethod: methods[i]! })) });
      out.push({ type: 'LocatorPreferences', critical: false, generation: this.generation, elementLength: 3, elements: listed.map((l) => ({ flags: l.flags ?? 0, priority: l.priority ?? 0, weight: l.weight ?? 0 })) });
      out.push({ type: 'CgaParameterDataStructure', critical: false, pds });
      const signature = signLocatorList(this.key, this.generation, addresses, methods);
      if (signature !== undefined) out.push({ type: 'CgaSignature', critical: false, signature });
    }
    if (mustAdvertiseKeepalive(this.timers)) out.push({ type: 'KeepaliveTimeout', critical: false, timeoutSeconds: advertisedKeepaliveSeconds(this.timers) });
    this.cached.set(pds, out);
    return out;
  }

  /**
   * The locators a peer can verify with `pds`: all of them with a key (a CGA Signature proves any
   * address), else the members of the HBA set `pds` describes (and those the config names a method
   * for). Without a key an address beside the set (an RFC 8981 privacy address, a second prefix)
   * proves nothing, and a peer refuses an Update Request listing it whole (RFC 5533 §7.2, Error
   * code 2): every later change of ours — a deprecation, a link down, a removal — would never reach
   * it. So it is left out of the list: the peer could never send to it anyway.
   */
  private provable(pds: Uint8Array): LocalLocator[] {
    if (this.key !== undefined) return this.locators;
    return this.locators.filter((l) => l.verification !== undefined || verifyHbaAddress(l.address, pds));
  }
}

function sameParams(a: Uint8Array | undefined, b: Uint8Array | undefined): boolean {
  return a === b || (a !== undefined && b !== undefined && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b));
}

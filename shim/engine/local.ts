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
import type { Shim6Message, Shim6Option } from '../wire/messages.ts';
import type { KeyObject } from 'node:crypto';
import { LocatorFlag, VerificationMethod } from '../constants.ts';
import { encodingLength, MAX_HEADER_LENGTH } from '../wire/message-codec.ts';
import { UsageError } from '../errors.ts';
import type { LocalLocator, Timers } from './config.ts';
import { advertisedKeepaliveSeconds, mustAdvertiseKeepalive } from './config.ts';
import { localMethods, signLocatorList } from './cga.ts';
import { hbaParamsLength, verifyHbaAddress } from '../wire/hba.ts';
import { verifyCga } from '../wire/cga.ts';
import { MAX_PEER_LOCATORS } from './context.ts';

/**
 * Entries of our Locator List: at most as many as a peer keeps of it (MAX_PEER_LOCATORS). More would
 * reach no peer, and past about a hundred the Update Request, I2 or R2 carrying the list is more
 * than a Shim6 message holds (2,048 octets) and cannot be built at all. Fewer when our PDS and CGA
 * Signature leave less room (listRoom). The caller orders the list (the ULID first, then what
 * matters most): a longer one is cut to its first entries.
 */
export const MAX_LOCAL_LOCATORS = MAX_PEER_LOCATORS;

/**
 * The longest Responder Validator we echo in an I2 or I2bis (RFC 5533 leaves its length to the
 * responder; ours is 12 octets, the hash §7.10 suggests 20 or 32): an R1 or R1bis with a longer
 * one is dropped (`validator-too-long`), so that the I2 answering it still holds our list (listRoom
 * counts this much). Before, a peer's R1 with a validator of some hundred octets made our I2 too
 * large to encode, and its WireError stopped the daemon.
 */
export const MAX_ECHOED_VALIDATOR = 32;

/**
 * The messages that carry our list, each with the most that goes beside it: the longest validator
 * we echo, a ULID Pair, a Forked Instance Identifier, a Keepalive Timeout (RFC 5533 §5.9, §5.10,
 * §5.11, §5.14; RFC 5534 §5.3).
 */
const CARRIERS: readonly Shim6Message[] = ((): Shim6Message[] => {
  const beside: Shim6Option[] = [
    { type: 'UlidPair', critical: false, senderUlid: '::', receiverUlid: '::' },
    { type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: 0xffff_ffff },
    { type: 'KeepaliveTimeout', critical: false, timeoutSeconds: 0xffff },
  ];
  const validator: Shim6Option = { type: 'ResponderValidator', critical: false, validator: new Uint8Array(MAX_ECHOED_VALIDATOR) };
  return [
    { type: 'I2', contextTag: 0, initiatorNonce: 0, responderNonce: 0, options: [validator, ...beside] },
    { type: 'I2bis', contextTag: 0, initiatorNonce: 0, responderNonce: 0, packetContextTag: 0, options: [validator, ...beside] },
    { type: 'R2', contextTag: 0, initiatorNonce: 0, options: [beside[2]!] },
    { type: 'UpdateRequest', contextTag: 0, requestNonce: 0, options: [beside[2]!] },
  ];
})();

const roomCache = new Map<string, number>();

/**
 * How many entries our Locator List may have so that every message carrying it (I2, I2bis, R2,
 * Update Request, with the most beside it: CARRIERS) fits a Shim6 message (2,048 octets), with a
 * PDS of `pdsLength` octets and a CGA Signature of `signatureLength` (0: none): at most
 * MAX_LOCAL_LOCATORS, 0 when not even the ULID fits. Computed by encoding those messages.
 * A 4096-bit key (550-octet public key, 512-octet signature) leaves room for 32 entries beside an
 * HBA/CGA set of up to 17 prefixes, 26 beside 31, 7 beside 80, and one up to 95 (docs/engine.md).
 */
export function listRoom(pdsLength: number, signatureLength: number): number {
  const id = `${pdsLength}/${signatureLength}`;
  let room = roomCache.get(id);
  if (room === undefined) {
    room = 0;
    const pds: Shim6Option = { type: 'CgaParameterDataStructure', critical: false, pds: new Uint8Array(pdsLength) };
    const signature: Shim6Option[] = signatureLength > 0 ? [{ type: 'CgaSignature', critical: false, signature: new Uint8Array(signatureLength) }] : [];
    const fits = (n: number): boolean => {
      const list: Shim6Option[] = [
        { type: 'LocatorList', critical: false, generation: 0, locators: Array.from({ length: n }, () => ({ address: '::', verificationMethod: VerificationMethod.CGA })) },
        { type: 'LocatorPreferences', critical: false, generation: 0, elementLength: 3, elements: Array.from({ length: n }, () => ({ flags: 0, priority: 0, weight: 0 })) },
        pds, ...signature,
      ];
      try {
        return CARRIERS.every((m) => encodingLength({ ...m, options: [...m.options, ...list] } as Shim6Message) <= MAX_HEADER_LENGTH);
      } catch {
        return false;
      }
    };
    for (let n = MAX_LOCAL_LOCATORS; n >= 1; n--) if (fits(n)) { room = n; break; }
    if (roomCache.size >= 64) roomCache.clear();
    roomCache.set(id, room);
  }
  return room;
}

/** Octets of the CGA Signatures `key` makes (RSA PKCS#1 v1.5: the modulus' length); 0 without a key. */
export function signatureLength(key: KeyObject | undefined): number {
  return key === undefined ? 0 : Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
}

/**
 * The room for our list beside the largest of `pds` and the locators' own PDSs, and, with a key,
 * its signature (counted whether or not a locator is CGA-method now: the bound stays as addresses
 * come and go). Throws UsageError ECGA_PARAMS when not even the ULID fits: such an identity can
 * never announce a locator (nor be brought up: every I2 and R2 carries the list).
 */
export function localListRoom(pds: Uint8Array | undefined, locators: readonly LocalLocator[], key: KeyObject | undefined): number {
  let pdsLength = pds?.length ?? 0;
  for (const l of locators) if (l.cgaParams !== undefined && l.cgaParams.length > pdsLength) pdsLength = l.cgaParams.length;
  if (pdsLength === 0) return MAX_LOCAL_LOCATORS;
  const sig = signatureLength(key);
  const room = listRoom(pdsLength, sig);
  if (room === 0) {
    throw new UsageError('ECGA_PARAMS', `a CGA Parameter Data Structure of ${pdsLength} octets${sig > 0 ? ` and a CGA Signature of ${sig} octets` : ''} leave no room for a Locator List in a Shim6 message (at most ${MAX_HEADER_LENGTH} octets): use an HBA set of fewer prefixes${sig > 0 ? ' or a smaller key' : ''}`, 'cgaParams');
  }
  return room;
}

/**
 * The most prefixes an HBA set made with `publicKey` (DER; undefined: HBA-only) may have so that
 * a daemon signing with `key` (a CGA-compatible set's own key; undefined: none) still has room for
 * its ULID in a Locator List (localListRoom ≥ 1): the bound the daemon's start enforces
 * (EHBA_PARAMS) and `shim6 zone hba` refuses up front. 0 when not even one prefix fits.
 */
export function maxHbaPrefixes(publicKey: Uint8Array | undefined, key: KeyObject | undefined): number {
  const sig = signatureLength(key);
  const fits = (n: number): boolean => listRoom(hbaParamsLength(n, publicKey), sig) >= 1;
  // One Multi-Prefix extension of n prefixes is 8n octets: past 256 none fits a 2,048-octet message.
  let lo = 0;
  let hi = Math.ceil(MAX_HEADER_LENGTH / 8);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (fits(mid)) lo = mid; else hi = mid - 1;
  }
  return lo;
}

/**
 * Why an HBA set of `prefixes` prefixes made with `publicKey` (DER: a CGA-compatible set's key,
 * or an HBA-only set's Extended Modifier; undefined: HBA-only, not yet made) cannot be used by a
 * daemon signing with `key`: its Parameter Data Structure and the key's signature leave no room
 * for a Locator List in a Shim6 message (engine maxHbaPrefixes). Names the bound for that key;
 * undefined when the set fits. The one rule for the daemon's start and `shim6 zone hba`.
 */
export function hbaSizeProblem(prefixes: number, publicKey: Uint8Array | undefined, key: KeyObject | undefined): string | undefined {
  const bound = maxHbaPrefixes(publicKey, key);
  if (prefixes <= bound) return undefined;
  const bits = key?.asymmetricKeyDetails?.modulusLength;
  const sig = signatureLength(key);
  return `an HBA set of ${prefixes} prefixes (a CGA Parameter Data Structure of ${hbaParamsLength(prefixes, publicKey)} octets)${sig > 0 ? ` and a CGA Signature of ${sig} octets` : ''} leave no room for a Locator List in a Shim6 message (at most ${MAX_HEADER_LENGTH} octets): at most ${bound} prefixes ${bits !== undefined ? `with a ${bits}-bit key` : 'without a signing key'}`;
}

export class LocalSet {
  locators: LocalLocator[];
  generation: number;
  /** The options of the current generation, by the PDS they carry (undefined: no PDS). */
  private readonly cached = new Map<Uint8Array | undefined, Shim6Option[]>();
  /** Whether the engine's PDS proves a local ULID (pdsFor), per ULID asked since the set last changed. */
  private readonly proves = new Map<Ipv6, boolean>();

  constructor(locators: LocalLocator[], readonly ulid: Ipv6, readonly pds: Uint8Array | undefined, private readonly timers: Timers, firstGeneration: number, private readonly key?: KeyObject) {
    this.locators = locators.slice(0, localListRoom(pds, locators, key)).map((l) => ({ ...l }));
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

  /** Replace the set (a new generation; its first localListRoom). Returns false when nothing changed. */
  replace(all: LocalLocator[]): boolean {
    const room = localListRoom(this.pds, all, this.key);
    const locators = all.length > room ? all.slice(0, room) : all;
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

/**
 * The stateless responder (RFC 5533 §7.10, §7.17): Responder Validators for R1
 * and R1bis are a keyed SHA-256 (secret ‖ fixed-length inputs of §7.10.1 /
 * §7.17.1 plus the UDP port the reply goes to, see `mac`), truncated to 12
 * octets — so an R1 (32 octets) is never more than twice the smallest I1 (16). The Responder Nonce is the secret's epoch counter (§7.10.1 "running
 * counter C"), so a validator is checked against the current or the previous
 * secret only, with crypto.timingSafeEqual. Secrets rotate lazily every
 * `lifetime` ms, so every validator is accepted for at least `lifetime`
 * (≥ VALIDATOR_MIN_LIFETIME) and at most twice that.
 * NOTHING is allocated per I1 that outlives the call: no map entry, no context.
 * Generator and checker are separate functions over the same input encoder.
 */
import { createHash, hash, timingSafeEqual } from 'node:crypto';
import type { Ipv6 } from '../wire/ipv6.ts';
import { encodeMessage, shim6Checksum } from '../wire/index.ts';
import type { Millis } from '../time.ts';
import type { Random } from './random.ts';

/** Validator length on the wire (octets): 96 bits, checked within two secret epochs only. */
export const VALIDATOR_LENGTH = 12;
/** Responder secret length (octets). */
const SECRET_LENGTH = 32;

/**
 * Inputs of an R1 validator (RFC 5533 §7.10.1). `peerLocator`/`localLocator`
 * are the I1's source/destination; `port` is the UDP port the I1 came from
 * (5533 when the transport did not say): an I2 from another port than the R1
 * went to does not match, so the I2 proves its sender's port too.
 */
export interface R1Inputs {
  initiatorTag: number;
  peerUlid: Ipv6;
  localUlid: Ipv6;
  peerLocator: Ipv6;
  localLocator: Ipv6;
  fii: number;
  port: number;
}

/** Inputs of an R1bis validator (RFC 5533 §7.17.1): the tag and locators of the packet that found no context. */
export interface R1bisInputs {
  packetTag: number;
  peerLocator: Ipv6;
  localLocator: Ipv6;
  port: number;
}

const KIND_R1 = 1;
const KIND_R1BIS = 2;

/** Rotating responder secrets. Holds exactly two secrets, whatever the I1 rate. */
export class ResponderSecrets {
  private epoch = -1;
  /** The current secret (valid after `nonce(now)`). */
  current: Uint8Array;
  private previous: Uint8Array;

  constructor(private readonly random: Random, private readonly lifetime: Millis) {
    this.current = random.bytes(SECRET_LENGTH);
    this.previous = random.bytes(SECRET_LENGTH);
  }

  /** The Responder Nonce to use now (the epoch counter, u32). */
  nonce(now: Millis): number {
    this.rotate(now);
    return this.epoch >>> 0;
  }

  /** Secret for a received Responder Nonce: current or previous epoch only. */
  secretFor(now: Millis, nonce: number): Uint8Array | undefined {
    this.rotate(now);
    const e = this.epoch >>> 0;
    if (nonce === e) return this.current;
    if (nonce === ((e - 1) >>> 0)) return this.previous;
    return undefined;
  }

  private rotate(now: Millis): void {
    const e = Math.floor(now / this.lifetime);
    if (e === this.epoch) return;
    if (this.epoch >= 0 && e === this.epoch + 1) this.previous = this.current;
    else this.previous = this.random.bytes(SECRET_LENGTH); // skipped epochs: nothing old stays valid
    this.current = this.random.bytes(SECRET_LENGTH);
    this.epoch = e;
  }
}

/**
 * The MAC, built for the I1 flood (≥ 50,000 R1/s on one core): one one-shot
 * SHA-256 over secret ‖ fixed-length input, in one reused scratch buffer, so no
 * HMAC object, no key schedule, no intermediate strings or arrays per call.
 * Input per kind has a FIXED length: kind ‖ nonce ‖ tag ‖ FII ‖ port ‖ each address as
 * canonical text (shim/wire/ipv6.ts, ≤ 39 octets) zero-padded to 40 octets (an
 * injective encoding). A secret-prefix hash over fixed-length inputs is a PRF
 * (length extension only yields longer inputs, never checked; the kind octet
 * sits at a fixed place, so R1bis and R1 inputs cannot be confused), and we
 * keep only 96 of the 256 output bits.
 */
const ADDRESS_SLOT = 40;
const HEAD = SECRET_LENGTH + 1 + 4 + 6 + 4 + 2;
const scratch = Buffer.alloc(HEAD + 4 * ADDRESS_SLOT);
const sha256: (data: Buffer) => Buffer = typeof hash === 'function'
  ? (data) => hash('sha256', data, 'buffer') as Buffer
  : (data) => createHash('sha256').update(data).digest();

/** Canonical IPv6 text is ASCII; a plain loop is about twice as fast as Buffer.write + fill here. */
function putAddress(a: Ipv6, at: number): void {
  const n = Math.min(a.length, ADDRESS_SLOT);
  let j = 0;
  for (; j < n; j++) scratch[at + j] = a.charCodeAt(j);
  for (; j < ADDRESS_SLOT; j++) scratch[at + j] = 0;
}

function mac(secret: Uint8Array, kind: number, nonce: number, tag: number, fii: number, port: number, a0: Ipv6, a1: Ipv6, a2?: Ipv6, a3?: Ipv6): Buffer {
  scratch.set(secret, 0);
  scratch[SECRET_LENGTH] = kind;
  scratch.writeUInt32BE(nonce >>> 0, SECRET_LENGTH + 1);
  scratch.writeUIntBE(tag, SECRET_LENGTH + 5, 6);
  scratch.writeUInt32BE(fii >>> 0, SECRET_LENGTH + 11);
  scratch.writeUInt16BE(port & 0xffff, SECRET_LENGTH + 15);
  putAddress(a0, HEAD);
  putAddress(a1, HEAD + ADDRESS_SLOT);
  let end = HEAD + 2 * ADDRESS_SLOT;
  if (a2 !== undefined && a3 !== undefined) {
    putAddress(a2, end);
    putAddress(a3, end + ADDRESS_SLOT);
    end += 2 * ADDRESS_SLOT;
  }
  return sha256(scratch.subarray(0, end)).subarray(0, VALIDATOR_LENGTH);
}

/** Make the validator for an R1 (the generator). */
export function r1Validator(secret: Uint8Array, nonce: number, i: R1Inputs): Uint8Array {
  return mac(secret, KIND_R1, nonce, i.initiatorTag, i.fii, i.port, i.peerUlid, i.localUlid, i.peerLocator, i.localLocator);
}

/** Make the validator for an R1bis. */
export function r1bisValidator(secret: Uint8Array, nonce: number, i: R1bisInputs): Uint8Array {
  return mac(secret, KIND_R1BIS, nonce, i.packetTag, 0, i.port, i.peerLocator, i.localLocator);
}

/** Check an I2's validator (the checker): right epoch, constant-time compare. */
export function checkR1Validator(s: ResponderSecrets, now: Millis, nonce: number, got: Uint8Array, i: R1Inputs): boolean {
  const secret = s.secretFor(now, nonce);
  if (secret === undefined || got.length !== VALIDATOR_LENGTH) return false;
  return timingSafeEqual(r1Validator(secret, nonce, i), got);
}

/** Check an I2bis's validator. */
export function checkR1bisValidator(s: ResponderSecrets, now: Millis, nonce: number, got: Uint8Array, i: R1bisInputs): boolean {
  const secret = s.secretFor(now, nonce);
  if (secret === undefined || got.length !== VALIDATOR_LENGTH) return false;
  return timingSafeEqual(r1bisValidator(secret, nonce, i), got);
}

/**
 * R1 bytes for one I1, written straight into one buffer (no message object, no
 * options array, no generic encoder): a copy of an R1 the wire codec encoded
 * once, with the nonces, the validator and the checksum filled in. Offsets are
 * RFC 5533 §5.7's; test/engine/responder.test.ts checks the result against
 * encodeMessage byte for byte.
 */
const R1_TEMPLATE = encodeMessage({ type: 'R1', initiatorNonce: 0, responderNonce: 0, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(VALIDATOR_LENGTH) }] });
/** Octets of every R1 we send (the stateless one). */
export const R1_LENGTH = R1_TEMPLATE.length;
const R1_CHECKSUM = 4;
const R1_INITIATOR_NONCE = 8;
const R1_RESPONDER_NONCE = 12;
const R1_VALIDATOR = 20; // options start at 16; the option header is 4 octets

/** Encode the R1 answering an I1 with `initiatorNonce`, validator computed from `secret` and the inputs. */
export function encodeR1(secret: Uint8Array, responderNonce: number, initiatorNonce: number, i: R1Inputs): Uint8Array {
  const out = Buffer.allocUnsafe(R1_TEMPLATE.length);
  out.set(R1_TEMPLATE);
  out.writeUInt32BE(initiatorNonce >>> 0, R1_INITIATOR_NONCE);
  out.writeUInt32BE(responderNonce >>> 0, R1_RESPONDER_NONCE);
  out.set(r1Validator(secret, responderNonce, i), R1_VALIDATOR);
  out.writeUInt16BE(0, R1_CHECKSUM);
  out.writeUInt16BE(shim6Checksum(out, out.length), R1_CHECKSUM);
  return out;
}

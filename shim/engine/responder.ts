/**
 * The stateless responder (RFC 5533 §7.10, §7.17): Responder Validators for R1
 * and R1bis are HMAC-SHA256(secret, inputs of §7.10.1 / §7.17.1), truncated to
 * 16 octets. The Responder Nonce is the secret's epoch counter (§7.10.1 "running
 * counter C"), so a validator is checked against the current or the previous
 * secret only, with crypto.timingSafeEqual. Secrets rotate lazily every
 * `lifetime` ms, so every validator is accepted for at least `lifetime`
 * (≥ VALIDATOR_MIN_LIFETIME) and at most twice that.
 * NOTHING is allocated per I1 that outlives the call: no map entry, no context.
 * Generator and checker are separate functions over the same input encoder.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Millis } from '../time.ts';
import type { Random } from './random.ts';

/** Validator length on the wire (octets). */
export const VALIDATOR_LENGTH = 16;

/** Inputs of an R1 validator (RFC 5533 §7.10.1). `peerLocator`/`localLocator` are the I1's source/destination. */
export interface R1Inputs {
  initiatorTag: number;
  peerUlid: Ipv6;
  localUlid: Ipv6;
  peerLocator: Ipv6;
  localLocator: Ipv6;
  fii: number;
}

/** Inputs of an R1bis validator (RFC 5533 §7.17.1): the tag and locators of the packet that found no context. */
export interface R1bisInputs {
  packetTag: number;
  peerLocator: Ipv6;
  localLocator: Ipv6;
}

const KIND_R1 = 1;
const KIND_R1BIS = 2;

/** Rotating responder secrets. Holds exactly two secrets, whatever the I1 rate. */
export class ResponderSecrets {
  private epoch = -1;
  private current: Uint8Array;
  private previous: Uint8Array;

  constructor(private readonly random: Random, private readonly lifetime: Millis) {
    this.current = random.bytes(32);
    this.previous = random.bytes(32);
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
    else this.previous = this.random.bytes(32); // skipped epochs: nothing old stays valid
    this.current = this.random.bytes(32);
    this.epoch = e;
  }
}

function mac(secret: Uint8Array, kind: number, nonce: number, tag: number, addrs: readonly Ipv6[], fii: number): Buffer {
  const h = createHmac('sha256', secret);
  const head = Buffer.allocUnsafe(1 + 4 + 6 + 4);
  head[0] = kind;
  head.writeUInt32BE(nonce >>> 0, 1);
  head.writeUIntBE(tag, 5, 6);
  head.writeUInt32BE(fii >>> 0, 11);
  h.update(head);
  h.update(addrs.join(' ')); // canonical text (shim/wire/ipv6.ts) is a unique encoding of each address
  return h.digest().subarray(0, VALIDATOR_LENGTH);
}

/** Make the validator for an R1 (the generator). */
export function r1Validator(secret: Uint8Array, nonce: number, i: R1Inputs): Uint8Array {
  return mac(secret, KIND_R1, nonce, i.initiatorTag, [i.peerUlid, i.localUlid, i.peerLocator, i.localLocator], i.fii);
}

/** Make the validator for an R1bis. */
export function r1bisValidator(secret: Uint8Array, nonce: number, i: R1bisInputs): Uint8Array {
  return mac(secret, KIND_R1BIS, nonce, i.packetTag, [i.peerLocator, i.localLocator], 0);
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

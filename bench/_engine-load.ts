// Load generators for bench/engine.ts (not a benchmark itself: the leading "_"
// keeps it out of `npm run bench`): I1 floods from random addresses, and
// initiators with their own HBA sets whose I2s carry a valid Responder
// Validator obtained from the responder's own R1 — so the timed part is exactly
// the responder's work on I1 (stateless R1) and on I2 (HBA check + context).
import { randomBytes } from 'node:crypto';
import { Engine } from '../shim/engine/index.ts';
import { generateHbaSet } from '../shim/wire/hba.ts';
import { decodeMessage, encodeMessage, formatIpv6 } from '../shim/wire/index.ts';
import { VerificationMethod } from '../shim/constants.ts';
import type { Millis } from '../shim/time.ts';

export interface Datagram { src: string; dst: string; bytes: Uint8Array }

/** A random 2001:db8::/32 address from 16 random octets. */
export function randomAddress(buf: Uint8Array): string {
  buf[0] = 0x20; buf[1] = 0x01; buf[2] = 0x0d; buf[3] = 0xb8;
  return formatIpv6(buf);
}

/** `n` I1s to `dst`, each from its own random address with its own tag and nonce. */
export function i1Flood(n: number, dst: string): Datagram[] {
  const rnd = randomBytes(n * 26);
  const out: Datagram[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = i * 26;
    const tag = (rnd[o + 16]! & 0x7f) * 2 ** 40 + rnd.readUIntBE(o + 17, 5) + 1;
    const bytes = encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: rnd.readUInt32BE(o + 22), options: [] });
    out[i] = { src: randomAddress(rnd.subarray(o, o + 16)), dst, bytes };
  }
  return out;
}

/** An initiator: its HBA set over two prefixes (the first address is its ULID). */
export interface Initiator { ulid: string; locators: string[]; pds: Uint8Array }

export function makeInitiators(n: number): Initiator[] {
  const out: Initiator[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const set = generateHbaSet({ prefixes: [`2001:db8:${((i >> 12) + 1).toString(16)}::/64`, `2001:db8:${((i >> 12) + 0x8001).toString(16)}::/64`], sec: 0, randomBytes: (k) => randomBytes(k) });
    const locators = set.members.map((m) => m.address);
    out[i] = { ulid: locators[0]!, locators, pds: set.members[0]!.params };
  }
  return out;
}

/**
 * For each initiator: I1 to the responder, its R1 back (drained from the
 * responder), then the I2 that answers it (validator, full Locator List with
 * HBA method, CGA PDS). The responder still holds no state after this.
 */
export function buildI2s(responder: Engine, responderUlid: string, inits: Initiator[], now: Millis): Datagram[] {
  const out: Datagram[] = new Array(inits.length);
  const nonces = randomBytes(inits.length * 10);
  for (let i = 0; i < inits.length; i++) {
    const it = inits[i]!;
    const tag = nonces.readUIntBE(i * 10, 5) + 1;
    const initiatorNonce = nonces.readUInt32BE(i * 10 + 5);
    responder.handleDatagram(now, { src: it.ulid, dst: responderUlid, bytes: encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce, options: [] }) });
    const r1 = responder.pollTransmit();
    while (responder.pollTransmit()) { /* nothing else expected */ }
    if (!r1) throw new Error('the responder did not answer an I1');
    const m = decodeMessage(r1.bytes);
    if (m.type !== 'R1') throw new Error(`expected R1, got ${m.type}`);
    const validator = m.options.find((o) => o.type === 'ResponderValidator');
    if (validator?.type !== 'ResponderValidator') throw new Error('R1 without a validator');
    const bytes = encodeMessage({
      type: 'I2', contextTag: tag, initiatorNonce, responderNonce: m.responderNonce,
      options: [
        validator,
        { type: 'LocatorList', critical: false, generation: 1, locators: it.locators.map((address) => ({ address, verificationMethod: VerificationMethod.HBA })) },
        { type: 'CgaParameterDataStructure', critical: false, pds: it.pds },
      ],
    });
    out[i] = { src: it.ulid, dst: responderUlid, bytes };
  }
  return out;
}

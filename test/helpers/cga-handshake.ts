/**
 * The pieces of a CGA handshake with an engine under test (test/engine/cga-cost, known-peers):
 * a peer whose ULID and one more locator are CGA-method addresses of one key, the R1 an I1 draws,
 * and an I2 carrying the peer's signed locator list.
 */
import type { Engine } from '../../shim/engine/index.ts';
import { decodeMessage, encodeMessage, findOption, type R1Message, type Shim6Option } from '../../shim/wire/index.ts';
import { generateCga, type RandomBytes } from '../../shim/wire/cga.ts';
import { VerificationMethod } from '../../shim/constants.ts';
import type { Millis } from '../../shim/time.ts';
import type { Ipv6 } from '../../shim/wire/ipv6.ts';
import { SimRng } from './rng.ts';

/** Deterministic random octets from `seed`. */
export function bytesFrom(seed: number): RandomBytes {
  const rng = new SimRng(seed);
  return (n) => { const b = new Uint8Array(n); rng.fill(b); return b; };
}

/** A host at `prefix` with a CGA ULID of the key `spki` and one more CGA-method locator. */
export function cgaPeer(prefix: string, spki: Uint8Array, seed: number) {
  const cga = generateCga({ subnetPrefix: `${prefix}/64`, publicKey: spki, sec: 0, randomBytes: bytesFrom(seed) });
  const extra = `${prefix}99`;
  const list: Shim6Option = { type: 'LocatorList', critical: false, generation: 1, locators: [cga.address, extra].map((address) => ({ address, verificationMethod: VerificationMethod.CGA })) };
  return { ulid: cga.address, params: cga.params, extra, list };
}

export type CgaPeer = ReturnType<typeof cgaPeer>;

/** An I1 from `src` to `dst` (engine `b`), and the R1's validator and responder nonce; everything else `b` sends is drained. */
export function askR1(b: Engine, now: Millis, src: Ipv6, dst: Ipv6, tag: number): { validator: Uint8Array; responderNonce: number } {
  b.handleDatagram(now, { src, dst, bytes: encodeMessage({ type: 'I1', contextTag: tag, initiatorNonce: tag, options: [] }) });
  const r1 = decodeMessage(b.pollTransmit()!.bytes) as R1Message;
  while (b.pollTransmit() !== undefined);
  return { validator: findOption(r1, 'ResponderValidator')!.validator, responderNonce: r1.responderNonce };
}

/** The I2 answering that R1, with the peer's locator list, its PDS and `signature`. */
export function i2(tag: number, r1: { validator: Uint8Array; responderNonce: number }, peer: CgaPeer, signature: Uint8Array): Uint8Array {
  return encodeMessage({ type: 'I2', contextTag: tag, initiatorNonce: tag, responderNonce: r1.responderNonce, options: [
    { type: 'ResponderValidator', critical: false, validator: r1.validator }, peer.list,
    { type: 'CgaParameterDataStructure', critical: false, pds: peer.params },
    { type: 'CgaSignature', critical: false, signature },
  ] });
}

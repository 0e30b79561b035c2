// fast-check arbitraries of every Shim6 option and message, shared by the property
// and fuzz tests. Per-message allowed options are listed here from RFC 5533 §5.4–§5.11
// and RFC 5534 §5.3, independently of the codec's own table.
import fc from 'fast-check';
import { formatIpv6 } from '../../shim/wire/ipv6.ts';
import type { LocatorPreference, ProbeReport, Shim6Message, Shim6Option, Shim6OptionName } from '../../shim/wire/messages.ts';

type Known = Exclude<Shim6OptionName, 'Unknown'>;

/** fc.record with ordinary prototypes, so that deepEqual compares like with like. */
const rec = <T extends object>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> =>
  fc.record(model, { noNullPrototype: true }) as unknown as fc.Arbitrary<T>;

export const u8 = fc.integer({ min: 0, max: 0xff });
export const u16 = fc.integer({ min: 0, max: 0xffff });
export const u32 = fc.tuple(u16, u16).map(([h, l]) => h * 0x10000 + l);
export const tag = fc.tuple(fc.integer({ min: 0, max: 0x7fff }), u32).map(([h, l]) => h * 0x1_0000_0000 + l);
export const ipv6 = fc.oneof(
  fc.uint8Array({ minLength: 16, maxLength: 16 }),
  // Addresses with zero runs exercise RFC 5952 compression.
  fc.tuple(u16, u16).map(([a, z]) => Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, a >> 8, a & 0xff, 0, 0, 0, 0, 0, 0, 0, 0, z >> 8, z & 0xff])),
).map((b) => formatIpv6(b));
const bytes = (max: number): fc.Arbitrary<Uint8Array> => fc.uint8Array({ maxLength: max });

const preferences: fc.Arbitrary<{ elementLength: number; elements: LocatorPreference[] }> = fc.integer({ min: 1, max: 5 }).chain((el) =>
  fc.array(
    fc.tuple(u8, u8, u8, fc.uint8Array({ minLength: Math.max(0, el - 3), maxLength: Math.max(0, el - 3) })).map(([flags, priority, weight, extra]) => {
      const e: LocatorPreference = { flags };
      if (el >= 2) e.priority = priority;
      if (el >= 3) e.weight = weight;
      if (el > 3) e.extra = extra;
      return e;
    }),
    { maxLength: 8 },
  ).map((elements) => ({ elementLength: el, elements })));

export const optionArb: Record<Known, fc.Arbitrary<Shim6Option>> = {
  ResponderValidator: rec({ type: fc.constant('ResponderValidator' as const), critical: fc.boolean(), validator: bytes(64) }),
  LocatorList: rec({
    type: fc.constant('LocatorList' as const), critical: fc.boolean(), generation: u32,
    locators: fc.array(rec({ address: ipv6, verificationMethod: u8 }), { maxLength: 8 }),
  }),
  LocatorPreferences: fc.tuple(fc.boolean(), u32, preferences).map(([critical, generation, p]) => ({ type: 'LocatorPreferences' as const, critical, generation, ...p })),
  CgaParameterDataStructure: rec({ type: fc.constant('CgaParameterDataStructure' as const), critical: fc.boolean(), pds: bytes(96) }),
  CgaSignature: rec({ type: fc.constant('CgaSignature' as const), critical: fc.boolean(), signature: bytes(96) }),
  UlidPair: rec({ type: fc.constant('UlidPair' as const), critical: fc.boolean(), senderUlid: ipv6, receiverUlid: ipv6 }),
  ForkedInstanceIdentifier: rec({ type: fc.constant('ForkedInstanceIdentifier' as const), critical: fc.boolean(), forkedInstanceId: u32 }),
  KeepaliveTimeout: rec({ type: fc.constant('KeepaliveTimeout' as const), critical: fc.boolean(), timeoutSeconds: u16 }),
};

const CODES: Record<Known, number> = {
  ResponderValidator: 1, LocatorList: 2, LocatorPreferences: 3, CgaParameterDataStructure: 4,
  CgaSignature: 5, UlidPair: 6, ForkedInstanceIdentifier: 7, KeepaliveTimeout: 10,
};

const LOCATOR_OPTS: Known[] = ['LocatorList', 'LocatorPreferences', 'CgaParameterDataStructure', 'CgaSignature', 'KeepaliveTimeout'];
/** Allowed options per message type (RFC 5533 §5.4–§5.11, RFC 5534 §5.3). */
export const ALLOWED: Record<Shim6Message['type'], Known[]> = {
  I1: ['UlidPair', 'ForkedInstanceIdentifier'],
  R1: ['ResponderValidator'],
  I2: ['ResponderValidator', 'UlidPair', 'ForkedInstanceIdentifier', ...LOCATOR_OPTS],
  R2: LOCATOR_OPTS,
  R1bis: ['ResponderValidator'],
  I2bis: ['ResponderValidator', 'UlidPair', 'ForkedInstanceIdentifier', ...LOCATOR_OPTS],
  UpdateRequest: LOCATOR_OPTS,
  UpdateAck: [], Keepalive: [], Probe: [], Error: [], Close: [], CloseAck: [],
};

/**
 * Options a message of this type can carry and get back unchanged: allowed known
 * options (C either way), and ignorable ones (C = 0) of unknown or not-allowed types.
 */
export function optionsFor(type: Shim6Message['type']): fc.Arbitrary<Shim6Option[]> {
  const allowed = ALLOWED[type];
  const notAllowedCodes = (Object.keys(CODES) as Known[]).filter((k) => !allowed.includes(k)).map((k) => CODES[k]);
  const unknownType = fc.oneof(fc.integer({ min: 11, max: 0x7fff }), fc.constantFrom(0, 8, 9, ...notAllowedCodes));
  const unknown = rec({ type: fc.constant('Unknown' as const), critical: fc.constant(false), optionType: unknownType, data: bytes(40) });
  const choices = [...allowed.map((k) => optionArb[k]), unknown];
  return fc.array(fc.oneof(...choices), { maxLength: 4 });
}

const report: fc.Arbitrary<ProbeReport> = rec({ source: ipv6, destination: ipv6, nonce: u32, data: u32 });

export const messageArb: Record<Shim6Message['type'], fc.Arbitrary<Shim6Message>> = {
  I1: rec({ type: fc.constant('I1' as const), contextTag: tag, initiatorNonce: u32, options: optionsFor('I1') }),
  R1: rec({ type: fc.constant('R1' as const), initiatorNonce: u32, responderNonce: u32, options: optionsFor('R1') }),
  I2: rec({ type: fc.constant('I2' as const), contextTag: tag, initiatorNonce: u32, responderNonce: u32, options: optionsFor('I2') }),
  R2: rec({ type: fc.constant('R2' as const), contextTag: tag, initiatorNonce: u32, options: optionsFor('R2') }),
  R1bis: rec({ type: fc.constant('R1bis' as const), packetContextTag: tag, responderNonce: u32, options: optionsFor('R1bis') }),
  I2bis: rec({ type: fc.constant('I2bis' as const), contextTag: tag, initiatorNonce: u32, responderNonce: u32, packetContextTag: tag, options: optionsFor('I2bis') }),
  UpdateRequest: rec({ type: fc.constant('UpdateRequest' as const), contextTag: tag, requestNonce: u32, options: optionsFor('UpdateRequest') }),
  UpdateAck: rec({ type: fc.constant('UpdateAck' as const), contextTag: tag, requestNonce: u32, options: optionsFor('UpdateAck') }),
  Keepalive: rec({ type: fc.constant('Keepalive' as const), contextTag: tag, options: optionsFor('Keepalive') }),
  Probe: rec({
    type: fc.constant('Probe' as const), contextTag: tag, state: fc.constantFrom('Operational' as const, 'Exploring' as const, 'InboundOk' as const),
    sent: fc.array(report, { minLength: 1, maxLength: 15 }), received: fc.array(report, { maxLength: 15 }), options: optionsFor('Probe'),
  }),
  // The packet in error is padded to 8 on the wire; lengths that are multiples of 8 come back unchanged.
  Error: rec({
    type: fc.constant('Error' as const), errorCode: fc.integer({ min: 0, max: 127 }), pointer: u16,
    offendingPacket: fc.integer({ min: 1, max: 20 }).chain((n) => fc.uint8Array({ minLength: 8 * n, maxLength: 8 * n })), options: fc.constant([]),
  }),
  Close: rec({ type: fc.constant('Close' as const), contextTag: tag, nonce: u32, options: optionsFor('Close') }),
  CloseAck: rec({ type: fc.constant('CloseAck' as const), contextTag: tag, nonce: u32, options: optionsFor('CloseAck') }),
};

export const anyMessage: fc.Arbitrary<Shim6Message> = fc.oneof(...Object.values(messageArb));

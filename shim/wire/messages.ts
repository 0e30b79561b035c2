/**
 * The decoded shape of every Shim6 control message and option (RFC 5533 §5,
 * RFC 5534 §5, and our Close / CloseAck extension, docs/wire.md). Plain typed
 * objects, tagged on `type`; the codecs in message-codec.ts and options.ts turn
 * them into bytes and back. This module knows no offsets and no I/O.
 *
 * Conventions (docs/contracts.md "shim/wire (messages)"):
 * - context tags are `number`s below 2^47; the reserved R bit is not represented;
 * - nonces and other u32 fields are `number`s in 0..2^32-1;
 * - addresses are canonical IPv6 text (shim/wire/ipv6.ts);
 * - opaque contents (validators, CGA parameters, signatures, unknown options) are `Uint8Array`;
 * - `options` keeps wire order, including ignored unknown options (C = 0).
 * Reserved fields are zero on transmit and ignored on receipt, so they are not represented.
 */
import type { Ipv6 } from './ipv6.ts';

// ---------------------------------------------------------------- options (RFC 5533 §5.15)

interface OptionBase {
  /** The C bit: the receiver must understand this option or reject the message (RFC 5533 §5.15). */
  critical: boolean;
}

/** RFC 5533 §5.15.1: opaque to everyone but the responder that made it. */
export interface ResponderValidatorOption extends OptionBase {
  type: 'ResponderValidator';
  validator: Uint8Array;
}

/** One entry of a Locator List: the locator and how the receiver verifies it (1 = HBA, 2 = CGA). */
export interface LocatorEntry {
  address: Ipv6;
  verificationMethod: number;
}

/** RFC 5533 §5.15.2. The order matters: Locator Preferences refer to locators by index. */
export interface LocatorListOption extends OptionBase {
  type: 'LocatorList';
  generation: number;
  locators: LocatorEntry[];
}

/**
 * RFC 5533 §5.15.3: one element per locator of the list with the same generation.
 * Element length 1 carries flags; 2 adds priority; 3 adds weight; longer elements keep
 * their remaining octets in `extra` so that they survive a round trip.
 */
export interface LocatorPreference {
  flags: number;
  priority?: number;
  weight?: number;
  extra?: Uint8Array;
}

export interface LocatorPreferencesOption extends OptionBase {
  type: 'LocatorPreferences';
  generation: number;
  /** Octets per element (1..255); every element must carry exactly the fields this length implies. */
  elementLength: number;
  elements: LocatorPreference[];
}

/** RFC 5533 §5.15.4: the CGA Parameter Data Structure (RFC 3972 §3), with the HBA extension if any. */
export interface CgaParameterDataStructureOption extends OptionBase {
  type: 'CgaParameterDataStructure';
  pds: Uint8Array;
}

/** RFC 5533 §5.15.5: RSASSA-PKCS1-v1_5 signature over the CGA-method locators. */
export interface CgaSignatureOption extends OptionBase {
  type: 'CgaSignature';
  signature: Uint8Array;
}

/** RFC 5533 §5.15.6: the ULIDs when they differ from the IPv6 addresses carrying the message. */
export interface UlidPairOption extends OptionBase {
  type: 'UlidPair';
  senderUlid: Ipv6;
  receiverUlid: Ipv6;
}

/** RFC 5533 §5.15.7. */
export interface ForkedInstanceIdentifierOption extends OptionBase {
  type: 'ForkedInstanceIdentifier';
  forkedInstanceId: number;
}

/** RFC 5534 §5.3: the Keepalive Timeout (seconds, u16) the sender asks the peer to use. */
export interface KeepaliveTimeoutOption extends OptionBase {
  type: 'KeepaliveTimeout';
  timeoutSeconds: number;
}

/**
 * An option this implementation does not know, or knows but does not allow in this
 * message type, received with C = 0 (ignored by the protocol, kept for round trips
 * and debugging). With C = 1 the decoder throws ECRITICAL_OPTION instead.
 */
export interface UnknownOption extends OptionBase {
  type: 'Unknown';
  /** The 15-bit option type from the wire. */
  optionType: number;
  data: Uint8Array;
}

export type Shim6Option =
  | ResponderValidatorOption
  | LocatorListOption
  | LocatorPreferencesOption
  | CgaParameterDataStructureOption
  | CgaSignatureOption
  | UlidPairOption
  | ForkedInstanceIdentifierOption
  | KeepaliveTimeoutOption
  | UnknownOption;

export type Shim6OptionName = Shim6Option['type'];

// ---------------------------------------------------------------- messages (RFC 5533 §5.4–§5.14, RFC 5534 §5)

/** RFC 5533 §5.4. */
export interface I1Message {
  type: 'I1';
  /** Initiator Context Tag. */
  contextTag: number;
  initiatorNonce: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.5. */
export interface R1Message {
  type: 'R1';
  initiatorNonce: number;
  responderNonce: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.6. */
export interface I2Message {
  type: 'I2';
  /** Initiator Context Tag. */
  contextTag: number;
  initiatorNonce: number;
  responderNonce: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.7. */
export interface R2Message {
  type: 'R2';
  /** Responder Context Tag. */
  contextTag: number;
  initiatorNonce: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.8. */
export interface R1bisMessage {
  type: 'R1bis';
  /** The context tag of the packet that found no context. */
  packetContextTag: number;
  responderNonce: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.9. */
export interface I2bisMessage {
  type: 'I2bis';
  /** Initiator Context Tag. */
  contextTag: number;
  initiatorNonce: number;
  responderNonce: number;
  /** Copied from the R1bis. */
  packetContextTag: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.10. */
export interface UpdateRequestMessage {
  type: 'UpdateRequest';
  /** Receiver Context Tag. */
  contextTag: number;
  requestNonce: number;
  options: Shim6Option[];
}

/** RFC 5533 §5.11: `requestNonce` is copied from the Update Request. */
export interface UpdateAckMessage {
  type: 'UpdateAck';
  /** Receiver Context Tag. */
  contextTag: number;
  requestNonce: number;
  options: Shim6Option[];
}

/** RFC 5534 §5.1. */
export interface KeepaliveMessage {
  type: 'Keepalive';
  /** Receiver Context Tag. */
  contextTag: number;
  options: Shim6Option[];
}

/** RFC 5534 §5.2: the REAP state the sender reports. */
export type ProbeState = 'Operational' | 'Exploring' | 'InboundOk';

/** RFC 5534 §5.2: one sent or received probe report (40 octets on the wire). */
export interface ProbeReport {
  source: Ipv6;
  destination: Ipv6;
  nonce: number;
  data: number;
}

/** RFC 5534 §5.2. `sent[0]` describes this probe itself; at most 15 reports of each kind. */
export interface ProbeMessage {
  type: 'Probe';
  /** Receiver Context Tag. */
  contextTag: number;
  state: ProbeState;
  sent: ProbeReport[];
  received: ProbeReport[];
  options: Shim6Option[];
}

/**
 * RFC 5533 §5.14. The packet in error fills the rest of the header, so an Error
 * carries no options (`options` is always empty). The wire pads `offendingPacket`
 * with zeros to a multiple of 8 octets; the decoder returns the padded bytes.
 */
export interface ErrorMessage {
  type: 'Error';
  /** 7 bits (0..127), ErrorCode in shim/constants.ts. */
  errorCode: number;
  /** Octet offset in the offending packet where the error was found (u16). */
  pointer: number;
  offendingPacket: Uint8Array;
  options: Shim6Option[];
}

/** Coordinated teardown (our extension; type 60, docs/wire.md): "I am removing this context". */
export interface CloseMessage {
  type: 'Close';
  /** The receiver's context tag (like Update Request). */
  contextTag: number;
  nonce: number;
  options: Shim6Option[];
}

/** Coordinated teardown acknowledgement (type 61): echoes the Close's nonce. */
export interface CloseAckMessage {
  type: 'CloseAck';
  /** The receiver's context tag (the Close's sender's tag). */
  contextTag: number;
  nonce: number;
  options: Shim6Option[];
}

export type Shim6Message =
  | I1Message
  | R1Message
  | I2Message
  | R2Message
  | R1bisMessage
  | I2bisMessage
  | UpdateRequestMessage
  | UpdateAckMessage
  | KeepaliveMessage
  | ProbeMessage
  | ErrorMessage
  | CloseMessage
  | CloseAckMessage;

export type Shim6MessageName = Shim6Message['type'];

/** A decoded Shim6 Payload Extension header (RFC 5533 §5.2). */
export interface PayloadHeader {
  /** The ULP protocol number that follows. */
  nextHeader: number;
  /** Receiver Context Tag. */
  contextTag: number;
  headerLength: 8;
}

/** The first option of the given type, typed; `undefined` when there is none. */
export function findOption<K extends Shim6OptionName>(
  msg: { readonly options: readonly Shim6Option[] },
  type: K,
): Extract<Shim6Option, { type: K }> | undefined {
  for (const o of msg.options) if (o.type === type) return o as Extract<Shim6Option, { type: K }>;
  return undefined;
}

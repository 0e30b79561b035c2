/**
 * Specification constants, each with its RFC section. Implementation choices
 * (profiles, cache sizes, defaults of our own) live in shim/engine/config.ts
 * and the modules that own them, never here.
 */
import { seconds, ms, type Millis } from './time.ts';

/** RFC 5533 §5: IPv6 Next Header value of the Shim6 header. */
export const IPPROTO_SHIM6 = 140;
/** RFC 5533 §5.3: control messages carry "No Next Header". */
export const IPPROTO_NONE = 59;
/** RFC 5533 §5: signalling packets must fit the IPv6 minimum MTU with their IPv6 header. */
export const MIN_IPV6_MTU = 1280;
/** RFC 8200 §3: length of the IPv6 fixed header. */
export const IPV6_HEADER_LENGTH = 40;
/** RFC 768: length of the UDP header. */
export const UDP_HEADER_LENGTH = 8;
/** Our UDP encapsulation port (docs/wire.md "Transports"). */
export const SHIM6_UDP_PORT = 5533;

/** RFC 5533 §5.3–§5.13 and RFC 5534 §5: message types. */
export const MessageType = {
  I1: 1,
  R1: 2,
  I2: 3,
  R2: 4,
  R1bis: 5,
  I2bis: 6,
  /** Close / CloseAck: our extension, in the experimental range (RFC 5533 §19; docs/wire.md). */
  Close: 60,
  CloseAck: 61,
  UpdateRequest: 64,
  UpdateAck: 65,
  Keepalive: 66,
  Probe: 67,
  Error: 68,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** RFC 5533 §5.15, RFC 5534 §5.2: option types. */
export const OptionType = {
  ResponderValidator: 1,
  LocatorList: 2,
  LocatorPreferences: 3,
  CgaParameterDataStructure: 4,
  CgaSignature: 5,
  UlidPair: 6,
  ForkedInstanceIdentifier: 7,
  KeepaliveTimeout: 10,
} as const;
export type OptionType = (typeof OptionType)[keyof typeof OptionType];

/** RFC 5533 §5.14: Error message codes. */
export const ErrorCode = {
  UnknownMessageType: 0,
  CriticalOptionNotRecognized: 1,
  LocatorVerificationFailed: 2,
  LocatorListGenerationOutOfSync: 3,
  WrongNumberOfPreferenceElements: 4,
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/** RFC 5533 §5.15.2 (as Wireshark and LinShim6 read it; §17 says the reverse). */
export const VerificationMethod = { HBA: 1, CGA: 2 } as const;
export type VerificationMethod = (typeof VerificationMethod)[keyof typeof VerificationMethod];

/** RFC 5533 §5.15.3, RFC 5534 §5.1: locator preference flags. */
export const LocatorFlag = { BROKEN: 0x01, TRANSIENT: 0x02 } as const;
/** Every locator flag defined: a capability record with another bit set fails `zone check`, and the zone tools do not write one. */
export const KNOWN_LOCATOR_FLAGS = LocatorFlag.BROKEN | LocatorFlag.TRANSIENT;

/** RFC 5533 §19: experimental ranges. */
export const EXPERIMENTAL_TYPES_LOW: readonly [number, number] = [60, 63];
export const EXPERIMENTAL_TYPES_HIGH: readonly [number, number] = [124, 127];
export const EXPERIMENTAL_OPTIONS: readonly [number, number] = [16384, 32767];

/** RFC 5533 §14: protocol constants. */
export const I1_TIMEOUT: Millis = seconds(4);
export const I1_RETRIES_MAX = 4;
export const NO_R1_HOLDDOWN_TIME: Millis = seconds(60);
export const ICMP_HOLDDOWN_TIME: Millis = seconds(600);
export const I2_TIMEOUT: Millis = seconds(4);
export const I2_RETRIES_MAX = 2;
/**
 * Not RFC 5533's: I2 cycles (each ending in a fall back to I1, §7.12) before E-FAILED. A peer
 * that answers every I1 with an R1 and drops every I2 (it cannot verify our ULID) would
 * otherwise keep the context retrying forever, each R1 starting the cycle anew.
 */
export const I2_CYCLES_MAX = 3;
export const I2BIS_TIMEOUT: Millis = seconds(4);
export const I2BIS_RETRIES_MAX = 2;
export const VALIDATOR_MIN_LIFETIME: Millis = seconds(30);
export const UPDATE_TIMEOUT: Millis = seconds(4);
export const MAX_UPDATE_TIMEOUT: Millis = seconds(120);

/** RFC 5534 §7: REAP constants. */
export const INITIAL_PROBE_TIMEOUT: Millis = ms(500);
export const INITIAL_PROBES = 4;
export const MAX_PROBE_TIMEOUT: Millis = seconds(60);
export const SEND_TIMEOUT: Millis = seconds(15);
/** RFC 5534 §5.2 / §7: Keepalive Interval is 1/3 to 1/2 of the peer's Keepalive Timeout. */
export const KEEPALIVE_INTERVAL_FRACTION_MIN = 1 / 3;
export const KEEPALIVE_INTERVAL_FRACTION_MAX = 1 / 2;

/** The capability record (docs/capability-record.md). */
export const CAPABILITY_RR_TYPE = 65300;
/**
 * RFC 6895 §3.1: RR types 65280–65534 are for private use, the only ones the record's type may
 * be configured to: any other number is (or may become) a real type, and an update with it
 * deletes that RRset (1: the host's A records; 16: its TXT).
 */
export const PRIVATE_RR_TYPE_MIN = 65280;
export const PRIVATE_RR_TYPE_MAX = 65534;
export const CAPABILITY_RECORD_VERSION = 1;
export const CAPABILITY_MAX_LOCATORS = 32;

/** RFC 3972 §3: CGA Parameters layout: modifier (16), subnet prefix (8), collision count (1), then the key. */
export const CGA_MODIFIER_LENGTH = 16;
export const CGA_PREFIX_LENGTH = 8;
export const CGA_KEY_OFFSET = 25;
/** RFC 3972 §3, §5 step 1: the collision count MUST be 0, 1 or 2. */
export const CGA_MAX_COLLISION_COUNT = 2;
/** RFC 4982 §6 (CGA SEC registry): only Sec 0, 1, 2 (SHA-1) are defined; RFC 5535 §6, §7. */
export const CGA_MAX_SEC = 2;
/** RFC 5535 §5, §10: CGA extension type of the Multi-Prefix extension. */
export const CGA_EXT_MULTI_PREFIX = 0x0012;
/** RFC 5535 §5: Multi-Prefix P flag (a real public key is in the Public Key field). */
export const MULTI_PREFIX_P_FLAG = 0x80;
/** RFC 5535 §6 step 2: length of the Extended Modifier of HBA-only sets. */
export const HBA_EXTENDED_MODIFIER_BITS = 384;
/** RFC 5533 §5.15.5: the 128-bit CGA Message Type tag for Shim6. */
export const SHIM6_CGA_TYPE_TAG: readonly number[] = [
  0x4a, 0x30, 0x56, 0x62, 0x48, 0x58, 0x57, 0x4b, 0x36, 0x55, 0x41, 0x6f, 0x50, 0x6a, 0x6d, 0x48,
];
/** RFC 5533 §16: minimum RSA key length for CGAs used by Shim6. */
export const SHIM6_MIN_RSA_KEY_BITS = 1024;
/**
 * Largest RSA modulus a peer's CGA key may have (ours: docs/security.md "CGA
 * verification cost"). RFC 3972 and RFC 5533 set no upper bound; one bounds the
 * cost of a verification an unproven sender can make us run.
 */
export const SHIM6_MAX_RSA_KEY_BITS = 4096;
/** Largest RSA public exponent a peer's CGA key may have (it must also be odd and ≥ 3): 2^32 − 1. */
export const SHIM6_MAX_RSA_EXPONENT = 0xffff_ffff;

/** Capability record flags (octet 1) and locator flags (docs/capability-record.md). */
export const CapabilityFlag = { HBA_SET: 0x80, CGA_ULID: 0x40 } as const;
/** Capability record parameter keys (docs/capability-record.md). */
export const CapabilityParamKey = { MANDATORY: 0, HBA_DIGEST: 1, PORT: 2 } as const;
/** Capability record hba-digest algorithm 1 = SHA-256 (32-octet digest). */
export const HBA_DIGEST_ALG_SHA256 = 1;
/** The capability record TXT fallback's version tag and owner label (docs/capability-record.md). */
export const CAPABILITY_TXT_TAG = 'v=shim6cap1';
export const CAPABILITY_TXT_LABEL = '_shim6';

/** RFC 5533 §5.4–§5.14, RFC 5534 §5, docs/wire.md (Close, CloseAck): minimum Hdr Ext Len per message; shorter is dropped. */
export const MIN_HDR_EXT_LEN = {
  I1: 1, R1: 1, I2: 2, R2: 1, R1bis: 1, I2bis: 3, Close: 1, CloseAck: 1,
  UpdateRequest: 1, UpdateAck: 1, Keepalive: 1,
  /** 56 octets: the header and the report of the probe itself (RFC 5534 §5.2). */
  Probe: 6,
  Error: 1,
} as const;
/** RFC 5534 §5.2: Probe state, the top two bits of octet 13 (3 is undefined). */
export const ProbeStateCode = { Operational: 0, Exploring: 1, InboundOk: 2 } as const;
/** RFC 5534 §5.2: one sent or received probe report: source (16), destination (16), nonce (4), data (4). */
export const PROBE_REPORT_LENGTH = 40;
/** RFC 5534 §5.2: Psent and Precvd are 4-bit counts. */
export const PROBE_MAX_REPORTS = 15;
/** RFC 5533 §5.2: the payload extension header is always 8 octets (Hdr Ext Len 0). */
export const PAYLOAD_HEADER_LENGTH = 8;

/**
 * The public face of shim/wire (docs/contracts.md "shim/wire (messages)"): decode
 * and encode Shim6 control messages, the payload extension header, and the types.
 * Sans-I/O: bytes in, values out.
 */
export type * from './messages.ts';
export { findOption } from './messages.ts';
export { decodeMessage, tryDecodeMessage, encodeMessage, encodingLength, messageName, MAX_HEADER_LENGTH } from './message-codec.ts';
export { decodePayloadHeader, encodePayloadHeader, writePayloadHeader, isPayloadHeader, shim6Checksum, MAX_CONTEXT_TAG } from './header.ts';
export { WireError, type WireErrorCode } from './errors.ts';
export { parseIpv6, formatIpv6, canonicalIpv6, isIpv6, type Ipv6 } from './ipv6.ts';

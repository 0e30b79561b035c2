/**
 * Shim6 Error messages (RFC 5533 §5.14, §12.3): what we send when a peer's
 * message has an unknown type (code 0), an unknown critical option (code 1),
 * or a locator list we cannot use (codes 2–4, update.ts). Over UDP there is no
 * IPv6 header to quote, so we rebuild the 40 octets from the locators: the
 * Pointer then counts from the start of the IPv6 packet, as the RFC intends.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import { parseIpv6 } from '../wire/ipv6.ts';
import { encodeMessage, type ErrorMessage } from '../wire/index.ts';
import type { Millis } from '../time.ts';
import { IPPROTO_SHIM6, IPV6_HEADER_LENGTH, MIN_IPV6_MTU } from '../constants.ts';
import type { Core } from './core.ts';
import { replyPort, type Datagram } from './rx.ts';

/** Room for our IPv6 header (40) + the Error's own fixed part (16). */
const MAX_QUOTE = MIN_IPV6_MTU - IPV6_HEADER_LENGTH - 16;

/** The offending packet as an IPv6 packet (header rebuilt) truncated to fit 1280. */
function quote(peer: Ipv6, local: Ipv6, shimBytes: Uint8Array): Uint8Array {
  const n = Math.min(MAX_QUOTE, IPV6_HEADER_LENGTH + shimBytes.length);
  const out = new Uint8Array(n);
  out[0] = 0x60;
  out[4] = (shimBytes.length >> 8) & 0xff;
  out[5] = shimBytes.length & 0xff;
  out[6] = IPPROTO_SHIM6;
  out[7] = 64;
  out.set(parseIpv6(peer), 8);
  out.set(parseIpv6(local), 24);
  out.set(shimBytes.subarray(0, n - IPV6_HEADER_LENGTH), IPV6_HEADER_LENGTH);
  return out;
}

/**
 * Send an Error about the datagram `rx` (back to its source); `pointer` is an
 * offset into its bytes. Within the
 * reply limits; the quoted IPv6 header (which RFC 5533 §5.14 makes us carry,
 * rebuilt over UDP) is the only part allowed beyond twice the offending bytes.
 */
export function sendError(core: Core, now: Millis, rx: Datagram, code: number, pointer: number): void {
  const { src: peer, dst: local, bytes: shimBytes } = rx;
  const packet = quote(peer, local, shimBytes);
  const msg: ErrorMessage = { type: 'Error', errorCode: code, pointer: Math.min(0xffff, IPV6_HEADER_LENGTH + pointer), offendingPacket: packet, options: [] };
  const bytes = encodeMessage(msg);
  if (core.mayReply(now, 'Error', peer, bytes.length, shimBytes.length, IPV6_HEADER_LENGTH)) core.sendBytes(local, peer, bytes, replyPort(rx));
}

/** The Shim6 part of an Error's offending packet (skips our rebuilt IPv6 header when present). */
export function offendingShim(packet: Uint8Array): Uint8Array {
  return packet.length >= IPV6_HEADER_LENGTH + 8 && (packet[0]! >> 4) === 6 && packet[6] === IPPROTO_SHIM6 ? packet.subarray(IPV6_HEADER_LENGTH) : packet;
}

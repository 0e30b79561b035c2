/**
 * The IPv6 fixed header as the data plane needs it: split an application
 * packet from the TUN into (ULIDs, next header, ULP bytes) for the engine, and
 * rebuild the header from a context's ULIDs on receive (docs/wire.md "Transports": the UDP
 * payload is what would follow the IPv6 header in native Shim6).
 *
 * Owns: the 40-octet fixed header (RFC 8200 §3) and the Internet checksum
 * helpers the TCP prompt and the tests need. Must not know: Shim6 messages,
 * contexts, sockets. Everything works on views: no copies of the payload.
 */
import { formatIpv6, parseIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { IPV6_HEADER_LENGTH } from '../constants.ts';

/** RFC 8200 §3: length of the fixed header (shim/constants.ts). */
export { IPV6_HEADER_LENGTH };
/** Hop limit of rebuilt headers: the packet crossed the tunnel as one hop. */
export const REBUILT_HOP_LIMIT = 64;

/** An application packet split for `engine.encapsulate`. */
export interface SplitPacket {
  srcUlid: Ipv6;
  dstUlid: Ipv6;
  nextHeader: number;
  /** View into the packet: everything after the fixed header. */
  payload: Uint8Array;
}

/**
 * Split an IPv6 packet read from the TUN. Returns undefined for anything that
 * is not a well-formed IPv6 packet (the TUN also carries IPv4 and junk the
 * kernel may send; we drop it). Extension headers stay in the payload: the
 * fixed header's Next Header says what follows, as in native Shim6.
 */
export function splitPacket(packet: Uint8Array): SplitPacket | undefined {
  if (packet.length < IPV6_HEADER_LENGTH || packet[0]! >> 4 !== 6) return undefined;
  const payloadLength = (packet[4]! << 8) | packet[5]!;
  if (IPV6_HEADER_LENGTH + payloadLength > packet.length) return undefined;
  return {
    srcUlid: splitNames.text(packet, 8),
    dstUlid: splitNames.text(packet, 24),
    nextHeader: packet[6]!,
    payload: packet.subarray(IPV6_HEADER_LENGTH, IPV6_HEADER_LENGTH + payloadLength),
  };
}

/**
 * Text of 16-octet addresses, remembering the last few: the same handful of
 * ULIDs and locators come back on every packet, and comparing 16 octets is
 * far cheaper than formatting (and gives the same string object, so later
 * `===` comparisons are cheap too).
 */
export class AddressText {
  private readonly keys: Uint8Array[] = [];
  private readonly texts: Ipv6[] = [];
  constructor(private readonly size = 16) {}

  text(buf: Uint8Array, off: number): Ipv6 {
    for (let i = 0; i < this.keys.length; i++) {
      const k = this.keys[i]!;
      let same = true;
      for (let j = 15; j >= 0; j--) if (k[j] !== buf[off + j]) { same = false; break; }
      if (same) return this.texts[i]!;
    }
    const t = formatIpv6(buf, off);
    if (this.keys.length >= this.size) { this.keys.shift(); this.texts.shift(); }
    this.keys.push(buf.slice(off, off + 16));
    this.texts.push(t);
    return t;
  }
}

const splitNames = new AddressText();

/** Cache of parsed addresses: the same few ULIDs come back for every packet. */
const addrCache = new Map<string, Uint8Array>();
function addressBytes(a: Ipv6): Uint8Array {
  let b = addrCache.get(a);
  if (!b) {
    b = parseIpv6(a);
    if (addrCache.size > 4096) addrCache.clear();
    addrCache.set(a, b);
  }
  return b;
}

/**
 * Write a fixed header into `out` (≥ 40 octets) for a ULP of `payloadLength`
 * octets from `srcUlid` to `dstUlid`. Traffic class and flow label are 0: the
 * payload header does not carry them.
 */
export function writeHeader(out: Uint8Array, srcUlid: Ipv6, dstUlid: Ipv6, nextHeader: number, payloadLength: number): void {
  out[0] = 0x60; out[1] = 0; out[2] = 0; out[3] = 0;
  out[4] = payloadLength >> 8; out[5] = payloadLength & 0xff;
  out[6] = nextHeader; out[7] = REBUILT_HOP_LIMIT;
  out.set(addressBytes(srcUlid), 8);
  out.set(addressBytes(dstUlid), 24);
}

/** A fresh 40-octet header (see writeHeader). */
export function buildHeader(srcUlid: Ipv6, dstUlid: Ipv6, nextHeader: number, payloadLength: number): Uint8Array {
  const h = new Uint8Array(IPV6_HEADER_LENGTH);
  writeHeader(h, srcUlid, dstUlid, nextHeader, payloadLength);
  return h;
}

/** A whole packet (header + copy of the ULP). For tests and rare paths; the hot path uses writeHeader + writev. */
export function buildPacket(srcUlid: Ipv6, dstUlid: Ipv6, nextHeader: number, payload: Uint8Array): Uint8Array {
  const p = new Uint8Array(IPV6_HEADER_LENGTH + payload.length);
  writeHeader(p, srcUlid, dstUlid, nextHeader, payload.length);
  p.set(payload, IPV6_HEADER_LENGTH);
  return p;
}

/** One's complement sum of 16-bit words (RFC 1071), not yet folded or inverted. */
export function sum16(bytes: Uint8Array, initial = 0): number {
  let s = initial;
  const n = bytes.length & ~1;
  for (let i = 0; i < n; i += 2) s += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length & 1) s += bytes[bytes.length - 1]! << 8;
  return s;
}

/** Fold and invert a sum into a checksum. */
export function finishChecksum(s: number): number {
  while (s > 0xffff) s = (s & 0xffff) + Math.floor(s / 0x10000);
  return ~s & 0xffff;
}

/**
 * The upper-layer checksum over the IPv6 pseudo-header (RFC 8200 §8.1) and
 * `ulp` (whose own checksum field must be zero while computing).
 */
export function ulpChecksum(src: Ipv6, dst: Ipv6, nextHeader: number, ulp: Uint8Array): number {
  let s = sum16(addressBytes(src));
  s = sum16(addressBytes(dst), s);
  s += Math.floor(ulp.length / 0x10000) + (ulp.length & 0xffff);
  s += nextHeader;
  return finishChecksum(sum16(ulp, s));
}

/** IPPROTO numbers the data plane looks at. */
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

/** A UDP datagram inside an IPv6 packet, checksum filled in (tests and probes). */
export function buildUdpPacket(src: Ipv6, dst: Ipv6, srcPort: number, dstPort: number, data: Uint8Array): Uint8Array {
  const udp = new Uint8Array(8 + data.length);
  const dv = new DataView(udp.buffer);
  dv.setUint16(0, srcPort); dv.setUint16(2, dstPort); dv.setUint16(4, udp.length);
  udp.set(data, 8);
  dv.setUint16(6, ulpChecksum(src, dst, IPPROTO_UDP, udp) || 0xffff);
  return buildPacket(src, dst, IPPROTO_UDP, udp);
}

/** RFC 4443 §2.4 (c): an ICMPv6 error is at most the IPv6 minimum MTU. */
const ICMP_ERROR_MAX = 1280;
const ICMP_HEADER_LENGTH = 8;

/** The packet an ICMPv6 error quotes: its fixed header's fields and (the start of) what followed. */
export interface QuotedPacket {
  srcUlid: Ipv6;
  dstUlid: Ipv6;
  nextHeader: number;
  /** The invoking packet's payload length (its fixed header's field), even if `payload` is cut short. */
  payloadLength: number;
  payload: Uint8Array;
}

/**
 * An ICMPv6 error message (RFC 4443 §2.1) from `src` to `dst`: `type`,
 * `code`, the 32-bit `info` (MTU, pointer or 0), then as much of the invoking
 * packet — its rebuilt fixed header and payload — as fits in 1280 octets;
 * checksum filled in. What the driver writes into the TUN so the application
 * hears about its own packet (RFC 5533 §8).
 */
export function buildIcmpError(src: Ipv6, dst: Ipv6, type: number, code: number, info: number, quoted: QuotedPacket): Uint8Array {
  const room = ICMP_ERROR_MAX - IPV6_HEADER_LENGTH - ICMP_HEADER_LENGTH - IPV6_HEADER_LENGTH;
  const body = quoted.payload.subarray(0, Math.min(quoted.payload.length, room));
  const icmp = new Uint8Array(ICMP_HEADER_LENGTH + IPV6_HEADER_LENGTH + body.length);
  const dv = new DataView(icmp.buffer);
  icmp[0] = type; icmp[1] = code;
  dv.setUint32(4, info >>> 0);
  writeHeader(icmp.subarray(ICMP_HEADER_LENGTH), quoted.srcUlid, quoted.dstUlid, quoted.nextHeader, Math.min(quoted.payloadLength, 0xffff));
  icmp.set(body, ICMP_HEADER_LENGTH + IPV6_HEADER_LENGTH);
  dv.setUint16(2, ulpChecksum(src, dst, IPPROTO_ICMPV6, icmp));
  const p = buildPacket(src, dst, IPPROTO_ICMPV6, icmp);
  p[7] = 255; // as the kernel sends ICMPv6
  return p;
}

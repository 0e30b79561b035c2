/**
 * pcap files of native Shim6 (DESIGN.md §3): classic libpcap format, LINKTYPE_RAW
 * (101), each record one IPv6 packet whose Next Header is 140 and whose payload is
 * the Shim6 header (control message, or payload header + ULP bytes). A pure
 * function: timestamps come in with the packets, bytes go out; the caller writes
 * the file. Knows nothing about message contents.
 */
import { IPPROTO_SHIM6 } from '../constants.ts';
import { WireError } from './errors.ts';
import { parseIpv6, type Ipv6 } from './ipv6.ts';

/** tcpdump.org link-layer header types: raw IPv4/IPv6, no link header. */
export const LINKTYPE_RAW = 101;
const PCAP_MAGIC = 0xa1b2c3d4;
const SNAPLEN = 0xffff;
const IPV6_HEADER_LENGTH = 40;

export interface PcapPacket {
  /** Capture time in microseconds since the Unix epoch (supplied by the caller). */
  timestampMicros: number;
  src: Ipv6;
  dst: Ipv6;
  /** The bytes after the IPv6 header: a Shim6 header and whatever follows it. */
  shim6: Uint8Array;
  /** Default 64. */
  hopLimit?: number;
}

/** A native IPv6 packet (RFC 8200 §3) carrying `payload` with Next Header `nextHeader` (default 140). */
export function ipv6Packet(src: Ipv6, dst: Ipv6, payload: Uint8Array, nextHeader = IPPROTO_SHIM6, hopLimit = 64): Uint8Array {
  if (payload.length > 0xffff) throw new WireError('ELENGTH', `IPv6 payload of ${payload.length} octets needs a jumbogram`);
  const p = new Uint8Array(IPV6_HEADER_LENGTH + payload.length);
  const v = new DataView(p.buffer);
  v.setUint32(0, 0x6000_0000); // version 6, traffic class 0, flow label 0
  v.setUint16(4, payload.length);
  p[6] = nextHeader;
  p[7] = hopLimit;
  p.set(parseIpv6(src), 8);
  p.set(parseIpv6(dst), 24);
  p.set(payload, IPV6_HEADER_LENGTH);
  return p;
}

/** A whole pcap file (little-endian, microsecond timestamps, LINKTYPE_RAW) holding `packets` in order. */
export function encodePcap(packets: readonly PcapPacket[]): Uint8Array {
  const frames = packets.map((p) => ipv6Packet(p.src, p.dst, p.shim6, IPPROTO_SHIM6, p.hopLimit ?? 64));
  const out = new Uint8Array(24 + frames.reduce((n, f) => n + 16 + f.length, 0));
  const v = new DataView(out.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, 2, true); // version 2.4
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // thiszone
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, SNAPLEN, true);
  v.setUint32(20, LINKTYPE_RAW, true);
  let off = 24;
  frames.forEach((f, i) => {
    const t = packets[i]!.timestampMicros;
    if (!Number.isSafeInteger(t) || t < 0) throw new WireError('EFIELD', `timestampMicros: ${t} is not a non-negative integer`);
    v.setUint32(off, Math.floor(t / 1e6), true);
    v.setUint32(off + 4, t % 1e6, true);
    v.setUint32(off + 8, f.length, true);
    v.setUint32(off + 12, f.length, true);
    out.set(f, off + 16);
    off += 16 + f.length;
  });
  return out;
}

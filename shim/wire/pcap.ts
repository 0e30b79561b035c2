/**
 * pcap files of native Shim6 (docs/wire.md "pcap"): classic libpcap format, LINKTYPE_RAW
 * (101), each record one IPv6 packet whose Next Header is 140 and whose payload is
 * the Shim6 header (control message, or payload header + ULP bytes). A pure
 * function: timestamps come in with the packets, bytes go out; the caller writes
 * the file. Knows nothing about message contents.
 */
import { IPPROTO_SHIM6 } from '../constants.ts';
import { WireError } from './errors.ts';
import { parseIpv6, type Ipv6 } from './ipv6.ts';
import { IPV6_HEADER_LENGTH } from '../constants.ts';

/** tcpdump.org link-layer header types: raw IPv4/IPv6, no link header. */
export const LINKTYPE_RAW = 101;
const PCAP_MAGIC = 0xa1b2c3d4;
const SNAPLEN = 0xffff;

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

/** The pcap global header (24 octets): little-endian, version 2.4, microsecond timestamps, LINKTYPE_RAW. */
export function pcapFileHeader(): Uint8Array {
  const h = new Uint8Array(24);
  const v = new DataView(h.buffer);
  v.setUint32(0, PCAP_MAGIC, true);
  v.setUint16(4, 2, true); // version 2.4
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // thiszone
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, SNAPLEN, true);
  v.setUint32(20, LINKTYPE_RAW, true);
  return h;
}

/** The 16-octet header of one pcap record: its time, the octets kept (`capLen`) and the packet's whole length. */
export function pcapRecordHeader(timestampMicros: number, capLen: number, origLen: number): Uint8Array {
  if (!Number.isSafeInteger(timestampMicros) || timestampMicros < 0) throw new WireError('EFIELD', `timestampMicros: ${timestampMicros} is not a non-negative integer`);
  const h = new Uint8Array(PCAP_RECORD_HEADER);
  const v = new DataView(h.buffer);
  v.setUint32(0, Math.floor(timestampMicros / 1e6), true);
  v.setUint32(4, timestampMicros % 1e6, true);
  v.setUint32(8, capLen, true);
  v.setUint32(12, origLen, true);
  return h;
}

/** Octets of a pcap record header. */
export const PCAP_RECORD_HEADER = 16;

/** A whole pcap file (little-endian, microsecond timestamps, LINKTYPE_RAW) holding `packets` in order. */
export function encodePcap(packets: readonly PcapPacket[]): Uint8Array {
  const frames = packets.map((p) => ipv6Packet(p.src, p.dst, p.shim6, IPPROTO_SHIM6, p.hopLimit ?? 64));
  const out = new Uint8Array(24 + frames.reduce((n, f) => n + PCAP_RECORD_HEADER + f.length, 0));
  out.set(pcapFileHeader(), 0);
  let off = 24;
  frames.forEach((f, i) => {
    out.set(pcapRecordHeader(packets[i]!.timestampMicros, f.length, f.length), off);
    out.set(f, off + PCAP_RECORD_HEADER);
    off += PCAP_RECORD_HEADER + f.length;
  });
  return out;
}

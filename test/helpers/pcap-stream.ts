/**
 * A streaming reader of classic pcap (what `dumpcap -P -w -` writes) for
 * Ethernet captures: it takes the bytes as they come and hands out each IPv6
 * UDP datagram it finds (addresses, ports, UDP payload). Other frames (ICMPv6,
 * IPv4, extension headers before UDP) are skipped. Test-only; the project's
 * own pcap module (shim/wire/pcap.ts) writes files and does not read streams.
 */
import { formatIpv6, type Ipv6 } from '../../shim/wire/ipv6.ts';

/** One captured IPv6/UDP datagram. */
export interface CapturedUdp {
  /** Capture time, ms since the Unix epoch. */
  ts: number;
  src: Ipv6;
  dst: Ipv6;
  srcPort: number;
  dstPort: number;
  payload: Uint8Array;
}

const GLOBAL_HEADER = 24;
const RECORD_HEADER = 16;
const LINKTYPE_ETHERNET = 1;
const ETHERTYPE_IPV6 = 0x86dd;
const IPPROTO_UDP = 17;

/** Feed bytes with `push`; every complete UDP datagram goes to `onUdp`. */
export class PcapStream {
  private buf = new Uint8Array(0);
  private little: boolean | undefined;
  private nanos = false;

  constructor(private readonly onUdp: (d: CapturedUdp) => void) {}

  push(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    let off = 0;
    if (this.little === undefined) {
      if (joined.length < GLOBAL_HEADER) { this.buf = joined; return; }
      this.readGlobalHeader(joined);
      off = GLOBAL_HEADER;
    }
    const view = new DataView(joined.buffer, joined.byteOffset, joined.byteLength);
    while (joined.length - off >= RECORD_HEADER) {
      const incl = view.getUint32(off + 8, this.little);
      if (joined.length - off - RECORD_HEADER < incl) break;
      const sec = view.getUint32(off, this.little);
      const frac = view.getUint32(off + 4, this.little);
      const ts = sec * 1000 + (this.nanos ? frac / 1e6 : frac / 1e3);
      this.frame(ts, joined.subarray(off + RECORD_HEADER, off + RECORD_HEADER + incl));
      off += RECORD_HEADER + incl;
    }
    this.buf = joined.slice(off);
  }

  private readGlobalHeader(b: Uint8Array): void {
    const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const magic = view.getUint32(0, false);
    if (magic === 0xa1b2c3d4 || magic === 0xa1b23c4d) this.little = false;
    else if (magic === 0xd4c3b2a1 || magic === 0x4d3cb2a1) this.little = true;
    else throw new Error(`pcap-stream: not a classic pcap stream (magic ${magic.toString(16)}); use dumpcap -P`);
    this.nanos = magic === 0xa1b23c4d || magic === 0x4d3cb2a1;
    const linktype = view.getUint32(20, this.little);
    if (linktype !== LINKTYPE_ETHERNET) throw new Error(`pcap-stream: link type ${linktype}, expected Ethernet (1)`);
  }

  private frame(ts: number, f: Uint8Array): void {
    if (f.length < 14 + 40 + 8) return;
    if (((f[12]! << 8) | f[13]!) !== ETHERTYPE_IPV6) return;
    const ip = f.subarray(14);
    if (ip[6] !== IPPROTO_UDP) return;
    const udp = ip.subarray(40);
    const len = (udp[4]! << 8) | udp[5]!;
    this.onUdp({
      ts, src: formatIpv6(ip, 8), dst: formatIpv6(ip, 24),
      srcPort: (udp[0]! << 8) | udp[1]!, dstPort: (udp[2]! << 8) | udp[3]!,
      payload: udp.slice(8, Math.min(udp.length, Math.max(8, len))),
    });
  }
}

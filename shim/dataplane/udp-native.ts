/**
 * `NativeUdpTransport`: the UdpTransport on our addon (native/udp.c). One
 * socket bound to [::]:port serves every local locator: IPV6_PKTINFO gives the
 * local address each datagram arrived on and sets the source of each datagram
 * sent; recvmmsg hands JS a batch per wake-up and sendmmsg sends a batch per
 * call, with no allocation per datagram (preallocated arena and metadata).
 *
 * ICMPv6 errors about what it sent (IPV6_RECVERR, `icmpErrors`) reach
 * `onIcmpError`, with the invoking datagram's addresses and quoted payload.
 *
 * Sends are queued and go out at `flush()` (the driver calls it after each
 * batch) or at the latest at the end of the loop turn. Datagrams to
 * addresses of this host that are not bound locators are ignored, as
 * DgramTransport would never see them.
 *
 * Must not know: Shim6 messages, the TUN.
 */
import { canonicalIpv6, parseIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { AddressText } from './ip6-packet.ts';
import { EnvironmentError, UsageError } from '../errors.ts';
import { loadAddon, UDP_ERR_HEAD, UDP_ERR_SLOT, UDP_ERR_SLOTS, type NativeAddon } from '../../native/addon.ts';
import type { Datagram, IcmpError, UdpTransport } from './udp.ts';


const RECV_META = 40;
const SEND_META = 44;

export interface NativeUdpOptions {
  /** Local port (5533 by default in the daemon; 0 = ephemeral). */
  port: number;
  /** Socket buffers in bytes (forced as root). */
  bufferSize?: number;
  /** Largest datagram (path MTU). */
  maxDatagram?: number;
  /** Datagrams per receive batch and per send batch. */
  batch?: number;
  /**
   * UDP segmentation offloads (default on): runs of equal-sized datagrams to
   * one destination (the segments of one TSO read) go out as one UDP GSO send
   * (`UDP_SEGMENT`), and with `UDP_GRO` such runs arrive as one buffer that is
   * split here. JS still sees one datagram per packet.
   */
  gso?: boolean;
  /**
   * Hear ICMPv6 errors about the datagrams sent (default on): IPV6_RECVERR,
   * the error queue read on each wake-up, `onIcmpError` per error.
   */
  icmpErrors?: boolean;
}

export class NativeUdpTransport implements UdpTransport {
  private readonly native: NativeAddon;
  private fd = -1;
  private handle: object | undefined;
  private port = 0;
  private readonly bound = new Set<Ipv6>();
  private readonly bytesOf = new Map<Ipv6, Uint8Array>();
  private handler: (d: Datagram) => void = () => {};
  private errorHandler: ((e: IcmpError) => void) | undefined;
  private readonly names = new AddressText();
  private readonly slot: number;
  private readonly batch: number;
  private readonly arena: ArrayBuffer;
  private readonly arenaBytes: Uint8Array;
  private readonly sendMeta: ArrayBuffer;
  private readonly sendMetaBytes: Uint8Array;
  private readonly sendMetaView: DataView;
  private queued = 0;
  private arenaUsed = 0;
  private flushScheduled = false;
  private closed = false;

  constructor(private readonly opts: NativeUdpOptions) {
    this.native = loadAddon();
    this.slot = (opts.maxDatagram ?? 2048) + 64;
    this.batch = opts.batch ?? 128;
    this.arena = new ArrayBuffer(this.slot * this.batch);
    this.arenaBytes = new Uint8Array(this.arena);
    this.sendMeta = new ArrayBuffer(SEND_META * this.batch);
    this.sendMetaBytes = new Uint8Array(this.sendMeta);
    this.sendMetaView = new DataView(this.sendMeta);
  }

  async bind(address: Ipv6): Promise<number> {
    if (this.closed) throw new UsageError('EUDPCLOSED', 'transport closed');
    const a = canonicalIpv6(address);
    if (this.fd < 0) this.open();
    this.bound.add(a);
    this.bytesOf.set(a, parseIpv6(a));
    return this.port;
  }

  async unbind(address: Ipv6): Promise<void> {
    const a = canonicalIpv6(address);
    this.bound.delete(a);
    this.bytesOf.delete(a);
  }

  addresses(): Ipv6[] {
    return [...this.bound];
  }

  onDatagram(cb: (d: Datagram) => void): void {
    this.handler = cb;
  }

  onIcmpError(cb: (e: IcmpError) => void): void {
    this.errorHandler = cb;
  }

  send(src: Ipv6, dst: Ipv6, port: number, head: Uint8Array, body?: Uint8Array): boolean {
    const srcBytes = this.bytesOf.get(src);
    if (!srcBytes || this.closed) return false;
    const len = head.length + (body?.length ?? 0);
    if (len > this.slot) return false;
    if (this.queued === this.batch || this.arenaUsed + len > this.arena.byteLength) this.flush();
    let dstBytes = this.bytesOf.get(dst);
    if (!dstBytes) {
      dstBytes = parseIpv6(dst);
      if (this.bytesOf.size < 4096) this.bytesOf.set(dst, dstBytes);
    }
    const off = this.arenaUsed;
    this.arenaBytes.set(head, off);
    if (body) this.arenaBytes.set(body, off + head.length);
    const m = this.queued * SEND_META;
    this.sendMetaBytes.set(srcBytes, m);
    this.sendMetaBytes.set(dstBytes, m + 16);
    this.sendMetaView.setUint16(m + 32, port);
    this.sendMetaView.setUint32(m + 36, off, true);
    this.sendMetaView.setUint32(m + 40, len, true);
    this.queued++;
    // Contiguous, so a run of equal-sized datagrams is one GSO send.
    this.arenaUsed = off + len;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => { this.flushScheduled = false; this.flush(); });
    }
    return true;
  }

  /** Send everything queued (one sendmmsg per batch). */
  flush(): void {
    if (this.queued === 0 || this.fd < 0) return;
    this.native.udpSend(this.fd, this.arena, this.sendMeta, this.queued);
    this.queued = 0;
    this.arenaUsed = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    if (this.handle) this.native.udpClose(this.handle);
    this.handle = undefined;
    this.fd = -1;
    this.bound.clear();
  }

  private open(): void {
    let fd: number, port: number, gro: boolean;
    try {
      [fd, port, gro] = this.native.udpOpen(this.opts.port, this.opts.bufferSize ?? 0, this.opts.gso ?? true, undefined, false, 0, this.opts.icmpErrors ?? true);
    } catch (e) {
      throw new EnvironmentError('EUDPBIND', `cannot bind UDP port ${this.opts.port}: ${(e as Error).message}`);
    }
    this.fd = fd;
    this.port = port;
    // With GRO one slot holds a whole coalesced run (up to 64 KB).
    const slot = gro ? 65536 + 64 : this.slot;
    const slots = gro ? 32 : this.batch;
    const recv = new ArrayBuffer(slot * slots);
    const recvBytes = new Uint8Array(recv);
    const meta = new ArrayBuffer(RECV_META * slots);
    const metaBytes = new Uint8Array(meta);
    const metaView = new DataView(meta);
    const errs = new ArrayBuffer(UDP_ERR_SLOT * UDP_ERR_SLOTS);
    const errBytes = new Uint8Array(errs);
    const errView = new DataView(errs);
    const onErrors = (count: number): void => {
      for (let i = 0; i < count && !this.closed; i++) {
        const m = i * UDP_ERR_SLOT;
        const src = this.names.text(errBytes, m + 52);
        // Errors about datagrams from addresses that are not (or no longer) our locators: not ours to hear.
        if (!this.bound.has(src)) continue;
        const len = Math.min(errView.getUint32(m + 12, true), UDP_ERR_SLOT - UDP_ERR_HEAD);
        const offender = errBytes.subarray(m + 20, m + 36).some((b) => b !== 0) ? this.names.text(errBytes, m + 20) : undefined;
        this.errorHandler?.({
          type: errBytes[m + 1]!, code: errBytes[m + 2]!, info: errView.getUint32(m + 8, true), offender,
          src, dst: this.names.text(errBytes, m + 36), dstPort: errView.getUint16(m + 16),
          quoted: errBytes.subarray(m + UDP_ERR_HEAD, m + UDP_ERR_HEAD + len),
        });
      }
    };
    const icmp = this.opts.icmpErrors ?? true;
    this.handle = this.native.udpStartReader(fd, recv, slot, slots, meta, (count) => {
      for (let i = 0; i < count && !this.closed; i++) {
        const m = i * RECV_META;
        const len = metaView.getUint32(m + 36, true);
        if (len === 0) continue;
        const dst = this.names.text(metaBytes, m + 16);
        if (!this.bound.has(dst)) continue;
        const src = this.names.text(metaBytes, m);
        const srcPort = metaView.getUint16(m + 32);
        const seg = metaView.getUint16(m + 34) || len;
        const start = i * slot;
        for (let off = 0; off < len && !this.closed; off += seg) {
          const view = recvBytes.subarray(start + off, start + Math.min(off + seg, len));
          // Control messages may be kept (decoded options are views): give those their own copy.
          const bytes = view.length > 2 && (view[2]! & 0x80) === 0 ? view.slice() : view;
          this.handler({ src, srcPort, dst, bytes });
        }
      }
    }, icmp ? errs : undefined, icmp ? onErrors : undefined);
  }
}

/**
 * Send whole IPv6 packets as the host's own plain IPv6 (the addon's
 * IPPROTO_RAW socket; root): the driver's `sendPlain`.
 */
export function plainIpv6Sender(): (packets: readonly Uint8Array[]) => number {
  const native = loadAddon();
  return (packets) => {
    try {
      return native.rawSend(packets, packets.length);
    } catch {
      return 0; // no raw socket (not root): the packets are lost, as before; the application retransmits
    }
  };
}

/**
 * The kernel path's route changes over rtnetlink (docs/dataplane.md "Route changes"),
 * through the addon's socket (native/rtnl.c), in the event loop: replace or delete a peer
 * ULID's /128 in our table, the next hop towards a locator (`ip route get`), add or delete
 * an address (the route-cache flush), a link's index. Each is one request and the kernel's
 * acknowledgment, microseconds; an `ip` process per change (fork, exec, a CPU to run on) took
 * tens of ms on a busy host while the TCP prompt waited for the route after a re-homing.
 *
 * The messages are built and parsed here (struct nlmsghdr, rtmsg, ifaddrmsg, ifinfomsg in
 * host order; attributes as `ip` sends them). Errors come back as negative errno values:
 * the caller (routes.ts) decides (as with `ip`: retry without `src`, or give up).
 *
 * Owns: its socket. Must not know: Shim6, contexts (routes.ts says what goes where).
 */
import os from 'node:os';
import { parseIpv6, formatIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { loadAddon, type NativeAddon } from '../../native/addon.ts';

const LE = os.endianness() === 'LE';

const AF_INET6 = 10;
const NLM_F_REQUEST = 0x1, NLM_F_ACK = 0x4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400, NLM_F_REPLACE = 0x100;
const RTM_NEWLINK = 16, RTM_GETLINK = 18, RTM_NEWADDR = 20, RTM_DELADDR = 21, RTM_NEWROUTE = 24, RTM_DELROUTE = 25, RTM_GETROUTE = 26;
const RTA_DST = 1, RTA_SRC = 2, RTA_OIF = 4, RTA_GATEWAY = 5, RTA_PREFSRC = 7, RTA_METRICS = 8, RTA_TABLE = 15;
const RTAX_MTU = 2, RTAX_ADVMSS = 8, RTAX_RTO_MIN = 13;
const IFA_ADDRESS = 1, IFA_LOCAL = 2, IFA_FLAGS = 8;
const IFA_F_NODAD = 0x02;
const IFLA_IFNAME = 3;
const RTPROT_BOOT = 3, RT_SCOPE_UNIVERSE = 0, RT_SCOPE_LINK = 253, RT_SCOPE_NOWHERE = 255, RTN_UNICAST = 1, RT_TABLE_UNSPEC = 0;
const NLMSG_HDRLEN = 16;

/** One route of ours: the peer ULID's /128 in `table`, out of `oif` (via `gateway` when given), with our ULID as `src`. */
export interface RouteSpec {
  dst: Ipv6;
  table: number;
  oif: number;
  gateway?: Ipv6;
  src?: Ipv6;
  mtu?: number;
  advmss?: number;
  rtoMinMs?: number;
}

/** A netlink message under construction: header, fixed part, attributes (4-aligned). */
class Msg {
  private readonly buf = new Uint8Array(512);
  private readonly v = new DataView(this.buf.buffer);
  private len: number;

  constructor(type: number, flags: number, seq: number, fixed: number) {
    this.v.setUint16(4, type, LE);
    this.v.setUint16(6, flags, LE);
    this.v.setUint32(8, seq, LE);
    this.len = NLMSG_HDRLEN + fixed;
  }

  u8(off: number, x: number): this { this.buf[NLMSG_HDRLEN + off] = x; return this; }
  u32(off: number, x: number): this { this.v.setUint32(NLMSG_HDRLEN + off, x, LE); return this; }

  attr(type: number, value: Uint8Array): this {
    const n = 4 + value.length;
    this.v.setUint16(this.len, n, LE);
    this.v.setUint16(this.len + 2, type, LE);
    this.buf.set(value, this.len + 4);
    this.len += (n + 3) & ~3;
    return this;
  }

  bytes(): Uint8Array {
    this.v.setUint32(0, this.len, LE);
    return this.buf.subarray(0, this.len);
  }
}

function u32(x: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, x, LE);
  return b;
}

/** Nested attributes (RTA_METRICS). */
function nest(attrs: Array<[number, Uint8Array]>): Uint8Array {
  const parts = attrs.map(([t, v]) => {
    const b = new Uint8Array((4 + v.length + 3) & ~3);
    const d = new DataView(b.buffer);
    d.setUint16(0, 4 + v.length, LE);
    d.setUint16(2, t, LE);
    b.set(v, 4);
    return b;
  });
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

/** The attributes of an answer (after its fixed part), by type: the first of each. */
function attrsOf(msg: Uint8Array, fixed: number): Map<number, Uint8Array> {
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const out = new Map<number, Uint8Array>();
  let o = NLMSG_HDRLEN + fixed;
  while (o + 4 <= msg.length) {
    const n = v.getUint16(o, LE), t = v.getUint16(o + 2, LE) & 0x3fff;
    if (n < 4 || o + n > msg.length) break;
    if (!out.has(t)) out.set(t, msg.subarray(o + 4, o + n));
    o += (n + 3) & ~3;
  }
  return out;
}

/** An rtnetlink socket of the addon; `open` returns undefined where the addon cannot (not built, refused). */
export class Rtnetlink {
  private seq = 0;
  private readonly answer = new Uint8Array(4096);
  private closed = false;

  private constructor(private readonly addon: NativeAddon, private readonly fd: number) {}

  /** In the namespace of /run/netns/`netns` when given. */
  static open(netns?: string): Rtnetlink | undefined {
    let addon: NativeAddon;
    try {
      addon = loadAddon();
    } catch {
      return undefined;
    }
    if (typeof addon.rtnlOpen !== 'function') return undefined;
    const fd = addon.rtnlOpen(netns ? `/run/netns/${netns}` : null);
    return fd < 0 ? undefined : new Rtnetlink(addon, fd);
  }

  /** `ip -6 route replace DST/128 [via GW] dev OIF table T [src S] mtu M advmss A [rto_min R]` → 0 or -errno. */
  routeReplace(r: RouteSpec): number {
    const m = this.route(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, r.table, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST);
    m.attr(RTA_DST, parseIpv6(r.dst)).attr(RTA_OIF, u32(r.oif));
    if (r.gateway !== undefined) m.attr(RTA_GATEWAY, parseIpv6(r.gateway));
    if (r.src !== undefined) m.attr(RTA_PREFSRC, parseIpv6(r.src));
    const metrics: Array<[number, Uint8Array]> = [];
    if (r.mtu !== undefined) metrics.push([RTAX_MTU, u32(r.mtu)]);
    if (r.advmss !== undefined) metrics.push([RTAX_ADVMSS, u32(r.advmss)]);
    if (r.rtoMinMs !== undefined) metrics.push([RTAX_RTO_MIN, u32(r.rtoMinMs)]);
    if (metrics.length > 0) m.attr(RTA_METRICS, nest(metrics));
    return this.transact(m);
  }

  /** `ip -6 route del DST/128 table T` → 0 or -errno (-ESRCH: there was none). */
  routeDelete(dst: Ipv6, table: number): number {
    return this.transact(this.route(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, table, 0, RT_SCOPE_NOWHERE, 0).attr(RTA_DST, parseIpv6(dst)));
  }

  /** `ip -6 route get DST from SRC`: the link and the gateway (none: on link), or -errno. */
  routeGet(dst: Ipv6, src: Ipv6): { oif: number; gateway: Ipv6 | undefined } | number {
    const m = new Msg(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), 12).u8(0, AF_INET6).u8(1, 128).u8(2, 128);
    m.attr(RTA_DST, parseIpv6(dst)).attr(RTA_SRC, parseIpv6(src));
    const n = this.transact(m);
    if (n <= 0) return n < 0 ? n : -61; // ENODATA: acknowledged without a route
    const a = attrsOf(this.answer.subarray(0, n), 12);
    const oif = a.get(RTA_OIF), gw = a.get(RTA_GATEWAY);
    if (oif === undefined || oif.length !== 4) return -61;
    return { oif: new DataView(oif.buffer, oif.byteOffset, 4).getUint32(0, LE), gateway: gw?.length === 16 ? formatIpv6(gw) : undefined };
  }

  /** `ip -6 addr add|del ADDR/128 dev IFINDEX nodad` → 0 or -errno. */
  address(add: boolean, ifindex: number, addr: Ipv6): number {
    const m = new Msg(add ? RTM_NEWADDR : RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0), this.nextSeq(), 8)
      .u8(0, AF_INET6).u8(1, 128).u8(2, add ? IFA_F_NODAD : 0).u8(3, addr.toLowerCase().startsWith('fe80') ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE).u32(4, ifindex);
    const b = parseIpv6(addr);
    m.attr(IFA_LOCAL, b).attr(IFA_ADDRESS, b);
    if (add) m.attr(IFA_FLAGS, u32(IFA_F_NODAD));
    return this.transact(m);
  }

  /** The index of the link named `name`, or -errno (-ENODEV). */
  linkIndex(name: string): number {
    const m = new Msg(RTM_GETLINK, NLM_F_REQUEST | NLM_F_ACK, this.nextSeq(), 16);
    m.attr(IFLA_IFNAME, new TextEncoder().encode(`${name}\0`));
    const n = this.transact(m);
    if (n < 0) return n;
    if (n < NLMSG_HDRLEN + 16) return -19;
    const v = new DataView(this.answer.buffer, 0, n);
    if (v.getUint16(4, LE) !== RTM_NEWLINK) return -19;
    return v.getInt32(NLMSG_HDRLEN + 4, LE);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.addon.rtnlClose(this.fd);
  }

  private route(type: number, flags: number, table: number, protocol: number, scope: number, rtype: number): Msg {
    // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags; the table also as RTA_TABLE (> 255).
    const m = new Msg(type, flags, this.nextSeq(), 12).u8(0, AF_INET6).u8(1, 128).u8(4, table < 256 ? table : RT_TABLE_UNSPEC)
      .u8(5, protocol).u8(6, scope).u8(7, rtype);
    return m.attr(RTA_TABLE, u32(table));
  }

  private nextSeq(): number {
    this.seq = (this.seq + 1) >>> 0 || 1;
    return this.seq;
  }

  private transact(m: Msg): number {
    if (this.closed) return -9; // EBADF
    return this.addon.rtnlTransact(this.fd, m.bytes(), this.answer);
  }
}

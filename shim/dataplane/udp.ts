/**
 * The UDP encapsulation transport (docs/wire.md "Transports") as the driver sees it
 * (wireguard-go `conn.Bind` style): one bound socket per local locator, so a
 * datagram leaves from exactly the locator the engine chose and we know which
 * of our locators a datagram arrived on (Node's dgram has no IPV6_PKTINFO, and
 * both facts are lookup keys for the engine, RFC 5533 §12.4).
 *
 * Two implementations share one compliance suite (test/dataplane/udp-compliance.ts):
 * `DgramTransport` (real sockets) and `MemoryTransport` (in-memory network with
 * black holes). Must not know: Shim6 bytes, contexts, the TUN.
 */
import dgram from 'node:dgram';
import { canonicalIpv6, type Ipv6 } from '../wire/ipv6.ts';

/** A datagram received on one of our locators. */
export interface Datagram {
  src: Ipv6;
  srcPort: number;
  dst: Ipv6;
  bytes: Uint8Array;
}

/**
 * An ICMPv6 error about a datagram this transport sent (RFC 4443), as the
 * kernel's error queue reports it (IPV6_RECVERR, native/udp.c).
 */
export interface IcmpError {
  /** RFC 4443 type and code (1 Destination Unreachable, 2 Packet Too Big, 3 Time Exceeded, 4 Parameter Problem). */
  type: number;
  code: number;
  /** Packet Too Big: the MTU; Parameter Problem: the pointer; otherwise 0. */
  info: number;
  /** Who sent the error (a router on the path, or the destination host); undefined when not known. */
  offender: Ipv6 | undefined;
  /** The invoking datagram: the local address it left from, its destination and destination port. */
  src: Ipv6;
  dst: Ipv6;
  dstPort: number;
  /** The invoking datagram's UDP payload as the error quoted it (possibly truncated). Valid during the call only. */
  quoted: Uint8Array;
}

export interface UdpTransport {
  /** Listen on `address`; resolves with the bound port. */
  bind(address: Ipv6): Promise<number>;
  /** Stop listening on `address` (a locator went away). */
  unbind(address: Ipv6): Promise<void>;
  /** Addresses currently bound. */
  addresses(): Ipv6[];
  /** The one receiver. `bytes` may be reused after the call returns. */
  onDatagram(cb: (d: Datagram) => void): void;
  /**
   * Send `head` followed by `body` (one datagram) from our locator `src`.
   * Both are copied before this returns, so callers may reuse them. Returns
   * false when `src` is not bound or the socket refused at once.
   */
  send(src: Ipv6, dst: Ipv6, port: number, head: Uint8Array, body?: Uint8Array): boolean;
  /**
   * ICMPv6 errors about datagrams sent (absent: the transport cannot see them;
   * Node's dgram cannot: libuv sets no IPV6_RECVERR, and Linux reports
   * nothing to an unconnected UDP socket without it).
   */
  onIcmpError?(cb: (e: IcmpError) => void): void;
  /** Push out sends a batching transport still holds (the driver calls it after each batch). */
  flush?(): void;
  close(): Promise<void>;
}

/** Options of the real transport. */
export interface DgramTransportOptions {
  /** Local port to bind on every locator (5533 by default; 0 = ephemeral, tests). */
  port: number;
  /** Socket buffer sizes (bytes); larger buffers absorb bursts from the TUN. */
  bufferSize?: number;
}

const EMPTY = new Uint8Array(0);

/** Real UDP sockets, one per local locator. */
export class DgramTransport implements UdpTransport {
  private readonly sockets = new Map<Ipv6, dgram.Socket>();
  private handler: (d: Datagram) => void = () => {};

  constructor(private readonly opts: DgramTransportOptions) {}

  async bind(address: Ipv6): Promise<number> {
    const a = canonicalIpv6(address);
    const existing = this.sockets.get(a);
    if (existing) return existing.address().port;
    const sock = dgram.createSocket({ type: 'udp6', ipv6Only: true });
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ port: this.opts.port, address: a, exclusive: true }, () => {
        sock.off('error', reject);
        resolve();
      });
    });
    if (this.opts.bufferSize) {
      try {
        sock.setRecvBufferSize(this.opts.bufferSize);
        sock.setSendBufferSize(this.opts.bufferSize);
      } catch { /* capped by net.core.*mem_max: keep the default */ }
    }
    // A send error (no route while a link is down) must not kill the daemon:
    // the engine finds out through REAP, not through errno.
    sock.on('error', () => {});
    sock.on('message', (msg, rinfo) => this.handler({ src: stripZone(rinfo.address), srcPort: rinfo.port, dst: a, bytes: msg }));
    this.sockets.set(a, sock);
    return sock.address().port;
  }

  async unbind(address: Ipv6): Promise<void> {
    const a = canonicalIpv6(address);
    const sock = this.sockets.get(a);
    if (!sock) return;
    this.sockets.delete(a);
    await new Promise<void>((r) => sock.close(() => r()));
  }

  addresses(): Ipv6[] {
    return [...this.sockets.keys()];
  }

  onDatagram(cb: (d: Datagram) => void): void {
    this.handler = cb;
  }

  send(src: Ipv6, dst: Ipv6, port: number, head: Uint8Array, body: Uint8Array = EMPTY): boolean {
    const sock = this.sockets.get(src);
    if (!sock) return false;
    // One copy into a pooled Buffer: dgram may queue the buffer if the socket
    // is full, and the caller's views (TUN batch slots) are reused at once.
    const buf = Buffer.allocUnsafe(head.length + body.length);
    buf.set(head, 0);
    buf.set(body, head.length);
    sock.send(buf, port, dst);
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.sockets.keys()].map((a) => this.unbind(a)));
  }
}

function stripZone(a: string): Ipv6 {
  const i = a.indexOf('%');
  return i < 0 ? a : a.slice(0, i);
}

/**
 * An in-memory network of transports: delivery is asynchronous (next loop
 * turn), datagrams are copied, unbound destinations swallow them silently
 * (like UDP), and `blackhole(a, b)` drops a direction silently.
 */
export class MemoryNetwork {
  private readonly endpoints = new Map<string, MemoryTransport>();
  private readonly holes = new Set<string>();
  private readonly hosts = new Set<Ipv6>();

  /** A new transport on this network; `port` is what `bind` uses (0 = pick one). */
  transport(port = 0): MemoryTransport {
    return new MemoryTransport(this, port);
  }

  /** Silently drop datagrams from locator `a` to locator `b` (one direction). */
  blackhole(a: Ipv6, b: Ipv6): void { this.holes.add(`${canonicalIpv6(a)}>${canonicalIpv6(b)}`); }
  repair(a: Ipv6, b: Ipv6): void { this.holes.delete(`${canonicalIpv6(a)}>${canonicalIpv6(b)}`); }

  /**
   * `address` is a host that answers a datagram to a port nobody listens on
   * with ICMPv6 Port Unreachable (a host without the daemon), as the kernel does.
   */
  host(address: Ipv6): void { this.hosts.add(canonicalIpv6(address)); }

  /** @internal */
  attach(address: Ipv6, port: number, t: MemoryTransport): number {
    let p = port;
    if (p === 0) { p = 40000; while (this.endpoints.has(`[${address}]:${p}`)) p++; }
    const key = `[${address}]:${p}`;
    if (this.endpoints.has(key)) throw Object.assign(new Error(`bind ${key}: address in use`), { code: 'EADDRINUSE' });
    this.endpoints.set(key, t);
    return p;
  }

  /** @internal */
  detach(address: Ipv6, port: number): void { this.endpoints.delete(`[${address}]:${port}`); }

  /** @internal */
  deliver(src: Ipv6, srcPort: number, dst: Ipv6, port: number, bytes: Uint8Array): void {
    if (this.holes.has(`${src}>${dst}`)) return;
    setImmediate(() => {
      const to = this.endpoints.get(`[${dst}]:${port}`);
      if (to !== undefined) return to.receive({ src, srcPort, dst, bytes });
      if (!this.hosts.has(dst) || this.holes.has(`${dst}>${src}`)) return;
      this.endpoints.get(`[${src}]:${srcPort}`)?.receiveError({ type: 1, code: 4, info: 0, offender: dst, src, dst, dstPort: port, quoted: bytes });
    });
  }
}

/** The in-memory twin of DgramTransport. */
export class MemoryTransport implements UdpTransport {
  private readonly bound = new Map<Ipv6, number>();
  private handler: (d: Datagram) => void = () => {};
  private errorHandler: (e: IcmpError) => void = () => {};
  private closed = false;

  constructor(private readonly net: MemoryNetwork, private readonly port: number) {}

  onIcmpError(cb: (e: IcmpError) => void): void { this.errorHandler = cb; }

  /** An ICMPv6 error about a datagram this transport sent (the network's, or a test's forgery). */
  receiveError(e: IcmpError): void { if (!this.closed) this.errorHandler(e); }

  async bind(address: Ipv6): Promise<number> {
    const a = canonicalIpv6(address);
    const have = this.bound.get(a);
    if (have !== undefined) return have;
    const p = this.net.attach(a, this.port, this);
    this.bound.set(a, p);
    return p;
  }

  async unbind(address: Ipv6): Promise<void> {
    const a = canonicalIpv6(address);
    const p = this.bound.get(a);
    if (p === undefined) return;
    this.bound.delete(a);
    this.net.detach(a, p);
  }

  addresses(): Ipv6[] { return [...this.bound.keys()]; }

  onDatagram(cb: (d: Datagram) => void): void { this.handler = cb; }

  send(src: Ipv6, dst: Ipv6, port: number, head: Uint8Array, body: Uint8Array = EMPTY): boolean {
    const p = this.bound.get(src);
    if (p === undefined || this.closed) return false;
    const bytes = new Uint8Array(head.length + body.length);
    bytes.set(head);
    bytes.set(body, head.length);
    this.net.deliver(src, p, canonicalIpv6(dst), port, bytes);
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const a of [...this.bound.keys()]) await this.unbind(a);
  }

  /** @internal */
  receive(d: Datagram): void { if (!this.closed) this.handler(d); }
}

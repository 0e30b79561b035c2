/**
 * The resolver's UDP sockets (listeners and upstream ports) behind one small
 * interface, with two backends:
 *  - `native` (the default when the addon is built): our addon's socket
 *    (native/udp.c). A wake-up reads every waiting datagram
 *    with one recvmmsg and hands them to JS in one call; sends queue in a
 *    preallocated arena and leave with one sendmmsg per batch. Nothing is
 *    allocated per datagram but the view handed to the callback.
 *  - `dgram`: node:dgram, one system call and one event per datagram. The
 *    fallback when the addon is missing, and for host names (not literals).
 *
 * Addresses are `Endpoint`s: 16 octets as four 32-bit words (IPv4 as
 * ::ffff:a.b.c.d) and a port, so matching an answer's source and replying to
 * a client need no address strings on the native path.
 *
 * This is a driver (owns sockets). It must not know DNS.
 */
import type { NativeAddon } from '../native/addon.ts';
import dgram from 'node:dgram';
import net from 'node:net';
import { EnvironmentError, UsageError } from '../shim/errors.ts';
import { hostPort } from '../shim/log.ts';
import { formatIpv6, parseIpv6 } from '../shim/wire/ipv6.ts';

export type UdpBackend = 'native' | 'dgram';

/** A UDP peer. Receive callbacks reuse theirs: `copy()` to keep one. */
export class Endpoint {
  w0 = 0; w1 = 0; w2 = 0; w3 = 0; port = 0;
  /**
   * The local address a datagram came to, as the four words (native: IPV6_PKTINFO), all 0 when
   * not known. A datagram sent to an Endpoint leaves from it (native): on a wildcard listener an
   * answer must come from the address the client asked, not the one the kernel would pick.
   */
  l0 = 0; l1 = 0; l2 = 0; l3 = 0;
  /** The address as text when a backend already has it (dgram's rinfo). */
  host: string | undefined = undefined;

  /**
   * `host` may carry a zone, as dgram gives a link-local peer's address (`fe80::2%eth0`): the
   * words are the address's, and the text keeps the zone, which a send back to it needs.
   */
  static of(host: string, port: number): Endpoint {
    const e = new Endpoint();
    const zone = host.indexOf('%');
    const bare = zone < 0 ? host : host.slice(0, zone);
    const family = net.isIP(bare);
    if (family === 0) throw new UsageError('EADDR', `not an IP address: ${host}`, 'address');
    const b = parseIpv6(family === 4 ? `::ffff:${bare}` : bare);
    const v = new DataView(b.buffer, b.byteOffset, 16);
    e.w0 = v.getUint32(0); e.w1 = v.getUint32(4); e.w2 = v.getUint32(8); e.w3 = v.getUint32(12);
    e.port = port;
    e.host = host;
    return e;
  }

  copy(): Endpoint {
    const e = new Endpoint();
    e.w0 = this.w0; e.w1 = this.w1; e.w2 = this.w2; e.w3 = this.w3; e.port = this.port; e.host = this.host;
    e.l0 = this.l0; e.l1 = this.l1; e.l2 = this.l2; e.l3 = this.l3;
    return e;
  }

  /** Same address and port. */
  equals(o: Endpoint): boolean {
    return this.port === o.port && this.w3 === o.w3 && this.w2 === o.w2 && this.w1 === o.w1 && this.w0 === o.w0;
  }

  get mapped(): boolean { return this.w0 === 0 && this.w1 === 0 && this.w2 === 0xffff; }

  /** The address as text: dotted quad for IPv4-mapped, RFC 5952 otherwise. */
  text(): string {
    if (this.host !== undefined) return this.host;
    if (this.mapped) return `${this.w3 >>> 24}.${(this.w3 >>> 16) & 0xff}.${(this.w3 >>> 8) & 0xff}.${this.w3 & 0xff}`;
    const b = new Uint8Array(16);
    const v = new DataView(b.buffer);
    v.setUint32(0, this.w0); v.setUint32(4, this.w1); v.setUint32(8, this.w2); v.setUint32(12, this.w3);
    return formatIpv6(b, 0);
  }
}

/**
 * Whether `host` is a wildcard address (`::`, `0.0.0.0`, `::ffff:0.0.0.0`, in any spelling): a
 * listener there takes datagrams to every address of the host, and only the native backend can
 * answer each from the address it came to (IPV6_PKTINFO); dgram's answers leave from the address
 * the kernel picks, which a client that asked another address drops.
 */
export function isWildcardHost(host: string): boolean {
  if (net.isIP(host) === 0) return false;
  const e = Endpoint.of(host, 0);
  return e.w0 === 0 && e.w1 === 0 && (e.w2 === 0 || e.w2 === 0xffff) && e.w3 === 0;
}

/** Called per datagram; `bytes` and `from` are valid only during the call. */
export type DatagramHandler = (bytes: Uint8Array, from: Endpoint) => void;

export interface DnsUdpSocket {
  readonly backend: UdpBackend;
  /** The bound port. */
  readonly port: number;
  /** Datagrams dropped because they did not fit a receive slot. */
  readonly oversize: number;
  onDatagram(cb: DatagramHandler): void;
  /** Queue a datagram; it leaves within this event-loop turn. `bytes` must not change afterwards (dgram holds them until sent). */
  send(bytes: Uint8Array, to: Endpoint): void;
  /** Datagrams queued by send() that have not left yet (they leave together, in one sendmmsg on native). */
  readonly queued: number;
  /** Do not keep the process alive for this socket. */
  unref(): void;
  close(): void;
}

export interface OpenOptions {
  /** Literal address to bind ('0.0.0.0' / '::' for any); a host name forces dgram. */
  host: string;
  port: number;
  /** Socket buffers asked for (the kernel may cap them; forced as root on native). */
  bufferSize: number;
  /** Largest datagram received; larger ones are dropped (counted in `oversize`). */
  maxDatagram: number;
  /** Datagrams read per wake-up (native). */
  batch: number;
  /** Called when dgram reports a socket error (native reports none: a failed send is a lost datagram). */
  onError?: (err: Error) => void;
  /** Bound to '::': take IPv4 too (as dgram's udp6 does). Default true; false = IPv6 only. */
  dualStack?: boolean;
  /**
   * A receive area shared by several sockets (native): each wake-up's batch is
   * handled before the next socket reads, so one area serves a whole pool.
   * `maxDatagram` and `batch` are then the area's.
   */
  shared?: ReceiveArea;
  /**
   * Join an SO_REUSEPORT group of this many sockets on the address, one per
   * resolver thread, spread by question name (native only; the addon's
   * attach_shard_filter). Absent or 0: a socket of its own, the port must be free.
   */
  shards?: number;
}

/** Per-datagram metadata of the addon (native/udp.h). */
const RECV_META = 40;
const SEND_META = 44;

/** Receive slots and their metadata (native backend), possibly shared by several sockets. */
export class ReceiveArea {
  readonly buf: ArrayBuffer;
  readonly bytes: Uint8Array;
  readonly meta: ArrayBuffer;
  readonly view: DataView;
  constructor(readonly slot: number, readonly slots: number) {
    this.buf = new ArrayBuffer(slot * slots);
    this.bytes = new Uint8Array(this.buf);
    this.meta = new ArrayBuffer(RECV_META * slots);
    this.view = new DataView(this.meta);
  }
}


let addon: NativeAddon | null | undefined;
let addonError = '';

/** The addon, or undefined when it is not built (then only dgram is available). */
async function nativeAddon(): Promise<NativeAddon | undefined> {
  if (addon === undefined) {
    try {
      const { loadAddon } = await import('../native/addon.ts');
      addon = loadAddon();
    } catch (e) {
      addon = null;
      addonError = (e as Error).message;
    }
  }
  return addon ?? undefined;
}

/** Whether the native backend can be used here, and if not, why. */
export async function nativeUdpStatus(): Promise<{ available: boolean; reason: string }> {
  return (await nativeAddon()) ? { available: true, reason: '' } : { available: false, reason: addonError };
}

/**
 * Open a socket. `backend` 'native' fails when the addon is missing;
 * undefined picks native when available and the host is a literal.
 */
export async function openDnsUdp(opts: OpenOptions, backend?: UdpBackend): Promise<DnsUdpSocket> {
  const literal = net.isIP(opts.host) !== 0;
  if (opts.shards && (backend === 'dgram' || !literal)) {
    throw new UsageError('EUDPBACKEND', `workers: a listener shared by several threads needs the native UDP backend and a literal address, not ${backend === 'dgram' ? 'dgram' : opts.host}`, 'workers');
  }
  if (backend === 'dgram' || (backend === undefined && !literal)) return DgramDnsSocket.open(opts);
  const a = await nativeAddon();
  if (a && literal) return new NativeDnsSocket(a, opts);
  if (backend === undefined && !opts.shards) return DgramDnsSocket.open(opts);
  throw new UsageError('EUDPBACKEND', literal ? `native UDP unavailable: ${addonError}` : `native UDP needs a literal address, not ${opts.host}`, 'udp');
}

/**
 * The same, synchronously, for the upstream pool (which opens ports on the
 * hot path): native when the addon was already loaded, else dgram (whose
 * sends before the bind completes are queued by dgram itself).
 */
export function openDnsUdpSync(opts: OpenOptions, backend: UdpBackend): DnsUdpSocket {
  if (backend === 'native' && addon) return new NativeDnsSocket(addon, opts);
  return DgramDnsSocket.openUnbound(opts);
}

/** Send arena: answers up to this size batch; a larger one goes out alone. */
const ARENA = 128 * 1024;
const SEND_SLOTS = 256;

/** A socket's send arena and the meta of its queued datagrams. */
interface SendArea { arena: ArrayBuffer; bytes: Uint8Array; meta: ArrayBuffer; view: DataView }
/**
 * Send areas of closed sockets, for the next socket to open: the upstream pool
 * replaces a socket every `socketUses` queries (a fresh random port), and a new
 * 139 KB of zeroed ArrayBuffers per replacement was external memory for the
 * garbage collector to account and free. A closed socket has flushed its queue
 * (the send is synchronous), so its area is free.
 */
const spareSendAreas: SendArea[] = [];
const MAX_SPARE_SEND_AREAS = 32;
function takeSendArea(): SendArea {
  const a = spareSendAreas.pop();
  if (a) return a;
  const arena = new ArrayBuffer(ARENA);
  const meta = new ArrayBuffer(SEND_META * SEND_SLOTS);
  return { arena, bytes: new Uint8Array(arena), meta, view: new DataView(meta) };
}

/** Bind addresses as the addon takes them (16 octets, IPv4 mapped), by literal: the upstream pool binds the same one at every replacement. */
const bindAddresses = new Map<string, Uint8Array>();
function bindAddress(host: string): Uint8Array {
  let b = bindAddresses.get(host);
  if (!b) {
    b = parseIpv6(net.isIP(host) === 4 ? `::ffff:${host}` : host);
    if (bindAddresses.size >= 64) bindAddresses.clear();
    bindAddresses.set(host, b);
  }
  return b;
}

/** A listener's bind refused (the port taken, the address not ours), on either backend. */
function bindError(opts: OpenOptions, e: unknown): EnvironmentError {
  return new EnvironmentError('EUDPBIND', `cannot bind UDP ${hostPort(opts.host, opts.port)}: ${(e as Error).message}`);
}

class NativeDnsSocket implements DnsUdpSocket {
  readonly backend = 'native';
  readonly port: number;
  oversize = 0;
  private readonly fd: number;
  private readonly handle: object;
  private handler: DatagramHandler = () => {};
  private readonly from = new Endpoint();
  private readonly sendArea = takeSendArea();
  private readonly arena = this.sendArea.arena;
  private readonly arenaBytes = this.sendArea.bytes;
  private readonly sendMeta = this.sendArea.meta;
  private readonly sendView = this.sendArea.view;
  queued = 0;
  private used = 0;
  private scheduled = false;
  private closed = false;
  private readonly flushFn = (): void => { this.scheduled = false; this.flush(); };

  constructor(private readonly native: NativeAddon, opts: OpenOptions) {
    const bind = bindAddress(opts.host);
    let fd: number, port: number;
    try {
      [fd, port] = native.udpOpen(opts.port, opts.bufferSize, false, bind, opts.dualStack ?? true, opts.shards ?? 0);
    } catch (e) {
      throw bindError(opts, e);
    }
    this.fd = fd;
    this.port = port;
    const area = opts.shared ?? new ReceiveArea(opts.maxDatagram, opts.batch);
    const { slot, bytes: recvBytes, view: mv } = area;
    const from = this.from;
    // Only a wildcard socket answers from more than one address: elsewhere the local address stays
    // :: (the socket's own), and no datagram carries a source of its own (IPV6_PKTINFO) to the kernel.
    const wildcard = bind.every((b, i) => b === 0 || (i >= 10 && i < 12 && b === 0xff));
    this.handle = native.udpStartReader(fd, area.buf, slot, area.slots, area.meta, (count) => {
      for (let i = 0; i < count && !this.closed; i++) {
        const m = i * RECV_META;
        const len = mv.getUint32(m + 36, true);
        if (len === 0) { this.oversize++; continue; }
        from.w0 = mv.getUint32(m); from.w1 = mv.getUint32(m + 4); from.w2 = mv.getUint32(m + 8); from.w3 = mv.getUint32(m + 12);
        if (wildcard) {
          from.l0 = mv.getUint32(m + 16); from.l1 = mv.getUint32(m + 20); from.l2 = mv.getUint32(m + 24); from.l3 = mv.getUint32(m + 28);
          // A link-local source needs its link, which the meta does not carry: the kernel picks one on the peer's link.
          if ((from.l0 & 0xffc00000) === (0xfe800000 | 0)) from.l0 = from.l1 = from.l2 = from.l3 = 0;
        }
        from.port = mv.getUint16(m + 32);
        const start = i * slot;
        this.handler(recvBytes.subarray(start, start + len), from);
      }
      // Answers made while handling the batch (every cache hit) leave in one sendmmsg.
      this.flush();
    });
  }

  onDatagram(cb: DatagramHandler): void { this.handler = cb; }

  send(bytes: Uint8Array, to: Endpoint): void {
    if (this.closed) return;
    const len = bytes.length;
    if (len > ARENA) { this.sendAlone(bytes, to); return; }
    if (this.queued === SEND_SLOTS || this.used + len > ARENA) this.flush();
    const off = this.used;
    this.arenaBytes.set(bytes, off);
    this.writeMeta(this.queued, to, off, len);
    this.queued++;
    this.used = off + len;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushFn);
    }
  }

  /** Send everything queued: one sendmmsg per batch. */
  flush(): void {
    if (this.queued === 0 || this.closed) return;
    this.native.udpSend(this.fd, this.arena, this.sendMeta, this.queued); // a run of equal-sized datagrams to one peer leaves as one GSO send
    this.queued = 0;
    this.used = 0;
  }

  unref(): void { this.native.udpRef(this.handle, false); }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.native.udpClose(this.handle);
    if (spareSendAreas.length < MAX_SPARE_SEND_AREAS) spareSendAreas.push(this.sendArea);
  }

  /**
   * Meta of datagram `i`: source (`to`'s local address: the one its datagram came to, or :: for
   * the socket's own), destination, port, arena offset and length.
   */
  private writeMeta(i: number, to: Endpoint, off: number, len: number, view = this.sendView): void {
    const m = i * SEND_META;
    view.setUint32(m, to.l0); view.setUint32(m + 4, to.l1); view.setUint32(m + 8, to.l2); view.setUint32(m + 12, to.l3);
    view.setUint32(m + 16, to.w0); view.setUint32(m + 20, to.w1); view.setUint32(m + 24, to.w2); view.setUint32(m + 28, to.w3);
    view.setUint16(m + 32, to.port);
    view.setUint32(m + 36, off, true);
    view.setUint32(m + 40, len, true);
  }

  private sendAlone(bytes: Uint8Array, to: Endpoint): void {
    this.flush(); // keep order
    const arena = new ArrayBuffer(bytes.length);
    new Uint8Array(arena).set(bytes);
    const meta = new ArrayBuffer(SEND_META);
    this.writeMeta(0, to, 0, bytes.length, new DataView(meta));
    this.native.udpSend(this.fd, arena, meta, 1);
  }
}

/**
 * dgram's address lookup for a socket that only ever sends to IP literals:
 * hands the address straight back (the default goes through dns.lookup on
 * every send: an isIP regex, a nextTick and a closure per datagram).
 */
function literalLookup(family: 4 | 6): (host: string, opts: unknown, cb: (err: Error | null, address: string, family: number) => void) => void {
  return (host, _opts, cb) => cb(null, host, family);
}
const LITERAL_LOOKUP = { 4: literalLookup(4), 6: literalLookup(6) } as const;

/** Address words by text: the few peers (clients, upstreams) repeat. */
const wordsOf = new Map<string, Endpoint>();
function endpointWords(host: string): Endpoint {
  let e = wordsOf.get(host);
  if (!e) {
    e = Endpoint.of(host, 0);
    if (wordsOf.size >= 4096) wordsOf.clear();
    wordsOf.set(host, e);
  }
  return e;
}

class DgramDnsSocket implements DnsUdpSocket {
  readonly backend = 'dgram';
  readonly oversize = 0;
  private handler: DatagramHandler = () => {};
  private readonly from = new Endpoint();
  /** Pending sends, flat: bytes, port, host, … (no object per datagram). */
  private readonly queue: Array<Uint8Array | number | string> = [];
  private scheduled = false;
  private closed = false;
  private readonly flushFn = (): void => this.flush();

  private constructor(private readonly sock: dgram.Socket) {
    sock.on('message', (msg, rinfo) => {
      const w = endpointWords(rinfo.address);
      const from = this.from;
      from.w0 = w.w0; from.w1 = w.w1; from.w2 = w.w2; from.w3 = w.w3;
      from.port = rinfo.port;
      from.host = w.host;
      this.handler(msg, from);
    });
  }

  private static create(opts: OpenOptions): dgram.Socket {
    const family = net.isIP(opts.host) === 6 ? 6 : 4;
    const lookup = net.isIP(opts.host) !== 0 ? { lookup: LITERAL_LOOKUP[family] as unknown as dgram.SocketOptions['lookup'] } : {};
    return dgram.createSocket({ type: family === 6 ? 'udp6' : 'udp4', ...lookup });
  }

  static async open(opts: OpenOptions): Promise<DgramDnsSocket> {
    const sock = DgramDnsSocket.create(opts);
    await new Promise<void>((resolve, reject) => {
      sock.once('error', (e) => { sock.close(); reject(bindError(opts, e)); });
      sock.bind(opts.port, opts.host, () => { sock.removeAllListeners('error'); resolve(); });
    });
    const s = new DgramDnsSocket(sock);
    s.afterBind(opts);
    return s;
  }

  /** Bound in the background; dgram queues sends until then. */
  static openUnbound(opts: OpenOptions): DgramDnsSocket {
    const sock = DgramDnsSocket.create(opts);
    const s = new DgramDnsSocket(sock);
    sock.once('listening', () => s.afterBind(opts));
    sock.bind(opts.port);
    return s;
  }

  private afterBind(opts: OpenOptions): void {
    this.sock.on('error', (err) => opts.onError?.(err));
    try { this.sock.setRecvBufferSize(opts.bufferSize); } catch { /* capped or not permitted */ }
    try { this.sock.setSendBufferSize(opts.bufferSize); } catch { /* capped or not permitted */ }
  }

  get port(): number { return this.sock.address().port; }

  onDatagram(cb: DatagramHandler): void { this.handler = cb; }

  get queued(): number { return this.queue.length / 3; }

  send(bytes: Uint8Array, to: Endpoint): void {
    this.queue.push(bytes, to.port, to.text());
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushFn);
    }
  }

  /**
   * Sends leave once per loop turn: a datagram sent from inside the socket's
   * own receive callback would otherwise wait for POLLOUT (two epoll_ctl
   * calls and a loop turn per burst).
   */
  private flush(): void {
    this.scheduled = false;
    const q = this.queue;
    if (!this.closed) for (let i = 0; i < q.length; i += 3) this.sock.send(q[i] as Uint8Array, q[i + 1] as number, q[i + 2] as string);
    q.length = 0;
  }

  unref(): void { this.sock.unref(); }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    try { this.sock.close(); } catch { /* already closed */ }
  }
}

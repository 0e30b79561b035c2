/**
 * The driver around the sans-I/O engine (docs/contracts.md): it owns the
 * clock, the UDP transport (one socket per local locator, port 5533 by
 * default), optionally a TUN device, and one timer. It feeds received UDP
 * datagrams to `engine.handleDatagram` and application packets from the TUN
 * to `engine.encapsulate`, drains `pollTransmit` / `pollEvent`, arms the timer
 * at `pollTimeout`, and hands events to a listener.
 *
 * Without a TUN it is the control-plane-only driver (the resolver primes the
 * engine, contexts are set up, no application traffic is carried).
 *
 * Call order on every input (quinn style): handle* or a command, then
 * `flush()` (coalesced to one per loop turn on the hot paths).
 *
 * Must not know: message formats (the engine), DNS (the resolver), routes
 * (routes.ts; wired in through the `routes` hook).
 */
import { performance } from 'node:perf_hooks';
import { SHIM6_UDP_PORT } from '../constants.ts';
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Logger } from '../log.ts';
import type { TunDevice } from './tun.ts';
import type { Datagram, IcmpError, UdpTransport } from './udp.ts';
import { IPV6_HEADER_LENGTH, buildIcmpError, splitPacket, writeHeader, type SplitPacket } from './ip6-packet.ts';
import { TcpPrompter } from './tcp-prompt.ts';
import type { Engine, EngineEvent, LocatorPair } from '../engine/index.ts';
import type { KernelPathHook } from './kernel-path.ts';

/**
 * The part of the Engine API (docs/contracts.md) the driver uses, in the
 * engine's own types: renaming an event or a result kind in the engine fails
 * to compile here. The lab's static context (static-context.ts) and test
 * doubles implement the same methods.
 */
export type EngineLike = Pick<Engine, 'handleDatagram' | 'encapsulate' | 'handleTimeout' | 'pollTransmit' | 'pollTimeout' | 'pollEvent'>
  & Partial<Pick<Engine, 'handleIcmp' | 'kernelTraffic'>>;

/** What the driver tells about contexts so routes follow them (routes.ts implements it). */
export interface RouteHook {
  contextUp(localUlid: Ipv6, peerUlid: Ipv6): void | Promise<void>;
  contextDown(peerUlid: Ipv6): void | Promise<void>;
  /** Make sockets look their routes up again (after a route into the TUN was added). */
  flushRouteCache?(): void;
  /**
   * The kernel path's switch, without blocking the loop: `tun` = contextUp + flushRouteCache,
   * `kernel` = contextDown. Absent: those, synchronously.
   */
  switchPath?(localUlid: Ipv6, peerUlid: Ipv6, path: DataPath): Promise<void>;
}

/** Which way a context's application packets go: the kernel's own route, or the TUN and the driver. */
export type DataPath = 'kernel' | 'tun';

/** A context as the kernel path sees it (`EngineDriver.paths()`). */
export interface ContextPath {
  localUlid: Ipv6;
  peerUlid: Ipv6;
  path: DataPath;
  pair: LocatorPair;
}

export interface EngineDriverOptions<E extends EngineLike> {
  engine: E;
  transport: UdpTransport;
  /** Absent: control-plane-only mode. */
  tun?: TunDevice;
  /** UDP port of peers when a Transmit names none (DESIGN.md §3). */
  peerPort?: number;
  /** Milliseconds, monotonic; default: performance.timeOrigin + performance.now(). */
  clock?: () => Millis;
  logger?: Logger;
  onEvent?: (e: EngineEvent) => void;
  routes?: RouteHook;
  /** How long packets to a primed peer wait for its context before its route is withdrawn (ms, default 1000). */
  holdMs?: number;
  /** Replay TCP segments after a locator pair change (tcp-prompt.ts). Default: on when there is a TUN. */
  tcpPrompt?: boolean;
  /**
   * Send whole IPv6 packets as plain IPv6, past the TUN (the addon's raw
   * socket, after the peer's route is withdrawn): the packets held for a
   * context that failed (ICMP said no Shim6 there) or did not come up in
   * time leave at once instead of when the application retransmits them.
   * Absent: they are dropped. Returns how many were sent.
   */
  sendPlain?: (packets: readonly Uint8Array[]) => number;
  /**
   * The kernel path (kernel-path.ts): a context whose locator pair is its ULID pair is not
   * routed into the TUN; its packets are counted by the kernel and read every `kernelPollMs`.
   * Absent: every context uses the TUN.
   */
  kernel?: KernelPathHook;
  /** How often the kernel's counters are read while a context uses the kernel path (ms, default 50). */
  kernelPollMs?: number;
}

/** Counters for `shim6 status` and benchmarks. */
export interface DriverStats {
  udpIn: number;
  udpOut: number;
  tunIn: number;
  tunOut: number;
  noContext: number;
  notIpv6: number;
  drops: Record<string, number>;
  prompts: number;
  /** ICMPv6 errors the transport heard about our datagrams, those the engine acted on, those handed to the application. */
  icmpIn: number;
  icmpActed: number;
  icmpToApp: number;
  /** Application packets too big for their context's path, answered with a Packet Too Big. */
  tooBig: number;
  /** Held packets sent as plain IPv6 when their peer's context failed or was late (`sendPlain`). */
  plain: number;
  /** Readings of the kernel's counters that showed traffic (fed to the engine). */
  kernelTraffic: number;
}

/**
 * Sees every Shim6 datagram the driver sends or receives (`shim6 pcap --live`,
 * shim/daemon/capture.ts): our locator, the peer's locator and UDP port, the
 * Shim6 octets (`head`, and for an outgoing payload the upper-layer packet
 * after it in `rest`). Unset (the default) it costs one test per datagram.
 */
export type PacketTap = (dir: 'in' | 'out', local: Ipv6, peer: Ipv6, peerPort: number, head: Uint8Array, rest?: Uint8Array) => void;
/** Peers remembered as withdrawn from the TUN (the set is emptied when full). */
const WITHDRAWN_MAX = 4096;
/** At most one log line per peer and ICMP type this often (ms). */
const ICMP_LOG_MS = 10_000;
/** RFC 4443 §3.2: Packet Too Big. */
const ICMP_PACKET_TOO_BIG = 2;

/** Receive batch bounds: packets and octets gathered before a TUN write. */
const RX_BATCH = 128;
const RX_ARENA_BYTES = 512 * 1024;

/** Packets held per peer while its primed context is set up (a SYN and its retransmissions). */
const HOLD_MAX = 16;
/** How long a primed peer's packets wait for its context before plain IPv6 takes over (ms). */
const HOLD_MS = 1000;
/** Default interval between readings of the kernel path's counters (ms). */
const KERNEL_POLL_MS = 50;
/** Failed readings in a row after which the kernel path is given up. */
const KERNEL_FAILURES_MAX = 3;
/** Sources whose refused ULID claims were logged (each once; the set is emptied when full). */
const REFUSED_LOGGED_MAX = 4096;

const defaultClock = (): Millis => (performance.timeOrigin + performance.now()) as Millis;

/** Runs an Engine against real (or in-memory) sockets, a TUN and a timer. */
export class EngineDriver<E extends EngineLike = EngineLike> {
  readonly engine: E;
  readonly stats: DriverStats = { udpIn: 0, udpOut: 0, tunIn: 0, tunOut: 0, noContext: 0, notIpv6: 0, drops: {}, prompts: 0, icmpIn: 0, icmpActed: 0, icmpToApp: 0, tooBig: 0, plain: 0, kernelTraffic: 0 };
  /** A live capture's tap (PacketTap); undefined while none runs. */
  tap: PacketTap | undefined = undefined;
  private readonly transport: UdpTransport;
  private readonly tun: TunDevice | undefined;
  private readonly peerPort: number;
  private readonly clock: () => Millis;
  private readonly prompter: TcpPrompter | undefined;
  /** Packets for the TUN, gathered per loop turn so the device can merge TCP runs (GRO). */
  private readonly rxArena = new Uint8Array(RX_ARENA_BYTES);
  private rxViews: Uint8Array[] = [];
  private rxOffset = 0;
  private timer: NodeJS.Timeout | undefined;
  private armedAt: Millis | undefined;
  private flushScheduled = false;
  private closed = false;
  /**
   * Packets for primed peers whose context is still being set up: their ULID
   * is routed into the TUN from `context-initiated` on, so the application's
   * first packets (a SYN) wait here and go out once the context is up, instead
   * of going to a dead locator on the physical link (seed §2.2).
   */
  private readonly held = new Map<Ipv6, { packets: Uint8Array[]; timer: NodeJS.Timeout }>();
  /** When an error for the application was last logged, per peer and ICMP type. */
  private readonly icmpLogged = new Map<string, number>();
  /** Peers whose ULID route into the TUN this driver withdrew (and has not routed again): bounded by WITHDRAWN_MAX. */
  private readonly withdrawn = new Set<Ipv6>();
  /** Sources of refused ULID claims already logged (the engine counts every one in `status`). */
  private readonly refusedLogged = new Set<Ipv6>();
  /** Established contexts, by peer ULID: their path and pair, and the kernel counters last read. */
  private readonly contexts = new Map<Ipv6, ContextPath & { exploring: boolean; out: number; in: number }>();
  /** Per peer, the local ULID of an established second context with it (routedForOther): it takes the route over when the first one goes. */
  private readonly seconds = new Map<Ipv6, Ipv6>();
  private kernelTimer: NodeJS.Timeout | undefined;
  private kernelReading = false;
  private kernelFailures = 0;
  private kernelBroken = false;

  constructor(private readonly opts: EngineDriverOptions<E>) {
    this.engine = opts.engine;
    this.transport = opts.transport;
    this.tun = opts.tun;
    this.peerPort = opts.peerPort ?? SHIM6_UDP_PORT;
    this.clock = opts.clock ?? defaultClock;
    this.prompter = (opts.tcpPrompt ?? opts.tun !== undefined) ? new TcpPrompter() : undefined;
    this.transport.onDatagram((d) => this.onDatagram(d));
    this.transport.onIcmpError?.((e) => this.onIcmpError(e));
    this.tun?.onPackets((ps) => this.onTunPackets(ps));
  }

  /** The driver's clock (for callers that build engine commands). */
  now(): Millis {
    return this.clock();
  }

  /**
   * Run an engine command (`prime`, `setLocalLocators`, `close`, …) with the
   * driver's clock, then send what it produced and re-arm the timer.
   */
  command<T>(fn: (engine: E, now: Millis) => T): T {
    const r = fn(this.engine, this.clock());
    this.flush();
    return r;
  }

  /**
   * Listen on a local locator (the daemon calls this for every address it
   * finds, before telling the engine). Resolves with the bound port.
   */
  bindLocator(address: Ipv6): Promise<number> {
    return this.transport.bind(address);
  }

  /** Stop listening on a local locator that went away. */
  unbindLocator(address: Ipv6): Promise<void> {
    return this.transport.unbind(address);
  }

  /** Established contexts and the path each one's application packets take. */
  paths(): ContextPath[] {
    return [...this.contexts.values()].map(({ localUlid, peerUlid, path, pair }) => ({ localUlid, peerUlid, path, pair: { ...pair } }));
  }

  /** Send every pending transmit, dispatch every event, re-arm the timer. */
  flush(): void {
    if (this.closed) return;
    this.flushTun();
    for (let t = this.engine.pollTransmit(); t; t = this.engine.pollTransmit()) {
      if (this.tap) this.tap('out', t.src, t.dst, t.port ?? this.peerPort, t.bytes);
      if (this.transport.send(t.src, t.dst, t.port ?? this.peerPort, t.bytes)) this.stats.udpOut++;
      else this.drop('no-socket-for-source');
    }
    this.dispatchEvents();
    this.transport.flush?.();
    this.arm();
  }

  /** Stop the timer, close the TUN and the sockets. The engine is left as is (call its close first for Close/Close-Ack). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.kernelTimer) clearInterval(this.kernelTimer);
    this.kernelTimer = undefined;
    for (const c of this.contexts.values()) if (c.path === 'kernel') this.opts.kernel?.unwatch(c.localUlid, c.peerUlid);
    this.contexts.clear();
    for (const peer of [...this.held.keys()]) this.unhold(peer);
    await this.tun?.close();
    await this.transport.close();
  }

  private onDatagram(d: Datagram): void {
    if (this.closed) return;
    this.stats.udpIn++;
    if (this.tap) this.tap('in', d.dst, d.src, d.srcPort, d.bytes);
    const r = this.engine.handleDatagram(this.clock(), { src: d.src, dst: d.dst, bytes: d.bytes, port: d.srcPort });
    if (r.kind === 'payload') this.deliver(r.srcUlid, r.dstUlid, r.nextHeader, r.payload);
    else if (r.kind === 'drop') this.drop(r.reason);
    this.scheduleFlush();
  }

  /**
   * An ICMPv6 error about one of our datagrams (RFC 5533 §8): the engine acts
   * on it, or translates it back to the application's packet, which then
   * goes into the TUN as an ICMPv6 error from the error's sender (the peer's
   * ULID when the kernel did not say).
   */
  private onIcmpError(e: IcmpError): void {
    if (this.closed || this.engine.handleIcmp === undefined) return;
    this.stats.icmpIn++;
    const r = this.engine.handleIcmp(this.clock(), { type: e.type, code: e.code, info: e.info, src: e.src, dst: e.dst, port: e.dstPort, invoking: e.quoted, ...(e.offender !== undefined ? { offender: e.offender } : {}) });
    if (r.kind === 'consumed') this.stats.icmpActed++;
    else if (r.kind === 'drop') this.drop(`icmp-${r.reason}`.replace(/^icmp-icmp-/, 'icmp-'));
    else {
      this.toApplication(buildIcmpError(e.offender ?? r.dstUlid, r.srcUlid, r.type, r.code, r.info,
        { srcUlid: r.srcUlid, dstUlid: r.dstUlid, nextHeader: r.nextHeader, payloadLength: r.payload.length, payload: r.payload }));
      this.logIcmp(r.dstUlid, r.type, { type: r.type, code: r.code, info: r.info, peer: r.dstUlid, from: e.offender, pair: { local: e.src, peer: e.dst } });
    }
    this.scheduleFlush();
  }

  /** Log an error handed to the application: the first per peer and type, then at most one per ICMP_LOG_MS (stats count them all). */
  private logIcmp(peer: Ipv6, type: number, fields: Record<string, unknown>): void {
    const key = `${peer} ${type}`;
    const now = this.clock();
    const last = this.icmpLogged.get(key);
    if (last !== undefined && now - last < ICMP_LOG_MS) return;
    if (this.icmpLogged.size >= REFUSED_LOGGED_MAX) this.icmpLogged.clear();
    this.icmpLogged.set(key, now);
    this.opts.logger?.info('icmp error to the application', fields);
  }

  /** A packet the daemon makes for the application (an ICMPv6 error): into the TUN with this turn's batch. */
  private toApplication(packet: Uint8Array): void {
    if (!this.tun) return this.drop('no-tun');
    if (this.rxViews.length >= RX_BATCH) this.flushTun();
    this.rxViews.push(packet);
    this.stats.icmpToApp++;
  }

  /**
   * Rebuild the IPv6 header from the context's ULIDs (DESIGN.md §3) into the
   * receive arena; the batch goes to the TUN at the end of this loop turn.
   */
  private deliver(srcUlid: Ipv6, dstUlid: Ipv6, nextHeader: number, payload: Uint8Array): void {
    if (!this.tun) return this.drop('no-tun');
    const len = IPV6_HEADER_LENGTH + payload.length;
    if (len > this.rxArena.length) return this.drop('too-big');
    if (this.rxOffset + len > this.rxArena.length || this.rxViews.length >= RX_BATCH) this.flushTun();
    const view = this.rxArena.subarray(this.rxOffset, this.rxOffset + len);
    writeHeader(view, srcUlid, dstUlid, nextHeader, payload.length);
    view.set(payload, IPV6_HEADER_LENGTH);
    this.rxViews.push(view);
    this.rxOffset += (len + 7) & ~7;
  }

  private flushTun(): void {
    if (this.rxViews.length === 0 || !this.tun) return;
    const n = this.tun.write(this.rxViews);
    this.stats.tunOut += n;
    if (n < this.rxViews.length) this.drop('tun-write');
    this.rxViews = [];
    this.rxOffset = 0;
  }

  private onTunPackets(packets: readonly Uint8Array[]): void {
    if (this.closed) return;
    const now = this.clock();
    for (const p of packets) {
      this.stats.tunIn++;
      this.sendApplicationPacket(now, p);
    }
    this.prompter?.commit();
    this.transport.flush?.();
    this.scheduleFlush();
  }

  private sendApplicationPacket(now: Millis, packet: Uint8Array): void {
    const s = splitPacket(packet);
    if (!s) { this.stats.notIpv6++; return; }
    const r = this.engine.encapsulate(now, s);
    if (r.kind === 'no-context') {
      // The engine may have just started a context for a peer it knows (context-initiated): hold this packet too.
      if (!this.held.has(s.dstUlid)) this.dispatchEvents();
      const q = this.held.get(s.dstUlid)?.packets;
      if (q !== undefined && q.length < HOLD_MAX) q.push(packet.slice());
      // Routed into the TUN just before the driver withdrew its route (the context failed meanwhile): plain IPv6.
      else if (this.opts.sendPlain !== undefined && this.withdrawn.has(s.dstUlid)) this.letGo(s.dstUlid, [packet.slice()], undefined, true);
      else this.stats.noContext++;
      return;
    }
    if (r.kind === 'too-big') return this.tooBig(s, r.mtu);
    this.prompter?.observe(packet, s.srcUlid, s.dstUlid);
    if (this.tap) this.tap('out', r.src, r.dst, r.port ?? this.peerPort, r.header, s.payload);
    if (this.transport.send(r.src, r.dst, r.port ?? this.peerPort, r.header, s.payload)) this.stats.udpOut++;
    else this.drop('no-socket-for-source');
  }

  /**
   * The application's packet is larger than its context's path carries: drop
   * it and tell the application, as a router would, with the MTU it may use
   * (from the peer's ULID, about the packet as sent).
   */
  private tooBig(s: SplitPacket, mtu: number): void {
    this.stats.tooBig++;
    this.toApplication(buildIcmpError(s.dstUlid, s.srcUlid, ICMP_PACKET_TOO_BIG, 0, mtu,
      { srcUlid: s.srcUlid, dstUlid: s.dstUlid, nextHeader: s.nextHeader, payloadLength: s.payload.length, payload: s.payload }));
  }

  private dispatchEvents(): void {
    for (let e = this.engine.pollEvent(); e; e = this.engine.pollEvent()) this.dispatch(e);
  }

  private dispatch(e: EngineEvent): void {
    if (e.kind === 'ulid-refused') {
      this.logRefused(e);
      this.opts.onEvent?.(e);
      return;
    }
    this.opts.logger?.info(e.kind, eventFields(e));
    if (e.kind !== 'peer-unsupported' && e.kind !== 'peer-supported' && this.routedForOther(e.localUlid, e.peerUlid)) return this.secondContext(e);
    if (e.kind === 'context-initiated' && this.tun) this.hold(e.localUlid, e.peerUlid);
    // No route without evidence (DESIGN.md "Trust"): the engine says why the ULID is the peer's
    // (checked at run time too: an implementation of EngineLike may be less careful than its type).
    if (e.kind === 'context-established' && (e.ulidProof as string | undefined) !== undefined) {
      const c = { localUlid: e.localUlid, peerUlid: e.peerUlid, path: 'tun' as DataPath, pair: { ...e.pair }, exploring: false, out: 0, in: 0 };
      this.contexts.set(e.peerUlid, c);
      if (!this.toKernel(c)) void this.routeUp(e.localUlid, e.peerUlid);
      this.release(e.peerUlid);
    }
    if (e.kind === 'context-closed' || e.kind === 'context-failed') {
      const held = this.unhold(e.peerUlid);
      const c = this.contexts.get(e.peerUlid);
      this.contexts.delete(e.peerUlid);
      if (c?.path === 'kernel') this.opts.kernel?.unwatch(c.localUlid, c.peerUlid);
      // A resumable close (idle cleanup of a known peer) keeps the route (or routes it, from the kernel path): the next packet brings the context back.
      // A second context with the peer, up meanwhile, takes the route over.
      const next = this.seconds.get(e.peerUlid);
      this.seconds.delete(e.peerUlid);
      if (next !== undefined && c?.localUlid === e.localUlid) {
        this.contexts.set(e.peerUlid, { localUlid: next, peerUlid: e.peerUlid, path: 'tun', pair: { local: next, peer: e.peerUlid }, exploring: false, out: 0, in: 0 });
        void this.routeUp(next, e.peerUlid);
      } else if (e.kind === 'context-failed' || !e.resumable) this.letGo(e.peerUlid, e.kind === 'context-failed' ? held : [], this.routeDown(e.peerUlid));
      else if (c?.path === 'kernel') this.routeIntoTun(c);
      this.prompter?.forget(e.peerUlid);
    }
    if (e.kind === 'reap-state') {
      const c = this.contexts.get(e.peerUlid);
      if (c !== undefined) {
        c.exploring = e.state === 'exploring';
        c.pair = { ...e.pair };
        // Exploring: the TCP prompt must see the segments TCP retransmits meanwhile, so they go through the TUN.
        if (c.exploring) this.toTun(c);
        else this.toKernel(c);
      }
    }
    if (e.kind === 'peer-unsupported') this.unhold(e.peerUlid);
    const moved = e.kind === 'locator-pair-changed' ? this.contexts.get(e.peerUlid) : undefined;
    if (e.kind === 'locator-pair-changed' && moved !== undefined) {
      moved.pair = { ...e.new };
      if (!isUlidPair(moved)) this.toTun(moved);
    }
    if (e.kind === 'locator-pair-changed' && this.prompter) {
      const replays = this.prompter.prompt(e.peerUlid);
      const now = this.clock();
      for (const p of replays) this.sendApplicationPacket(now, p);
      this.prompter.commit();
      this.stats.prompts += replays.length;
      if (replays.length > 0) this.opts.logger?.info('tcp prompted after re-homing', { peer: e.peerUlid, segments: replays.length });
    }
    if (moved !== undefined && !moved.exploring) this.toKernel(moved);
    this.opts.onEvent?.(e);
  }

  /**
   * The peer's ULID is routed for a context from another local ULID of ours (one route per
   * peer ULID, `src` the first context's ULID): a second context with the same peer, as when
   * an application's new connection picks another source after our first address was
   * removed, must neither move nor remove that route, nor change the first one's state.
   */
  private routedForOther(local: Ipv6, peer: Ipv6): boolean {
    const c = this.contexts.get(peer);
    return c !== undefined && c.localUlid !== local;
  }

  /** An event of such a second context: its packets wait for it (the route is already there), or go plain when it fails. */
  private secondContext(e: Exclude<EngineEvent, { kind: 'ulid-refused' | 'peer-unsupported' | 'peer-supported' }>): void {
    if (e.kind === 'context-initiated' && this.tun) this.hold(e.localUlid, e.peerUlid, false);
    if (e.kind === 'context-established') {
      this.seconds.set(e.peerUlid, e.localUlid);
      this.release(e.peerUlid);
    }
    if ((e.kind === 'context-failed' || e.kind === 'context-closed') && this.seconds.get(e.peerUlid) === e.localUlid) this.seconds.delete(e.peerUlid);
    if (e.kind === 'context-failed') this.letGo(e.peerUlid, this.unhold(e.peerUlid), undefined);
    if (e.kind === 'context-closed') this.unhold(e.peerUlid);
    this.opts.onEvent?.(e);
  }

  /**
   * The context's packets take the kernel's own route, if it has a kernel path, its pair is
   * its ULID pair, REAP is not exploring and the kernel counts its packets: the route into
   * the TUN goes (deleting it makes sockets look their route up again). Whether it did.
   */
  private toKernel(c: ContextPath & { exploring: boolean; out: number; in: number }): boolean {
    const k = this.opts.kernel;
    if (c.path === 'kernel') return true;
    if (k === undefined || this.kernelBroken || this.engine.kernelTraffic === undefined || c.exploring || !isUlidPair(c) || !k.watch(c.localUlid, c.peerUlid)) return false;
    c.path = 'kernel';
    c.out = 0;
    c.in = 0;
    this.routeLater(c, 'kernel', () => this.opts.routes?.contextDown(c.peerUlid));
    this.opts.logger?.info('context on the kernel path', { peer: c.peerUlid });
    this.kernelTimer ??= setInterval(() => this.pollKernel(), this.opts.kernelPollMs ?? KERNEL_POLL_MS);
    this.kernelTimer.unref?.();
    return true;
  }

  /** The context's packets go through the TUN again (after a re-homing, or while REAP explores). */
  private toTun(c: ContextPath): void {
    if (c.path !== 'kernel') return;
    this.opts.kernel?.unwatch(c.localUlid, c.peerUlid);
    c.path = 'tun';
    this.routeIntoTun(c);
    this.opts.logger?.info('context on the tun path', { peer: c.peerUlid, pair: c.pair });
    if (![...this.contexts.values()].some((x) => x.path === 'kernel') && this.kernelTimer) {
      clearInterval(this.kernelTimer);
      this.kernelTimer = undefined;
    }
  }

  private routeIntoTun(c: ContextPath): void {
    this.routeLater(c, 'tun', () => {
      void this.opts.routes?.contextUp(c.localUlid, c.peerUlid);
      this.opts.routes?.flushRouteCache?.();
    });
  }

  /**
   * A route change of the kernel path, after this loop turn and without blocking it when the
   * hook can (`switchPath`): `ip` takes tens of ms on a busy host, and the probes and packets
   * the engine produces meanwhile must go out. In order.
   */
  private routeLater(c: ContextPath, path: DataPath, sync: () => unknown): void {
    const r = this.opts.routes;
    if (r?.switchPath) {
      void r.switchPath(c.localUlid, c.peerUlid, path);
      return;
    }
    setImmediate(() => { if (!this.closed) sync(); });
  }

  /** One reading of the kernel's counters at a time; a failed one is counted and the next tick tries again. */
  private pollKernel(): void {
    const k = this.opts.kernel;
    if (k === undefined || this.kernelReading || this.closed) return;
    this.kernelReading = true;
    k.refresh().then(() => this.readKernel(), () => this.kernelReadFailed()).finally(() => { this.kernelReading = false; });
  }

  /**
   * A reading failed. Three in a row: the kernel path cannot tell REAP what flows, so every
   * context goes to the TUN path (said once) and no context takes the kernel path again.
   */
  private kernelReadFailed(): void {
    this.drop('kernel-read');
    if (++this.kernelFailures < KERNEL_FAILURES_MAX || this.kernelBroken) return;
    this.kernelBroken = true;
    this.opts.logger?.warn('kernel path: its counters cannot be read; every context uses the TUN path', { failures: this.kernelFailures });
    for (const c of this.contexts.values()) this.toTun(c);
  }

  /**
   * Tell the engine, per context on the kernel path, what moved since the last reading of
   * the kernel's counters (the REAP inputs the TUN path gives per packet).
   */
  private readKernel(): void {
    if (this.closed) return;
    this.kernelFailures = 0;
    const k = this.opts.kernel;
    let fed = false;
    const now = this.clock();
    for (const c of this.contexts.values()) {
      if (c.path !== 'kernel' || k === undefined) continue;
      const n = k.read(c.localUlid, c.peerUlid);
      if (n === undefined) continue; // watched since the last reading
      const sent = n.outPackets > c.out, received = n.inPackets > c.in;
      c.out = n.outPackets;
      c.in = n.inPackets;
      if (!sent && !received) continue;
      this.stats.kernelTraffic++;
      this.engine.kernelTraffic?.(now, c.localUlid, c.peerUlid, { sent, received });
      fed = true;
    }
    if (fed) this.flush();
  }

  /** A refused ULID claim: a warning once per source (bounded), so a flood of them cannot flood the log. */
  private logRefused(e: Extract<EngineEvent, { kind: 'ulid-refused' }>): void {
    const src = e.source;
    if (this.refusedLogged.has(src)) return;
    if (this.refusedLogged.size >= REFUSED_LOGGED_MAX) this.refusedLogged.clear();
    this.refusedLogged.add(src);
    this.opts.logger?.warn('ulid claim refused: no context, no route (counted in status engine.guard)', eventFields(e));
  }

  /**
   * Route `peer` into the TUN and hold its packets while the context is set
   * up, for `holdMs` at most: a stale capability record (no shim6 there) must
   * not keep the application from plain IPv6. Then the route goes (the held
   * packets are dropped; TCP's next SYN goes out plain) while the engine keeps
   * trying; `context-established` routes it again. `route` false: the peer is
   * routed for another context already (routedForOther), hold only.
   */
  private hold(local: Ipv6, peer: Ipv6, route = true): void {
    if (this.held.has(peer)) return;
    const timer = setTimeout(() => {
      const h = this.held.get(peer);
      if (h?.timer !== timer) return;
      this.held.delete(peer);
      // The route stays when a context from another of our ULIDs has come up meanwhile (or had it all along).
      this.letGo(peer, h.packets, this.contexts.has(peer) ? undefined : this.routeDown(peer));
      this.opts.logger?.info('context not up in time: plain IPv6 meanwhile', { peer });
    }, this.opts.holdMs ?? HOLD_MS);
    timer.unref?.();
    this.held.set(peer, { packets: [], timer });
    if (route) void this.routeUp(local, peer);
  }

  /** Stop holding `peer`'s packets; returns those held. */
  private unhold(peer: Ipv6): Uint8Array[] {
    const h = this.held.get(peer);
    if (h === undefined) return [];
    clearTimeout(h.timer);
    this.held.delete(peer);
    return h.packets;
  }

  private routeUp(local: Ipv6, peer: Ipv6): void | Promise<void> {
    this.withdrawn.delete(peer);
    return this.opts.routes?.contextUp(local, peer);
  }

  private routeDown(peer: Ipv6): void | Promise<void> {
    if (this.withdrawn.size >= WITHDRAWN_MAX) this.withdrawn.clear();
    this.withdrawn.add(peer);
    return this.opts.routes?.contextDown(peer);
  }

  /**
   * Once `peer`'s route into the TUN is gone (`down`), send `packets` (held
   * for it, or read just before the route went) as plain IPv6 (`sendPlain`).
   * Each leaves with its hop limit one lower, and one at 1 is dropped: should
   * the kernel still route the peer into the TUN, a packet cannot loop for
   * ever between the TUN and the raw socket.
   */
  private letGo(peer: Ipv6, packets: Uint8Array[], down: void | Promise<void> | undefined, late = false): void {
    const send = this.opts.sendPlain;
    if (packets.length === 0 || send === undefined) return;
    void Promise.resolve(down).then(() => {
      if (this.closed) return;
      const out = packets.filter((p) => p[7]! > 1);
      for (const p of out) p[7]!--;
      if (out.length < packets.length) this.drop('hop-limit');
      const n = out.length > 0 ? send(out) : 0;
      this.stats.plain += n;
      // Held packets once per failed context; late ones are only counted (a burst could be many).
      if (!late) this.opts.logger?.info('held packets sent as plain IPv6', { peer, packets: n });
    }, () => undefined);
  }

  /** The context with `peer` is up: send what waited for it, in order. */
  private release(peer: Ipv6): void {
    const q = this.held.get(peer)?.packets;
    if (q === undefined) return;
    this.unhold(peer);
    const now = this.clock();
    for (const p of q) this.sendApplicationPacket(now, p);
    this.prompter?.commit();
    if (q.length > 0) this.opts.logger?.info('held packets sent', { peer, packets: q.length });
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private arm(): void {
    const at = this.engine.pollTimeout();
    if (at === this.armedAt && (this.timer || at === undefined)) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.armedAt = at;
    if (at === undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.armedAt = undefined;
      if (this.closed) return;
      // A context on the kernel path: read the counters first, so REAP's Send and Keepalive
      // Timers expire on what the kernel carried until now, not on a reading one interval old.
      if (this.kernelTimer !== undefined && this.opts.kernel !== undefined) {
        this.kernelReading = true;
        this.opts.kernel.refresh().then(() => this.readKernel(), () => this.kernelReadFailed()).finally(() => {
          this.kernelReading = false;
          if (this.closed) return;
          this.engine.handleTimeout(this.clock());
          this.flush();
        });
        return;
      }
      this.engine.handleTimeout(this.clock());
      this.flush();
    }, Math.max(0, Math.ceil(at - this.clock())));
  }

  private drop(reason: string): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
  }
}

/** The context's current locator pair is its ULID pair (no re-homing in force). */
function isUlidPair(c: ContextPath): boolean {
  return c.pair.local === c.localUlid && c.pair.peer === c.peerUlid;
}

function eventFields(e: EngineEvent): Record<string, unknown> {
  const { kind: _kind, ...rest } = e;
  return rest;
}

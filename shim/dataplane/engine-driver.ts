/**
 * The driver around the sans-I/O engine (docs/contracts.md): it owns the
 * clock, the UDP transport (port 5533 by default: one socket for every
 * local locator with the native addon, one per locator with `udp: dgram`),
 * optionally a TUN device, and one timer. It feeds received UDP
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
 * Rooms of their own, which it wires together: the handshake hold
 * (handshake-hold.ts), the ICMP relay (icmp-relay.ts), which path each
 * context's packets take (context-paths.ts: the kernel path or the TUN).
 *
 * Must not know: message formats (the engine), DNS (the resolver), routes
 * (routes.ts; wired in through the `routes` hook).
 */
import { SHIM6_UDP_PORT } from '../constants.ts';
import type { Millis } from '../time.ts';
import { bootClock, deadlineTimer, type DeadlineTimer } from '../clock.ts';
import { formatIpv6, type Ipv6 } from '../wire/ipv6.ts';
import type { Logger } from '../log.ts';
import type { TunDevice } from './tun.ts';
import type { Datagram, IcmpError, UdpTransport } from './udp.ts';
import { IPV6_HEADER_LENGTH, IPPROTO_TCP, buildPacket, splitPacket, ulpChecksum, writeHeader } from './ip6-packet.ts';
import { CHALLENGE_MS, challengeSyn, kickAck, TcpPrompter, type ChallengeAnswer, type RestartFlow, type TcpFlow } from './tcp-prompt.ts';
import type { Engine, EngineEvent } from '../engine/index.ts';
import type { KernelPathHook } from './kernel-path.ts';
import { ContextPaths, isUlidPair, type ContextPath, type EncapDetails, type RouteHook, type TunRun } from './context-paths.ts';
import type { EncapHook, KernelFlow } from './bpf-encap.ts';
import { HandshakeHold } from './handshake-hold.ts';
import { IcmpRelay } from './icmp-relay.ts';

/**
 * The part of the Engine API (docs/contracts.md) the driver uses, in the
 * engine's own types: renaming an event or a result kind in the engine fails
 * to compile here. The lab's static context (static-context.ts) and test
 * doubles implement the same methods.
 */
export type EngineLike = Pick<Engine, 'handleDatagram' | 'encapsulate' | 'handleTimeout' | 'pollTransmit' | 'pollTimeout' | 'pollEvent'>
  & Partial<Pick<Engine, 'handleIcmp' | 'kernelTraffic' | 'liveness' | 'status' | 'describeEstablished'>>;

export interface EngineDriverOptions<E extends EngineLike> {
  engine: E;
  transport: UdpTransport;
  /** Absent: control-plane-only mode. */
  tun?: TunDevice;
  /** UDP port of peers when a Transmit names none (docs/wire.md "Transports"). */
  peerPort?: number;
  /** Milliseconds, monotonic; default: the product's clock (shim/clock.ts: CLOCK_BOOTTIME, suspend counts). */
  clock?: () => Millis;
  logger?: Logger;
  onEvent?: (e: EngineEvent) => void;
  routes?: RouteHook;
  /** How long packets to a primed peer wait for its context before its route is withdrawn (ms, default 1000). */
  holdMs?: number;
  /** How much longer they wait once the peer has answered the handshake (ms, default 4000; handshake-hold.ts). */
  answeredHoldMs?: number;
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
   * routed into the TUN; its packets are counted by the kernel and read every `kernelPollMs` while they move (with the tripwire, not while idle: context-paths.ts).
   * Absent: every context uses the TUN.
   */
  kernel?: KernelPathHook;
  /** How often the kernel's counters are read while a context uses the kernel path (ms, default 50). */
  kernelPollMs?: number;
  /**
   * The kernel encapsulation (bpf-encap.ts): with `kernel`, a re-homed context's packets are
   * encapsulated by tc programs instead of crossing the TUN. Absent: re-homed contexts use the TUN.
   */
  encap?: EncapHook;
  /**
   * The MTU of an encapsulated path (routes.tunMtu). With `encap`, after a re-homing from the
   * kernel path each TCP flow the kernel remembered is told the path MTU shrank to it (a
   * Packet Too Big quoting its last segment), so TCP retransmits what is in flight at once.
   */
  encapMtu?: number;
  /**
   * For each flow, whether it is in TCP's persist timer now (the daemon reads the host's socket
   * table once). Asked after a restart for the flows of a TUN batch that sat in that timer and
   * answered their challenge in it, before they are kicked (promptAfterRestart). Absent: such
   * flows are not kicked.
   */
  inPersistTimer?: (flows: readonly TcpFlow[]) => boolean[];
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
  /** Keepalives sent to peers of contexts on the kernel path so that one that lost its context says so (R1bis). */
  liveness: number;
}

/**
 * Sees every Shim6 datagram the driver sends or receives (`shim6 pcap --live`,
 * shim/daemon/capture.ts): our locator, the peer's locator and UDP port, the
 * Shim6 octets (`head`, and for an outgoing payload the upper-layer packet
 * after it in `rest`). Unset (the default) it costs one test per datagram.
 */
export type PacketTap = (dir: 'in' | 'out', local: Ipv6, peer: Ipv6, peerPort: number, head: Uint8Array, rest?: Uint8Array) => void;
/** How much below the encapsulated path's MTU the kernel flows' prompt claims, per round (promptKernelFlows). */
const PROMPT_MTU_MARGIN = 8;
/** Peers remembered as logged by the own-stack prompt (ownStackLogged). */
const PROMPT_LOGGED_MAX = 4096;
/** Rounds of the kernel flows' prompt, and the wait before each next one for flows still unacknowledged (ms). */
const PROMPT_ROUNDS = 3;
const PROMPT_AGAIN_MS = 100;
/** The waits before each further prompt after a re-homing or a context established again (promptAgain), ms. */
const REPROMPT_AFTER_MS = [100, 200, 400];
/**
 * Flows of one context prompted per re-homing at most: what the kernel holds per context
 * (bpf-encap.ts ENCAP_FLOWS_PER_CONTEXT), bounded here too for any other EncapHook. Each costs a
 * Packet Too Big and an ACK into our own stack per round.
 */
const PROMPT_FLOWS_MAX = 256;
/** A re-homing onto the kernel encapsulation replays what our stack sent (rehomedKernel) unless the pair changed this long before (ms). */
const REPLAY_AGAIN_AFTER_MS = 1000;
/** TCP's FIN and RST flags (the 14th octet of its header). */
const TCP_FIN_RST = 0x05;
/** Receive batch bounds: packets and octets gathered before a TUN write. */
const RX_BATCH = 128;
const RX_ARENA_BYTES = 512 * 1024;
/** Sources whose refused ULID claims were logged (each once; the set is emptied when full). */
const REFUSED_LOGGED_MAX = 4096;

/** Runs an Engine against real (or in-memory) sockets, a TUN and a timer. */
export class EngineDriver<E extends EngineLike = EngineLike> {
  readonly engine: E;
  readonly stats: DriverStats = { udpIn: 0, udpOut: 0, tunIn: 0, tunOut: 0, noContext: 0, notIpv6: 0, drops: {}, prompts: 0, icmpIn: 0, icmpActed: 0, icmpToApp: 0, tooBig: 0, plain: 0, kernelTraffic: 0, liveness: 0 };
  /** A live capture's tap (PacketTap); undefined while none runs. */
  tap: PacketTap | undefined = undefined;
  private readonly transport: UdpTransport;
  private readonly tun: TunDevice | undefined;
  private readonly peerPort: number;
  private readonly clock: () => Millis;
  private readonly prompter: TcpPrompter | undefined;
  private readonly icmp: IcmpRelay;
  private readonly hold: HandshakeHold;
  private readonly contexts: ContextPaths;
  /** Packets for the TUN, gathered per loop turn so the device can merge TCP runs (GRO). */
  private readonly rxArena = new Uint8Array(RX_ARENA_BYTES);
  private rxViews: Uint8Array[] = [];
  private rxOffset = 0;
  /**
   * The batch's packets by ULID pair, in runs (made only on the kernel path, whose inbound counter
   * counts them again as they come out of the TUN): told to the context paths once written.
   */
  private rxRuns: TunRun[] = [];
  private readonly countRuns: boolean;
  /**
   * The one timer, at the engine's next deadline: a CLOCK_BOOTTIME timer (shim/clock.ts
   * deadlineTimer), which the kernel fires at a resume once its time has passed (a Node timer
   * waited out the rest of its delay awake); a Node timer with an injected clock.
   */
  private readonly timer: DeadlineTimer;
  private armed = false;
  private armedAt: Millis | undefined;
  private flushScheduled = false;
  private closed = false;
  /** Sources of refused ULID claims already logged (the engine counts every one in `status`). */
  private readonly refusedLogged = new Set<Ipv6>();
  /** Per peer, the local ULID of an established second context with it (routedForOther): it takes the route over when the first one goes. */
  private readonly seconds = new Map<Ipv6, Ipv6>();
  /** Per peer, its kernel flows' acknowledgments at the prompt through the TUN (rehomedKernel). */
  private readonly firstPrompt = new Map<Ipv6, Map<string, number>>();
  /** Per peer, when its context's pair last changed (its replay then: rehomedKernel does not replay again). */
  private readonly pairChangedAt = new Map<Ipv6, number>();
  /**
   * Peers whose own-stack prompt was logged at info since their context came up (`at` and peer):
   * the flows after the first are logged at debug, so a restart with thousands of open
   * connections logs a line per peer, not per flow. Emptied when over PROMPT_LOGGED_MAX.
   */
  private readonly ownStackLogged = new Set<string>();
  /** Challenge answers of flows in the persist timer in the TUN batch being read (kickPersist). */
  private kicks: ChallengeAnswer[] = [];
  /** An onTimer is queued for the check phase (queueTimer). */
  private timerQueued = false;

  constructor(private readonly opts: EngineDriverOptions<E>) {
    this.engine = opts.engine;
    this.transport = opts.transport;
    this.tun = opts.tun;
    this.peerPort = opts.peerPort ?? SHIM6_UDP_PORT;
    this.clock = opts.clock ?? bootClock;
    this.timer = deadlineTimer(() => this.onWake(), opts.clock ? { clock: opts.clock } : {});
    this.prompter = (opts.tcpPrompt ?? opts.tun !== undefined) ? new TcpPrompter() : undefined;
    const drop = (reason: string): void => this.drop(reason);
    const logger = opts.logger;
    this.icmp = new IcmpRelay({
      ...(opts.engine.handleIcmp !== undefined ? { handleIcmp: opts.engine.handleIcmp.bind(opts.engine) } : {}),
      clock: this.clock, ...(logger ? { logger } : {}), drop,
      toApplication: (p) => this.toApplication(p),
      count: (what) => {
        if (what === 'in') this.stats.icmpIn++;
        else if (what === 'acted') this.stats.icmpActed++;
        else this.stats.tooBig++;
      },
    });
    this.hold = new HandshakeHold({
      ...(opts.routes ? { routes: opts.routes } : {}), ...(opts.holdMs !== undefined ? { holdMs: opts.holdMs } : {}),
      ...(opts.answeredHoldMs !== undefined ? { answeredHoldMs: opts.answeredHoldMs } : {}),
      ...(opts.sendPlain ? { sendPlain: opts.sendPlain } : {}), ...(logger ? { logger } : {}), drop,
      send: (packets) => {
        const now = this.clock();
        for (const p of packets) this.sendApplicationPacket(now, p);
        this.prompter?.commit();
      },
      sentPlain: (n) => { this.stats.plain += n; },
      routed: (peer) => this.contexts.owner(peer) !== undefined,
    });
    this.contexts = new ContextPaths({
      ...(opts.kernel ? { kernel: opts.kernel } : {}), ...(opts.routes ? { routes: opts.routes } : {}),
      ...(opts.encap && opts.engine.status ? { encap: opts.encap, details: (l: Ipv6, p: Ipv6) => this.encapDetails(l, p), rehomed: (l: Ipv6, p: Ipv6, via: 'tun' | 'encap') => this.rehomedKernel(l, p, via) } : {}),
      ...(opts.engine.kernelTraffic !== undefined ? { kernelTraffic: opts.engine.kernelTraffic.bind(opts.engine) } : {}),
      ...(opts.kernelPollMs !== undefined ? { pollMs: opts.kernelPollMs } : {}), ...(logger ? { logger } : {}),
      clock: this.clock, bootTimer: opts.clock === undefined, drop, flush: () => this.flush(), fed: () => { this.stats.kernelTraffic++; },
      // While the kernel's counters are read, their clock runs the engine's timers (one wake-up, one reading).
      ticked: () => this.onTick(),
      liveness: (l: Ipv6, p: Ipv6) => this.sendLiveness(l, p),
      pollingChanged: () => { this.armedAt = undefined; this.arm(); },
    });
    this.countRuns = opts.kernel !== undefined && opts.engine.kernelTraffic !== undefined;
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
    return this.contexts.list();
  }

  /** How the kernel path's counters are read (`shim6 status`, daemon.kernelPath): context-paths.ts `pollingStatus`. */
  kernelPolling(): ReturnType<ContextPaths['pollingStatus']> {
    return this.contexts.pollingStatus();
  }

  /** What the kernel encapsulation needs of an established context: tags, the peer's port, its verified locators. */
  private encapDetails(localUlid: Ipv6, peerUlid: Ipv6): EncapDetails | undefined {
    // One context described (`describeEstablished`), not every one (`status`): this runs for each context established.
    const c = this.engine.describeEstablished !== undefined ? this.engine.describeEstablished(localUlid, peerUlid, this.clock())
      : this.engine.status?.(this.clock()).contexts.find((x) => x.localUlid === localUlid && x.peerUlid === peerUlid && x.state === 'ESTABLISHED');
    if (c === undefined) return undefined;
    return { localTag: c.contextTag, peerTag: c.peerContextTag, peerPort: c.port ?? this.peerPort, peerLocators: c.peerLocators.filter((l) => l.verified).map((l) => l.address) };
  }

  /** Send every pending transmit, dispatch every event, re-arm the timer. */
  flush(): void {
    if (this.closed) return;
    this.flushTun();
    let sent = false;
    for (let t = this.engine.pollTransmit(); t; t = this.engine.pollTransmit()) {
      if (this.tap) this.tap('out', t.src, t.dst, t.port ?? this.peerPort, t.bytes);
      if (this.transport.send(t.src, t.dst, t.port ?? this.peerPort, t.bytes)) this.stats.udpOut++;
      else this.drop('no-socket-for-source');
      sent = true;
    }
    // The engine's messages leave before the events are handled: handling a context's establishment
    // may wait for a process (the kernel path's counters without the addon), and an R2 queued behind
    // one came after its I2 had been sent again on a loaded host.
    if (sent) this.transport.flush?.();
    this.dispatchEvents();
    this.transport.flush?.();
    this.arm();
  }

  /** Stop the timer, close the TUN and the sockets. The engine is left as is (call its close first for Close/Close-Ack). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.timer.close();
    this.armed = false;
    this.contexts.close();
    this.hold.close();
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

  /** An ICMPv6 error about one of our datagrams (RFC 5533 §8; icmp-relay.ts). */
  private onIcmpError(e: IcmpError): void {
    if (this.closed || !this.icmp.enabled) return;
    this.icmp.fromNetwork(e);
    this.scheduleFlush();
  }

  /** A packet the daemon makes for the application (an ICMPv6 error): into the TUN with this turn's batch. */
  private toApplication(packet: Uint8Array): void {
    if (!this.tun) return this.drop('no-tun');
    if (this.rxViews.length >= RX_BATCH) this.flushTun();
    this.rxViews.push(packet);
    // Rare: its addresses made text only for the runs (a Packet Too Big from the peer's ULID is one of its context's).
    if (this.countRuns) this.noteRun(formatIpv6(packet, 8), formatIpv6(packet, 24), packet.length);
    this.stats.icmpToApp++;
  }

  /**
   * Rebuild the IPv6 header from the context's ULIDs (docs/wire.md "Transports") into the
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
    if (this.countRuns) this.noteRun(srcUlid, dstUlid, len);
    if (nextHeader === IPPROTO_TCP && this.prompter?.anyArmed === true) {
      const ack = this.prompter.selfPrompt(payload, srcUlid, dstUlid, this.clock());
      if (ack !== undefined) this.promptOwnStack(dstUlid, srcUlid, (payload[2]! << 8) | payload[3]!, (payload[0]! << 8) | payload[1]!, ack, 'peer');
    }
  }

  /**
   * Our TCP on the flow ourPort → peerPort sent nothing since its context came up, and `seq` lies
   * in its window: the peer's acknowledgment, when the peer prompted us (`peer`,
   * TcpPrompter.selfPrompt), or our own stack's snd_nxt, its answer to the challenge after a
   * restart (`restart`, challengeOwnStack). A Packet Too Big from the peer's ULID quoting our
   * segment at `seq`, a little under the TUN's MTU, so that TCP retransmits what is in flight at
   * once instead of waiting for its backed-off RTO (as promptKernelFlows does).
   */
  private promptOwnStack(localUlid: Ipv6, peerUlid: Ipv6, ourPort: number, peerPort: number, seq: number, at: 'peer' | 'restart'): void {
    if (!this.tun) return;
    this.tooBigQuoting(localUlid, peerUlid, ourPort, peerPort, seq, this.tun.mtu - PROMPT_MTU_MARGIN);
    this.stats.prompts++;
    const log = this.opts.logger;
    const msg = at === 'peer' ? 'tcp prompted: our own stack, at the peer\'s prompt' : 'tcp prompted: our own stack, after the restart';
    if (this.firstFor(`${at} ${peerUlid}`)) log?.info(msg, { peer: peerUlid, port: ourPort }); else log?.debug(msg, { peer: peerUlid, port: ourPort });
  }

  /** Whether `key` (what was done, for which peer) is logged at info: its first time (a bounded memory of them). */
  private firstFor(key: string): boolean {
    if (this.ownStackLogged.has(key)) return false;
    if (this.ownStackLogged.size >= PROMPT_LOGGED_MAX) this.ownStackLogged.clear();
    this.ownStackLogged.add(key);
    return true;
  }

  /**
   * After a restart (the daemon found these TCP flows open with octets their peers have not
   * acknowledged): our TCP on each sat in RTO back-off while no daemon carried it, and the peer
   * may have nothing to prompt it with (our stop's Close ended its context). When a flow's
   * context comes up (now, for one up already) our stack is asked where it stands
   * (challengeOwnStack), then prompted (promptOwnStack), or kicked when the flow sat in its persist
   * timer (kickPersist). Docs: docs/dataplane.md "Our own stack".
   */
  promptAfterRestart(flows: readonly RestartFlow[]): void {
    if (!this.prompter || !this.tun || flows.length === 0) return;
    this.prompter.afterRestart(flows, this.clock());
    // A pair's first challenge takes all its flows; the others find none waiting.
    for (const f of flows) if (this.contexts.owner(f.peer) === f.local) this.challengeOwnStack(f.local, f.peer);
    this.flush();
  }

  /**
   * The context `localUlid` ↔ `peerUlid` came up: a SYN from the peer to our stack on each of its
   * flows from before a restart. An established socket answers a SYN, whatever its sequence
   * number, with a challenge ACK and changes nothing else (RFC 5961 §4.2; at most one per 0.5 s
   * per socket, net.ipv4.tcp_invalid_ratelimit); that ACK carries our snd_nxt.
   */
  private challengeOwnStack(localUlid: Ipv6, peerUlid: Ipv6): number {
    const flows = this.prompter!.challenge(localUlid, peerUlid, this.clock());
    if (flows.length > 0) this.scheduleFlush();
    for (const f of flows) this.injectTcp(peerUlid, localUlid, challengeSyn(f));
    return flows.length;
  }

  /** ContextPaths.settle for the context `localUlid` ↔ `peerUlid` in `ms` (now when 0). */
  private settleLater(localUlid: Ipv6, peerUlid: Ipv6, ms: number): void {
    if (ms === 0) {
      this.contexts.settle(localUlid, peerUlid);
      return;
    }
    setTimeout(() => { if (!this.closed) this.contexts.settle(localUlid, peerUlid); }, ms).unref?.();
  }

  /**
   * Flows that sat in TCP's persist timer at the restart answered their challenge in the TUN batch
   * just read (`kicks`). Each that the socket table still shows there had nothing in flight when it
   * answered, so its answer's seq was its snd_una: an ACK from the peer one octet older (kickAck)
   * makes TCP send what the peer's window allows now instead of at its next backed-off probe
   * (tcp-prompt.ts). Read after the answers, the table rules out an ACK of octets in flight:
   * snd_una only grows. One reading per batch.
   */
  private kickPersist(): void {
    const answers = this.kicks;
    this.kicks = [];
    const still = this.opts.inPersistTimer?.(answers.map((a) => a.flow)) ?? [];
    const log = this.opts.logger;
    answers.forEach((a, i) => {
      const peerUlid = a.flow.peer;
      const fields = { peer: peerUlid, port: a.flow.localPort };
      if (still[i] !== true) {
        log?.debug('tcp not kicked: the flow left its persist timer', fields);
        return;
      }
      this.injectTcp(peerUlid, a.flow.local, kickAck(a));
      this.stats.prompts++;
      const msg = 'tcp kicked: a flow in its persist timer, after the restart';
      if (this.firstFor(`kick ${peerUlid}`)) log?.info(msg, fields); else log?.debug(msg, fields);
    });
  }

  /**
   * The TCP prompt of our own stack: a Packet Too Big from the peer's ULID with `mtu`, quoting our
   * segment of the flow (ourPort → peerPort) at `seq`, which TCP's window check must accept.
   */
  private tooBigQuoting(localUlid: Ipv6, peerUlid: Ipv6, ourPort: number, peerPort: number, seq: number, mtu: number): void {
    const tcp = new Uint8Array(20);
    const v = new DataView(tcp.buffer);
    v.setUint16(0, ourPort);
    v.setUint16(2, peerPort);
    v.setUint32(4, seq);
    tcp[12] = 5 << 4;
    this.icmp.tooBig({ srcUlid: localUlid, dstUlid: peerUlid, nextHeader: IPPROTO_TCP, payload: tcp }, mtu);
  }

  /** One more packet of the batch from `peer` to `local` (see rxRuns). */
  private noteRun(peer: Ipv6, local: Ipv6, octets: number): void {
    const r = this.rxRuns[this.rxRuns.length - 1];
    if (r !== undefined && r.peer === peer && r.local === local) {
      r.packets++;
      r.octets += octets;
    } else this.rxRuns.push({ peer, local, packets: 1, octets });
  }

  private flushTun(): void {
    if (this.rxViews.length === 0 || !this.tun) return;
    const n = this.tun.write(this.rxViews);
    this.stats.tunOut += n;
    if (n < this.rxViews.length) this.drop('tun-write');
    if (this.rxRuns.length > 0) {
      this.contexts.wroteIn(this.rxRuns, n);
      this.rxRuns = [];
    }
    this.rxViews = [];
    this.rxOffset = 0;
  }

  private onTunPackets(packets: readonly Uint8Array[]): void {
    if (this.closed) return;
    const now = this.clock();
    for (const p of packets) {
      this.stats.tunIn++;
      this.sendApplicationPacket(now, p, true);
    }
    this.prompter?.commit();
    if (this.kicks.length > 0) this.kickPersist();
    this.transport.flush?.();
    this.scheduleFlush();
  }

  /**
   * `fromTun`: read from the TUN now (not held during the exchange). Off the TUN path such a
   * packet is a segment the kernel encapsulation handed over to be cut, which the kernel's
   * counters have already counted for status.
   */
  private sendApplicationPacket(now: Millis, packet: Uint8Array, fromTun = false): void {
    const s = splitPacket(packet);
    if (!s) { this.stats.notIpv6++; return; }
    if (fromTun && s.nextHeader === IPPROTO_TCP && this.prompter?.anyChallenged === true) {
      const a = this.prompter.challengeAnswer(s.payload, s.srcUlid, s.dstUlid, now);
      if (a !== undefined && a.flow.persist) this.kicks.push(a);
      else if (a !== undefined) this.promptOwnStack(s.srcUlid, s.dstUlid, a.flow.localPort, a.flow.peerPort, a.seq, 'restart');
    }
    // Our stack's FIN or RST through the TUN: the egress program that forgets the flow never sees it.
    if (fromTun && s.nextHeader === IPPROTO_TCP && s.payload.length >= 20 && (s.payload[13]! & TCP_FIN_RST) !== 0) {
      this.contexts.flowClosed(s.srcUlid, s.dstUlid, (s.payload[0]! << 8) | s.payload[1]!, (s.payload[2]! << 8) | s.payload[3]!);
    }
    const r = this.engine.encapsulate(now, fromTun && this.contexts.countedByKernel(s.dstUlid) ? { ...s, counted: true } : s);
    if (r.kind === 'no-context') {
      // The engine may have just started a context for a peer it knows (context-initiated): hold this packet too.
      if (!this.hold.holds(s.dstUlid)) this.dispatchEvents();
      if (!this.hold.take(s.dstUlid, packet)) this.stats.noContext++;
      return;
    }
    if (r.kind === 'too-big') return this.icmp.tooBig(s, r.mtu);
    this.prompter?.observe(packet, s.srcUlid, s.dstUlid);
    if (this.tap) this.tap('out', r.src, r.dst, r.port ?? this.peerPort, r.header, s.payload);
    if (this.transport.send(r.src, r.dst, r.port ?? this.peerPort, r.header, s.payload)) this.stats.udpOut++;
    else this.drop('no-socket-for-source');
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
    // No context's: for the daemon (it answers with the host's open connections, `setKnownPeers`).
    if (e.kind === 'limit-pressure') {
      this.opts.onEvent?.(e);
      return;
    }
    // A resumable close that nothing will resume any more (its pin dropped): the route kept for it goes.
    if (e.kind === 'resumable-dropped') {
      if (this.contexts.owner(e.peerUlid) === undefined) this.hold.ended(e.peerUlid, 'closed');
      this.opts.onEvent?.(e);
      return;
    }
    if (e.kind !== 'peer-unsupported' && e.kind !== 'peer-supported' && this.routedForOther(e.localUlid, e.peerUlid)) return this.secondContext(e);
    if (e.kind === 'context-initiated' && this.tun) this.hold.start(e.localUlid, e.peerUlid);
    // A restarting host's context: the peer may prompt its side before our R2 comes (it has our I2), so from now.
    if (e.kind === 'context-initiated') this.prompter?.arm(e.peerUlid, this.clock());
    if (e.kind === 'context-answered') this.hold.answered(e.peerUlid);
    // No route without evidence (docs/engine.md "Trust"): the engine says why the ULID is the peer's
    // (checked at run time too: an implementation of EngineLike may be less careful than its type).
    if (e.kind === 'context-established' && (e.ulidProof as string | undefined) !== undefined) {
      // Established again: recovered (R1bis/I2bis), or set up anew by a peer that lost it (its daemon
      // restarted after SIGKILL: an I2 for our live context). TCP sat in RTO back-off meanwhile.
      const again = e.recovered || this.contexts.owner(e.peerUlid) === e.localUlid;
      const onTun = !this.contexts.established(e.localUlid, e.peerUlid, e.pair);
      if (onTun) void this.hold.routeUp(e.localUlid, e.peerUlid);
      this.hold.release(e.peerUlid);
      if (again && this.prompter) this.prompt(e.peerUlid, 'established again');
      // The peer's prompt of its side may come now: ours, if nothing of ours moved meanwhile (promptOwnStack).
      this.prompter?.arm(e.peerUlid, this.clock());
      this.ownStackLogged.delete(`peer ${e.peerUlid}`);
      this.ownStackLogged.delete(`restart ${e.peerUlid}`);
      const challenged = this.prompter ? this.challengeOwnStack(e.localUlid, e.peerUlid) : 0;
      // On the TUN because it came up off its ULID pair: onto the kernel encapsulation at once (a new
      // context, no flow challenged), or once our stack's answers to the restart's challenges, and
      // the prompts of a context established again (REPROMPT_AFTER_MS), have crossed the daemon.
      if (onTun && !isUlidPair(e)) this.settleLater(e.localUlid, e.peerUlid, challenged > 0 || again ? CHALLENGE_MS : 0);
    }
    if (e.kind === 'context-closed' || e.kind === 'context-failed') {
      const owner = this.contexts.owner(e.peerUlid);
      const next = this.seconds.get(e.peerUlid);
      this.seconds.delete(e.peerUlid);
      if (next !== undefined && owner === e.localUlid) {
        // A second context with the peer, up meanwhile, takes the route over.
        this.contexts.ended(e.peerUlid, false);
        this.hold.forget(e.peerUlid);
        this.contexts.adopt(next, e.peerUlid);
        void this.hold.routeUp(next, e.peerUlid);
      } else {
        // A resumable close (idle cleanup of a known peer) keeps the route (or routes it, from the kernel path): the next packet brings the context back.
        const how = e.kind === 'context-failed' ? 'failed' : e.resumable ? 'resumable' : 'closed';
        this.contexts.ended(e.peerUlid, how === 'resumable');
        this.hold.ended(e.peerUlid, how);
      }
      this.prompter?.forget(e.peerUlid);
      this.firstPrompt.delete(e.peerUlid);
      this.pairChangedAt.delete(e.peerUlid);
    }
    if (e.kind === 'reap-state') this.contexts.reapState(e.peerUlid, e.state === 'exploring', e.pair);
    if (e.kind === 'locator-set-updated') this.contexts.peerLocatorsChanged(e.localUlid, e.peerUlid);
    if (e.kind === 'peer-unsupported') this.hold.forget(e.peerUlid);
    if (e.kind === 'locator-pair-changed') {
      this.contexts.pairChanged(e.peerUlid, e.new);
      if (this.prompter) {
        this.pairChangedAt.set(e.peerUlid, this.clock());
        this.prompt(e.peerUlid, 're-homing');
      }
    }
    this.opts.onEvent?.(e);
  }

  /**
   * The peer's ULID is routed for a context from another local ULID of ours (one route per
   * peer ULID, `src` the first context's ULID): a second context with the same peer, as when
   * an application's new connection picks another source after our first address was
   * removed, must neither move nor remove that route, nor change the first one's state.
   */
  private routedForOther(local: Ipv6, peer: Ipv6): boolean {
    const owner = this.contexts.owner(peer);
    return owner !== undefined && owner !== local;
  }

  /** An event of such a second context: its packets wait for it (the route is already there), or go plain when it fails. */
  private secondContext(e: Exclude<EngineEvent, { kind: 'ulid-refused' | 'limit-pressure' | 'peer-unsupported' | 'peer-supported' }>): void {
    if (e.kind === 'context-initiated' && this.tun) this.hold.start(e.localUlid, e.peerUlid, false);
    if (e.kind === 'context-answered') this.hold.answered(e.peerUlid);
    if (e.kind === 'context-established') {
      this.seconds.set(e.peerUlid, e.localUlid);
      this.hold.release(e.peerUlid);
    }
    if ((e.kind === 'context-failed' || e.kind === 'context-closed') && this.seconds.get(e.peerUlid) === e.localUlid) this.seconds.delete(e.peerUlid);
    if (e.kind === 'context-failed') this.hold.ended(e.peerUlid, 'failed-keep-route');
    if (e.kind === 'context-closed') this.hold.forget(e.peerUlid);
    this.opts.onEvent?.(e);
  }

  /**
   * After a re-homing, or the context established again (recovered, or set up anew by the peer):
   * replay the peer's last TCP segments on the context's pair now (tcp-prompt.ts), and again
   * later for the flows that sent nothing new since (promptAgain).
   */
  private prompt(peer: Ipv6, after: 're-homing' | 'established again'): void {
    const marks = this.prompter!.marks(peer);
    this.replay(peer, this.prompter!.prompt(peer), after, 1);
    if (marks.size > 0) this.promptAgain(peer, marks, after, 0);
  }

  private replay(peer: Ipv6, replays: readonly Uint8Array[], after: 're-homing' | 'established again', round: number): void {
    const now = this.clock();
    for (const p of replays) this.sendApplicationPacket(now, p);
    this.prompter!.commit();
    this.stats.prompts += replays.length;
    if (replays.length > 0) this.opts.logger?.info(after === 're-homing' ? 'tcp prompted after re-homing' : 'tcp prompted: context established again', { peer, segments: replays.length, ...(round > 1 ? { round } : {}) });
  }

  /**
   * The first prompt may reach a peer that cannot answer it on the new pair yet:
   * * A context established again is the peer's only once the exchange's last message reached it:
   *   when we answered its I2 (it restarted and set the context up), our R2, which on a loaded host
   *   took 130 ms to be handled (a prompt before that was lost to a peer without the context, and
   *   TCP waited for its backed-off RTO).
   * * After a re-homing, the peer may still send on the old pair until its own REAP moves it, and
   *   the ACK that answers our prompt can be lost there, as for the kernel flows (promptKernelFlows).
   *   In a busy CI run a restarted daemon prompted once, 7 ms before its peer's REAP left the
   *   black-holed link, and TCP then waited 6.7 s for its backed-off RTO.
   * So the prompt comes again, after each of REPROMPT_AFTER_MS, for the flows that still stand
   * where they stood at the first: TCP sent nothing new on them since (marks). A flow that moved
   * on is not prompted again.
   */
  private promptAgain(peer: Ipv6, marks: ReadonlyMap<string, string>, after: 're-homing' | 'established again', round: number): void {
    const wait = REPROMPT_AFTER_MS[round];
    if (wait === undefined) return;
    setTimeout(() => {
      if (this.closed || this.prompter === undefined) return;
      const replays = this.prompter.prompt(peer, marks);
      if (replays.length === 0) return; // every flow moved on, or the context ended (its flows forgotten)
      this.replay(peer, replays, after, round + 2);
      this.promptAgain(peer, marks, after, round + 1);
    }, wait).unref?.();
  }

  /**
   * A context re-homed onto the kernel encapsulation: its kernel flows are prompted as soon as
   * the ULID's route reaches the new pair (`tun`: through the TUN, when REAP explored), and again
   * once the route onto the tc programs is in place, then only the flows whose peer has
   * acknowledged nothing since the first prompt.
   * When the kernel remembers none of the context's flows, what our stack last sent through the
   * TUN is replayed instead, as at a change of pair (prompt), unless the pair changed within
   * REPLAY_AGAIN_AFTER_MS (that replay was this re-homing's). After a restart the kernel's table
   * is new, and it learns a flow only from the peer's next segment: a context that explored and
   * came back to its pair (the peer's exploration drew ours) was prompted by nothing, and a
   * retransmission lost meanwhile left TCP to its backed-off RTO (a suspected cause of CI run 146's 45 s stall).
   */
  private rehomedKernel(localUlid: Ipv6, peerUlid: Ipv6, via: 'tun' | 'encap'): void {
    const first = this.firstPrompt.get(peerUlid);
    this.firstPrompt.delete(peerUlid);
    if (via === 'tun') {
      // One walk of the kernel's table for both (it holds every context's flows, up to 8192).
      const flows = this.kernelFlows(localUlid, peerUlid);
      this.firstPrompt.set(peerUlid, new Map(flows.map((f) => [`${f.srcPort} ${f.dstPort}`, f.ack])));
      this.promptKernelFlows(localUlid, peerUlid, 1, undefined, flows);
      const changed = this.pairChangedAt.get(peerUlid);
      if (flows.length === 0 && this.prompter && (changed === undefined || this.clock() - changed > REPLAY_AGAIN_AFTER_MS)) this.prompt(peerUlid, 're-homing');
    } else this.promptKernelFlows(localUlid, peerUlid, 1, first);
  }

  /**
   * After a re-homing onto the kernel encapsulation: the TCP prompt for streams that never
   * crossed the TUN. For each flow the kernel remembered, a Packet Too Big from the peer's ULID
   * quoting a segment at the peer's last acknowledgment number (our first unacknowledged
   * octet, which TCP's window check accepts), with the encapsulated path's MTU less
   * PROMPT_MTU_MARGIN: the socket's TCP lowers its MSS and retransmits the larger segments in
   * flight at once (tcp_simple_retransmit), instead of waiting for its backed-off RTO. The
   * margin: TCP has usually taken the encapsulated MTU from the route already (the route into
   * the TUN while REAP explored has it), and ignores a Packet Too Big that would not lower its
   * MSS. The lower MTU stays on this route only (a route exception): back on the ULID pair,
   * TCP takes the full MTU again. A flow with nothing in flight ignores it (sequence check).
   */
  private promptKernelFlows(localUlid: Ipv6, peerUlid: Ipv6, round = 1, only?: Map<string, number>, known?: KernelFlow[]): void {
    if (this.closed || this.opts.encapMtu === undefined) return;
    const mtu = this.opts.encapMtu - PROMPT_MTU_MARGIN * round;
    const key = (f: KernelFlow) => `${f.srcPort} ${f.dstPort}`;
    // A later round: only the flows whose peer has acknowledged nothing since (still stalled).
    const flows = (known ?? this.kernelFlows(localUlid, peerUlid)).filter((f) => only === undefined || only.get(key(f)) === f.ack);
    for (const f of flows) {
      this.tooBigQuoting(localUlid, peerUlid, f.srcPort, f.dstPort, f.ack, mtu); // f.ack: our snd_una when the peer's ACKs stopped
      // Then the peer's last ACK again, to our own stack: a sender with nothing in flight (its new
      // data refused while the old path was down) is waiting for its backed-off probe timer, and
      // the Packet Too Big only retransmits what is in flight; an ACK makes it send at once.
      if (f.lastAck !== undefined) this.injectAck(peerUlid, localUlid, f.lastAck);
    }
    if (flows.length === 0) return;
    this.stats.prompts += flows.length;
    this.opts.logger?.info('tcp prompted after re-homing (kernel flows)', { peer: peerUlid, flows: flows.length, round });
    this.flush();
    // The peer may still send its ACKs on the old pair for a while (it re-homes on its own REAP):
    // what it acknowledged is lost, and TCP waits for its RTO. Prompt those flows again, a little later.
    if (round < PROMPT_ROUNDS) {
      const acks = new Map(flows.map((f) => [key(f), f.ack]));
      setTimeout(() => this.promptKernelFlows(localUlid, peerUlid, round + 1, acks), PROMPT_AGAIN_MS).unref?.();
    }
  }

  /** The context's TCP flows the kernel remembered (only of connected local sockets), PROMPT_FLOWS_MAX at most. */
  private kernelFlows(localUlid: Ipv6, peerUlid: Ipv6): KernelFlow[] {
    return (this.opts.encap?.flows?.(localUlid, peerUlid) ?? []).slice(0, PROMPT_FLOWS_MAX);
  }

  /**
   * The peer's last TCP ACK (its header as the kernel remembered it, checksum 0) handed to our own
   * stack through the TUN, from the peer's ULID: a duplicate ACK (RFC 9293 §3.10.7.4), harmless.
   */
  private injectAck(peerUlid: Ipv6, localUlid: Ipv6, header: Uint8Array): void {
    this.injectTcp(peerUlid, localUlid, header.slice());
  }

  /** A TCP segment (`tcp`, ours to fill in: its checksum is set here) handed to our own stack through the TUN, from the peer's ULID. */
  private injectTcp(peerUlid: Ipv6, localUlid: Ipv6, tcp: Uint8Array): void {
    if (!this.tun) return;
    tcp[16] = 0; tcp[17] = 0;
    const c = ulpChecksum(peerUlid, localUlid, IPPROTO_TCP, tcp);
    tcp[16] = c >> 8; tcp[17] = c & 0xff;
    if (this.rxViews.length >= RX_BATCH) this.flushTun();
    const packet = buildPacket(peerUlid, localUlid, IPPROTO_TCP, tcp);
    this.rxViews.push(packet);
    if (this.countRuns) this.noteRun(peerUlid, localUlid, packet.length);
  }

  /** A refused ULID claim: a warning once per source (bounded), so a flood of them cannot flood the log. */
  private logRefused(e: Extract<EngineEvent, { kind: 'ulid-refused' }>): void {
    const src = e.source;
    if (this.refusedLogged.has(src)) return;
    if (this.refusedLogged.size >= REFUSED_LOGGED_MAX) this.refusedLogged.clear();
    this.refusedLogged.add(src);
    this.opts.logger?.warn('ulid claim refused: no context, no route (counted in status engine.guard)', eventFields(e));
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /**
   * The engine's Keepalive to the peer (context-paths.ts `liveness`): a peer that lost the context
   * answers R1bis, and the engine brings it back by I2bis.
   */
  private sendLiveness(localUlid: Ipv6, peerUlid: Ipv6): void {
    if (this.engine.liveness?.(localUlid, peerUlid) !== true) return;
    this.stats.liveness++;
    this.flush();
  }

  /** The kernel counters' clock ticked (a reading was just taken and fed): the engine's due timers run after this turn's I/O. */
  private onTick(): void {
    if (this.closed) return;
    const at = this.engine.pollTimeout();
    this.flush();
    // As the driver's own timer (arm): after this loop turn's poll for I/O.
    if (at !== undefined && at <= this.clock()) this.queueTimer();
  }

  private arm(): void {
    const at = this.engine.pollTimeout();
    if (this.contexts.polling) {
      // The counters' clock wakes at the deadline, reads them, then runs the engine's timers (onTick).
      if (this.armed) this.timer.set(undefined);
      this.armed = false;
      this.armedAt = undefined;
      this.contexts.wake(at);
      return;
    }
    if (at === this.armedAt && (this.armed || at === undefined)) {
      // Armed, but already due: after a suspend the clock (CLOCK_BOOTTIME) is past the deadline
      // while a Node timer (an injected clock's, or without the addon) waits out the rest of its delay awake.
      if (at !== undefined && at <= this.clock()) this.queueTimer();
      return;
    }
    this.armedAt = at;
    this.armed = at !== undefined;
    this.timer.set(at);
  }

  /** The timer fired (arm). */
  private readonly onWake = (): void => {
    this.armed = false;
    this.armedAt = undefined;
    if (this.closed) return;
    // A context on the kernel path: read the counters first, so REAP's Send and Keepalive
    // Timers expire on what the kernel carried until now, not on a reading one interval old.
    if (this.contexts.polling) {
      void this.contexts.readNow().finally(() => {
        if (this.closed) return;
        this.engine.handleTimeout(this.clock());
        this.flush();
      });
      return;
    }
    // After this loop turn's poll for I/O (check phase): Node runs due timers first, and on a busy
    // host the peer's datagrams may be waiting in the socket already; a REAP Send Timer must not
    // expire on a silence that has ended (a false exploration). Inputs before timeouts.
    this.queueTimer();
  };

  /** The engine's due timers, in this loop turn's check phase (once, however many wake-ups asked meanwhile). */
  private queueTimer(): void {
    if (this.timerQueued) return;
    this.timerQueued = true;
    setImmediate(this.onTimer);
  }

  private readonly onTimer = (): void => {
    this.timerQueued = false;
    if (this.closed) return;
    this.engine.handleTimeout(this.clock());
    this.flush();
  };

  private drop(reason: string): void {
    this.stats.drops[reason] = (this.stats.drops[reason] ?? 0) + 1;
  }
}

function eventFields(e: EngineEvent): Record<string, unknown> {
  const { kind: _kind, ...rest } = e;
  return rest;
}

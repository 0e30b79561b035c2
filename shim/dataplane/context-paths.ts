/**
 * Which way each established context's application packets go (docs/dataplane.md
 * "Kernel path"): the kernel's own route while its locator pair is its ULID pair
 * and REAP is not exploring; after a re-homing the kernel's encapsulation
 * (bpf-encap.ts: tc programs) when there is one; the TUN and the driver
 * otherwise (and while REAP explores). On the kernel paths nothing crosses
 * user space, so the kernel's counters (kernel-path.ts) are read on a clock of
 * their own and turned into the REAP inputs the TUN path gives per packet.
 * While it reads, that clock is also the engine's: the driver hands it the
 * engine's next deadline (`wake`), a reading is taken then (or every `pollMs`,
 * whichever comes first) and the engine's due timers run right after it
 * (`ticked`). One wake-up serves both: the engine's timers are lazy (a stopped
 * Send or Keepalive timer leaves its deadline in the heap), and with a timer of
 * its own the driver woke as often again, reading and feeding twice (measured:
 * 41 readings a second instead of 20 while a stream ran).
 * With the kernel's tripwire (kernel-path.ts `tripwire`) the clock stops reading once the sums
 * have not moved for the tripwire's quiet time (it still wakes for the engine's deadlines and a
 * due liveness Keepalive, each with a reading); the tripwire's call at the first packet after
 * that brings the readings back at once (docs/dataplane.md "Idle").
 *
 * Owns: the table of established contexts and their paths, the reading clock.
 * Must not know: packets, the engine's messages (the driver feeds the engine
 * through `kernelTraffic`), how routes are made (routes.ts, through RouteHook).
 */
import type { Millis } from '../time.ts';
import { deadlineTimer, type DeadlineTimer } from '../clock.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Logger } from '../log.ts';
import type { Engine, LocatorPair } from '../engine/index.ts';
import type { KernelPathHook } from './kernel-path.ts';
import type { EncapContext, EncapHook } from './bpf-encap.ts';

/**
 * Which way a context's application packets go: the kernel's own route (`kernel`), the
 * kernel's encapsulation after a re-homing (`encap`), or the TUN and the driver (`tun`).
 */
export type DataPath = 'kernel' | 'encap' | 'tun';

/** What the kernel carried of a context while it was on the kernel path or encapsulation (the engine never saw it). */
export interface KernelTraffic { packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number }

/** Consecutive packets the daemon wrote into its TUN for one ULID pair (`peer` undefined: of no context), and their octets (IPv6 packets whole). */
export interface TunRun { peer: Ipv6 | undefined; local: Ipv6 | undefined; packets: number; octets: number }

/** A context as the kernel path sees it (`EngineDriver.paths()`). */
export interface ContextPath {
  localUlid: Ipv6;
  peerUlid: Ipv6;
  path: DataPath;
  pair: LocatorPair;
  /** Present once the kernel's counters were read: the packets and octets (IPv6 packets whole) it carried off the TUN. */
  kernel?: KernelTraffic;
}

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
  switchPath?(localUlid: Ipv6, peerUlid: Ipv6, path: DataPath, pair?: LocatorPair): Promise<void>;
}

/** What the kernel encapsulation needs to know of a context, besides its pair (the driver asks the engine). */
export type EncapDetails = Pick<EncapContext, 'localTag' | 'peerTag' | 'peerPort' | 'peerLocators'>;

export interface ContextPathsOptions {
  /** Absent: every context uses the TUN. */
  kernel?: KernelPathHook;
  routes?: RouteHook;
  /** The kernel encapsulation after a re-homing; absent: re-homed contexts use the TUN. */
  encap?: EncapHook;
  /**
   * A context on the kernel path that sent packets since its last liveness Keepalive (the kernel's
   * counters moved), at most once every `livenessMs`: send the peer one Keepalive with its context
   * tag (the driver). No packet of ours carries the tag on that path, so a peer that lost the context
   * (its daemon restarted) would not know to answer R1bis until a re-homing; the Keepalive draws it
   * (RFC 5533 §7.17: unknown tag), and the context comes back by I2bis. An idle context sends
   * nothing (RFC 5534 §5.1: an idle context is silent; what only arrives draws REAP's own Keepalives).
   */
  liveness?: (localUlid: Ipv6, peerUlid: Ipv6) => void;
  /** How often (ms; default 30 readings, 1 s to 60 s). */
  livenessMs?: number;
  /** The context's tags, the peer's port and verified locators (for `encap`); undefined when not established. */
  details?: (localUlid: Ipv6, peerUlid: Ipv6) => EncapDetails | undefined;
  /**
   * A context went on the kernel encapsulation with a new pair: the driver prompts its TCP flows
   * the kernel remembered (encap.flows). `via`: `tun` as soon as the pair changed when the ULID was
   * routed into the TUN (REAP explored: what TCP sends goes through the daemon on the new pair at
   * once); `encap` once the route onto the tc programs is in place.
   */
  rehomed?: (localUlid: Ipv6, peerUlid: Ipv6, via: 'tun' | 'encap') => void;
  /** The engine's input for what the kernel carried; absent: every context uses the TUN. */
  kernelTraffic?: Engine['kernelTraffic'];
  /** How often the kernel's counters are read while a context uses the kernel path (ms, default 50). */
  pollMs?: number;
  /**
   * How often while the last reading saw a context's packets both ways (ms; default half of
   * `pollMs`, at least 5): which of the two came last is unknown, so REAP's Send Timer starts at
   * the reading; a failure then is seen up to this late, not up to `pollMs`.
   */
  busyPollMs?: number;
  /**
   * After each reading of the clock (fed or not): the driver runs the engine's due timers and
   * hands back its next deadline (`wake`). Absent: only the readings.
   */
  ticked?: () => void;
  /** The clock started or stopped reading: the driver takes its engine timer back (or hands it over). */
  pollingChanged?: () => void;
  logger?: Logger;
  clock: () => Millis;
  /**
   * `clock` is the product's (shim/clock.ts bootClock): the timer is then a CLOCK_BOOTTIME one,
   * which the kernel fires at a resume once its time has passed. Else (an injected clock) a Node timer.
   */
  bootTimer?: boolean;
  /** Readings fed the engine: send what it produced. */
  flush: () => void;
  /** Count a dropped thing by reason (the driver's stats). */
  drop: (reason: string) => void;
  /** A reading that showed traffic (the driver's stats). */
  fed: () => void;
}

/** Default interval between readings of the kernel path's counters (ms). */
const KERNEL_POLL_MS = 50;
/** The default busy interval: this fraction of the interval, at least BUSY_POLL_MIN_MS. */
const BUSY_POLL_DIVISOR = 2;
const BUSY_POLL_MIN_MS = 5;
/**
 * An engine deadline this little after the next reading takes the reading with it (ms): the reading
 * waits for it, one wake-up instead of two (a deadline set at one reading falls about three readings
 * later, give or take the timers' lateness).
 */
const MERGE_MS = 3;
/** Node's timers count from the loop's cached time: one more millisecond, so a deadline is due when its tick comes. */
const TIMER_MARGIN_MS = 1;
/**
 * A reading that took this long (ms) puts the next regular one at least this many times as far
 * (an engine deadline still brings one): readings take at most about a tenth of the loop. A reading
 * costs microseconds while no context's counters moved (kernel-path.ts: the sums); one that dumps
 * every counter costs about 4 µs per context (measured: 33 ms for 8,000 contexts).
 */
const READ_SPACING = 10;
/** At most one warning per this many ms about refused map updates (each is counted: `encap-set`, `encap-watch`). */
const REFUSED_LOG_MS = 10_000;
/**
 * The readings stop this long (ms) after the tripwire's quiet time without a move of the sums: the
 * kernel's set timeout counts in jiffies (rounded up, 10 ms at HZ=100) and its clock is not ours.
 */
const QUIET_MARGIN_MS = 50;
/** Failed readings in a row after which the kernel path is given up. */
const KERNEL_FAILURES_MAX = 3;

interface Tracked extends ContextPath {
  exploring: boolean;
  /** The kernel counts its packets (from establishment to its end, whatever its path: no nft process while REAP re-homes it). */
  watched: boolean;
  /** Our context tag while on the encap path (its ingress entry's key). */
  encapTag: number | undefined;
  /** The counters as last read. */
  out: number;
  in: number;
  outBytes: number;
  inBytes: number;
  /** What the kernel carried while the context was off the TUN (summed reading by reading). */
  carried: KernelTraffic | undefined;
  /**
   * Packets and octets the daemon wrote into its TUN for this context since the last reading
   * (`wroteIn`): the inbound counter counts them as they come out of it, but the engine counted
   * them already (a payload it decapsulated) or made them (a prompt, an ICMPv6 error), so the next
   * reading leaves them out of `carried`.
   */
  wroteIn: number;
  wroteInBytes: number;
  /** When the last liveness Keepalive went (clock), or when it went on the kernel path. */
  livenessAt: number;
}

export class ContextPaths {
  /** Established contexts, by peer ULID. */
  private readonly contexts = new Map<Ipv6, Tracked>();
  /** The one timer (schedule), and whether it is armed. */
  private readonly timer: DeadlineTimer;
  private armed = false;
  /** While reading: when the next reading is due (clock), and the engine's next deadline. */
  private polling_ = false;
  private pollAt = 0;
  private engineAt: number | undefined;
  /** What `timer` is set for. */
  private timerAt: number | undefined;
  private ticking = false;
  private reading = false;
  /** The route changes asked for so far, done (routeLater). */
  private routing: Promise<void> = Promise.resolve();
  private failures = 0;
  private broken = false;
  private closed = false;
  /** The last reading saw a context on a kernel path carry packets both ways (the next one comes at busyPollMs). */
  private busy = false;
  /** Contexts on the kernel path that sent since their last liveness Keepalive (`liveness`): the only ones that get one. */
  private readonly sentSince = new Set<Tracked>();
  /** Refused map updates since the last warning, and when that was (`refused`). */
  private refusals = 0;
  private refusedLoggedAt: number | undefined;
  /** The sums have not moved for the tripwire's quiet time: no regular reading until it trips (or one moves them). */
  private asleep = false;
  /** When a reading last saw the sums move (clock, at its end), and the sums then. */
  private movedAt = 0;
  private total: number | undefined;
  /** For status: readings taken, the tripwire's calls, the times the readings stopped. */
  private readonly idle = { readings: 0, wakeups: 0, sleeps: 0 };

  constructor(private readonly opts: ContextPathsOptions) {
    const fire = (): void => { this.armed = false; this.timerAt = undefined; void this.tick(); };
    this.timer = deadlineTimer(fire, opts.bootTimer ? { ref: false } : { clock: opts.clock, ref: false });
    opts.kernel?.tripwire?.onTrip(() => this.tripped());
  }

  /**
   * How the kernel's counters are read (status): `on-traffic` (the tripwire stops the readings while
   * nothing moves) or `fixed`; whether they are stopped now; readings, tripwire calls and stops so far.
   */
  pollingStatus(): { polling: 'on-traffic' | 'fixed'; quietMs: number | null; asleep: boolean; readings: number; wakeups: number; sleeps: number } {
    const t = this.opts.kernel?.tripwire;
    return { polling: t ? 'on-traffic' : 'fixed', quietMs: t?.quietMs ?? null, asleep: this.asleep, ...this.idle };
  }

  /** Established contexts and the path each one's application packets take. */
  list(): ContextPath[] {
    return [...this.contexts.values()].map(({ localUlid, peerUlid, path, pair, carried }) => ({ localUlid, peerUlid, path, pair: { ...pair }, ...(carried ? { kernel: { ...carried } } : {}) }));
  }

  /**
   * A context was established on `pair`, or established again (recovered: R1bis → I2bis → R2,
   * RFC 5533 §7.17–7.20, with the peer's new tag). Whether it is off the TUN (the kernel path; a
   * recovered context that was encapsulated stays so); otherwise the caller routes it into the TUN.
   */
  established(localUlid: Ipv6, peerUlid: Ipv6, pair: LocatorPair): boolean {
    const old = this.contexts.get(peerUlid);
    if (old !== undefined && old.localUlid === localUlid) return this.reestablished(old, pair);
    // Another local ULID's entry (the driver hands such a second context over by `adopt`, not here): its maps go first.
    if (old !== undefined) this.ended(peerUlid, false);
    const c: Tracked = { localUlid, peerUlid, path: 'tun', pair: { ...pair }, exploring: false, watched: false, out: 0, in: 0, outBytes: 0, inBytes: 0, carried: undefined, wroteIn: 0, wroteInBytes: 0, encapTag: undefined, livenessAt: 0 };
    this.contexts.set(peerUlid, c);
    this.watch(c);
    return this.toKernel(c);
  }

  /**
   * A context established (again) off its ULID pair took the TUN (established(): after our own
   * restart our stack's answers to the challenges must cross the daemon, and the prompts of one
   * established again go through it); the driver calls this once they have.
   * If REAP still has it Operational on that pair, the kernel encapsulates it as after a re-homing;
   * otherwise REAP moves it when it settles. Whether it left the TUN.
   */
  settle(localUlid: Ipv6, peer: Ipv6): boolean {
    const c = this.contexts.get(peer);
    if (c === undefined || c.localUlid !== localUlid || c.path !== 'tun' || c.exploring || isUlidPair(c)) return false;
    this.toEncap(c);
    return c.path !== 'tun';
  }

  /** The local ULID of the established context with `peer` whose route this is, if any. */
  owner(peer: Ipv6): Ipv6 | undefined {
    return this.contexts.get(peer)?.localUlid;
  }

  /**
   * Our stack closed a TCP flow of the context `localUlid` ↔ `peer` through the TUN (its FIN or
   * RST): the kernel forgets it if it remembered it (bpf-encap.ts `forget`).
   */
  flowClosed(localUlid: Ipv6, peer: Ipv6, localPort: number, peerPort: number): void {
    const c = this.contexts.get(peer);
    if (c === undefined || !c.watched || c.localUlid !== localUlid) return;
    this.opts.encap?.forget?.(localUlid, peer, localPort, peerPort);
  }

  /** Whether what the context with `peer` sends is summed from the kernel's counters (it is off the TUN path). */
  countedByKernel(peer: Ipv6): boolean {
    const c = this.contexts.get(peer);
    return c !== undefined && c.path !== 'tun' && this.opts.kernel !== undefined;
  }

  /**
   * The daemon wrote into its TUN `runs` of packets in order, the first `written` of them taken
   * (each run: the packets' ULID pair, peer and ours, or none for a packet of no context). The
   * kernel's inbound counter counts those of a watched context again as they come out of the TUN;
   * the next reading leaves them out of what the kernel carried, so `status` counts each incoming
   * packet once (docs/dataplane.md "Counters"). What the reading tells REAP is unchanged.
   */
  wroteIn(runs: readonly TunRun[], written: number): void {
    let left = written;
    for (const r of runs) {
      if (left <= 0) return;
      const n = Math.min(left, r.packets);
      left -= n;
      if (r.peer === undefined) continue;
      const c = this.contexts.get(r.peer);
      if (c === undefined || c.localUlid !== r.local || !c.watched) continue;
      c.wroteIn += n;
      c.wroteInBytes += n === r.packets ? r.octets : Math.round(r.octets * n / r.packets);
    }
  }

  /** A second context with `peer`, from `localUlid`, takes over when the first one ended (on the TUN path). */
  adopt(localUlid: Ipv6, peer: Ipv6): void {
    this.contexts.set(peer, { localUlid, peerUlid: peer, path: 'tun', pair: { local: localUlid, peer }, exploring: false, watched: false, out: 0, in: 0, outBytes: 0, inBytes: 0, carried: undefined, wroteIn: 0, wroteInBytes: 0, encapTag: undefined, livenessAt: 0 });
  }

  /**
   * The context with `peer` ended. On the kernel path its counting stops, and with
   * `backIntoTun` (a resumable close: the next packet brings it back) it is routed into the TUN again.
   */
  ended(peer: Ipv6, backIntoTun: boolean): void {
    const c = this.contexts.get(peer);
    if (c === undefined) return;
    this.contexts.delete(peer);
    this.sentSince.delete(c);
    this.unwatch(c);
    this.unsetEncap(c);
    if (c.path === 'tun') return;
    if (c.path === 'encap') {
      if (!backIntoTun) void this.routeLater(c, 'kernel', () => this.opts.routes?.contextDown(c.peerUlid));
    }
    if (backIntoTun) this.routeIntoTun(c);
    this.stopIfIdle();
  }

  /**
   * The peer's locator set changed (an Update Request: a locator withdrawn, one added): the ingress
   * entry's verified locators are the engine's again. Before, the kernel kept decapsulating payloads
   * from a locator the peer withdrew, which the engine drops (locator-mismatch): whoever has that
   * address now could send the application packets as the peer. When the kernel refuses the new
   * entry the context takes the TUN path (the engine sees the peer's packets there).
   */
  peerLocatorsChanged(localUlid: Ipv6, peer: Ipv6): void {
    const c = this.contexts.get(peer);
    const e = this.opts.encap;
    if (c === undefined || c.localUlid !== localUlid || c.encapTag === undefined || e?.accept === undefined) return;
    const d = this.opts.details?.(c.localUlid, c.peerUlid);
    if (d !== undefined && d.localTag === c.encapTag && e.accept({ localUlid: c.localUlid, peerUlid: c.peerUlid, localTag: d.localTag, peerLocators: d.peerLocators })) return;
    this.unsetEncap(c);
    if (d !== undefined) this.refused('encap-set', c);
    if (c.path === 'encap') this.toTun(c);
  }

  /** REAP started or stopped exploring: while it explores the TCP prompt must see TCP's retransmissions, so they go through the TUN. */
  reapState(peer: Ipv6, exploring: boolean, pair: LocatorPair): void {
    const c = this.contexts.get(peer);
    if (c === undefined) return;
    c.exploring = exploring;
    c.pair = { ...pair };
    if (exploring) this.toTun(c);
    else if (isUlidPair(c)) this.toKernel(c);
    else this.toEncap(c);
  }

  /** The context moved to `pair`: off its ULID pair it needs the TUN; back on it the kernel path again (unless REAP explores). */
  pairChanged(peer: Ipv6, pair: LocatorPair): void {
    const c = this.contexts.get(peer);
    if (c === undefined) return;
    const moved = c.path === 'encap';
    c.pair = { ...pair };
    if (isUlidPair(c)) {
      if (c.exploring) this.toTun(c);
      else this.toKernel(c);
    } else if (c.exploring) this.toTun(c);
    else this.toEncap(c, moved);
  }

  /**
   * The context established again (recovery): the engine's context has the peer's new tag, maybe
   * another pair, and REAP starts Operational (no `reap-state` event says so). Its kernel state
   * is replaced, not kept: the old entries go (`shim6_egr` held the peer's old tag and the old
   * pair), the new ones come as for a new context, on whatever path the pair gives. Its counters
   * and what the kernel carried stay (the kernel keeps counting the same ULID pair).
   */
  private reestablished(c: Tracked, pair: LocatorPair): boolean {
    const explored = c.exploring;
    c.exploring = false;
    c.pair = { ...pair };
    this.unsetEncap(c);
    if (!c.watched) this.watch(c);
    this.opts.logger?.info('context established again: its kernel entries replaced', { peer: c.peerUlid, pair: c.pair, path: c.path });
    if (isUlidPair(c)) {
      if (c.path === 'kernel') {
        this.acceptEncap(c);
        return true;
      }
      if (this.toKernel(c)) return true;
      this.toTun(c);
      return false;
    }
    // Off its ULID pair: still encapsulated, with the peer's new tag (entries and route replaced),
    // and encapsulated from the TUN where REAP was exploring, as when REAP settles on a pair: now
    // Operational, nothing else would move it while its pair stays (CI run 201: the peer restarted
    // while we explored, and its I1 came over Q). From the kernel path, or the TUN of a context
    // established off its ULID pair, as such a context: the TUN (our stack's answers to a restart's
    // challenges must cross the daemon).
    if (c.path === 'encap' || explored) this.toEncap(c, c.path === 'encap');
    else this.toTun(c);
    return c.path !== 'tun';
  }

  /** The kernel counts the context's packets (and remembers its TCP flows), if it can. */
  private watch(c: Tracked): void {
    const k = this.opts.kernel;
    if (k === undefined || this.broken || this.opts.kernelTraffic === undefined) return;
    c.watched = k.watch(c.localUlid, c.peerUlid);
    if (c.watched && this.opts.encap?.watch?.(c.localUlid, c.peerUlid) === false) this.refused('encap-watch', c);
  }

  /**
   * The kernel refused a map update (`encap-set`: shim6_egr or shim6_ing, `encap-watch`:
   * shim6_watch; a full map, say): counted every time, logged at most once every
   * REFUSED_LOG_MS with how many since the last warning.
   */
  private refused(reason: 'encap-set' | 'encap-watch', c: Tracked): void {
    this.opts.drop(reason);
    this.refusals++;
    const now = this.opts.clock();
    if (this.refusedLoggedAt !== undefined && now - this.refusedLoggedAt < REFUSED_LOG_MS) return;
    this.refusedLoggedAt = now;
    this.opts.logger?.warn('kernel encapsulation: the kernel refused a map update (a full map?): a re-homed context stays on the TUN path, a peer\'s encapsulated packets cross the daemon', { reason, peer: c.peerUlid, refusals: this.refusals });
    this.refusals = 0;
  }

  /** Whether a context uses the kernel path: then this clock runs the engine's timers too (`wake`, `ticked`). */
  get polling(): boolean {
    return this.polling_;
  }

  /** The engine's next deadline (undefined: none), while polling: a reading is taken then, and `ticked` runs its timers. */
  wake(at: number | undefined): void {
    this.engineAt = at;
    if (this.polling_) this.schedule();
  }

  /** Read the counters now and feed the engine (before a REAP timer expires, so it sees what the kernel carried until now). */
  async readNow(): Promise<void> {
    const k = this.opts.kernel;
    if (k === undefined) return;
    this.reading = true;
    const start = this.opts.clock();
    this.idle.readings++;
    let ok = false;
    try {
      await k.refresh().then(() => { ok = true; this.feed(); }, () => this.readFailed());
    } finally {
      this.reading = false;
    }
    if (!this.polling_) return;
    const was = this.pollAt;
    if (ok) this.quiet(k, start);
    if (this.asleep) {
      if (this.pollAt !== was) this.schedule();
      return;
    }
    // Packets both ways in that reading: the next one sooner (the Send Timer starts at a reading).
    if (this.busy) {
      const every = this.opts.pollMs ?? KERNEL_POLL_MS;
      this.pollAt = Math.min(this.pollAt, start + (this.opts.busyPollMs ?? Math.max(BUSY_POLL_MIN_MS, every / BUSY_POLL_DIVISOR)));
    }
    // A costly reading (every counter of thousands of contexts): the next regular one waits longer.
    this.pollAt = Math.max(this.pollAt, start + READ_SPACING * (this.opts.clock() - start));
    if (this.pollAt !== was) this.schedule();
  }

  /** Stop reading and counting; every context is forgotten. */
  close(): void {
    this.closed = true;
    this.polling_ = false;
    this.asleep = false;
    this.timer.close();
    this.armed = false;
    for (const c of this.contexts.values()) {
      this.unwatch(c);
      this.unsetEncap(c);
    }
    this.contexts.clear();
    this.sentSince.clear();
  }

  /**
   * The context's packets take the kernel's own route, if there is a kernel path, its pair is
   * its ULID pair, REAP is not exploring and the kernel counts its packets: the route into
   * the TUN goes (deleting it makes sockets look their route up again). Whether it did.
   */
  private toKernel(c: Tracked): boolean {
    if (c.path === 'kernel') return true;
    if (!c.watched || this.broken || c.exploring || !isUlidPair(c)) return false;
    // Its ingress entry, whatever path it comes from: from the encapsulation its egress entry goes
    // (the ingress one is replaced), from the TUN there is none (toTun removed both).
    if (c.path === 'encap') this.unsetEncap(c);
    this.acceptEncap(c);
    c.path = 'kernel';
    c.livenessAt = this.opts.clock();
    void this.routeLater(c, 'kernel', () => this.opts.routes?.contextDown(c.peerUlid));
    this.opts.logger?.info('context on the kernel path', { peer: c.peerUlid });
    this.startPolling();
    return true;
  }

  /**
   * Re-homed and REAP not exploring: the kernel encapsulates the context's packets
   * (bpf-encap.ts) when there is an encapsulation and the kernel counts them; the ULID
   * is routed where the new pair goes. Otherwise it stays on (or goes to) the TUN.
   * `moved`: already encapsulated on another pair (the entries and route are replaced).
   */
  private toEncap(c: Tracked, moved = false): void {
    const e = this.opts.encap;
    if (c.path === 'encap' && !moved) return;
    const d = this.opts.details?.(c.localUlid, c.peerUlid);
    if (e === undefined || d === undefined || !c.watched || this.broken) {
      this.toTun(c);
      return;
    }
    // A pair that leaves by a link without the tc programs: routed there, the packets would leave unencapsulated.
    if (e.carries?.(c.pair.local, c.pair.peer) === false) {
      this.opts.logger?.info('kernel encapsulation: the pair leaves by a link without the tc programs (not Ethernet): the context stays on the TUN path', { peer: c.peerUlid, pair: c.pair });
      this.toTun(c);
      return;
    }
    // An entry under another tag of ours goes first (unset takes the pair's egress entry with it).
    if (c.encapTag !== undefined && c.encapTag !== d.localTag) this.unsetEncap(c);
    if (!e.set({ localUlid: c.localUlid, peerUlid: c.peerUlid, localLocator: c.pair.local, peerLocator: c.pair.peer, ...d })) {
      // Half made (the ingress entry in, the egress one refused: a full map) or not at all: neither
      // stays. On the TUN path the engine must see every packet of the peer: one the kernel
      // decapsulated never reaches it, and REAP, hearing nothing, explored again and again.
      e.unset(c.localUlid, c.peerUlid, d.localTag);
      c.encapTag = undefined;
      this.refused('encap-set', c);
      this.toTun(c);
      return;
    }
    c.encapTag = d.localTag;
    // Routed into the TUN (REAP explored): once that route is in place, TCP's packets reach the new
    // pair through the daemon, so its flows are prompted then, not after the next route change.
    const intoTun = c.path === 'tun' ? this.routing : undefined;
    c.path = 'encap';
    const pair = { ...c.pair };
    const still = (): boolean => !this.closed && this.contexts.get(c.peerUlid) === c && c.path === 'encap' && c.pair.local === pair.local && c.pair.peer === pair.peer;
    void intoTun?.then(() => { if (still()) this.opts.rehomed?.(c.localUlid, c.peerUlid, 'tun'); });
    void this.routeLater(c, 'encap', () => undefined, pair).then(() => { if (still()) this.opts.rehomed?.(c.localUlid, c.peerUlid, 'encap'); });
    this.opts.logger?.info('context on the kernel encapsulation', { peer: c.peerUlid, pair });
    this.startPolling();
  }

  /** The kernel stops counting the context's packets (it ended). */
  private unwatch(c: Tracked): void {
    if (!c.watched) return;
    c.watched = false;
    c.wroteIn = 0;
    c.wroteInBytes = 0;
    this.opts.kernel?.unwatch(c.localUlid, c.peerUlid);
    this.opts.encap?.unwatch?.(c.localUlid, c.peerUlid);
  }

  /**
   * The kernel decapsulates the peer's packets to this context whatever its own path: a peer that
   * re-homed when we did not (a false exploration on one side, a one-way failure) sends them
   * encapsulated to our ULID pair, and a large segment the peer's kernel encapsulated whole could
   * not cross our UDP socket to the daemon. Same checks as the daemon's: our tag, one of the
   * peer's verified locators.
   */
  private acceptEncap(c: Tracked): void {
    const e = this.opts.encap;
    if (e?.accept === undefined || !c.watched || this.broken) return;
    const d = this.opts.details?.(c.localUlid, c.peerUlid);
    if (d === undefined) return;
    if (c.encapTag !== undefined && c.encapTag !== d.localTag) this.unsetEncap(c);
    if (!e.accept({ localUlid: c.localUlid, peerUlid: c.peerUlid, localTag: d.localTag, peerLocators: d.peerLocators })) {
      this.refused('encap-set', c);
      return;
    }
    c.encapTag = d.localTag;
  }

  private unsetEncap(c: Tracked): void {
    if (c.encapTag !== undefined) this.opts.encap?.unset(c.localUlid, c.peerUlid, c.encapTag);
    c.encapTag = undefined;
  }

  private startPolling(): void {
    if (this.polling_ || this.closed) return;
    this.polling_ = true;
    this.asleep = false;
    this.movedAt = this.opts.clock();
    this.total = undefined;
    this.pollAt = this.opts.clock() + (this.opts.pollMs ?? KERNEL_POLL_MS);
    this.schedule();
    this.opts.pollingChanged?.();
  }

  /** One timer, at the next reading or the engine's next deadline, whichever comes first. */
  private schedule(): void {
    if (!this.polling_ || this.ticking) return; // a tick in progress schedules when it ends
    const e = this.engineAt ?? Infinity;
    // Asleep: no regular reading, but a liveness Keepalive due still brings one.
    const p = this.asleep ? this.livenessDue() : this.pollAt;
    const at = e <= p + MERGE_MS ? e : p;
    // The same time, unless already past: after a suspend the clock (CLOCK_BOOTTIME) is beyond it
    // while a Node timer (an injected clock's) waits out the rest of its delay awake.
    if (this.armed && this.timerAt === at && at > this.opts.clock()) return;
    this.timerAt = undefined;
    if (at === Infinity) { // asleep with nothing due: the tripwire or the engine's next deadline (wake) brings the next reading
      if (this.armed) this.timer.set(undefined);
      this.armed = false;
      return;
    }
    this.timerAt = at;
    this.armed = true;
    this.timer.set(at + TIMER_MARGIN_MS);
  }

  /**
   * The context's packets go through the TUN again (after a re-homing, or while REAP explores).
   * Its kernel entries go, the ingress one too: on the TUN path the engine sees every packet of
   * the peer itself (no counters are fed there), and a packet the kernel decapsulated would
   * reach the application unseen (REAP, hearing nothing, explored again and again).
   */
  private toTun(c: Tracked): void {
    this.unsetEncap(c);
    if (c.path === 'tun') return;
    c.path = 'tun';
    this.routeIntoTun(c);
    this.opts.logger?.info('context on the tun path', { peer: c.peerUlid, pair: c.pair });
    this.stopIfIdle();
  }

  private stopIfIdle(): void {
    if (!this.polling_ || [...this.contexts.values()].some((x) => x.path !== 'tun')) return;
    this.polling_ = false;
    this.asleep = false;
    if (this.armed) this.timer.set(undefined);
    this.armed = false;
    this.timerAt = undefined;
    this.opts.pollingChanged?.();
  }

  private routeIntoTun(c: ContextPath): void {
    void this.routeLater(c, 'tun', () => {
      void this.opts.routes?.contextUp(c.localUlid, c.peerUlid);
      this.opts.routes?.flushRouteCache?.();
    });
  }

  /**
   * A route change of the kernel path, after this loop turn and without blocking it when the
   * hook can (`switchPath`): `ip` takes tens of ms on a busy host, and the probes and packets
   * the engine produces meanwhile must go out. In order.
   */
  private routeLater(c: ContextPath, path: DataPath, sync: () => unknown, pair?: LocatorPair): Promise<void> {
    const r = this.opts.routes;
    const done = r?.switchPath ? r.switchPath(c.localUlid, c.peerUlid, path, pair)
      : new Promise<void>((resolve) => setImmediate(() => { if (!this.closed) sync(); resolve(); }));
    this.routing = done;
    return done;
  }

  /**
   * The clock's tick: read the counters (a failed reading is counted, the next tick tries again),
   * then the engine's due timers (`ticked`), then the next tick.
   */
  private async tick(): Promise<void> {
    if (this.closed || !this.polling_ || this.ticking) return;
    this.ticking = true;
    try {
      this.pollAt = this.asleep ? Infinity : this.opts.clock() + (this.opts.pollMs ?? KERNEL_POLL_MS);
      await this.readNow();
      if (!this.closed) this.checkLiveness();
      if (!this.closed) this.opts.ticked?.();
    } finally {
      this.ticking = false;
      this.schedule();
    }
  }

  /**
   * A reading failed. Three in a row: the kernel path cannot tell REAP what flows, so every
   * context goes to the TUN path (said once) and no context takes the kernel path again.
   */
  private readFailed(): void {
    this.opts.drop('kernel-read');
    if (++this.failures < KERNEL_FAILURES_MAX || this.broken) return;
    this.broken = true;
    this.opts.logger?.warn('kernel path: its counters cannot be read; every context uses the TUN path', { failures: this.failures });
    for (const c of this.contexts.values()) this.toTun(c);
  }

  /**
   * After a reading that succeeded (started at `start`): the sums moved, and the readings go on (or
   * come back, asleep); or, with the tripwire, they have not moved for its quiet time and a margin,
   * and the readings stop. The tripwire's element was added by a packet the sums counted, all of
   * them before the reading that last saw them move: it has expired by now, so the next packet
   * counted (after this reading's sums) is logged and calls `tripped`.
   */
  private quiet(k: KernelPathHook, start: number): void {
    const t = k.total?.();
    if (t === undefined || t !== this.total) {
      this.total = t;
      this.movedAt = this.opts.clock();
      if (this.asleep) {
        this.asleep = false;
        this.pollAt = start + (this.opts.pollMs ?? KERNEL_POLL_MS);
      }
      return;
    }
    const trip = k.tripwire;
    if (trip === undefined || this.asleep || start - this.movedAt < trip.quietMs + QUIET_MARGIN_MS) return;
    this.asleep = true;
    this.busy = false;
    this.pollAt = Infinity;
    this.idle.sleeps++;
  }

  /** The tripwire: a packet after a quiet time. Asleep, the readings come back at once. */
  private tripped(): void {
    this.idle.wakeups++;
    if (this.closed || !this.polling_ || !this.asleep) return;
    this.asleep = false;
    this.pollAt = this.opts.clock();
    if (this.ticking) return; // the tick in progress schedules the next at pollAt
    void this.tick();
  }

  /** When the first liveness Keepalive is due (clock; Infinity: none). */
  private livenessDue(): number {
    if (this.opts.liveness === undefined) return Infinity;
    const every = this.livenessEvery();
    let at = Infinity;
    for (const c of this.sentSince) if (c.path === 'kernel') at = Math.min(at, c.livenessAt + every);
    return at;
  }

  private livenessEvery(): number {
    return this.opts.livenessMs ?? Math.min(60_000, Math.max(1000, 30 * (this.opts.pollMs ?? KERNEL_POLL_MS)));
  }

  /**
   * A Keepalive to the peer of each context on the kernel path that sent since its last one, at most
   * every `livenessMs` (`liveness`). Only those contexts are visited: idle ones cost nothing here.
   */
  private checkLiveness(): void {
    const send = this.opts.liveness;
    if (send === undefined || this.sentSince.size === 0) return;
    const now = this.opts.clock();
    const every = this.livenessEvery();
    for (const c of this.sentSince) {
      if (c.path !== 'kernel' || this.contexts.get(c.peerUlid) !== c) {
        this.sentSince.delete(c);
        continue;
      }
      if (now - c.livenessAt < every) continue;
      c.livenessAt = now;
      this.sentSince.delete(c);
      send(c.localUlid, c.peerUlid);
    }
  }

  /** The contexts the last reading may have moved: those the hook names (`moved`), else every one. */
  private candidates(k: KernelPathHook): Iterable<Tracked> {
    const moved = k.moved?.();
    if (moved === undefined) return this.contexts.values();
    const out: Tracked[] = [];
    for (const [local, peer] of moved) {
      const c = this.contexts.get(peer);
      if (c !== undefined && c.localUlid === local) out.push(c);
    }
    return out;
  }

  /**
   * Tell the engine, per context on the kernel path, what moved since the last reading. Only the
   * contexts whose counters moved are visited when the hook says which (`moved`): a reading of
   * thousands of idle contexts costs nothing per context.
   */
  private feed(): void {
    if (this.closed) return;
    this.failures = 0;
    const k = this.opts.kernel;
    let fed = false;
    this.busy = false;
    if (k === undefined) return;
    const now = this.opts.clock();
    for (const c of this.candidates(k)) {
      if (!c.watched) continue;
      const n = k.read(c.localUlid, c.peerUlid);
      if (n === undefined) { c.wroteIn = 0; c.wroteInBytes = 0; continue; } // watched since the last reading: its counters start after those writes
      const sent = n.outPackets > c.out, received = n.inPackets > c.in;
      // What the daemon wrote into its TUN is in the inbound counter too, and the engine counted it.
      const inPackets = Math.max(0, n.inPackets - c.in), inBytes = Math.max(0, (n.inBytes ?? c.inBytes) - c.inBytes);
      const ownPackets = Math.min(inPackets, c.wroteIn), ownBytes = Math.min(inBytes, c.wroteInBytes);
      c.wroteIn -= ownPackets;
      c.wroteInBytes -= ownBytes;
      // Off the TUN the engine sees none of these: what the kernel carried is summed for `status`.
      if (c.path !== 'tun') {
        const t = c.carried ??= { packetsIn: 0, bytesIn: 0, packetsOut: 0, bytesOut: 0 };
        t.packetsOut += Math.max(0, n.outPackets - c.out);
        t.packetsIn += inPackets - ownPackets;
        t.bytesOut += Math.max(0, (n.outBytes ?? c.outBytes) - c.outBytes);
        t.bytesIn += inBytes - ownBytes;
      }
      c.out = n.outPackets;
      c.in = n.inPackets;
      c.outBytes = n.outBytes ?? c.outBytes;
      c.inBytes = n.inBytes ?? c.inBytes;
      // On the TUN path the engine sees every packet itself: the counters only stay current.
      if (c.path === 'tun' || (!sent && !received)) continue;
      this.opts.fed();
      if (sent && received) this.busy = true;
      if (sent && c.path === 'kernel') this.sentSince.add(c);
      // Both in one reading: which came last is not known, and the engine is told so (one call;
      // reap.ts `bothWays`). Its Send Timer runs from this reading, as the TUN path's does from the
      // last packet sent: when that was the failure's first unanswered packet, REAP explores a Send
      // Timeout later, not a Send Timeout after TCP's next retransmission (its RTO, 200 ms and more
      // later: measured, the kernel path re-homed about 250 ms after the TUN path). Its Keepalive
      // timer runs too: the peer's packet may have been the last, and then the peer's Send Timer
      // waits for our answer. Fed as received-then-sent alone, a stream that paused after a round
      // trip had both hosts explore a Send Timeout into the pause (each took its own sending for
      // the last packet, neither sent a Keepalive: test/e2e/reap-steady.test.ts).
      this.opts.kernelTraffic?.(now, c.localUlid, c.peerUlid, { sent, received });
      fed = true;
    }
    if (fed) this.opts.flush();
  }
}

/** The context's current locator pair is its ULID pair (no re-homing in force). */
export function isUlidPair(c: Pick<ContextPath, 'localUlid' | 'peerUlid' | 'pair'>): boolean {
  return c.pair.local === c.localUlid && c.pair.peer === c.peerUlid;
}

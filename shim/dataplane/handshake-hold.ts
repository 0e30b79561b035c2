/**
 * The handshake hold (docs/dataplane.md): from `context-initiated` on, a
 * primed peer's ULID is routed into the TUN, so the application's first
 * packets (a SYN) wait here and go out once the context is up, instead of
 * going to a dead locator on the physical link. For `holdMs` at
 * most: a stale capability record (no shim6 there) must not keep the
 * application from plain IPv6. Once the peer has answered (its R1:
 * `context-answered`), the record is not stale and the peer's ULID may well be
 * the dead locator, so the packets wait `answeredHoldMs` more for the I2
 * exchange (on a loaded host it took over a second, and a SYN sent plain to a
 * dead locator fails the connection with EHOSTUNREACH). Then the route goes,
 * and what waited leaves as plain IPv6 (`sendPlain`) while the engine keeps trying.
 *
 * Owns: the packets held per peer, the peers whose route into the TUN it
 * withdrew. Must not know: the engine, how routes are made (RouteHook).
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Logger } from '../log.ts';
import type { RouteHook } from './context-paths.ts';

export interface HandshakeHoldOptions {
  routes?: RouteHook;
  /** How long a primed peer's packets wait for its context before plain IPv6 takes over (ms, default 1000). */
  holdMs?: number;
  /** How much longer they wait once the peer has answered the handshake (ms, default 4000). */
  answeredHoldMs?: number;
  /** Send whole IPv6 packets as plain IPv6, past the TUN; returns how many were sent. Absent: held packets are dropped. */
  sendPlain?: (packets: readonly Uint8Array[]) => number;
  /** The context is up: send these through it, in order. */
  send: (packets: readonly Uint8Array[]) => void;
  logger?: Logger;
  /** Count a dropped packet by reason (the driver's stats). */
  drop: (reason: string) => void;
  /** Packets sent as plain IPv6 (the driver's stats). */
  sentPlain: (n: number) => void;
  /** Whether an established context owns `peer`'s route already (a hold that times out then leaves it). */
  routed?: (peer: Ipv6) => boolean;
}

/** Packets held per peer while its primed context is set up (a SYN and its retransmissions). */
const HOLD_MAX = 16;
const HOLD_MS = 1000;
/** Time for two more of TCP's SYN retries (1 s, then 2 s after it); a connect() waits far longer. */
const ANSWERED_HOLD_MS = 4000;
/**
 * Octets held for all peers together. Each context this host initiates holds its peer's packets
 * (a prime per name a local client looks up, a new flow), and those contexts are not counted by
 * maxContexts: past this, a packet to hold is dropped (`hold-full`) and its sender retransmits.
 */
export const HOLD_BYTES_MAX = 8 * 1024 * 1024;
/** Peers remembered as withdrawn from the TUN (the set is emptied when full). */
const WITHDRAWN_MAX = 4096;

export class HandshakeHold {
  /** `answered`: the peer's R1 came, the hold was extended. */
  private readonly held = new Map<Ipv6, { packets: Uint8Array[]; timer: NodeJS.Timeout; answered: boolean }>();
  /** Peers whose ULID route into the TUN this hold withdrew (and has not routed again): bounded by WITHDRAWN_MAX. */
  private readonly withdrawn = new Set<Ipv6>();
  /** Octets of every packet held (at most HOLD_BYTES_MAX). */
  private heldBytes = 0;
  private closed = false;

  constructor(private readonly opts: HandshakeHoldOptions) {}

  /** Whether `peer`'s packets are being held. */
  holds(peer: Ipv6): boolean {
    return this.held.has(peer);
  }

  /**
   * A context with `peer` was initiated: route it into the TUN and hold its packets. `route`
   * false: the peer is routed for another context of ours already; hold only.
   */
  start(local: Ipv6, peer: Ipv6, route = true): void {
    if (this.held.has(peer)) return;
    this.held.set(peer, { packets: [], timer: this.expiry(peer, this.opts.holdMs ?? HOLD_MS), answered: false });
    if (route) void this.routeUp(local, peer);
  }

  /** The peer answered the handshake of the context its packets wait for: they wait `answeredHoldMs` more (once). */
  answered(peer: Ipv6): void {
    const h = this.held.get(peer);
    if (h === undefined || h.answered) return;
    clearTimeout(h.timer);
    h.answered = true;
    h.timer = this.expiry(peer, this.opts.answeredHoldMs ?? ANSWERED_HOLD_MS);
  }

  /** The end of `peer`'s hold in `ms`: the route goes (unless another context has it) and what waited leaves as plain IPv6. */
  private expiry(peer: Ipv6, ms: number): NodeJS.Timeout {
    const timer = setTimeout(() => {
      const h = this.held.get(peer);
      if (h?.timer !== timer) return;
      this.remove(peer, h.packets);
      // The route stays when a context from another of our ULIDs has come up meanwhile (or had it all along).
      this.letGo(peer, h.packets, this.opts.routed?.(peer) === true ? undefined : this.routeDown(peer));
      this.opts.logger?.info('context not up in time: plain IPv6 meanwhile', { peer, answered: h.answered });
    }, ms);
    timer.unref?.();
    return timer;
  }

  /**
   * An application packet to `peer` found no context: held while its context is set up;
   * sent as plain IPv6 when it was routed into the TUN just before its route was withdrawn
   * (the context failed meanwhile). Whether it was taken (otherwise it counts as no-context).
   */
  take(peer: Ipv6, packet: Uint8Array): boolean {
    const q = this.held.get(peer)?.packets;
    if (q !== undefined && q.length < HOLD_MAX) {
      if (this.heldBytes + packet.length > HOLD_BYTES_MAX) {
        this.opts.drop('hold-full');
        return true;
      }
      q.push(packet.slice());
      this.heldBytes += packet.length;
      return true;
    }
    if (this.opts.sendPlain === undefined || !this.withdrawn.has(peer)) return false;
    this.letGo(peer, [packet.slice()], undefined, true);
    return true;
  }

  /** The context with `peer` is up: send what waited for it, in order. */
  release(peer: Ipv6): void {
    const q = this.held.get(peer)?.packets;
    if (q === undefined) return;
    this.unhold(peer);
    this.opts.send(q);
    if (q.length > 0) this.opts.logger?.info('held packets sent', { peer, packets: q.length });
  }

  /** Stop holding `peer`'s packets (they are dropped): the peer does not do Shim6. */
  forget(peer: Ipv6): void {
    this.unhold(peer);
  }

  /**
   * The context with `peer` ended. Failed: its route goes and what waited leaves as plain
   * IPv6. Closed for good: its route goes. Resumable (idle cleanup of a known peer): the route
   * stays, so the next packet brings the context back. Failed, a second context (another
   * context owns the route): what waited leaves as plain IPv6, the route stays.
   */
  ended(peer: Ipv6, how: 'failed' | 'closed' | 'resumable' | 'failed-keep-route'): void {
    const held = this.unhold(peer);
    // A second context that failed: what waited for it goes plain; the route is the first one's.
    if (how === 'failed-keep-route') this.letGo(peer, held, undefined);
    else if (how !== 'resumable') this.letGo(peer, how === 'failed' ? held : [], this.routeDown(peer));
  }

  /** Route an established context into the TUN. */
  routeUp(local: Ipv6, peer: Ipv6): void | Promise<void> {
    this.withdrawn.delete(peer);
    return this.opts.routes?.contextUp(local, peer);
  }

  /** Drop every held packet and stop the timers. */
  close(): void {
    this.closed = true;
    for (const peer of [...this.held.keys()]) this.unhold(peer);
  }

  private unhold(peer: Ipv6): Uint8Array[] {
    const h = this.held.get(peer);
    if (h === undefined) return [];
    clearTimeout(h.timer);
    this.remove(peer, h.packets);
    return h.packets;
  }

  private remove(peer: Ipv6, packets: readonly Uint8Array[]): void {
    this.held.delete(peer);
    for (const p of packets) this.heldBytes -= p.length;
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
      if (out.length < packets.length) this.opts.drop('hop-limit');
      const n = out.length > 0 ? send(out) : 0;
      this.opts.sentPlain(n);
      // Held packets once per failed context; late ones are only counted (a burst could be many).
      if (!late) this.opts.logger?.info('held packets sent as plain IPv6', { peer, packets: n });
    }, () => undefined);
  }
}

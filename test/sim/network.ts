/**
 * The simulated network (smoltcp fault_injector style): directed links between
 * locator pairs, each with delay, jitter, loss, duplication, reordering and a
 * black-hole switch, and one time-ordered queue of packets in flight. A packet
 * with no link for its (src, dst) pair is lost (no route). Owns: links, faults,
 * the in-flight queue. Must not know about engines or protocol bytes.
 */
import { ms, type Millis } from '../../shim/time.ts';
import type { Datagram, Ipv6 } from './endpoint.ts';
import type { SimRng } from '../helpers/rng.ts';

/** Fault model of one direction of a link. */
export interface LinkConfig {
  /** One-way delay. */
  delay: Millis;
  /** Extra uniform delay in [0, jitter). */
  jitter: Millis;
  /** Probability a packet is lost. */
  loss: number;
  /** Probability a packet is delivered twice. */
  duplicate: number;
  /** Probability a packet is held back by `reorderDelay` (so later ones overtake it). */
  reorder: number;
  reorderDelay: Millis;
  /** Silent black hole: everything is dropped while true. */
  blackhole: boolean;
  /** A middlebox (or a peer's filter) that silently drops the packets it matches; counted as black-holed. */
  dropIf?: (p: WirePacket) => boolean;
}

export const DEFAULT_LINK: Readonly<LinkConfig> = {
  delay: ms(20), jitter: ms(0), loss: 0, duplicate: 0, reorder: 0, reorderDelay: ms(50), blackhole: false,
};

/** A packet on the wire. `plain` marks a native IPv6 packet (no shim6), addressed by its ULIDs. */
export interface WirePacket extends Datagram {
  readonly plain?: boolean;
  /** Set on packets the adversary put on the wire. */
  readonly forged?: boolean;
}

export interface InFlight {
  readonly at: Millis;
  readonly seq: number;
  readonly packet: WirePacket;
}

/** Counters per direction, for tests and docs. */
export interface LinkStats {
  sent: number;
  lost: number;
  blackholed: number;
  duplicated: number;
  reordered: number;
}

const dirKey = (src: Ipv6, dst: Ipv6): string => `${src}>${dst}`;

export class Network {
  readonly #links = new Map<string, { cfg: LinkConfig; stats: LinkStats }>();
  readonly #queue: InFlight[] = [];
  #seq = 0;
  /** Packets that found no link (no route), for diagnostics. */
  unrouted = 0;

  constructor(private readonly rng: SimRng) {}

  /** Create or change the link src → dst (one direction). */
  setDirection(src: Ipv6, dst: Ipv6, patch: Partial<LinkConfig>): void {
    const k = dirKey(src, dst);
    const cur = this.#links.get(k);
    if (cur) Object.assign(cur.cfg, patch);
    else this.#links.set(k, { cfg: { ...DEFAULT_LINK, ...patch }, stats: { sent: 0, lost: 0, blackholed: 0, duplicated: 0, reordered: 0 } });
  }

  link(src: Ipv6, dst: Ipv6): Readonly<LinkConfig> | undefined {
    return this.#links.get(dirKey(src, dst))?.cfg;
  }

  stats(src: Ipv6, dst: Ipv6): Readonly<LinkStats> | undefined {
    return this.#links.get(dirKey(src, dst))?.stats;
  }

  /** Every directed link as [src, dst]. */
  directions(): Array<[Ipv6, Ipv6]> {
    return [...this.#links.keys()].map((k) => k.split('>') as [Ipv6, Ipv6]);
  }

  /** Put a packet on the link for its (src, dst), applying that link's faults. */
  send(now: Millis, p: WirePacket): void {
    const l = this.#links.get(dirKey(p.src, p.dst));
    if (!l) {
      this.unrouted++;
      return;
    }
    const { cfg, stats } = l;
    stats.sent++;
    if (cfg.blackhole || cfg.dropIf?.(p) === true) {
      stats.blackholed++;
      return;
    }
    if (this.rng.chance(cfg.loss)) {
      stats.lost++;
      return;
    }
    const copies = this.rng.chance(cfg.duplicate) ? 2 : 1;
    if (copies === 2) stats.duplicated++;
    for (let i = 0; i < copies; i++) {
      let at = now + cfg.delay + (cfg.jitter > 0 ? this.rng.float() * cfg.jitter : 0);
      if (this.rng.chance(cfg.reorder)) {
        stats.reordered++;
        at += cfg.reorderDelay;
      }
      this.enqueue(ms(at), p);
    }
  }

  /** Deliver `p` at `at` regardless of links (the adversary's direct injection). */
  enqueue(at: Millis, p: WirePacket): void {
    const item: InFlight = { at, seq: this.#seq++, packet: p };
    // Binary insertion keeps (at, seq) order: equal times deliver in send order.
    let lo = 0, hi = this.#queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const m = this.#queue[mid]!;
      if (m.at < at || (m.at === at && m.seq < item.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.#queue.splice(lo, 0, item);
  }

  /** Time of the next delivery, if any. */
  nextAt(): Millis | undefined {
    return this.#queue[0]?.at;
  }

  /** Remove and return the next packet due at or before `now`. */
  popDue(now: Millis): InFlight | undefined {
    const head = this.#queue[0];
    if (!head || head.at > now) return undefined;
    return this.#queue.shift();
  }

  get inFlight(): number {
    return this.#queue.length;
  }
}

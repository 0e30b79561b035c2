/**
 * Throughput of each peer over the last minutes, for the status page's
 * plots: every `intervalMs` the payload octets of each context (the engine's
 * counters, read through `read`) are sampled and the rate since the last
 * sample kept, `points` samples per peer. Bounded: at most `maxPeers` peers
 * (the first seen carrying traffic — a context that carried nothing takes no
 * place; a peer without a context for a whole window is forgotten and frees
 * its place), each a ring of `points`.
 * Runs only while the metrics server does; nothing on the packet path.
 */
import { bootClock } from '../../clock.ts';

/** One context's cumulative payload octets, as the engine's status shows them. */
export interface TrafficReading {
  peerUlid: string;
  contextTag: number;
  bytesIn: number;
  bytesOut: number;
}

/** One sample of a peer's throughput: octets per second each way, over the interval that ended at `t` (ms since the epoch). */
export interface RatePoint { t: number; inBps: number; outBps: number }

interface PeerTrack {
  points: RatePoint[];
  /** Last cumulative reading per context tag (a new context of the same peer starts from zero). */
  last: Map<number, { bytesIn: number; bytesOut: number }>;
  seenAt: number;
}

export interface HistoryOptions {
  intervalMs?: number;
  points?: number;
  maxPeers?: number;
  /** Wall clock for the samples' times (ms since the epoch). */
  clock?: () => number;
  /**
   * The clock intervals are measured on (ms): default `clock` when given (tests), else the product's
   * (shim/clock.ts). On the wall clock a step back dropped a sample and a step forward spread its
   * octets over the step.
   */
  elapsed?: () => number;
}

export class ThroughputHistory {
  readonly intervalMs: number;
  private readonly points: number;
  private readonly maxPeers: number;
  private readonly clock: () => number;
  private readonly elapsed: () => number;
  private readonly peers = new Map<string, PeerTrack>();
  private lastAt: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly read: () => TrafficReading[], opts: HistoryOptions = {}) {
    this.intervalMs = opts.intervalMs ?? 5000;
    this.points = opts.points ?? 60;
    this.maxPeers = opts.maxPeers ?? 256;
    this.clock = opts.clock ?? Date.now;
    this.elapsed = opts.elapsed ?? opts.clock ?? bootClock;
  }

  start(): void {
    if (this.timer) return;
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Take one sample now (the timer calls this; tests may too). */
  sample(): void {
    const wall = this.clock();
    const now = this.elapsed();
    const dt = this.lastAt === undefined ? 0 : (now - this.lastAt) / 1000;
    this.lastAt = now;
    const seen = new Set<string>();
    const sums = new Map<string, { inB: number; outB: number }>();
    for (const r of this.read()) {
      let track = this.peers.get(r.peerUlid);
      if (!track) {
        // A context that carried nothing yet (discovery's I1 to a host without shim6, its hold-down:
        // one per new destination) has nothing to plot and must not take one of the maxPeers places.
        if (this.peers.size >= this.maxPeers || (r.bytesIn === 0 && r.bytesOut === 0)) continue;
        track = { points: [], last: new Map(), seenAt: now };
        this.peers.set(r.peerUlid, track);
      }
      const prev = track.last.get(r.contextTag);
      // A context not read at the last sample was made since (its counters start at zero): all its
      // octets fall in this interval. The one that carries a burst at once (a connection's first
      // seconds) would otherwise not show at all.
      const dIn = prev ? Math.max(0, r.bytesIn - prev.bytesIn) : dt > 0 ? r.bytesIn : 0;
      const dOut = prev ? Math.max(0, r.bytesOut - prev.bytesOut) : dt > 0 ? r.bytesOut : 0;
      if (!seen.has(r.peerUlid)) track.last = new Map();
      track.last.set(r.contextTag, { bytesIn: r.bytesIn, bytesOut: r.bytesOut });
      seen.add(r.peerUlid);
      const s = sums.get(r.peerUlid) ?? { inB: 0, outB: 0 };
      s.inB += dIn; s.outB += dOut;
      sums.set(r.peerUlid, s);
    }
    for (const [peer, track] of this.peers) {
      const s = sums.get(peer) ?? { inB: 0, outB: 0 };
      if (seen.has(peer)) track.seenAt = now;
      else track.last = new Map();
      if (dt > 0) {
        track.points.push({ t: wall, inBps: s.inB / dt, outBps: s.outB / dt });
        if (track.points.length > this.points) track.points.splice(0, track.points.length - this.points);
      }
      // A peer without a context for the whole window is forgotten.
      if (now - track.seenAt > this.points * this.intervalMs) this.peers.delete(peer);
    }
  }

  /** The samples of `peer`, oldest first. */
  of(peer: string): RatePoint[] {
    return [...(this.peers.get(peer)?.points ?? [])];
  }
}

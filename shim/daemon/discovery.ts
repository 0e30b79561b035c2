/**
 * Host-based discovery in the daemon
 * (docs/operations.md "Host-based discovery"): every new outgoing flow
 * (shim/dataplane/new-flows.ts) to a destination with no capability knowledge
 * starts discovery in the engine (`Engine.discover`) while the flow's packets
 * go on as plain IPv6 — never held. A peer that answers gets a context; its
 * route moves the open connection into the TUN (ULID = locator: nothing changes
 * for the application). A peer that does not answer lands in the engine's
 * negative cache by address (`no-answer`), and traffic to it starts nothing
 * more while the entry lives.
 *
 * Bounds (docs/configuration.md `discovery`): at most MAX_IN_FLIGHT
 * discoveries at once, START_RATE new ones per second (a token bucket), one
 * per destination per PER_DESTINATION_MS; the kernel already limits the flow
 * notifications themselves (new-flows.ts). What goes over a bound is counted
 * and skipped: the flow stays plain IPv6.
 *
 * Owns: those bounds and the record of which contexts discovery made (for
 * `status` and the lab's `context_source`). Must not know: message formats,
 * nftables.
 */
import type { Logger } from '../log.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Millis } from '../time.ts';
import { bootClock } from '../clock.ts';
import type { Engine, EngineEvent } from '../engine/index.ts';
import type { NewFlow } from '../dataplane/new-flows.ts';

/** Discoveries in flight at once (I1 sent, no answer nor give-up yet). */
export const MAX_IN_FLIGHT = 64;
/** New discoveries per second, and the burst allowed. */
export const START_RATE = 50;
/** One discovery per destination in this long (ms), whatever its flows. */
export const PER_DESTINATION_MS = 5000;
/** A discovery with no outcome after this long no longer counts as in flight (ms). */
const IN_FLIGHT_MAX_MS = 60_000;
/** Destinations remembered for the per-destination bound (oldest forgotten first). */
const RECENT_MAX = 4096;

/** What `status` shows of discovery. */
export interface DiscoveryStats {
  flows: number;
  started: number;
  probing: number;
  established: number;
  failed: number;
  skipped: Record<string, number>;
}

type Command = <T>(fn: (engine: Engine, now: Millis) => T) => T;

export class Discovery {
  readonly stats: DiscoveryStats = { flows: 0, started: 0, probing: 0, established: 0, failed: 0, skipped: {} };
  /** Destination → when its discovery started (ms, on `clock`). */
  private readonly inFlight = new Map<Ipv6, number>();
  private readonly recent = new Map<Ipv6, number>();
  /** Peers whose context came from discovery (bounded like `recent`). */
  private readonly discovered = new Map<Ipv6, number>();
  private tokens = START_RATE;
  private refilledAt: number;

  constructor(private readonly command: Command, private readonly log: Logger, private readonly clock: () => number = bootClock) {
    this.refilledAt = clock();
  }

  /** A new outgoing flow from `src` to `dst` left the host outside the shim. */
  onFlow(f: NewFlow): void {
    this.stats.flows++;
    const now = this.clock();
    const last = this.recent.get(f.dst);
    if (last !== undefined && now - last < PER_DESTINATION_MS) return this.skip('per-destination');
    this.expireInFlight(now);
    if (this.inFlight.size >= MAX_IN_FLIGHT) return this.skip('in-flight');
    this.tokens = Math.min(START_RATE, this.tokens + ((now - this.refilledAt) * START_RATE) / 1000);
    this.refilledAt = now;
    if (this.tokens < 1) return this.skip('rate');
    const r = this.command((e, t) => e.discover(t, f.src, f.dst));
    remember(this.recent, f.dst, now);
    if (r !== 'started' && r !== 'probing') return this.skip(r);
    this.tokens -= 1;
    this.inFlight.set(f.dst, now);
    if (r === 'probing') this.stats.probing++; else this.stats.started++;
    this.log.info('discovery started', { peer: f.dst, local: f.src, mode: r === 'probing' ? 'independent' : 'integrated', proto: f.proto });
  }

  /**
   * After a start, the peers of connections already open that the caches do not know (the
   * cache file was lost): each is discovered as a new TCP flow from `src` would be, within the
   * same bounds (what goes over them stays plain IPv6, counted in `skipped`). How many started.
   */
  openConnections(src: Ipv6, peers: readonly Ipv6[]): number {
    const before = this.stats.started + this.stats.probing;
    for (const dst of peers) this.onFlow({ src, dst, proto: 6 });
    return this.stats.started + this.stats.probing - before;
  }

  /** Engine events: outcomes of discoveries in flight. */
  onEvent(e: EngineEvent): void {
    if (e.kind === 'ulid-refused' || e.kind === 'limit-pressure' || !this.inFlight.has(e.peerUlid)) return;
    const started = this.inFlight.get(e.peerUlid)!;
    const ms = this.clock() - started;
    if (e.kind === 'context-established') {
      this.inFlight.delete(e.peerUlid);
      this.stats.established++;
      remember(this.discovered, e.peerUlid, this.clock());
      this.log.info('context from discovery', { peer: e.peerUlid, ms });
    } else if (e.kind === 'peer-supported') {
      // The independent probe pair was answered: now the context itself (the flow's packets wait for it at most the hold time).
      this.log.info('discovery probe answered', { peer: e.peerUlid, ms });
      // Not from inside the driver's event dispatch: on the next turn.
      setImmediate(() => this.command((en, t) => en.protect(t, e.peerUlid)));
    } else if (e.kind === 'peer-unsupported' || e.kind === 'context-failed') {
      this.inFlight.delete(e.peerUlid);
      this.stats.failed++;
      this.log.info('discovery: no shim6 there', { peer: e.peerUlid, ms, reason: e.reason });
    }
  }

  /** Whether the context with `peer` came from discovery (of those remembered). */
  fromDiscovery(peer: Ipv6): boolean {
    return this.discovered.has(peer);
  }

  status(): Record<string, unknown> {
    return { ...this.stats, inFlight: this.inFlight.size, limits: { maxInFlight: MAX_IN_FLIGHT, startsPerSecond: START_RATE, perDestinationMs: PER_DESTINATION_MS } };
  }

  private skip(why: string): void {
    this.stats.skipped[why] = (this.stats.skipped[why] ?? 0) + 1;
  }

  private expireInFlight(now: number): void {
    for (const [peer, at] of this.inFlight) if (now - at > IN_FLIGHT_MAX_MS) this.inFlight.delete(peer);
  }
}

/** Set `key` (as the newest), forgetting the oldest past RECENT_MAX. */
function remember(m: Map<Ipv6, number>, key: Ipv6, at: number): void {
  m.delete(key);
  m.set(key, at);
  if (m.size > RECENT_MAX) m.delete(m.keys().next().value!);
}

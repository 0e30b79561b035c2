/**
 * The stub resolver: builds the stage chain from its order (chain.ts
 * DEFAULT_ORDER, minus the capability stage when pickup is off), the upstream
 * pool, the answer cache and the listeners, and reports status. This is the
 * driver that owns the clock: every request gets `now` from `clock`.
 * It must not know the engine; capability outcomes go to a CapabilitySink.
 */
import { performance } from 'node:perf_hooks';
import type { Millis } from '../shim/time.ts';
import { bootClock, clockSource } from '../shim/clock.ts';
import { hostPort, type Logger } from '../shim/log.ts';
import { compose, DEFAULT_ORDER, type Handler, type Stage, type StageName } from './chain.ts';
import { AnswerCache } from './answer-cache.ts';
import { UpstreamPool, type UpstreamStatus } from './upstream.ts';
import { Listeners, type AnswerHook, type ListenAddr } from './listener.ts';
import { newCounters, type ResolverCounters } from './counters.ts';
import { CacheStage } from './stages/cache.ts';
import { ForwardStage, forwardQueryOptions } from './stages/forward.ts';
import { CapabilityStage } from './stages/capability.ts';
import type { CapabilitySink } from './capability-sink.ts';
import type { ResolverConfig } from './config.ts';
import { servfail } from './answer-build.ts';
import { CLASS_IN, Rcode } from './message.ts';
import type { RawLookup } from './capability-fetch.ts';
import { isWildcardHost, nativeUdpStatus, type UdpBackend } from './udp-socket.ts';
import { UsageError } from '../shim/errors.ts';

/** The capability stage's own questions carry the flags the forward stage uses for a client without DO or CD. */
const INTERNAL_QUERY = forwardQueryOptions(false, false);

export interface ResolverDeps {
  sink: CapabilitySink;
  log: Logger;
  /** The clock every request's `now` comes from (tests inject one). */
  clock?: () => Millis;
  onAnswer?: AnswerHook;
}

/** The monotonic clock of a real run (shim/time.ts). */

/** What `shim6 status` shows of the resolver (workers.ts adds up several threads' into one). */
export interface ResolverStatus {
  listen: readonly ListenAddr[];
  udp: UdpBackend;
  uptimeSeconds: number;
  counters: ResolverCounters;
  cache: { entries: number; bytes: number; maxEntries: number; maxBytes: number; inflight: number };
  upstreams: UpstreamStatus[];
  /** Open TCP connections and their bound (TCP runs on the main thread only). */
  tcp: { connections: number; maxConnections: number };
  capability: { enabled: boolean; positive: unknown[]; negative: unknown[] };
  /** Resolver threads, and the queries each one took (workers.ts); absent for one thread. */
  workers?: { count: number; queries: number[]; restarts: number };
}

/** What `shim6 flush` dropped: answer cache entries and capability cache entries. */
export interface FlushResult { answers: number; capability: number }

export class Resolver {
  readonly counters: ResolverCounters = newCounters();
  readonly cache: AnswerCache;
  readonly pool: UpstreamPool;
  readonly handler: Handler;
  private readonly listeners: Listeners;
  private readonly capability: CapabilityStage | undefined;
  private readonly cacheStage: CacheStage;
  private readonly clock: () => Millis;
  private readonly startedAt: Millis;

  /** `udp`: the backend chosen for this run (config `auto` resolved). */
  private constructor(readonly config: ResolverConfig, deps: ResolverDeps, readonly udp: UdpBackend) {
    this.clock = deps.clock ?? bootClock;
    this.startedAt = this.clock();
    const log = deps.log.child('resolver');
    this.cache = new AnswerCache(config.cache);
    this.pool = new UpstreamPool(config.upstreams, config.upstream, bootClock, log, this.counters, udp);
    this.cacheStage = new CacheStage(this.cache, this.counters);
    const order = DEFAULT_ORDER.filter((n) => n !== 'capability' || config.capability.enabled);
    const terminal: Handler = (req) => ({ bytes: servfail(req.query, req.q), optOff: req.q.questionEnd, source: 'local', owned: true, rcode: Rcode.SERVFAIL, failed: true });
    // Build from the last stage back, so a stage that needs "the rest of the chain" for its own lookups gets it.
    const stages: Stage[] = [];
    let capability: CapabilityStage | undefined;
    for (let i = order.length - 1; i >= 0; i--) {
      const name: StageName = order[i]!;
      const rest = compose(stages, terminal);
      let stage: Stage;
      if (name === 'forward') stage = new ForwardStage(this.pool, config.queryTimeoutMs);
      else if (name === 'cache') stage = this.cacheStage;
      else {
        const direct = compose(stages.filter((x) => x.name !== 'cache'), terminal);
        stage = capability = new CapabilityStage(rest, direct, this.rawLookup, deps.sink, this.counters, log.child('capability'), config.capability, this.clock, () => performance.now());
      }
      stages.unshift(stage);
    }
    this.capability = capability;
    this.handler = compose(stages, terminal);
    this.listeners = new Listeners(this.handler, this.counters, this.clock, log, config.listener, deps.onAnswer, udp);
  }

  /** The capability stage's own questions: straight to the upstreams, as the forward stage asks (RD, AD, EDNS, no DO). */
  private readonly rawLookup: RawLookup = (nameKey, qtype, listener) => {
    this.pool.start(nameKey, qtype, CLASS_IN, INTERNAL_QUERY, this.config.queryTimeoutMs, listener);
  };

  /**
   * Build and bind. Rejects (and closes what was opened) if an address cannot be bound.
   * `listen`: as Listeners.listen (one thread of several: workers.ts).
   */
  static async start(config: ResolverConfig, deps: ResolverDeps, listen: { shards?: number; tcp?: boolean } = {}): Promise<Resolver> {
    const native = await nativeUdpStatus();
    if (config.udp === 'native' && !native.available) throw new UsageError('EUDPBACKEND', `udp: native sockets unavailable: ${native.reason}`, 'udp');
    const udp: UdpBackend = config.udp === 'dgram' || !native.available ? 'dgram' : 'native';
    if (config.udp === 'auto' && !native.available) deps.log.child('resolver').warn('native UDP unavailable, using dgram', { reason: native.reason });
    // Without the addon the clock is CLOCK_MONOTONIC (shim/clock.ts): a suspend stretches every TTL by its length.
    const clock = clockSource();
    if (deps.clock === undefined && clock.source !== 'boottime') deps.log.child('resolver').warn('the clock does not count a suspend: cached answers outlive their TTL by the time the machine slept', { clock: clock.source, reason: clock.why });
    // dgram cannot choose an answer's source: on a wildcard listener a client that asked one of the
    // host's addresses but the kernel's pick (a second address, 127.0.0.153 beside 127.0.0.1) drops it.
    const wild = udp === 'dgram' ? config.listen.find((l) => isWildcardHost(l.host)) : undefined;
    if (wild !== undefined) {
      const why = config.udp === 'dgram' ? 'udp: dgram' : `the native backend is unavailable here (${native.reason})`;
      throw new UsageError('EUDPBACKEND', `listen ${hostPort(wild.host, wild.port)}: a wildcard address needs the native UDP backend, which answers from the address each query came to; with ${why} an answer leaves from the address the kernel picks and a client that asked another drops it: listen on the host's addresses instead`, config.udp === 'dgram' ? 'udp' : 'listen');
    }
    const r = new Resolver(config, deps, udp);
    try {
      await r.listeners.listen(config.listen, listen);
    } catch (err) {
      await r.close();
      throw err;
    }
    return r;
  }

  /** The addresses actually bound (port 0 resolved). */
  get addresses(): readonly ListenAddr[] { return this.listeners.bound; }

  /** Counters, cache use, upstream health and the capability caches; plain JSON. */
  status(): ResolverStatus {
    const now = this.clock();
    return {
      listen: this.addresses,
      udp: this.udp,
      uptimeSeconds: Math.floor((now - this.startedAt) / 1000),
      counters: { ...this.counters },
      cache: { entries: this.cache.size, bytes: this.cache.bytes, maxEntries: this.config.cache.maxEntries, maxBytes: this.config.cache.maxBytes, inflight: this.cacheStage.inflightCount },
      upstreams: this.pool.status(),
      tcp: { connections: this.listeners.tcpConnections, maxConnections: this.config.listener.tcp.maxConnections },
      capability: this.capability ? { enabled: true, ...this.capability.status(now) } : { enabled: false, positive: [], negative: [] },
    };
  }

  /** Empty the answer cache and the capability cache (`shim6 flush`); how many entries each held. */
  flush(): FlushResult {
    const answers = this.cache.size;
    this.cache.clear();
    return { answers, capability: this.capability?.flush() ?? 0 };
  }

  async close(): Promise<void> {
    await this.listeners.close();
    this.pool.close();
  }
}

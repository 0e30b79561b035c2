/**
 * The resolver on several threads (config `workers`), as Knot Resolver runs
 * several processes: each thread runs a whole Resolver (chain, caches,
 * upstream pool) on its own event loop, and the UDP listener is one
 * SO_REUSEPORT group with a socket per thread, which the kernel spreads by
 * question name (the addon's attach_shard_filter). So a name always reaches
 * the same thread: its cache entry, its in-flight coalescing and its capability
 * entry live in one place, and the configured bounds, divided among the
 * threads, still bound the whole.
 *
 * The main thread's Resolver is shard 0 and also serves TCP. The others run in
 * worker_threads (worker.ts); they hand capability outcomes to the main
 * thread's sink (the engine lives there) by message, posted before their
 * answer is sent. `shim6 status` shows the threads added up.
 * With `workers: 1` this is just the one Resolver, with nothing in between.
 */
import { Worker } from 'node:worker_threads';
import { LRUCache } from 'lru-cache';
import { errorFromData, type ErrorData } from '../shim/errors.ts';
import { hostPort, type Logger, type LogLevel } from '../shim/log.ts';
import type { Millis } from '../shim/time.ts';
import type { Ipv6Octets } from '../shim/wire/ipv6.ts';
import { recordUlidOctets, type RecordOctets } from '../shim/wire/capability-record.ts';
import { bootClock } from '../shim/clock.ts';
import { Resolver, type FlushResult, type ResolverDeps, type ResolverStatus } from './index.ts';
import type { ListenAddr } from './listener.ts';
import type { ResolverConfig } from './config.ts';
import type { UdpBackend } from './udp-socket.ts';
import type { ResolverCounters } from './counters.ts';
import { LoggingSink, type CapabilitySink } from './capability-sink.ts';

/** What the main thread gives a worker thread to start with. */
export interface WorkerInit {
  shard: number;
  shards: number;
  /** The shard's share of the configuration; `listen` holds the ports the main thread bound. */
  config: ResolverConfig;
  logLevel: Logger['level'];
  logFormat: Logger['format'];
  /**
   * The main thread's sink only logs (no engine): the worker logs its outcomes
   * itself instead of sending them over (LoggingSink is the same on any thread).
   */
  logOnly: boolean;
}

/** One sink call, as a worker sends it over. */
export type SinkCall =
  | { op: 'prime'; record: RecordOctets; ttl: number; nameKey: string }
  | { op: 'absent'; nameKey: string; addresses: Ipv6Octets[]; ttl: number };

/** Messages from a worker thread. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'failed'; error: ErrorData }
  /** The sink calls of one turn of the worker's event loop, in order. */
  | { t: 'sink'; calls: SinkCall[] }
  | { t: 'status'; id: number; status: ResolverStatus }
  | { t: 'flushed'; id: number; flushed: FlushResult };

/** Messages to a worker thread. */
export type ToWorker = { t: 'status'; id: number } | { t: 'flush'; id: number } | { t: 'log-level'; level: LogLevel } | { t: 'close' };

/** A worker's answer to `status` or `flush` (or close) may take this long before it is given up on. */
const WORKER_REPLY_MS = 2000;
/** A worker that died is started again after this long. */
const RESTART_MS = 1000;

/** One shard's share of the configuration: bounds divided so that all shards together keep the configured ones. */
export function shardConfig(config: ResolverConfig, shards: number): ResolverConfig {
  if (shards === 1) return config;
  const share = (v: number): number => Math.max(1, Math.ceil(v / shards));
  return {
    ...config,
    cache: { ...config.cache, maxEntries: share(config.cache.maxEntries), maxBytes: share(config.cache.maxBytes) },
    capability: { ...config.capability, maxEntries: share(config.capability.maxEntries) },
    upstream: { ...config.upstream, maxInflight: share(config.upstream.maxInflight) },
  };
}

/**
 * In front of the main thread's sink when several threads resolve: a peer
 * reached through names that hash to different threads (a CNAME alias and its
 * target) is still primed once per record lifetime, as with one thread.
 */
export class OncePerLifetime implements CapabilitySink {
  private readonly until: LRUCache<string, number>;
  constructor(private readonly inner: CapabilitySink, maxEntries: number) {
    this.until = new LRUCache({ max: maxEntries });
  }

  prime(now: Millis, record: RecordOctets, ttlSeconds: number, nameKey: string): void {
    if (this.first(`p ${nameKey} ${recordUlidOctets(record)}`, now, ttlSeconds)) this.inner.prime(now, record, ttlSeconds, nameKey);
  }

  absent(now: Millis, nameKey: string, addresses: Ipv6Octets[], ttlSeconds: number): void {
    if (this.first(`a ${nameKey}`, now, ttlSeconds)) this.inner.absent(now, nameKey, addresses, ttlSeconds);
  }

  /** After `shim6 flush`: every peer is primed (or reported absent) again on its next lookup. */
  clear(): void { this.until.clear(); }

  private first(key: string, now: Millis, ttlSeconds: number): boolean {
    const until = this.until.get(key);
    if (until !== undefined && until > now) return false;
    this.until.set(key, now + ttlSeconds * 1000);
    return true;
  }
}

/** One worker thread and what it owes the main thread. */
class Shard {
  worker: Worker | undefined;
  /** request id (status, flush) → its resolve; undefined when the thread did not answer. */
  readonly pending = new Map<number, (reply: unknown) => void>();
}

export class ResolverGroup {
  private readonly shards: Shard[] = [];
  private closing = false;
  private nextId = 1;
  private restarts = 0;
  private readonly log: Logger;

  /**
   * `deps.sink` as the threads share it: with several threads, `once` in front
   * (kept to be cleared by flush()).
   */
  private constructor(readonly main: Resolver, private readonly config: ResolverConfig, private readonly deps: ResolverDeps, private readonly logOnly: boolean,
    private readonly once?: OncePerLifetime) {
    this.log = deps.log.child('resolver');
  }

  /** Start the main thread's resolver, then the worker threads on the ports it bound; rejects (closing all) if any fails. */
  static async start(config: ResolverConfig, deps: ResolverDeps): Promise<ResolverGroup> {
    const n = config.workers;
    const logOnly = deps.sink instanceof LoggingSink;
    if (n === 1) return new ResolverGroup(await Resolver.start(config, deps), config, deps, logOnly);
    const share = shardConfig(config, n);
    const once = new OncePerLifetime(deps.sink, config.capability.maxEntries);
    const shared: ResolverDeps = { ...deps, sink: once };
    const main = await Resolver.start(share, shared, { shards: n, tcp: true });
    const group = new ResolverGroup(main, { ...share, listen: [...main.addresses] }, shared, logOnly, once);
    try {
      await Promise.all(Array.from({ length: n - 1 }, (_, i) => group.spawn(i + 1)));
    } catch (err) {
      await group.close();
      throw err;
    }
    group.log.info('resolver threads', { workers: n, listen: main.addresses.map((a) => hostPort(a.host, a.port)) });
    return group;
  }

  get addresses(): readonly ListenAddr[] { return this.main.addresses; }
  get udp(): UdpBackend { return this.main.udp; }

  /** Start (or restart) worker thread `index`; resolves once its sockets are bound. */
  private spawn(index: number): Promise<void> {
    const shard = this.shards[index - 1] ??= new Shard();
    const init: WorkerInit = {
      shard: index, shards: this.config.workers, config: this.config, logLevel: this.deps.log.level, logFormat: this.deps.log.format,
      logOnly: this.logOnly,
    };
    const w = new Worker(new URL('./worker-boot.mjs', import.meta.url), { workerData: init });
    shard.worker = w;
    return new Promise<void>((resolve, reject) => {
      let started = false;
      w.on('message', (m: FromWorker) => {
        if (m.t === 'ready') { started = true; resolve(); } else if (m.t === 'failed') {
          reject(errorFromData(m.error)); // the class survives the thread boundary
        } else this.fromWorker(shard, m);
      });
      w.on('error', (err) => {
        this.log.error('resolver thread failed', { shard: index, error: err.message });
        if (!started) reject(err);
      });
      w.on('exit', (code) => {
        if (shard.worker === w) shard.worker = undefined;
        for (const done of shard.pending.values()) done(undefined);
        shard.pending.clear();
        if (!started) { reject(new Error(`resolver thread ${index} exited (code ${code}) before it was ready`)); return; }
        if (this.closing) return;
        this.log.error('resolver thread exited, restarting it', { shard: index, code, afterMs: RESTART_MS });
        this.restarts++;
        setTimeout(() => {
          if (this.closing) return;
          this.spawn(index).catch((err: unknown) => this.log.error('resolver thread restart failed', { shard: index, error: (err as Error).message }));
        }, RESTART_MS).unref();
      });
    });
  }

  private fromWorker(shard: Shard, m: FromWorker): void {
    const now: Millis = (this.deps.clock ?? bootClock)();
    if (m.t === 'sink') {
      for (const c of m.calls) {
        if (c.op === 'prime') this.deps.sink.prime(now, c.record, c.ttl, c.nameKey);
        else this.deps.sink.absent(now, c.nameKey, c.addresses, c.ttl);
      }
    } else if (m.t === 'status' || m.t === 'flushed') {
      const done = shard.pending.get(m.id);
      shard.pending.delete(m.id);
      done?.(m.t === 'status' ? m.status : m.flushed);
    }
  }

  /** Ask one worker thread; undefined if it is not running or does not answer in time. */
  private ask<T>(shard: Shard, t: 'status' | 'flush'): Promise<T | undefined> {
    const w = shard.worker;
    if (!w) return Promise.resolve(undefined);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => { shard.pending.delete(id); resolve(undefined); }, WORKER_REPLY_MS);
      shard.pending.set(id, (reply) => { clearTimeout(timer); resolve(reply as T | undefined); });
      w.postMessage({ t, id } satisfies ToWorker);
    });
  }

  /** The main thread's status, with every worker thread's added in (a thread that does not answer is left out). */
  async status(): Promise<ResolverStatus> {
    const own = this.main.status();
    if (this.shards.length === 0) return own;
    const others = await Promise.all(this.shards.map((s) => this.ask<ResolverStatus>(s, 'status')));
    return mergeStatus(own, others, this.restarts);
  }

  /**
   * Empty every thread's answer and capability caches (`shim6 flush`), and the
   * threads' shared once-per-lifetime filter, so peers are primed again.
   * `threads`: how many threads answered (a thread that did not is not counted).
   */
  async flush(): Promise<FlushResult & { threads: number }> {
    const total = { ...this.main.flush(), threads: 1 };
    this.once?.clear();
    for (const r of await Promise.all(this.shards.map((s) => this.ask<FlushResult>(s, 'flush')))) {
      if (!r) continue;
      total.answers += r.answers;
      total.capability += r.capability;
      total.threads++;
    }
    return total;
  }

  /**
   * A reload's `log.level`: the main thread's loggers share `deps.log`'s level (Logger.setLevel),
   * the worker threads are told; a thread started later takes the level it is given then.
   */
  setLogLevel(level: LogLevel): void {
    this.deps.log.setLevel(level);
    for (const s of this.shards) s.worker?.postMessage({ t: 'log-level', level } satisfies ToWorker);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.shards.map((s) => closeWorker(s.worker)));
    await this.main.close();
  }
}

/** Ask a worker to close its sockets and end; terminate it if it does not in time. */
async function closeWorker(w: Worker | undefined): Promise<void> {
  if (!w) return;
  const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
  w.postMessage({ t: 'close' } satisfies ToWorker);
  const timer = setTimeout(() => void w.terminate(), WORKER_REPLY_MS);
  await exited;
  clearTimeout(timer);
}

/** Several threads' status as one: counters and cache use added up, capability entries listed together. */
function mergeStatus(own: ResolverStatus, others: ReadonlyArray<ResolverStatus | undefined>, restarts: number): ResolverStatus {
  const counters = { ...own.counters };
  const cache = { ...own.cache };
  const upstreams = own.upstreams.map((u) => ({ ...u }));
  const positive = [...own.capability.positive];
  const negative = [...own.capability.negative];
  const queries = [own.counters.queries];
  for (const s of others) {
    queries.push(s?.counters.queries ?? 0);
    if (!s) continue;
    for (const k of Object.keys(counters) as Array<keyof ResolverCounters>) counters[k] += s.counters[k];
    cache.entries += s.cache.entries; cache.bytes += s.cache.bytes; cache.maxEntries += s.cache.maxEntries; cache.maxBytes += s.cache.maxBytes; cache.inflight += s.cache.inflight;
    s.upstreams.forEach((u, i) => {
      const m = upstreams[i];
      if (!m) return;
      m.sent += u.sent; m.answered += u.answered; m.timeouts += u.timeouts;
      m.rttSumMs += u.rttSumMs;
      u.rttBuckets.forEach((n, b) => { m.rttBuckets[b] = (m.rttBuckets[b] ?? 0) + n; });
      m.failures = Math.max(m.failures, u.failures);
      m.down ||= u.down;
      m.caseFallback ||= u.caseFallback;
    });
    positive.push(...s.capability.positive);
    negative.push(...s.capability.negative);
  }
  return { ...own, counters, cache, upstreams, capability: { ...own.capability, positive, negative }, workers: { count: others.length + 1, queries, restarts } };
}

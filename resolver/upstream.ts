/**
 * Talking to upstream servers: a pool of UDP sockets on random ports, random
 * query IDs, answers accepted only when ID, question and source match (RFC 5452
 * §9.1), TCP fallback when the answer is truncated (RFC 7766 §5), per-attempt
 * timeouts inside a per-query deadline, and health tracking with failover.
 *
 * This is a driver: it owns sockets and timers and reads the clock it is given.
 * It must not know about caching, listeners or capability records.
 */
import net from 'node:net';
import { randomFillSync } from 'node:crypto';
import { Shim6Error } from '../shim/errors.ts';
import { tcpExchange, type DnsTcpError } from '../shim/dns-tcp.ts';
import type { Millis } from '../shim/time.ts';
import type { Logger } from '../shim/log.ts';
import { scanResponse, type ScannedResponse } from './answer-scan.ts';
import { buildQuery, buildQueryFromQuestion, pooledCopy, type QueryOptions } from './answer-build.ts';
import { Rcode } from './message.ts';
import type { ResolverCounters } from './counters.ts';
import { Endpoint, openDnsUdpSync, ReceiveArea, type DnsUdpSocket, type UdpBackend } from './udp-socket.ts';

/** Receive buffer per upstream socket: answers to a burst must not be dropped while the loop is busy. */
const UPSTREAM_SOCKET_BUFFER = 1024 * 1024;
/**
 * Receive slots shared by all upstream sockets of a pool (native backend): a
 * slot takes the largest UDP datagram, so no answer is cut whatever its size.
 */
const UPSTREAM_SLOT = 65536;
const UPSTREAM_BATCH = 32;

/** Rounds over the upstream list after the first, and the least time left that is worth one. */
const MAX_ROUNDS = 2;
const MIN_RETRY_MS = 50;

export type UpstreamErrorCode = 'ETIMEOUT' | 'EUPSTREAM' | 'ETCP' | 'EOVERLOAD';

/** Resolution through upstreams failed; `code` says how. */
export class UpstreamError extends Shim6Error {
  readonly code: UpstreamErrorCode;
  constructor(code: UpstreamErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface UpstreamAddr { host: string; port: number }

export interface UpstreamOptions {
  /**
   * Longest wait for one try at one upstream (ms), and the wait before the
   * upstream's round trip is known. Once it is, a try waits its RFC 6298 RTO
   * (smoothed RTT + 4 × RTT variation), at least `minAttemptTimeoutMs`,
   * doubling for each try of the question that timed out.
   */
  attemptTimeoutMs: number;
  /** Shortest wait for one try (ms): a lost datagram on loopback costs this, not 800 ms. */
  minAttemptTimeoutMs: number;
  /** Consecutive failures before an upstream is held down. */
  failThreshold: number;
  /** How long a failed upstream is skipped (ms), doubling up to 8× while it keeps failing. */
  holdDownMs: number;
  /** UDP sockets per address family; each query picks one at random. */
  socketCount: number;
  /** Queries per socket before it is replaced by one on a fresh random port. */
  socketUses: number;
  /** Outstanding upstream queries beyond which new ones fail at once (flood bound). */
  maxInflight: number;
}

export const DEFAULT_UPSTREAM_OPTIONS: UpstreamOptions = {
  attemptTimeoutMs: 800, minAttemptTimeoutMs: 50, failThreshold: 2, holdDownMs: 5000, socketCount: 16, socketUses: 512, maxInflight: 2048,
};

export interface UpstreamResult { bytes: Uint8Array; scan: ScannedResponse; upstream: UpstreamAddr; tcp: boolean }

/** Called exactly once when a question is resolved (`r`) or has failed (`err`). */
export interface QueryListener {
  upstreamDone(err: UpstreamError | undefined, r: UpstreamResult | undefined): void;
  /**
   * True when the listener is done with `r.bytes` once upstreamDone returns:
   * a UDP answer is then handed over as the socket's receive slot, not copied.
   */
  readonly bytesTransient?: boolean;
}

/**
 * One question on its way through the upstreams: a plain object in the pending
 * table (keyed by query ID per socket) instead of a chain of promises and
 * closures per attempt. Only the rare TCP fallback uses a promise.
 */
class QueryJob {
  i = 0;
  /** Times the whole upstream list was gone through again. */
  rounds = 0;
  lastBad: UpstreamResult | undefined;
  up!: UpstreamAddr;
  /** Where this try went: an answer must come from there (RFC 5452). */
  ep!: Endpoint;
  port: Port | undefined;
  id = 0;
  attemptStart = 0;
  attemptMs = 0;
  /** Tries of this question that timed out (each doubles the next one's wait). */
  timeouts = 0;
  timer: NodeJS.Timeout | undefined;
  constructor(readonly nameKey: string, readonly qtype: number, readonly qclass: number, readonly qopts: QueryOptions,
    readonly deadline: number, readonly order: UpstreamAddr[], public bytes: Uint8Array | undefined, readonly listener: QueryListener) {}
}

interface Port { sock: DnsUdpSocket; pending: Map<number, QueryJob>; uses: number }

interface Health { failures: number; downUntil: number; sent: number; answered: number; timeouts: number; rttMs: number; rttVarMs: number; family: 'udp4' | 'udp6'; ep: Endpoint }

/** One upstream's health as `shim6 status` shows it. */
export type UpstreamStatus = UpstreamAddr & Omit<Health, 'downUntil' | 'family' | 'ep'> & { down: boolean };

/** Random 16-bit numbers from the CSPRNG, drawn in batches. */
class RandomWords {
  private buf = new Uint16Array(1024);
  private i = this.buf.length;
  next(): number {
    if (this.i >= this.buf.length) { randomFillSync(this.buf); this.i = 0; }
    return this.buf[this.i++]!;
  }
}

export class UpstreamPool {
  readonly upstreams: readonly UpstreamAddr[];
  private readonly health = new Map<UpstreamAddr, Health>();
  private readonly ports: { udp4: Port[]; udp6: Port[] } = { udp4: [], udp6: [] };
  private readonly rnd = new RandomWords();
  private inflight = 0;
  private closed = false;
  /** The socket the last question went out on, and its name (see port()). */
  private lastName = '';
  private lastFamily = '';
  private lastIdx = 0;
  /** One receive area for every upstream socket (native), made on first use. */
  private area: ReceiveArea | undefined;

  /** `udp`: the socket backend (udp-socket.ts); 'native' only once the addon is loaded. */
  constructor(upstreams: readonly UpstreamAddr[], private readonly opts: UpstreamOptions, private readonly clock: () => Millis,
    private readonly log: Logger, private readonly counters: ResolverCounters, private readonly udp: UdpBackend = 'dgram') {
    this.upstreams = upstreams;
    for (const u of upstreams) {
      this.health.set(u, { failures: 0, downUntil: 0, sent: 0, answered: 0, timeouts: 0, rttMs: 0, rttVarMs: 0, family: net.isIPv6(u.host) ? 'udp6' : 'udp4', ep: Endpoint.of(u.host, u.port) });
    }
  }

  /**
   * Resolve one question, trying upstreams in order of health for at most
   * `timeoutMs`: `listener.upstreamDone` is called exactly once.
   * `question`, when given, is the question section (name, type, class) as the
   * client sent it, copied into the upstream query as it is.
   */
  start(nameKey: string, qtype: number, qclass: number, qopts: QueryOptions, timeoutMs: number, listener: QueryListener, question?: Uint8Array): void {
    if (this.inflight >= this.opts.maxInflight) {
      listener.upstreamDone(new UpstreamError('EOVERLOAD', 'too many outstanding upstream queries'), undefined);
      return;
    }
    this.inflight++;
    const bytes = question ? buildQueryFromQuestion(question, qopts) : undefined;
    this.next(new QueryJob(nameKey, qtype, qclass, qopts, this.clock() + timeoutMs, this.order(), bytes, listener));
  }

  /** Healthy upstreams in configured order, then held-down ones, soonest back first. */
  private order(): UpstreamAddr[] {
    const now = this.clock();
    if (this.upstreams.length === 1) return this.upstreams as UpstreamAddr[];
    const up = this.upstreams.filter((u) => this.health.get(u)!.downUntil <= now);
    const down = this.upstreams.filter((u) => this.health.get(u)!.downUntil > now)
      .sort((a, b) => this.health.get(a)!.downUntil - this.health.get(b)!.downUntil);
    return [...up, ...down];
  }

  /**
   * The next attempt, or the end: the last bad answer (SERVFAIL…) if any, else
   * ETIMEOUT. When every upstream was tried and none answered (a lost datagram,
   * or one upstream only), they are tried again while the deadline allows.
   */
  private next(job: QueryJob): void {
    const remaining = job.deadline - this.clock();
    if (job.i >= job.order.length && !job.lastBad && job.rounds < MAX_ROUNDS && remaining >= MIN_RETRY_MS) {
      job.i = 0;
      job.rounds++;
    }
    if (this.closed || job.i >= job.order.length || remaining <= 0) {
      this.inflight--;
      if (job.lastBad) job.listener.upstreamDone(undefined, job.lastBad);
      else job.listener.upstreamDone(new UpstreamError('ETIMEOUT', 'no upstream answered in time'), undefined);
      return;
    }
    const up = job.order[job.i++]!;
    job.up = up;
    job.attemptStart = this.clock();
    const h = this.health.get(up)!;
    h.sent++;
    job.attemptMs = Math.min(this.rto(h, job), remaining);
    this.sendUdp(job, job.attemptMs);
  }

  /** This try's wait: the upstream's RTO (RFC 6298 §2) once its round trip is known, backed off per timeout. */
  private rto(h: Health, job: QueryJob): number {
    const max = this.opts.attemptTimeoutMs;
    if (h.rttMs === 0) return max;
    const base = Math.max(this.opts.minAttemptTimeoutMs, h.rttMs + 4 * h.rttVarMs);
    return Math.min(max, base * 2 ** job.timeouts);
  }

  private sendUdp(job: QueryJob, timeoutMs: number): void {
    const up = job.up;
    const h = this.health.get(up)!;
    const port = this.port(h.family, job.nameKey);
    let id = this.rnd.next();
    for (let i = 0; port.pending.has(id) && i < 16; i++) id = this.rnd.next();
    if (port.pending.has(id)) { this.attemptFailed(job, new UpstreamError('EOVERLOAD', 'no free query ID on socket')); return; }
    // A retry gets its own bytes: the first attempt's may still sit in the socket's send queue.
    let bytes = job.bytes;
    if (!bytes || job.i > 1 || job.rounds > 0) bytes = job.bytes = bytes ? new Uint8Array(bytes) : buildQuery(0, job.nameKey, job.qtype, job.qclass, job.qopts);
    bytes[0] = id >> 8;
    bytes[1] = id & 0xff;
    job.port = port;
    job.ep = h.ep;
    job.id = id;
    port.pending.set(id, job);
    job.timer = setTimeout(this.onAttemptTimeout, timeoutMs, job, timeoutMs);
    // A failed send is a lost datagram (dgram also logs it): the attempt times out.
    port.sock.send(bytes, h.ep);
  }

  /** Bound once: per-attempt timers pass the job as an argument instead of capturing it. */
  private readonly onAttemptTimeout = (job: QueryJob, timeoutMs: number): void => {
    const port = job.port!;
    if (port.pending.get(job.id) !== job) return;
    port.pending.delete(job.id);
    if (port.uses === Infinity && port.pending.size === 0) port.sock.close();
    this.attemptFailed(job, new UpstreamError('ETIMEOUT', `no answer from ${job.up.host}#${job.up.port} in ${timeoutMs} ms`));
  };

  /** A matching UDP answer: TC → the same question over TCP, else done with this attempt. */
  private answered(job: QueryJob, bytes: Uint8Array, scan: ScannedResponse): void {
    if (!(scan.flags & 0x0200)) { this.attemptDone(job, bytes, scan, false); return; }
    this.counters.upstreamTcpFallbacks++;
    // TCP needs a handshake first: the full attempt time, within the question's deadline.
    const left = Math.max(1, Math.min(this.opts.attemptTimeoutMs, job.deadline - this.clock()));
    this.tcpQuery(job.up, job.nameKey, job.qtype, job.qclass, job.qopts, left)
      .then((r) => this.attemptDone(job, r.bytes, r.scan, true), (err: unknown) => this.attemptFailed(job, err as Error));
  }

  private attemptDone(job: QueryJob, bytes: Uint8Array, scan: ScannedResponse, tcp: boolean): void {
    const h = this.health.get(job.up)!;
    const rtt = this.clock() - job.attemptStart;
    h.answered++;
    h.failures = 0;
    h.downUntil = 0;
    if (!tcp) {
      // RFC 6298 §2: SRTT and RTTVAR from UDP round trips (a TCP exchange includes a handshake).
      if (h.rttMs === 0) { h.rttMs = rtt; h.rttVarMs = rtt / 2; } else { h.rttVarMs = 0.75 * h.rttVarMs + 0.25 * Math.abs(h.rttMs - rtt); h.rttMs = 0.875 * h.rttMs + 0.125 * rtt; }
    }
    const r: UpstreamResult = { bytes, scan, upstream: job.up, tcp };
    // RFC 1035 §7.3 / RFC 8499: SERVFAIL, REFUSED, NOTIMP say "ask someone else".
    if (scan.rcode === Rcode.SERVFAIL || scan.rcode === Rcode.REFUSED || scan.rcode === Rcode.NOTIMP) {
      this.failed(job.up, false);
      // Kept past this call: a receive-slot view must become a copy.
      job.lastBad = job.listener.bytesTransient && !tcp ? { ...r, bytes: pooledCopy(bytes) } : r;
      this.next(job);
      return;
    }
    this.inflight--;
    job.listener.upstreamDone(undefined, r);
  }

  private attemptFailed(job: QueryJob, err: Error): void {
    const up = job.up;
    if (err instanceof UpstreamError && err.code === 'ETIMEOUT') { this.health.get(up)!.timeouts++; this.counters.upstreamTimeouts++; job.timeouts++; }
    this.log.debug('upstream attempt failed', { upstream: `${up.host}#${up.port}`, error: err.message });
    this.failed(up, true);
    this.next(job);
  }

  private failed(up: UpstreamAddr, hard: boolean): void {
    const h = this.health.get(up)!;
    h.failures++;
    if (hard && h.failures >= this.opts.failThreshold) {
      const factor = Math.min(8, 2 ** (h.failures - this.opts.failThreshold));
      h.downUntil = this.clock() + this.opts.holdDownMs * factor;
      if (h.failures === this.opts.failThreshold) this.log.warn('upstream held down', { upstream: `${up.host}#${up.port}`, ms: this.opts.holdDownMs });
    }
  }

  /**
   * A random socket of the pool, except that questions for one name sent back
   * to back (the capability stage's TYPE65300 and the client's AAAA) share one:
   * they leave in one send and their answers tend to come back in one read.
   */
  private port(family: 'udp4' | 'udp6', nameKey: string): Port {
    const list = this.ports[family];
    const idx = nameKey === this.lastName && this.lastFamily === family ? this.lastIdx : this.rnd.next() % this.opts.socketCount;
    this.lastName = nameKey;
    this.lastFamily = family;
    this.lastIdx = idx;
    let p = list[idx];
    if (!p || p.uses >= this.opts.socketUses) {
      if (p) this.retire(p);
      p = this.openPort(family);
      list[idx] = p;
    }
    p.uses++;
    return p;
  }

  private openPort(family: 'udp4' | 'udp6'): Port {
    // The kernel picks a random ephemeral port (RFC 5452 §9.2).
    this.area ??= this.udp === 'native' ? new ReceiveArea(UPSTREAM_SLOT, UPSTREAM_BATCH) : undefined;
    const sock = openDnsUdpSync({
      host: family === 'udp6' ? '::' : '0.0.0.0', port: 0, bufferSize: UPSTREAM_SOCKET_BUFFER, maxDatagram: UPSTREAM_SLOT, batch: UPSTREAM_BATCH,
      dualStack: false, ...(this.area ? { shared: this.area } : {}),
      onError: (err) => this.log.warn('upstream socket error', { error: err.message }),
    }, this.udp);
    const port: Port = { sock, pending: new Map(), uses: 0 };
    sock.onDatagram((msg, from) => this.onUdpMessage(port, msg, from));
    sock.unref();
    return port;
  }

  /** A replaced socket lingers until its last pending query settles. */
  private retire(p: Port): void {
    p.uses = Infinity;
    if (p.pending.size === 0) p.sock.close();
  }

  /** `msg` is the socket's receive slot, valid during this call only. */
  private onUdpMessage(port: Port, msg: Uint8Array, from: Endpoint): void {
    if (msg.length < 12) { this.counters.upstreamMalformed++; return; }
    const p = port.pending.get((msg[0]! << 8) | msg[1]!);
    if (!p || !from.equals(p.ep)) { this.counters.upstreamMismatched++; return; }
    let scan: ScannedResponse;
    try {
      scan = scanResponse(msg);
    } catch {
      this.counters.upstreamMalformed++;
      return; // keep waiting: a forged or broken datagram must not end the query (RFC 5452 §9.1)
    }
    if (scan.qnameKey !== p.nameKey || scan.qtype !== p.qtype || scan.qclass !== p.qclass) { this.counters.upstreamMismatched++; return; }
    port.pending.delete(p.id);
    clearTimeout(p.timer);
    if (port.uses === Infinity && port.pending.size === 0) port.sock.close();
    // An answer that outlives this call (until sent to waiting clients; the cache keeps a string of
    // its own) gets a copy once it is known to be ours: pooled, no ArrayBuffer per answer.
    this.answered(p, p.listener.bytesTransient ? msg : pooledCopy(msg), scan);
  }

  /** One query over a fresh TCP connection (shim/dns-tcp.ts); the answer must match ID and question. */
  private async tcpQuery(up: UpstreamAddr, nameKey: string, qtype: number, qclass: number, qopts: QueryOptions, timeoutMs: number): Promise<{ bytes: Uint8Array; scan: ScannedResponse }> {
    const id = this.rnd.next();
    const q = buildQuery(id, nameKey, qtype, qclass, { ...qopts, udpSize: 65535 });
    let bytes: Uint8Array;
    try {
      bytes = await tcpExchange(up.host, up.port, q, timeoutMs);
    } catch (e) {
      const err = e as DnsTcpError;
      throw new UpstreamError(err.code === 'ETIMEOUT' ? 'ETIMEOUT' : 'ETCP', `upstream ${err.message}`);
    }
    let scan: ScannedResponse;
    try {
      scan = scanResponse(bytes);
    } catch {
      this.counters.upstreamMalformed++;
      throw new UpstreamError('ETCP', 'malformed TCP answer');
    }
    if (scan.id !== id || scan.qnameKey !== nameKey || scan.qtype !== qtype || scan.qclass !== qclass) {
      this.counters.upstreamMismatched++;
      throw new UpstreamError('ETCP', 'TCP answer does not match the question');
    }
    return { bytes, scan };
  }

  /** Per-upstream health for `shim6 status`. */
  status(): UpstreamStatus[] {
    const now = this.clock();
    return this.upstreams.map((u) => {
      const { downUntil, family: _family, ep: _ep, ...h } = this.health.get(u)!;
      return { ...u, ...h, rttMs: Math.round(h.rttMs * 100) / 100, rttVarMs: Math.round(h.rttVarMs * 100) / 100, down: downUntil > now };
    });
  }

  close(): void {
    this.closed = true;
    for (const list of [this.ports.udp4, this.ports.udp6]) {
      for (const p of list) {
        if (!p) continue; // the pool array is sparse until every slot was used
        for (const job of p.pending.values()) {
          clearTimeout(job.timer);
          this.inflight--;
          job.listener.upstreamDone(new UpstreamError('EUPSTREAM', 'resolver is closing'), undefined);
        }
        p.pending.clear();
        p.sock.close();
      }
      list.length = 0;
    }
  }
}

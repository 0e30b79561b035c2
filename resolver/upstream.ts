/**
 * Talking to upstream servers: a pool of UDP sockets on random ports, random
 * query IDs and 0x20 letter case, answers accepted only when ID, question and
 * source match (RFC 5452 §9.1), TCP fallback when the answer is truncated
 * (RFC 7766 §5), per-attempt retransmission inside a per-query deadline (every
 * try stays answerable until then), and health tracking with failover.
 *
 * This is a driver: it owns sockets and timers and reads the clock it is given.
 * It must not know about caching, listeners or capability records.
 */
import net from 'node:net';
import { tcpExchange, type DnsTcpError } from '../shim/dns-tcp.ts';
import type { Millis } from '../shim/time.ts';
import { hostPort, type Logger } from '../shim/log.ts';
import { questionNameIs, scanResponse, type ScannedResponse } from './answer-scan.ts';
import { buildQuery, buildQueryFromQuestion, pooledCopy, type QueryOptions } from './answer-build.ts';
import { Flag, Rcode } from './message.ts';
import type { ResolverCounters } from './counters.ts';
import { Endpoint, openDnsUdpSync, ReceiveArea, type UdpBackend } from './udp-socket.ts';
import { CASE_FALLBACK_AFTER, CASE_FALLBACK_MS, RandomWords, randomizeCase, sameOctets } from './upstream-case.ts';
import { Attempt, countRtt, QueryJob, RTT_BUCKETS_MS, TCP, TRYING, UpstreamError, WAITING, type Health, type Port, type QueryListener, type UpstreamAddr, type UpstreamResult } from './upstream-job.ts';

export { UpstreamError, type QueryListener, type UpstreamAddr, type UpstreamErrorCode, type UpstreamResult } from './upstream-job.ts';

/** Receive buffer per upstream socket: answers to a burst must not be dropped while the loop is busy. */
const UPSTREAM_SOCKET_BUFFER = 1024 * 1024;
/**
 * Receive slots shared by all upstream sockets of a pool (native backend): a
 * slot takes the largest UDP datagram, so no answer is cut whatever its size.
 */
const UPSTREAM_SLOT = 65536;
const UPSTREAM_BATCH = 32;

/**
 * The retry deadlines of every open try, in one queue with one timer: a
 * setTimeout and a clearTimeout per try (two per miss with capability pickup)
 * cost a Timeout object and list updates each. A try leaves the queue when it
 * is closed (answered, or its question settled); the timer fires at the earliest
 * deadline left and hands over every try that is due, in deadline order.
 * Holes left by closed tries are dropped when it fires.
 */
class TryTimers {
  private items: Array<Attempt | undefined> = [];
  private timeout: NodeJS.Timeout | undefined;
  private timeoutAt = Infinity;

  constructor(private readonly clock: () => number, private readonly expire: (a: Attempt) => void) {}

  add(a: Attempt): void {
    a.slot = this.items.length;
    this.items.push(a);
    if (a.deadline < this.timeoutAt) this.arm(a.deadline);
  }

  remove(a: Attempt): void {
    if (a.slot < 0) return;
    this.items[a.slot] = undefined;
    a.slot = -1;
  }

  clear(): void {
    if (this.timeout) clearTimeout(this.timeout);
    this.timeout = undefined;
    this.timeoutAt = Infinity;
    for (const a of this.items) if (a) a.slot = -1;
    this.items = [];
  }

  private arm(at: number): void {
    if (this.timeout) clearTimeout(this.timeout);
    this.timeoutAt = at;
    // Whole ms up: Node's timers count whole ms, and an early wake-up would find nothing due.
    this.timeout = setTimeout(this.sweep, Math.max(0, Math.ceil(at - this.clock())));
  }

  /** Bound once (no closure per wake-up). */
  private readonly sweep = (): void => {
    this.timeout = undefined;
    this.timeoutAt = Infinity;
    const now = this.clock();
    const old = this.items;
    this.items = [];
    let due: Attempt[] | undefined;
    let next = Infinity;
    for (const a of old) {
      if (!a) continue;
      if (a.deadline <= now) { a.slot = -1; (due ??= []).push(a); continue; }
      a.slot = this.items.length;
      this.items.push(a);
      if (a.deadline < next) next = a.deadline;
    }
    if (next < Infinity) this.arm(next);
    if (!due) return;
    if (due.length > 1) due.sort((x, y) => x.deadline - y.deadline);
    for (const a of due) this.expire(a);
  };
}

/** Rounds over the upstream list after the first, and the least time left that is worth one. */
const MAX_ROUNDS = 2;
const MIN_RETRY_MS = 50;

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
  /** UDP sockets per address family; the questions of one event-loop turn leave on one of them, picked at random. */
  socketCount: number;
  /** Queries per socket before it is replaced by one on a fresh random port. */
  socketUses: number;
  /** Outstanding upstream queries beyond which new ones fail at once (flood bound). */
  maxInflight: number;
  /**
   * 0x20: ask with a random letter case in the question name and drop answers
   * that do not echo it (upstream-case.ts); an upstream that does not preserve
   * case is asked without it for a while.
   */
  randomizeCase: boolean;
}

export const DEFAULT_UPSTREAM_OPTIONS: UpstreamOptions = {
  attemptTimeoutMs: 800, minAttemptTimeoutMs: 50, failThreshold: 2, holdDownMs: 5000, socketCount: 16, socketUses: 512, maxInflight: 2048, randomizeCase: true,
};

/** One upstream's health as `shim6 status` shows it. */
export type UpstreamStatus = UpstreamAddr & Omit<Health, 'downUntil' | 'capsOffUntil' | 'family' | 'ep'> & { down: boolean; caseFallback: boolean };

export class UpstreamPool {
  readonly upstreams: readonly UpstreamAddr[];
  private readonly health = new Map<UpstreamAddr, Health>();
  private readonly ports: { udp4: Port[]; udp6: Port[] } = { udp4: [], udp6: [] };
  private readonly rnd = new RandomWords();
  private inflight = 0;
  private closed = false;
  /** The socket picked last per family (see port()). */
  private turn4: Port | undefined;
  private turn6: Port | undefined;
  /** One receive area for every upstream socket (native), made on first use. */
  private area: ReceiveArea | undefined;
  /** Replaced sockets that still have tries pending (closed with the last one). */
  private readonly retired = new Set<Port>();
  /** The open tries' retry deadlines. */
  private readonly timers: TryTimers;

  /** `udp`: the socket backend (udp-socket.ts); 'native' only once the addon is loaded. */
  constructor(upstreams: readonly UpstreamAddr[], private readonly opts: UpstreamOptions, private readonly clock: () => Millis,
    private readonly log: Logger, private readonly counters: ResolverCounters, private readonly udp: UdpBackend = 'dgram') {
    this.upstreams = upstreams;
    this.timers = new TryTimers(clock, this.onAttemptTimeout);
    for (const u of upstreams) {
      this.health.set(u, {
        failures: 0, downUntil: 0, sent: 0, answered: 0, timeouts: 0, rttMs: 0, rttVarMs: 0, caseMismatches: 0, capsOffUntil: 0,
        rttBuckets: new Array<number>(RTT_BUCKETS_MS.length + 1).fill(0), rttSumMs: 0,
        family: net.isIPv6(u.host) ? 'udp6' : 'udp4', ep: Endpoint.of(u.host, u.port),
      });
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
    const bytes = question ? buildQueryFromQuestion(question, qopts) : buildQuery(0, nameKey, qtype, qclass, qopts);
    // One clock read for the question's deadline and its first try (two questions per miss with pickup).
    const now = this.clock();
    this.next(new QueryJob(nameKey, qtype, qclass, qopts, now + timeoutMs, this.order(), bytes, listener), now);
  }

  /** Healthy upstreams in configured order, then held-down ones, soonest back first. */
  private order(): UpstreamAddr[] {
    if (this.upstreams.length === 1) return this.upstreams as UpstreamAddr[];
    const now = this.clock();
    const up = this.upstreams.filter((u) => this.health.get(u)!.downUntil <= now);
    const down = this.upstreams.filter((u) => this.health.get(u)!.downUntil > now)
      .sort((a, b) => this.health.get(a)!.downUntil - this.health.get(b)!.downUntil);
    return [...up, ...down];
  }

  /**
   * The next try, or waiting, or the end. When every upstream was tried and none
   * answered (a lost datagram, or one upstream only), they are tried again while
   * the deadline allows. With nothing left to send, earlier tries may still be
   * answered until the deadline; then the last bad answer (SERVFAIL…) if any, else ETIMEOUT.
   */
  private next(job: QueryJob, now: number = this.clock()): void {
    const remaining = job.deadline - now;
    if (job.i >= job.order.length && !job.lastBad && job.rounds < MAX_ROUNDS && remaining >= MIN_RETRY_MS) {
      job.i = 0;
      job.rounds++;
    }
    if (this.closed || remaining <= 0 || (job.i >= job.order.length && job.open === 0)) { this.giveUp(job); return; }
    if (job.i >= job.order.length) {
      job.state = WAITING;
      job.timer = setTimeout(this.onDeadline, remaining, job);
      return;
    }
    this.sendUdp(job, job.order[job.i++]!, remaining, true, now);
  }

  /** This try's wait: the upstream's RTO (RFC 6298 §2) once its round trip is known, backed off per timeout. */
  private rto(h: Health, job: QueryJob): number {
    const max = this.opts.attemptTimeoutMs;
    if (h.rttMs === 0) return max;
    const base = Math.max(this.opts.minAttemptTimeoutMs, h.rttMs + 4 * h.rttVarMs);
    return Math.min(max, base * 2 ** job.timeouts);
  }

  /** One try to `up` on a random socket with a fresh ID and, when `caps` and the upstream allow, a fresh letter case. */
  private sendUdp(job: QueryJob, up: UpstreamAddr, remaining: number, caps: boolean, now: number): void {
    const h = this.health.get(up)!;
    h.sent++;
    const port = this.port(h.family);
    let id = this.rnd.next();
    for (let i = 0; port.pending.has(id) && i < 16; i++) id = this.rnd.next();
    if (port.pending.has(id)) { this.attemptFailed(job, up, new UpstreamError('EOVERLOAD', 'no free query ID on socket')); return; }
    // A retry gets its own bytes: the first try's may still sit in the socket's send queue, and its case must stay checkable.
    const bytes = job.last ? new Uint8Array(job.bytes) : job.bytes;
    bytes[0] = id >> 8;
    bytes[1] = id & 0xff;
    // The name: offset 12 up to its root label (the nameKey has the same wire length).
    const useCaps = caps && this.opts.randomizeCase && h.capsOffUntil <= now && randomizeCase(bytes, 12, 11 + job.nameKey.length, this.rnd) > 0;
    const a = new Attempt(job, port, id, up, h, now, bytes, useCaps, job.last, Math.min(this.rto(h, job), remaining));
    job.last = a;
    job.open++;
    job.state = TRYING;
    port.pending.set(id, a);
    this.timers.add(a);
    // A failed send is a lost datagram (dgram also logs it): the attempt times out.
    port.sock.send(bytes, h.ep);
  }

  /** A try's wait is over (bound once, for the retry queue). It stays open for a late answer; only the latest try moves on. */
  private readonly onAttemptTimeout = (a: Attempt): void => {
    const job = a.job;
    if (job.done || job.last !== a || job.state !== TRYING) return;
    // No Error object for the common failure: its stack trace cost more than the rest of the retry
    // (--cpu-prof, flat-out misses with pickup, where a busy upstream lets some tries time out).
    this.moveOn(job, a.up, true, () => `no answer from ${hostPort(a.up.host, a.up.port)} in ${a.timeoutMs} ms`);
  };

  private readonly onDeadline = (job: QueryJob): void => {
    if (!job.done) this.giveUp(job);
  };

  /** A matching UDP answer: TC → the same question over TCP, else done with this attempt. */
  private answered(a: Attempt, bytes: Uint8Array, scan: ScannedResponse): void {
    const job = a.job;
    if (!(scan.flags & Flag.TC)) { this.attemptDone(a, bytes, scan, false); return; }
    if (job.state === TCP) return; // one TCP exchange per question; the other tries stay open
    this.counters.upstreamTcpFallbacks++;
    clearTimeout(job.timer);
    job.timer = undefined;
    job.state = TCP;
    // TCP needs a handshake first: the full attempt time, within the question's deadline.
    const left = Math.max(1, Math.min(this.opts.attemptTimeoutMs, job.deadline - this.clock()));
    this.tcpQuery(a.up, job.nameKey, job.qtype, job.qclass, job.qopts, left)
      .then((r) => { if (!job.done) this.attemptDone(a, r.bytes, r.scan, true); },
        (err: unknown) => { if (!job.done) this.attemptFailed(job, a.up, err as Error); });
  }

  private attemptDone(a: Attempt, bytes: Uint8Array, scan: ScannedResponse, tcp: boolean): void {
    const job = a.job;
    const h = a.h;
    const rtt = this.clock() - a.start;
    h.answered++;
    countRtt(h, rtt);
    h.failures = 0;
    h.downUntil = 0;
    if (!tcp) {
      // RFC 6298 §2: SRTT and RTTVAR from UDP round trips (a TCP exchange includes a handshake).
      // Each try has its own ID, so a late answer is known to belong to its try (no Karn ambiguity).
      if (h.rttMs === 0) { h.rttMs = rtt; h.rttVarMs = rtt / 2; } else { h.rttVarMs = 0.75 * h.rttVarMs + 0.25 * Math.abs(h.rttMs - rtt); h.rttMs = 0.875 * h.rttMs + 0.125 * rtt; }
    }
    const r: UpstreamResult = { bytes, scan, upstream: a.up, tcp };
    // RFC 1035 §7.3 / RFC 8499: SERVFAIL, REFUSED, NOTIMP say "ask someone else".
    if (scan.rcode === Rcode.SERVFAIL || scan.rcode === Rcode.REFUSED || scan.rcode === Rcode.NOTIMP) {
      this.failed(a.up, false);
      // Kept past this call: a receive-slot view must become a copy.
      job.lastBad = job.listener.bytesTransient && !tcp ? { ...r, bytes: pooledCopy(bytes) } : r;
      // Move on when this was the try being waited for; an earlier try's bad answer only counts as one.
      if (tcp || (job.state === TRYING && a === job.last)) { clearTimeout(job.timer); job.timer = undefined; this.next(job); } else if (job.state === WAITING && job.open === 0) this.giveUp(job);
      return;
    }
    this.finish(job, undefined, r);
  }

  /** A try's TCP exchange failed, or it found no free ID: as moveOn. */
  private attemptFailed(job: QueryJob, up: UpstreamAddr, err: Error): void {
    this.moveOn(job, up, err instanceof UpstreamError && err.code === 'ETIMEOUT', () => err.message);
  }

  /**
   * A try failed: count it (a timeout doubles the question's next wait), log `why` (made only
   * when debug logging is on), then the next try.
   */
  private moveOn(job: QueryJob, up: UpstreamAddr, timedOut: boolean, why: () => string): void {
    if (timedOut) {
      this.health.get(up)!.timeouts++;
      this.counters.upstreamTimeouts++;
      job.timeouts++;
    }
    if (this.log.enabled('debug')) this.log.debug('upstream attempt failed', { upstream: hostPort(up.host, up.port), error: why() });
    this.failed(up, true);
    this.next(job);
  }

  private failed(up: UpstreamAddr, hard: boolean): void {
    const h = this.health.get(up)!;
    h.failures++;
    if (hard && h.failures >= this.opts.failThreshold) {
      const factor = Math.min(8, 2 ** (h.failures - this.opts.failThreshold));
      h.downUntil = this.clock() + this.opts.holdDownMs * factor;
      if (h.failures === this.opts.failThreshold) this.log.warn('upstream held down', { upstream: hostPort(up.host, up.port), ms: this.opts.holdDownMs });
    }
  }

  /** The end without an answer: the last bad answer if any, else ETIMEOUT. */
  private giveUp(job: QueryJob): void {
    if (job.lastBad) this.finish(job, undefined, job.lastBad);
    else this.finish(job, new UpstreamError(this.closed ? 'EUPSTREAM' : 'ETIMEOUT', this.closed ? 'resolver is closing' : 'no upstream answered in time'), undefined);
  }

  /** Settle the question once: every try leaves its pending table, the listener is called. */
  private finish(job: QueryJob, err: UpstreamError | undefined, r: UpstreamResult | undefined): void {
    job.done = true;
    clearTimeout(job.timer);
    job.timer = undefined;
    for (let a = job.last; a; a = a.prev) if (a.open) this.closeAttempt(a);
    this.inflight--;
    job.listener.upstreamDone(err, r);
  }

  private closeAttempt(a: Attempt): void {
    a.open = false;
    this.timers.remove(a);
    a.job.open--;
    const port = a.port;
    port.pending.delete(a.id);
    if (port.uses === Infinity && port.pending.size === 0) { port.sock.close(); this.retired.delete(port); }
  }

  /**
   * An answer that matches a try but for the letter case of its question: dropped
   * and counted. It may be a forgery that guessed ID and port, so the try stays
   * open for the real answer, and the retries keep 0x20 (an immediate retry
   * without it would give a flooding forger a second, easier chance). An upstream
   * that does not preserve case sends only such answers: after CASE_FALLBACK_AFTER
   * in a row (an answer that keeps the case resets the count, so a forger cannot
   * get there while the real answers arrive) it is asked without 0x20, this
   * question at once.
   */
  private caseMismatch(a: Attempt): void {
    this.counters.upstreamCaseMismatched++;
    const h = a.h;
    const job = a.job;
    const now = this.clock();
    if (h.capsOffUntil > now) return; // already asked without 0x20 again
    if (++h.caseMismatches < CASE_FALLBACK_AFTER) return;
    h.capsOffUntil = now + CASE_FALLBACK_MS;
    h.caseMismatches = 0;
    this.log.warn('upstream does not preserve letter case: asking it without 0x20', { upstream: hostPort(a.up.host, a.up.port), ms: CASE_FALLBACK_MS });
    if (a !== job.last || job.state === TCP || job.deadline - now <= 0) return;
    clearTimeout(job.timer);
    job.timer = undefined;
    this.sendUdp(job, a.up, job.deadline - now, false, now);
  }

  /**
   * The socket for the next question: while the one picked last still holds
   * questions that have not left (this event-loop turn's), that one; else one
   * of the pool at random. So the questions of one turn (a batch of client
   * queries, each miss's TYPE65300 and AAAA) leave in one sendmmsg, wake the
   * upstream once, and their answers tend to come back in one read, where a
   * socket per question made a send and a wake-up per socket. Each question's
   * port is still one of the pool's, picked at random for its turn: a blind
   * forger's odds per question are the same.
   */
  private port(family: 'udp4' | 'udp6'): Port {
    const cur = family === 'udp4' ? this.turn4 : this.turn6;
    if (cur && cur.sock.queued > 0 && cur.uses < this.opts.socketUses) {
      cur.uses++;
      return cur;
    }
    const list = this.ports[family];
    const idx = this.rnd.next() % this.opts.socketCount;
    let p = list[idx];
    if (!p || p.uses >= this.opts.socketUses) {
      if (p) this.retire(p);
      p = this.openPort(family);
      list[idx] = p;
    }
    p.uses++;
    if (family === 'udp4') this.turn4 = p; else this.turn6 = p;
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
    if (p.pending.size === 0) p.sock.close(); else this.retired.add(p);
  }

  /**
   * `msg` is the socket's receive slot, valid during this call only. Accepted:
   * from the try's upstream address and port, the try's ID, well-formed, and the
   * try's question — with 0x20, octet for octet (RFC 5452 §9.1).
   */
  private onUdpMessage(port: Port, msg: Uint8Array, from: Endpoint): void {
    if (msg.length < 12) { this.counters.upstreamMalformed++; return; }
    const a = port.pending.get((msg[0]! << 8) | msg[1]!);
    if (!a || !from.equals(a.h.ep)) { this.counters.upstreamMismatched++; return; }
    let scan: ScannedResponse;
    try {
      scan = scanResponse(msg, false);
    } catch {
      this.counters.upstreamMalformed++;
      return; // keep waiting: a forged or broken datagram must not end the query (RFC 5452 §9.1)
    }
    const job = a.job;
    if (!questionNameIs(msg, scan, job.nameKey) || scan.qtype !== job.qtype || scan.qclass !== job.qclass) { this.counters.upstreamMismatched++; return; }
    scan.qnameKey = job.nameKey; // the same name: ownerIs then compares the key with itself, not the octets again
    if (a.caps) {
      if (!sameOctets(msg, a.bytes, 12, 11 + job.nameKey.length)) { this.caseMismatch(a); return; }
      a.h.caseMismatches = 0;
    }
    this.closeAttempt(a);
    // An answer that outlives this call (until sent to waiting clients; the cache keeps a string of
    // its own) gets a copy once it is known to be ours: pooled, no ArrayBuffer per answer.
    this.answered(a, job.listener.bytesTransient ? msg : pooledCopy(msg), scan);
  }

  /**
   * One query over a fresh TCP connection (shim/dns-tcp.ts); the answer must match
   * ID and question, and must not be truncated again (that is a failed try).
   */
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
    if (scan.flags & Flag.TC) throw new UpstreamError('ETCP', 'TCP answer truncated');
    return { bytes, scan };
  }

  /** Per-upstream health for `shim6 status`. */
  status(): UpstreamStatus[] {
    const now = this.clock();
    return this.upstreams.map((u) => {
      const { downUntil, capsOffUntil, family: _family, ep: _ep, ...h } = this.health.get(u)!;
      return { ...u, ...h, rttBuckets: [...h.rttBuckets], rttMs: Math.round(h.rttMs * 100) / 100, rttVarMs: Math.round(h.rttVarMs * 100) / 100, down: downUntil > now, caseFallback: capsOffUntil > now };
    });
  }

  close(): void {
    this.closed = true;
    const jobs = new Set<QueryJob>();
    for (const p of [...this.ports.udp4, ...this.ports.udp6, ...this.retired]) {
      if (!p) continue; // the pool array is sparse until every slot was used
      for (const a of p.pending.values()) jobs.add(a.job);
    }
    // Settling a job takes its tries out of every table, and closes retired sockets left empty.
    for (const job of jobs) if (!job.done) this.giveUp(job);
    this.timers.clear();
    for (const list of [this.ports.udp4, this.ports.udp6]) {
      for (const p of list) p?.sock.close();
      list.length = 0;
    }
  }
}

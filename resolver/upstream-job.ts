/**
 * The upstream pool's bookkeeping for one question and its tries, and the types
 * it shares with the stages: plain objects the pool (upstream.ts) drives. They
 * hold no sockets of their own and read no clock.
 */
import { Shim6Error } from '../shim/errors.ts';
import type { ScannedResponse } from './answer-scan.ts';
import type { QueryOptions } from './answer-build.ts';
import type { DnsUdpSocket, Endpoint } from './udp-socket.ts';

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

/** Where a question stands: a try out with its timer, a TCP exchange running, or nothing left to send. */
export const TRYING = 0;
export const TCP = 1;
export const WAITING = 2;
export type JobState = typeof TRYING | typeof TCP | typeof WAITING;

/**
 * One question on its way through the upstreams: a plain object instead of a
 * chain of promises and closures per attempt. Only the rare TCP fallback uses a
 * promise. Each try is an Attempt in its socket's pending table, and stays there
 * until the question is settled: a retry never cancels an earlier try, so a slow
 * upstream's late answer to the first try is still taken (until the deadline).
 */
export class QueryJob {
  /** Next index into `order`. */
  i = 0;
  /** Times the whole upstream list was gone through again. */
  rounds = 0;
  lastBad: UpstreamResult | undefined;
  /** The latest try; earlier ones hang off it through `prev`. */
  last: Attempt | undefined;
  /** Tries still in a pending table. */
  open = 0;
  state: JobState = TRYING;
  done = false;
  /** Tries of this question that timed out (each doubles the next one's wait). */
  timeouts = 0;
  /** The question's deadline timer while WAITING (a try's wait is in the pool's retry queue). */
  timer: NodeJS.Timeout | undefined;
  constructor(readonly nameKey: string, readonly qtype: number, readonly qclass: number, readonly qopts: QueryOptions,
    readonly deadline: number, readonly order: UpstreamAddr[], readonly bytes: Uint8Array, readonly listener: QueryListener) {}
}

/** One try of a question: its own ID, socket and (0x20) letter case. An answer must match all of them (RFC 5452 §9.1). */
export class Attempt {
  /** Still in its socket's pending table. */
  open = true;
  /** Its place in the pool's retry queue (TryTimers), or -1. */
  slot = -1;
  /** When the next try is due if this one is still the latest (the pool's clock, ms): `start` + `timeoutMs`. */
  readonly deadline: number;
  constructor(readonly job: QueryJob, readonly port: Port, readonly id: number, readonly up: UpstreamAddr, readonly h: Health,
    readonly start: number, readonly bytes: Uint8Array, readonly caps: boolean, readonly prev: Attempt | undefined, readonly timeoutMs: number) {
    this.deadline = start + timeoutMs;
  }
}

export interface Port { sock: DnsUdpSocket; pending: Map<number, Attempt>; uses: number }

export interface Health {
  failures: number; downUntil: number; sent: number; answered: number; timeouts: number; rttMs: number; rttVarMs: number;
  /** Answers in a row whose question came back in another letter case than sent (0x20). */
  caseMismatches: number;
  /** Until then the upstream is asked without 0x20 (it did not preserve case). */
  capsOffUntil: number;
  /**
   * Round trips of answered tries, for the metrics' histogram: counts per
   * bucket of RTT_BUCKETS_MS (not cumulative; the last counts the rest), and their sum.
   */
  rttBuckets: number[]; rttSumMs: number;
  family: 'udp4' | 'udp6'; ep: Endpoint;
}

/** Upper bounds (ms) of the upstream round-trip histogram's buckets (Prometheus' default buckets, in ms). */
export const RTT_BUCKETS_MS: readonly number[] = [5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000];

/** Count one round trip in a histogram of RTT_BUCKETS_MS. */
export function countRtt(h: Health, rttMs: number): void {
  let i = 0;
  while (i < RTT_BUCKETS_MS.length && rttMs > RTT_BUCKETS_MS[i]!) i++;
  h.rttBuckets[i] = (h.rttBuckets[i] ?? 0) + 1;
  h.rttSumMs += rttMs;
}


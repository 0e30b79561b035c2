/**
 * The resolver as an ordered chain of small stages (CoreDNS `plugin.Handler`
 * model): each stage gets the request and the rest of the chain (`next`), may
 * answer itself, or call `next` and look at the answer on its way back. The
 * order is data (`DEFAULT_ORDER`), not code.
 *
 * Stages may answer synchronously (a cache hit) or with a Promise, so the hit
 * path does not pay for promise scheduling. Time (`now`) comes in with the
 * request; no stage reads a clock for cache decisions.
 * This module must not know what any particular stage does.
 */
import type { Millis } from '../shim/time.ts';
import type { ParsedQuery } from './message.ts';
import type { ScannedResponse } from './answer-scan.ts';

export interface Request {
  /** The query bytes as the client (or an internal lookup) sent them. */
  query: Uint8Array;
  q: ParsedQuery;
  /** questionKey(): name, type, class, DO, CD. */
  key: string;
  now: Millis;
  transport: 'udp' | 'tcp' | 'internal';
}

export interface Answer {
  /** A complete DNS response. The listener fixes ID and question case for its client. */
  bytes: Uint8Array;
  /** Start of a trailing OPT RR (so it can be dropped for non-EDNS clients), or -1. */
  optOff: number;
  source: 'cache' | 'stale' | 'upstream' | 'local';
  /** True when the receiver may patch `bytes` in place (nobody else holds them). */
  owned: boolean;
  rcode: number;
  /** Present on answers fresh from upstream: the structure scan, for the cache. */
  scan?: ScannedResponse;
  /** Set when resolution failed (timeouts, all upstreams bad): serve-stale may step in. */
  failed?: boolean;
}

export type Handler = (req: Request) => Answer | Promise<Answer>;

export interface Stage {
  readonly name: string;
  serve(req: Request, next: Handler): Answer | Promise<Answer>;
}

/** The stages, first to last: the capability stage sees every answer the cache and forwarder produce. */
export const DEFAULT_ORDER = ['capability', 'cache', 'forward'] as const;
export type StageName = (typeof DEFAULT_ORDER)[number];

/** Compose stages into one handler; `terminal` answers when the last stage calls next. */
export function compose(stages: readonly Stage[], terminal: Handler): Handler {
  let handler = terminal;
  for (let i = stages.length - 1; i >= 0; i--) {
    const stage = stages[i]!;
    const next = handler;
    handler = (req) => stage.serve(req, next);
  }
  return handler;
}

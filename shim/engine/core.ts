/**
 * The engine's shared state and the small verbs every sub-protocol uses: the
 * context table, the timer heap, the transmit and event queues, Ls(local),
 * responder secrets, capability cache, randomness. Sub-protocol modules
 * (handshake, recovery, update, reap, teardown) are functions over a Core, so
 * none of them owns I/O, a clock or another module's state.
 */
import type { Millis } from '../time.ts';
import { canonicalIpv6, type Ipv6 } from '../wire/ipv6.ts';
import { encodeMessage, type Shim6Message } from '../wire/index.ts';
import { SHIM6_UDP_PORT } from '../constants.ts';
import { ContextTable, type Context, type RehomeCause } from './context.ts';
import { TimerHeap, type TimerKind } from './timers.ts';
import { Queue, type EngineEvent, type Transmit } from './events.ts';
import { LocalSet } from './local.ts';
import { ResponderSecrets } from './responder.ts';
import { ProbeReplyLimiter, ReplyLimiter, type LimitVerdict, type ProbeLimitVerdict } from './reply-limit.ts';
import { Random, type Rng } from './random.ts';
import type { ResolvedConfig, Timers } from './config.ts';
import type { CapabilityCache } from './capability.ts';
import type { PinnedEntry } from './lasting.ts';
import type { CgaOutcome, LocatorVerifier, VerifyGate } from './verify.ts';
import { transition, type State, type Trigger } from './states.ts';

/**
 * Replies to datagrams that proved nothing yet: the stateless ones (R1, R1bis,
 * Error), and the R2 that answers an I1 for an existing context (RFC 5533
 * §7.9: crossing or retransmitted I1s), which carries our context tag and
 * Locator List (handshake.ts `answerI1`).
 */
export type ReplyKind = 'R1' | 'R1bis' | 'Error' | 'R2';

/** What became of stateless replies of one kind. */
export interface ReplyCounts {
  sent: number;
  /** Refused by the rate limits (reply-limit.ts). */
  limited: number;
  /** Refused because the reply would be over twice the size of the datagram that caused it (never for R2: see `mayAnswerI1`). */
  oversize: number;
}

/**
 * What became of the Probes a peer's Probe asked for (RFC 5534 §6.7, §6.8): REAP answers on the
 * reverse of the pair the probe came on, so a forged source would aim them (reap.ts `onProbe`).
 */
export interface ProbeReplyCounts {
  /** Answers sent (the one on the probe's reverse pair; a probe on the current pair may go along). */
  sent: number;
  /** Probes left unanswered because the context's or the host's bucket was empty (what they prove still counts: reap.ts `onProbe`). */
  limited: number;
  /** Answers sent with fewer reports than REAP keeps, to stay within twice the probe that caused them. */
  trimmed: number;
  /** Answers sent to the context's UDP port instead of the probe's source port (a locator not known to reach the peer). */
  portPinned: number;
}

/**
 * Known peers (`Engine.setKnownPeers`): addresses kept at most. About 100 octets each; a host
 * with more distinct peers of open connections keeps the first ones it is given.
 */
export const MAX_KNOWN_PEERS = 10_000;

/**
 * The engine asks for known peers (event `limit-pressure`) at most this often while host-wide
 * buckets refuse (ms of the driver's clock): the driver's answer reads the host's socket tables.
 */
export const KNOWN_PEERS_INTERVAL_MS = 2000;

/**
 * Primed peers' addresses (`Engine.prime`: a capability record from DNS, or the configuration)
 * kept as known peers at most: the ULID and the locators of the last primes, oldest dropped first.
 */
export const MAX_PRIMED_PEERS = 4096;

/** The known peers (`guard.knownPeers`): what they are and what their reserve gave. */
export interface KnownPeerCounters {
  /** Addresses in the set now. */
  peers: number;
  /** Events `limit-pressure` emitted: times the engine asked the driver for the set. */
  asked: number;
  /** Times the driver replaced the set (`setKnownPeers`). */
  updates: number;
  /** Replies (R1, R1bis, Error, R2) sent on a token of the reserve (`replyLimit.knownPeers`): the global bucket was empty. */
  replies: number;
  /** Verifications run on a token of the reserve (`verifyLimit.knownPeers`). */
  verifications: number;
  /** Probes answered in a known peer's context on a token of the reserve (`probeReplyLimit.knownPeers`). */
  probeReplies: number;
  /** Addresses of primed peers (DNS, configuration) known now, their record's lifetime not over (at most MAX_PRIMED_PEERS). */
  primed: number;
}

/** What the engine refused to do for unproven senders (`shim6 status`). */
export interface GuardCounters {
  /** I2/I2bis whose claimed peer ULID was not proven (RFC 5533 §7.13, §16): no context, no R2. */
  ulidUnproven: number;
  /** I2/I2bis claiming one of this host's own addresses as the peer's ULID. */
  ulidIsLocal: number;
  /** I2/I2bis refused because peers hold maxContexts contexts, or maxContextsPerPrefix from that /64. */
  contextLimit: number;
  replies: Record<ReplyKind, ReplyCounts>;
  probeReplies: ProbeReplyCounts;
  /** CGA Signature checks of messages from peers (docs/security.md "CGA verification cost"). */
  cga: CgaCounters;
  /** The known peers and their reserve (docs/security.md "Known peers"). */
  knownPeers: KnownPeerCounters;
}

/** What became of CGA Signature checks (I2, I2bis, Update Request; R2s are neither budgeted nor counted). */
export interface CgaCounters {
  /** Key parses + RSA verifications run (the costly part; `badSignature` of them failed). */
  verified: number;
  /** Answered from the outcome cache: the same PDS, list and signature was checked before. */
  cached: number;
  /**
   * Not verified: the source /64's or the global verification budget was spent (`verifyLimit`), or
   * an R2's check beyond one per message of ours (`r2Gate`); the message is dropped unproven.
   */
  limited: number;
  badSignature: number;
  /** Keys refused before any RSA work (shim/wire/cga.ts rsaKeyShape). */
  keyNotRsa: number;
  keyTooShort: number;
  keyTooLong: number;
  keyBadExponent: number;
}

/** A gate for one message's verification work, and whether it refused. */
export interface MessageGate extends VerifyGate {
  /** True once `admit` said no: the message was not verified (drop it as 'cga-limited'). */
  readonly limited: boolean;
}

export class Core {
  readonly table = new ContextTable();
  /**
   * Peers whose context with us was closed by a Close, theirs or ours, and that have not set
   * up a new one: packets still on their way into the shim for them start no exchange (one
   * side is going away, e.g. a daemon restart; the peer, `protect`, `prime` or a new flow
   * starts the next one). Bounded: emptied when full.
   */
  readonly closed = new Set<string>();
  /** Peers whose idle-cleaned context is resumable, with what their entry said (lasting.ts; at most cacheMax, oldest first out). */
  readonly resumable = new Map<Ipv6, PinnedEntry>();
  readonly heap = new TimerHeap<Context>(() => this.table.size);
  readonly tx = new Queue<Transmit>();
  readonly events = new Queue<EngineEvent>();
  readonly random: Random;
  readonly local: LocalSet;
  readonly secrets: ResponderSecrets;
  readonly timers: Timers;
  readonly limiter: ReplyLimiter;
  /** Buckets of the Probes sent in answer to a peer's Probe (per context, global). */
  readonly probeLimiter: ProbeReplyLimiter;
  /** The budget of public-key verifications (`verifyLimit`), per source /64 and global. */
  readonly verifyLimiter: ReplyLimiter;
  /**
   * Addresses of the peers the host talks to (`Engine.setKnownPeers`, at most MAX_KNOWN_PEERS):
   * a reply to one, or a verification of its message, may take the reserve buckets.
   */
  knownPeers = new Set<Ipv6>();
  /**
   * Addresses of the peers primed last (`notePrimed`: their capability record's ULID and
   * locators), each until its record's lifetime ends: known peers too, before any connection
   * with them exists. At most MAX_PRIMED_PEERS, in the order primed (a new prime moves an
   * address last).
   */
  private readonly primedPeers = new Map<Ipv6, Millis>();
  /** When the engine last asked for known peers (`limit-pressure`). */
  private askedAt = -Infinity;
  /** Host-wide refusals since the last `limit-pressure`. */
  private refused = { replies: 0, verifications: 0, probeReplies: 0 };
  readonly guard: GuardCounters = {
    ulidUnproven: 0, ulidIsLocal: 0, contextLimit: 0,
    replies: { R1: { sent: 0, limited: 0, oversize: 0 }, R1bis: { sent: 0, limited: 0, oversize: 0 }, Error: { sent: 0, limited: 0, oversize: 0 }, R2: { sent: 0, limited: 0, oversize: 0 } },
    probeReplies: { sent: 0, limited: 0, trimmed: 0, portPinned: 0 },
    cga: { verified: 0, cached: 0, limited: 0, badSignature: 0, keyNotRsa: 0, keyTooShort: 0, keyTooLong: 0, keyBadExponent: 0 },
    knownPeers: { peers: 0, asked: 0, updates: 0, replies: 0, verifications: 0, probeReplies: 0, primed: 0 },
  };

  /** Re-homings by cause (context.ts RehomeCause), over the engine's life. */
  readonly rehomings: Partial<Record<RehomeCause, number>> = {};
  /** Control messages sent and received (decoded and dispatched), indexed by message type (0..127). */
  readonly messagesSent = new Float64Array(128);
  readonly messagesReceived = new Float64Array(128);

  constructor(readonly config: ResolvedConfig, rng: Rng, readonly cache: CapabilityCache, readonly verifier: LocatorVerifier) {
    this.random = new Random(rng);
    this.timers = config.timers;
    this.local = new LocalSet(config.localLocators, config.localUlid, config.cgaParams, config.timers, this.random.u32(), config.cgaKey);
    this.secrets = new ResponderSecrets(this.random, config.timers.validatorLifetime);
    this.limiter = new ReplyLimiter(config.replyLimit);
    this.probeLimiter = new ProbeReplyLimiter(config.probeReplyLimit);
    this.verifyLimiter = new ReplyLimiter(config.verifyLimit);
  }

  /**
   * Replace the known peers (`Engine.setKnownPeers`): the first MAX_KNOWN_PEERS valid
   * addresses of `addresses`, in canonical form. How many are kept.
   */
  setKnownPeers(addresses: Iterable<string>): number {
    const next = new Set<Ipv6>();
    for (const a of addresses) {
      if (next.size >= MAX_KNOWN_PEERS) break;
      try { next.add(canonicalIpv6(a)); } catch { /* not an address: skipped */ }
    }
    this.knownPeers = next;
    this.guard.knownPeers.peers = next.size;
    this.guard.knownPeers.updates++;
    return next.size;
  }

  /**
   * A peer was primed (`Engine.prime`): its ULID and locators are known peers until `expires`
   * (its record's lifetime), the oldest beyond MAX_PRIMED_PEERS dropped. `expires` not after
   * `now` forgets them (a configured peer taken out of the configuration).
   */
  notePrimed(now: Millis, addresses: Iterable<Ipv6>, expires: Millis): void {
    for (const a of addresses) {
      this.primedPeers.delete(a);
      if (expires > now) this.primedPeers.set(a, expires);
    }
    for (const a of this.primedPeers.keys()) {
      if (this.primedPeers.size <= MAX_PRIMED_PEERS) break;
      this.primedPeers.delete(a);
    }
    this.guard.knownPeers.primed = this.primedPeers.size;
  }

  /** Drop the primed peers' addresses whose record's lifetime is over (`guard.knownPeers.primed` counts the others). */
  dropExpiredPrimed(now: Millis): void {
    for (const [a, expires] of this.primedPeers) if (expires <= now) this.primedPeers.delete(a);
    this.guard.knownPeers.primed = this.primedPeers.size;
  }

  /** Is `address` a primed peer's whose record's lifetime is not over? (Expired ones go at `dropExpiredPrimed` and `notePrimed`'s bound.) */
  private primedPeer(now: Millis, address: Ipv6): boolean {
    return (this.primedPeers.get(address) ?? -Infinity) > now;
  }

  /**
   * Is `address` a known peer's: in the set the driver gave, a primed peer's (its record still
   * valid at `now`), or a verified locator of `ctx` (the context the message belongs to: its
   * packets already go there)?
   */
  knownPeer(now: Millis, address: Ipv6, ctx?: Context): boolean {
    return this.knownPeers.has(address) || this.primedPeer(now, address) || (ctx !== undefined && ctx.hasVerifiedPeer(address));
  }

  /**
   * A limiter's verdict, counted: a reserve token in `guard.knownPeers`; a host-wide refusal
   * asks the driver for known peers (event `limit-pressure`, at most one per
   * KNOWN_PEERS_INTERVAL_MS), so that the peers the host talks to are answered from the reserve
   * while a flood from many /64s keeps the global bucket empty. Whether it may go ahead.
   */
  private admitted(now: Millis, v: LimitVerdict | ProbeLimitVerdict, what: 'replies' | 'verifications' | 'probeReplies'): boolean {
    if (v === 'ok') return true;
    if (v === 'reserve') { this.guard.knownPeers[what]++; return true; }
    if (v === 'global') {
      this.refused[what]++;
      if (now >= this.askedAt + KNOWN_PEERS_INTERVAL_MS) {
        this.askedAt = now;
        this.guard.knownPeers.asked++;
        this.emit({ kind: 'limit-pressure', ...this.refused, knownPeers: this.knownPeers.size });
        this.refused = { replies: 0, verifications: 0, probeReplies: 0 };
      }
    }
    return false;
  }

  /**
   * The gate for verifying one message from `src` (verify.ts VerifyGate): a
   * public-key verification needs a token from `src`'s /64 and from the global
   * verification bucket — or, for a known peer's message (`knownPeer`; `ctx`: the
   * context it belongs to), from the reserve; outcomes are counted in `guard.cga`.
   */
  verifyGate(now: Millis, src: Ipv6, ctx?: Context): MessageGate {
    const { verifyLimiter, guard } = this;
    const known = this.knownPeer(now, src, ctx);
    let limited = false;
    return {
      get limited() { return limited; },
      admit: () => {
        if (this.admitted(now, verifyLimiter.check(now, src, known), 'verifications')) return true;
        limited = true;
        return false;
      },
      outcome(o: CgaOutcome) { countCga(guard.cga, o); },
    };
  }

  /**
   * The gate of an R2's CGA Signature check (handshake.ts onR2): only a holder of our nonce gets
   * that far, and it gets one public-key verification per I1, I2 or I2bis we sent (`ctx.r2Checks`,
   * given back by each send); outcomes are counted in `guard.cga`.
   */
  r2Gate(ctx: Context): MessageGate {
    const { guard } = this;
    let limited = false;
    return {
      get limited() { return limited; },
      admit: () => {
        if (ctx.r2Checks > 0) { ctx.r2Checks--; return true; }
        limited = true;
        return false;
      },
      outcome(o: CgaOutcome) { countCga(guard.cga, o); },
    };
  }

  /**
   * May `ctx` answer one more of its peer's Probes now (reap.ts `onProbe`)? A token from the
   * context's bucket and the global one (`probeReplyLimit`) — or, when the context's peer ULID is a
   * known peer's (`knownPeer`: the host's open connections, a primed peer; not merely a verified
   * locator, which every probe comes from), from the reserve. A host-wide refusal asks for known
   * peers (`limit-pressure`). Counts a reserve token; the caller counts the outcome.
   */
  mayAnswerProbe(now: Millis, ctx: Context): boolean {
    return this.admitted(now, this.probeLimiter.check(now, ctx, this.knownPeer(now, ctx.peerUlid)), 'probeReplies');
  }

  /**
   * May a stateless reply of `kind`, `length` octets, answer a datagram of
   * `causeLength` octets from `to`? Never more than twice the cause (no
   * amplification; `allowance` is what the RFC makes the reply carry beyond
   * that — the Error's quoted IPv6 header), then the rate limits (a known peer's
   * reply may take the reserve: `knownPeer`, with `ctx` the context the datagram
   * names, if any). Counts the outcome.
   */
  mayReply(now: Millis, kind: ReplyKind, to: Ipv6, length: number, causeLength: number, allowance = 0, ctx?: Context): boolean {
    const c = this.guard.replies[kind];
    if (length > 2 * causeLength + allowance) { c.oversize++; return false; }
    if (!this.admitted(now, this.limiter.check(now, to, this.knownPeer(now, to, ctx)), 'replies')) { c.limited++; return false; }
    c.sent++;
    return true;
  }

  /**
   * May an R2 answer an I1 from `to` now? The same buckets as the stateless
   * replies (per /64 of `to`, global), so the I1s an attacker sends draw no
   * more replies, of any kind, than the limits allow. No size rule: the R2
   * carries what RFC 5533 §7.9/§7.14 make it carry (our Locator List, PDS, CGA
   * Signature), several times an I1 — which is why the caller sends it only to
   * an address it already sends the context's packets to, and at most once per
   * context in `i1ReplyGap` (handshake.ts `answerI1`) — so the peer is a known
   * one (the reserve is open to it). Counts the outcome as `R2`.
   */
  mayAnswerI1(now: Millis, to: Ipv6): boolean {
    const c = this.guard.replies.R2;
    if (!this.admitted(now, this.limiter.check(now, to, true), 'replies')) { c.limited++; return false; }
    c.sent++;
    return true;
  }

  /** Encode and queue a control message from `src` to `dst`. */
  send(src: Ipv6, dst: Ipv6, msg: Shim6Message, port?: number): Uint8Array {
    const bytes = encodeMessage(msg);
    this.sendBytes(src, dst, bytes, port);
    return bytes;
  }

  sendBytes(src: Ipv6, dst: Ipv6, bytes: Uint8Array, port?: number): void {
    this.messagesSent[bytes[2]! & 0x7f]! += 1;
    this.tx.push(port === undefined || port === SHIM6_UDP_PORT ? { src, dst, bytes } : { src, dst, bytes, port });
  }

  emit(ev: EngineEvent): void {
    this.events.push(ev);
  }

  /** A fresh 47-bit CT(local), unique on this host (RFC 5533 §7.1). */
  newTag(): number {
    for (;;) {
      const t = this.random.tag47();
      if (!this.table.byTag.has(t)) return t;
    }
  }

  /** A fresh Initiator Nonce, unused by any establishing context. */
  newNonce(): number {
    for (;;) {
      const n = this.random.u32();
      if (!this.table.byNonce.has(n)) return n;
    }
  }

  /** Arm timer `kind` at `at` (absolute). */
  arm(ctx: Context, kind: TimerKind, at: number): void {
    ctx.timers[kind] = at;
    this.heap.touch(ctx);
  }

  /** Arm `kind` only if it is not running. */
  armIfIdle(ctx: Context, kind: TimerKind, at: number): void {
    if (ctx.timers[kind] === Infinity) this.arm(ctx, kind, at);
  }

  stop(ctx: Context, kind: TimerKind): void {
    ctx.timers[kind] = Infinity;
  }

  /**
   * Apply the state-table row for (ctx.state, trigger): returns the row's
   * message to send ('' for none), or undefined if the table has no such row
   * (the caller then drops the input). The only place `ctx.state` changes.
   */
  step(ctx: Context, trigger: Trigger): { send: string; from: State } | undefined {
    const row = transition(ctx.state, trigger);
    if (row === undefined) return undefined;
    const from = ctx.state;
    ctx.state = row.to;
    return { send: row.send, from };
  }

  /** Remove a context from every index (its heap entries die lazily, or in a compaction: `TimerHeap.compactFor`). */
  removeContext(ctx: Context): void {
    this.table.remove(ctx);
    this.heap.compactFor(this.table.size);
  }

  /** A locator is one of ours (RFC 5533 §12.4 "destination in Ls(local)"). */
  isLocal(address: Ipv6): boolean {
    return this.local.has(address);
  }

  /** Record activity for idle GC (RFC 5533 §9). */
  touch(ctx: Context, now: Millis): void {
    ctx.lastActivity = now;
  }
}

function countCga(c: CgaCounters, o: CgaOutcome): void {
  switch (o) {
    case 'ok': c.verified++; break;
    case 'bad-signature': c.verified++; c.badSignature++; break;
    case 'cached': c.cached++; break;
    case 'limited': c.limited++; break;
    case 'not-rsa': c.keyNotRsa++; break;
    case 'key-too-short': c.keyTooShort++; break;
    case 'key-too-long': c.keyTooLong++; break;
    case 'bad-exponent': c.keyBadExponent++; break;
    default: break; // malformed, hba-only, ulid-not-cga: refused for the price of a hash, like any unproven claim
  }
}

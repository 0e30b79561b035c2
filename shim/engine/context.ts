/**
 * The ULID-pair context (RFC 5533 §6.1) and the table that finds it by the
 * lookup keys of RFC 5533 §12.4: CT(local); ULID pair + FII; Initiator Nonce
 * (R1/R2, while establishing); CT(peer) (R1bis, context confusion §7.15).
 * A context is lean: plain fields, one timer array, REAP/Update state only
 * while in use, no closures, no buffers. This module sends nothing.
 */
import { LocatorFlag } from '../constants.ts';
import { prefix64Key, type Ipv6 } from '../wire/ipv6.ts';
import type { Millis } from '../time.ts';
import { asIdle, State } from './states.ts';
import { newTimerTable, type Timed, type TimerTable } from './timers.ts';
import type { ReapLog } from './reap.ts';
import type { Bucket } from './reply-limit.ts';
import type { PathMtu } from './icmp.ts';

/**
 * Entries of a peer's Locator List a context keeps (its first ones; RFC 5533 sets no bound, a
 * message of 2,048 octets holds about 118): as many as a capability record carries. Each held
 * entry costs memory for the context's life, and peers make up to `maxContexts` contexts.
 */
export const MAX_PEER_LOCATORS = 32;

/** One peer locator in Ls(peer) (RFC 5533 §6.1). */
export interface PeerLocator {
  address: Ipv6;
  /** Verification method octet from the Locator List (0: the ULID or a DNS hint). */
  method: number;
  /** Part of the peer's last Locator List (Locator Preferences index these, in order). */
  listed: boolean;
  /** HBA/CGA proved it (or it is the ULID). Only verified locators may become destinations of probes. */
  verified: boolean;
  /** A probe (or the handshake) showed the peer answers there: usable as Lp(peer). */
  probed: boolean;
  flags: number;
  priority: number;
  weight: number;
}

/** The one outstanding Update Request (RFC 5533 §10.3). */
export interface PendingUpdate {
  nonce: number;
  attempt: number;
  bytes: Uint8Array;
}

/**
 * An I2bis sent on the locator pair of an R1bis that answered one of our probes off the current
 * pair (recovery.ts `onR1bis`): where it goes, and what it echoes. Nothing else of the context
 * changes while it is in flight.
 */
export interface SideRecovery {
  local: Ipv6;
  peer: Ipv6;
  port: number | undefined;
  validator: Uint8Array;
  responderNonce: number;
  r1bisTag: number;
  retries: number;
  /** When the R1bis came. */
  at: Millis;
}

/** How this context was asked for (docs/engine.md "Capability detection"). */
export type ContextMode = 'integrated' | 'independent';

/**
 * Why the peer ULID is the peer's (docs/engine.md "Trust"): `initiated` — this
 * host started the context for a ULID from DNS, configuration or its own
 * traffic; `locator` — the ULID is the handshake's own source locator, proven
 * return-routable by our validator or nonce; `hba` / `cga` — the peer's PDS
 * proves the ULID and the handshake's source locator alike (RFC 5535, RFC 3972).
 */
export type UlidProof = 'initiated' | 'locator' | 'hba' | 'cga';

/**
 * Why a context moved to another locator pair (`shim6 status`, metrics):
 * what started the REAP exploration that found it, or `peer-exploring` when
 * the peer's exploration (its probes) moved our direction without one of ours.
 */
export type RehomeCause = 'send-timeout' | 'keepalive-timeout' | 'local-locator-down' | 'local-locator-gone' | 'peer-locator-broken' | 'peer-exploring' | 'icmp-unreachable';

/** The last re-homing of a context. */
export interface Rehoming {
  at: Millis;
  cause: RehomeCause;
  old: { local: Ipv6; peer: Ipv6 };
  new: { local: Ipv6; peer: Ipv6 };
}

export class Context implements Timed {
  state: State = State.IDLE;
  ctPeer = -1;
  initNonce = 0;
  respNonce = 0;
  validator: Uint8Array | undefined = undefined;
  /** R1bis Packet Context Tag, echoed in I2bis. */
  r1bisTag = 0;
  /**
   * An I2bis in flight for an R1bis that came on another pair than the current one (a probe's
   * answer, recovery.ts): the context stays ESTABLISHED on its pair until the R2 proves it.
   */
  sideRecovery: SideRecovery | undefined = undefined;
  /** Current locator pair used to send (Lp(local), Lp(peer)). */
  lpLocal: Ipv6;
  lpPeer: Ipv6;
  /** Ls(peer): verified and hinted locators. */
  peer: PeerLocator[];
  peerGeneration = -1;
  /** Entries of the peer's last Locator List (Locator Preferences must name as many), kept or not (MAX_PEER_LOCATORS). */
  peerListLength = 0;
  peerPds: Uint8Array | undefined = undefined;
  /** Keepalive Timeout the peer asked for (RFC 5534 §5.3), ms. */
  peerKeepaliveTimeout: Millis | undefined = undefined;
  retries = 0;
  /** I2 cycles that ran out (each a fall back to I1, §7.12) since the context was last established; E-FAILED at I2_CYCLES_MAX (retransmit.ts). */
  i2Cycles = 0;
  /** In I2-SENT: the peer sent us payload or control with our tag since this I2 cycle began (dispatch.ts nudgePending). */
  i2Nudged = false;
  /** When a packet of the peer's last made us send the pending I2 or I2bis again (dispatch.ts nudgePending: one per half its timeout). */
  nudgedAt = -Infinity;
  /** In I2-SENT: the I1 with the I2's nonce went out this I2 cycle (handshake.ts sendI1InI2Cycle). */
  i2CycleI1 = false;
  /**
   * Public-key checks of an R2's CGA Signature left (Core.r2Gate): one per I1, I2 or I2bis sent, so
   * R2s that echo our nonce with a signature that fails cost one verification per message of ours.
   */
  r2Checks = 0;
  update: PendingUpdate | undefined = undefined;
  /** REAP state (RFC 5534 §6): 0 Operational, 1 Exploring, 2 InboundOk. */
  reapState = 0;
  /** Probe logs, only while exploring or recently explored. */
  reap: ReapLog | undefined = undefined;
  /** When the Send Timer last started (RFC 5534 §6): what a Send Timeout's exploration counts probes from (reap.ts `proven`). */
  sendSince: Millis = 0 as Millis;
  /** Token bucket of the Probes sent in answer to the peer's (reply-limit.ts ProbeReplyLimiter); made at the first. */
  probeBucket: Bucket | undefined = undefined;
  closeNonce = 0;
  lastActivity: Millis;
  timers: TimerTable = newTimerTable();
  heapAt = Infinity;
  alive = true;
  /** DNS claimed support (the negative cache then keys on address + ULID). */
  primedByDns = false;
  /** Our Locator List generation last sent to this peer (I2, I2bis, R2, Update Request); -1: none. */
  announcedGeneration = -1;
  port: number | undefined = undefined;
  /** Payload carried (status and metrics): packets and ULP octets, each way. Plain numbers, bumped where the context is already in hand. */
  rxPackets = 0;
  rxBytes = 0;
  txPackets = 0;
  txBytes = 0;
  /** When a valid packet (payload or control message) last came from the peer; undefined: none yet. */
  lastReceived: Millis | undefined = undefined;
  /** When the peer last proved itself on this context (handshake, payload, tag-bound message): lasting.ts. */
  provenAt = -Infinity;
  /** When lasting.ts next refreshes the peer's positive entry (rate limit). */
  capableCheckAt = 0;
  /** What started the REAP exploration in progress (the cause of the re-homing it may end in). */
  exploreCause: RehomeCause | undefined = undefined;
  rehomings = 0;
  lastRehome: Rehoming | undefined = undefined;
  /** When this context last sent an R2 in answer to an I1 (handshake.ts `answerI1`: at most one per `i1ReplyGap`). */
  i1AnsweredAt = -Infinity;
  /** A Packet Too Big's lesson for one locator pair (icmp.ts), while it holds. */
  pathMtu: PathMtu | undefined = undefined;
  /**
   * The first proven Port Unreachable about our datagrams since the peer was last heard (icmp.ts
   * `peerSilentPort`: its daemon is not running), and how many came since; undefined: none.
   */
  goneSince: Millis | undefined = undefined;
  goneErrors = 0;

  constructor(
    readonly localUlid: Ipv6,
    readonly peerUlid: Ipv6,
    readonly fii: number,
    public ctLocal: number,
    readonly mode: ContextMode,
    /** Why the peer ULID is the peer's: fixed when the context is made. */
    readonly ulidProof: UlidProof,
    now: Millis,
  ) {
    this.lpLocal = localUlid;
    this.lpPeer = peerUlid;
    this.peer = [{ address: peerUlid, method: 0, listed: false, verified: true, probed: false, flags: 0, priority: 0, weight: 0 }];
    this.lastActivity = now;
  }

  /** The Ls(peer) entry for `address`, if any. */
  peerLocator(address: Ipv6): PeerLocator | undefined {
    for (const l of this.peer) if (l.address === address) return l;
    return undefined;
  }

  /** True when `address` is a verified member of Ls(peer). */
  hasVerifiedPeer(address: Ipv6): boolean {
    const l = this.peerLocator(address);
    return l !== undefined && l.verified;
  }

  /** A legitimate destination: verified and not BROKEN (a locator the peer withdrew or flagged is a source only). */
  isPeerDestination(address: Ipv6): boolean {
    const l = this.peerLocator(address);
    return l !== undefined && l.verified && (l.flags & LocatorFlag.BROKEN) === 0;
  }
}


/** Every context of the engine with its lookup indices. */
export class ContextTable {
  readonly byTag = new Map<number, Context>();
  /**
   * ULID pair + FII (RFC 5533 §12.4), keyed by the peer ULID (strings the
   * context already holds: no key is built per lookup, which matters on the I1
   * path), then a short list matched on local ULID and FII.
   */
  readonly byUlid = new Map<Ipv6, Context[]>();
  /** Contexts waiting for R1/R2: Initiator Nonce → context. */
  readonly byNonce = new Map<number, Context>();
  /** CT(peer) → contexts (normally one; a list because peers choose tags independently). */
  readonly byPeerTag = new Map<number, Context[]>();

  /**
   * Contexts this host did not initiate (a peer's I2/I2bis made them), per
   * /64 of the peer ULID: the responder's bounds (config maxContexts,
   * maxContextsPerPrefix) are checked against these before one is made.
   */
  readonly answered = new Map<string, number>();
  answeredTotal = 0;

  get size(): number {
    return this.byTag.size;
  }

  /**
   * The context whose CT(local) is `tag`, for a packet that carries it: none for one in
   * E-FAILED or NO-SUPPORT, which processes packets as IDLE (RFC 5533 App. B): a hold-down is no context.
   */
  live(tag: number): Context | undefined {
    const ctx = this.byTag.get(tag);
    return ctx === undefined || asIdle(ctx.state) ? undefined : ctx;
  }

  add(ctx: Context): void {
    if (this.byTag.get(ctx.ctLocal) !== ctx && ctx.ulidProof !== 'initiated') {
      const k = prefix64Key(ctx.peerUlid);
      this.answered.set(k, (this.answered.get(k) ?? 0) + 1);
      this.answeredTotal++;
    }
    this.byTag.set(ctx.ctLocal, ctx);
    const list = this.byUlid.get(ctx.peerUlid);
    if (list === undefined) { this.byUlid.set(ctx.peerUlid, [ctx]); return; }
    const i = list.findIndex((c) => c.localUlid === ctx.localUlid && c.fii === ctx.fii);
    if (i >= 0) list[i] = ctx; else list.push(ctx);
  }

  remove(ctx: Context): void {
    ctx.alive = false;
    if (this.byTag.get(ctx.ctLocal) === ctx) {
      this.byTag.delete(ctx.ctLocal);
      if (ctx.ulidProof !== 'initiated') {
        const k = prefix64Key(ctx.peerUlid);
        const n = (this.answered.get(k) ?? 1) - 1;
        if (n > 0) this.answered.set(k, n); else this.answered.delete(k);
        this.answeredTotal--;
      }
    }
    const list = this.byUlid.get(ctx.peerUlid);
    const i = list === undefined ? -1 : list.indexOf(ctx);
    if (i >= 0) {
      list!.splice(i, 1);
      if (list!.length === 0) this.byUlid.delete(ctx.peerUlid);
    }
    this.clearNonce(ctx);
    this.setPeerTag(ctx, -1);
  }

  setNonce(ctx: Context, nonce: number): void {
    this.clearNonce(ctx);
    ctx.initNonce = nonce;
    this.byNonce.set(nonce, ctx);
  }

  clearNonce(ctx: Context): void {
    if (this.byNonce.get(ctx.initNonce) === ctx) this.byNonce.delete(ctx.initNonce);
  }

  /** Record CT(peer), keeping the index in step. */
  setPeerTag(ctx: Context, tag: number): void {
    if (ctx.ctPeer === tag) return;
    const old = this.byPeerTag.get(ctx.ctPeer);
    if (old !== undefined) {
      const i = old.indexOf(ctx);
      if (i >= 0) old.splice(i, 1);
      if (old.length === 0) this.byPeerTag.delete(ctx.ctPeer);
    }
    ctx.ctPeer = tag;
    if (tag < 0) return;
    const list = this.byPeerTag.get(tag);
    if (list === undefined) this.byPeerTag.set(tag, [ctx]);
    else list.push(ctx);
  }

  byUlidPair(localUlid: Ipv6, peerUlid: Ipv6, fii: number): Context | undefined {
    const list = this.byUlid.get(peerUlid);
    if (list === undefined) return undefined;
    for (const c of list) if (c.localUlid === localUlid && c.fii === fii) return c;
    return undefined;
  }
}

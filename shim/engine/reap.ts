/**
 * REAP failure detection and re-homing (RFC 5534): Send and Keepalive timers
 * (Forced Bidirectional Detection), Keepalive messages at the Keepalive
 * Interval, Probe exploration with nonces and sent/received reports, and the
 * choice of a new outbound pair from the peer's reports — so each direction
 * may end up on a different pair. Every cell of the §6 tables is in
 * `REAP_TABLE`; the handlers only apply its rows. Payload stays on the old
 * pair until the peer has reported one of our probes on a new pair.
 */
import type { Millis } from '../time.ts';
import { encodeMessage, type KeepaliveMessage, type ProbeMessage, type ProbeReport, type ProbeState } from '../wire/index.ts';
import { LocatorFlag } from '../constants.ts';
import type { Context, RehomeCause } from './context.ts';
import { TimerKind, backoff } from './timers.ts';
import type { Core } from './core.ts';
import { rankedPairs, tryOrder, type LocatorPair } from './pairs.ts';
import { peerPortOf, type Datagram } from './rx.ts';
import type { DatagramResult } from './events.ts';

/** REAP states, numbered as the Probe's State field (RFC 5534 §5.2). */
export const Reap = { Operational: 0, Exploring: 1, InboundOk: 2 } as const;
export type ReapStateNum = (typeof Reap)[keyof typeof Reap];
const NAMES: readonly ProbeState[] = ['Operational', 'Exploring', 'InboundOk'];

/** Inputs of the §6 tables. */
export type ReapEvent =
  | 'payload-in' | 'payload-out' | 'keepalive-timeout' | 'send-timeout' | 'retransmit'
  | 'keepalive-in' | 'probe-exploring' | 'probe-inboundok' | 'probe-operational';

/** Table actions: START/RESTART/STOP a timer, SEND a message. */
export type ReapAction = 'START_SEND' | 'RESTART_SEND' | 'STOP_SEND' | 'START_KEEPALIVE' | 'STOP_KEEPALIVE' | 'SEND_PROBE' | 'SEND_KEEPALIVE';

/** One cell: actions in order, then the next state (the Probe's State field = the next state). */
export interface ReapCell {
  actions: readonly ReapAction[];
  next: ReapStateNum;
}

const O = Reap.Operational, E = Reap.Exploring, I = Reap.InboundOk;
const cell = (next: ReapStateNum, ...actions: ReapAction[]): ReapCell => ({ actions, next });

/** RFC 5534 §6.1–§6.9, columns Operational / Exploring / InboundOk. */
export const REAP_TABLE: Readonly<Record<ReapEvent, readonly [ReapCell, ReapCell, ReapCell]>> = {
  'payload-in': [cell(O, 'STOP_SEND', 'START_KEEPALIVE'), cell(I, 'SEND_PROBE', 'START_SEND'), cell(I, 'STOP_SEND')],        // §6.1
  'payload-out': [cell(O, 'START_SEND', 'STOP_KEEPALIVE'), cell(E), cell(I, 'START_SEND')],                                  // §6.2
  'keepalive-timeout': [cell(O, 'SEND_KEEPALIVE'), cell(E), cell(I)],                                                          // §6.3
  'send-timeout': [cell(E, 'SEND_PROBE'), cell(E), cell(E, 'SEND_PROBE')],                                                      // §6.4
  'retransmit': [cell(O), cell(E, 'SEND_PROBE'), cell(I, 'SEND_PROBE', 'START_SEND')],                                         // §6.5
  'keepalive-in': [cell(O, 'STOP_SEND'), cell(I, 'SEND_PROBE', 'START_SEND'), cell(I, 'STOP_SEND')],                           // §6.6
  'probe-exploring': [cell(I, 'SEND_PROBE', 'STOP_KEEPALIVE', 'RESTART_SEND'), cell(I, 'SEND_PROBE', 'START_SEND'), cell(I, 'SEND_PROBE', 'RESTART_SEND')], // §6.7
  'probe-inboundok': [cell(O, 'SEND_PROBE', 'RESTART_SEND', 'STOP_KEEPALIVE'), cell(O, 'SEND_PROBE', 'RESTART_SEND'), cell(O, 'SEND_PROBE', 'RESTART_SEND')], // §6.8
  'probe-operational': [cell(O, 'STOP_SEND', 'START_KEEPALIVE'), cell(O, 'STOP_SEND', 'START_KEEPALIVE'), cell(O, 'STOP_SEND', 'START_KEEPALIVE')], // §6.9
};

/** Reports kept per direction (Psent/Precvd are 4-bit; we keep a few recent ones). */
const LOG = 4;

/**
 * A probe we sent: its report, the UDP port it went to (undefined: 5533), which a peer's report
 * of it proves, and when it went, which tells whether it counts for the current exploration.
 */
export interface SentProbe extends ProbeReport {
  port: number | undefined;
  at: Millis;
}

/** A pair to probe, and the peer's UDP port for it. */
interface ProbeTarget extends LocatorPair {
  port?: number | undefined;
  /**
   * An answer to a peer's probe: at most this many octets (twice the probe), the
   * oldest reports left out to fit (RFC 5534 §5.2 lets the sender choose how many).
   */
  maxBytes?: number;
}

/** Probe logs of a context during and after exploration. */
export interface ReapLog {
  sent: SentProbe[];
  recv: ProbeReport[];
  /** Probes sent in this exploration (back-off). */
  count: number;
  /** Next candidate pair index. */
  cursor: number;
  /**
   * Where the current exploration's probes start (`newExploration`): only a report of a probe
   * sent since proves a pair (`proven`).
   */
  since: Millis;
  /**
   * What started that exploration (`exploreCause` as it began; undefined when the peer's probe
   * did). REAP may go Operational before the peer's report of our probe moves the pair, and the
   * re-homing that report makes is still that exploration's (`choosePair`).
   */
  cause?: RehomeCause | undefined;
}

function reapLog(ctx: Context): ReapLog {
  return (ctx.reap ??= { sent: [], recv: [], count: 0, cursor: 0, since: 0 as Millis });
}

/** ESTABLISHED: REAP starts Operational with no timer running. */
export function startReap(ctx: Context): void {
  ctx.reapState = Reap.Operational;
}

/**
 * Keepalive Timeout for this context: what the peer asked for, else the
 * default (RFC 5534 §7), capped by our `keepaliveTimeoutMax` (sub-second
 * Send Timeouts cannot be advertised in whole seconds; config.ts).
 */
export function keepaliveTimeout(core: Core, ctx: Context): number {
  const kt = ctx.peerKeepaliveTimeout ?? core.timers.defaultKeepaliveTimeout;
  const max = core.timers.keepaliveTimeoutMax;
  return max > 0 ? Math.min(kt, max) : kt;
}

/**
 * Feed one event through the table; `pair` forces the probe's locator pair and port (reply to a probe).
 * `quiet`: the cell's SEND_PROBE is left out (an answer the probe reply limit refused, `onProbe`).
 */
export function reapEvent(core: Core, ctx: Context, now: Millis, ev: ReapEvent, pair?: ProbeTarget, quiet = false): void {
  const from = ctx.reapState as ReapStateNum;
  const c = REAP_TABLE[ev][from];
  if (c.next === Reap.Exploring && from !== Reap.Exploring) {
    // The Send Timer ran out: nothing heard since it started (startExploring makes that now).
    const since = ev === 'send-timeout' ? Math.min(ctx.sendSince, now) as Millis : now;
    if (ctx.exploreCause === undefined) ctx.exploreCause = ev === 'keepalive-timeout' ? 'keepalive-timeout' : 'send-timeout';
    enterExploring(core, ctx, since);
    reapLog(ctx).cause = ctx.exploreCause;
  } else if (from === Reap.Operational && c.next !== Reap.Operational) {
    newExploration(ctx, now); // a peer's probe moved us to InboundOk
  }
  if (c.next === Reap.Operational) ctx.exploreCause = undefined;
  ctx.reapState = c.next;
  const t = core.timers;
  for (const a of c.actions) {
    switch (a) {
      case 'START_SEND':
        if (ctx.timers[TimerKind.Send] === Infinity) { core.arm(ctx, TimerKind.Send, now + t.sendTimeout); ctx.sendSince = now; }
        break;
      case 'RESTART_SEND': core.arm(ctx, TimerKind.Send, now + t.sendTimeout); ctx.sendSince = now; break;
      case 'STOP_SEND': core.stop(ctx, TimerKind.Send); break;
      case 'START_KEEPALIVE': startKeepalive(core, ctx, now); break;
      case 'STOP_KEEPALIVE': core.stop(ctx, TimerKind.Keepalive); core.stop(ctx, TimerKind.KeepaliveInterval); break;
      case 'SEND_PROBE': if (!quiet) sendProbe(core, ctx, now, c.next, pair); break;
      case 'SEND_KEEPALIVE': sendKeepalive(core, ctx); core.stop(ctx, TimerKind.Keepalive); core.stop(ctx, TimerKind.KeepaliveInterval); break;
    }
  }
  if (c.next === Reap.Operational) core.stop(ctx, TimerKind.Probe);
  if ((from === Reap.Operational) !== (c.next === Reap.Operational)) {
    core.emit({ kind: 'reap-state', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, state: c.next === Reap.Operational ? 'operational' : 'exploring', pair: { local: ctx.lpLocal, peer: ctx.lpPeer } });
  }
}

function enterExploring(core: Core, ctx: Context, since: Millis): void {
  core.stop(ctx, TimerKind.Send);
  core.stop(ctx, TimerKind.Keepalive);
  core.stop(ctx, TimerKind.KeepaliveInterval);
  const log = newExploration(ctx, since);
  log.recv = []; // received reports are those since the last transition to Exploring (§5.2)
  log.count = 0;
  log.cursor = 0;
}

/**
 * A new exploration begins (REAP left Operational, or entered Exploring): probes sent before
 * `since` prove nothing about the paths now. The peer may still report them — its received log
 * runs from its own last transition to Exploring (§5.2), which may be long ago — and a report of
 * a probe sent on the current pair before it failed would keep the dead pair (`proven`). `since`
 * is now, except after a Send Timeout: then the Send Timer's start, since nothing was heard from
 * the peer after it, and a probe sent since and reported proves its pair carried our packets
 * after that (a false exploration right after another is then settled by the peer's report of
 * the last one's probe on the current pair, though it no longer answers every probe: its reply
 * budget, docs/engine.md).
 */
function newExploration(ctx: Context, since: Millis): ReapLog {
  const log = reapLog(ctx);
  log.since = since;
  log.cause = undefined;
  return log;
}

/**
 * The kernel path saw packets both ways in one reading of its counters (Engine.kernelTraffic),
 * in an order it cannot know. `payload-in` then `payload-out` leave the Send Timer running, as if
 * our packet came last (a failure then explores a Send Timeout after this reading); if the peer's
 * came last instead, the peer's Send Timer runs on it and only our answer stops it (§4.1 item 5):
 * without it, a stream that paused after a round trip had both ends explore a Send Timeout later,
 * each taking its own sending for the last packet. So the Keepalive timer runs too (in Operational,
 * where it is used: §6), from now, as after a packet received. The two timers are meant to
 * exclude each other (§6); here each stands for one of the two orders, and the next reading
 * settles which: a packet sent stops the Keepalive timer (§6.2), one received or the peer's
 * Keepalive stops the Send Timer (§6.1, §6.6). While packets keep flowing both ways every reading
 * restarts the Keepalive timer, so no Keepalive goes: only once the traffic pauses, as when the
 * peer's was the last packet.
 */
export function bothWays(core: Core, ctx: Context, now: Millis): void {
  reapEvent(core, ctx, now, 'payload-in');
  reapEvent(core, ctx, now, 'payload-out');
  // In Operational `payload-out` has just stopped it: this starts it afresh.
  if (ctx.reapState === Reap.Operational) startKeepalive(core, ctx, now);
}

function startKeepalive(core: Core, ctx: Context, now: Millis): void {
  if (ctx.timers[TimerKind.Keepalive] !== Infinity) return;
  const kt = keepaliveTimeout(core, ctx);
  core.arm(ctx, TimerKind.Keepalive, now + kt);
  core.arm(ctx, TimerKind.KeepaliveInterval, now + interval(core, kt));
}

/** Keepalive Interval: 1/3 to 1/2 of the Keepalive Timeout, randomised (RFC 5534 §4.1, §7). */
function interval(core: Core, kt: number): number {
  return kt * (1 / 3 + core.random.unit() / 6);
}

/** The Keepalive Interval timer: send a Keepalive, and again until the Keepalive Timeout. */
export function onKeepaliveInterval(core: Core, ctx: Context, now: Millis): void {
  sendKeepalive(core, ctx);
  const next = now + interval(core, keepaliveTimeout(core, ctx));
  if (next < ctx.timers[TimerKind.Keepalive]!) core.arm(ctx, TimerKind.KeepaliveInterval, next);
}

export function sendKeepalive(core: Core, ctx: Context): void {
  const msg: KeepaliveMessage = { type: 'Keepalive', contextTag: ctx.ctPeer, options: [] };
  core.send(ctx.lpLocal, ctx.lpPeer, msg, ctx.port); // always on the current pair (§5.1)
}

/**
 * Candidate pairs in exploration order (RFC 5534 §4.3 leaves it to us): the
 * pairs sharing no locator with the current (suspect) pair first, then the
 * rest, by preference (pairs.ts); the current pair last, so it is re-probed
 * each round and kept if it answers (a false exploration changes nothing).
 * Only HBA/CGA-verified peer locators that are not BROKEN (third-party
 * flooding, RFC 5533 §16).
 */
export function candidatePairs(core: Core, ctx: Context): LocatorPair[] {
  const locals = core.local.usable();
  const peers = ctx.peer.filter((l) => l.verified && (l.flags & LocatorFlag.BROKEN) === 0);
  const current = { local: ctx.lpLocal, peer: ctx.lpPeer };
  const valid = locals.includes(ctx.lpLocal) && peers.some((p) => p.address === ctx.lpPeer);
  const order = tryOrder(current, rankedPairs(locals, peers), false);
  if (valid) order.push(current);
  return order;
}

/**
 * Send one Probe with State = `state` and arm its retransmission (§6.5, back-off §4.3).
 * The first probe of an exploration goes to the best pair disjoint from the
 * current one, with a probe on the current pair alongside. A reply on the
 * reverse of the peer's probe pair (`forced`) that is not our
 * current pair goes with a probe on the current pair first: if the peer
 * reports that one, choosePair keeps the current pair (a peer's exploration,
 * or a false one of ours, does not move a direction that works).
 */
function sendProbe(core: Core, ctx: Context, now: Millis, state: ReapStateNum, forced?: ProbeTarget): void {
  const log = reapLog(ctx);
  let pair: ProbeTarget | undefined = forced;
  if (pair === undefined || !core.local.usable().includes(pair.local) || !ctx.isPeerDestination(pair.peer)) {
    const cands = candidatePairs(core, ctx);
    pair = cands.length === 0 ? { local: ctx.lpLocal, peer: ctx.lpPeer } : cands[log.cursor++ % cands.length]!;
    // First probe of an exploration: the current pair too, at once, so a direction that works is re-confirmed.
    if (log.count === 0 && cands.length > 1 && (pair.local !== ctx.lpLocal || pair.peer !== ctx.lpPeer) && cands.at(-1)!.local === ctx.lpLocal && cands.at(-1)!.peer === ctx.lpPeer) {
      probeOn(core, ctx, now, state, cands.at(-1)!);
    }
  } else if (pair.local !== ctx.lpLocal || pair.peer !== ctx.lpPeer || pair.port !== ctx.port) {
    if (core.local.usable().includes(ctx.lpLocal) && ctx.isPeerDestination(ctx.lpPeer)) probeOn(core, ctx, now, state, { local: ctx.lpLocal, peer: ctx.lpPeer });
  }
  probeOn(core, ctx, now, state, pair);
  if (state !== Reap.Operational) {
    const t = core.timers;
    const wait = log.count < t.initialProbes ? t.initialProbeTimeout : backoff(t.initialProbeTimeout, log.count - t.initialProbes + 1, t.maxProbeTimeout);
    log.count++;
    core.arm(ctx, TimerKind.Probe, now + wait);
  }
}

/**
 * Build, send and log one Probe on `pair` (to the context's port unless the target names one).
 * With `pair.maxBytes` (an answer to a peer's probe) the older sent reports go first, then the
 * older received ones, until it fits: the probe itself and the newest received report — the
 * peer's probe being answered — always stay, and their 96 octets fit twice the smallest probe
 * (56 octets: one report).
 */
function probeOn(core: Core, ctx: Context, now: Millis, state: ReapStateNum, pair: ProbeTarget): void {
  const log = reapLog(ctx);
  const port = 'port' in pair ? pair.port : ctx.port;
  const me: SentProbe = { source: pair.local, destination: pair.peer, nonce: core.random.u32(), data: 0, port, at: now };
  const sent = [me, ...log.sent.slice(-(LOG - 1)).reverse()].map((r): ProbeReport => ({ source: r.source, destination: r.destination, nonce: r.nonce, data: r.data }));
  const received = log.recv.slice(-LOG);
  const msg: ProbeMessage = { type: 'Probe', contextTag: ctx.ctPeer, state: NAMES[state]!, sent, received, options: [] };
  let bytes = encodeMessage(msg);
  if (pair.maxBytes !== undefined && bytes.length > pair.maxBytes) {
    while (bytes.length > pair.maxBytes && (sent.length > 1 || received.length > 1)) {
      if (sent.length > 1) sent.pop();
      else received.shift();
      bytes = encodeMessage(msg);
    }
    core.guard.probeReplies.trimmed++;
  }
  core.sendBytes(pair.local, pair.peer, bytes, port);
  log.sent.push(me);
  if (log.sent.length > LOG * 2) log.sent.splice(0, log.sent.length - LOG * 2);
}

/** Local failure or a BROKEN current locator: explore now instead of waiting for the Send Timeout. */
export function startExploring(core: Core, ctx: Context, now: Millis, cause: RehomeCause): void {
  if (ctx.reapState === Reap.Exploring) return;
  ctx.exploreCause = cause;
  ctx.sendSince = now; // the current pair fails now: no earlier probe counts (newExploration)
  reapEvent(core, ctx, now, 'send-timeout');
}

/** A Keepalive arrived (§6.6). */
export function onKeepalive(core: Core, ctx: Context, now: Millis): void {
  reapEvent(core, ctx, now, 'keepalive-in');
}

/**
 * A Probe arrived (§6.7–§6.9): log it, maybe pick a new outbound pair, then the table.
 *
 * Only a report of a probe from the current exploration proves a pair (`proven`). While we
 * explore (Exploring, InboundOk), a peer's InboundOk or Operational probe whose reports name none
 * of those — only probes sent before (the peer's received log runs from its own last transition
 * to Exploring, §5.2), or none we know — shows the peer hears us, not on which pair: it counts as
 * a probe that still explores (§6.7: InboundOk, answered), not as §6.8/§6.9's "go Operational",
 * which would keep a current pair that is dead. A probe without reports is §6.8's "no received
 * probes reported": Operational, the pair unchanged.
 *
 * The answer of a probe whose cell sends one back (Exploring, InboundOk) needs a token from the
 * context's bucket and the host's — or, a known peer's context, the reserve (`probeReplyLimit`,
 * reply-limit.ts; core.ts `mayAnswerProbe`); without one only the answer
 * is left out (`quiet`): the probe still counts as an answered one does — its report in our received
 * log (our own probes carry it), its reports of our probes (`choosePair`), the table's next state and
 * timers — which costs what an answered probe costs, sends nothing, and needs what every probe needs
 * (our tag, a verified peer locator as source: dispatch.ts). A peer that keeps to REAP's back-off
 * (§4.3) never empties its bucket; one that loses its answers retransmits, and our own probes report
 * its; dropped whole, the reports that move our pair would be lost with it, and a flood that keeps
 * the host's bucket empty would stall every other context's re-homing. The answer goes on the
 * reverse of the pair the probe came on (it works at least one way, RFC 5534
 * App. A ex. 4/5), at most twice the probe's size, and to the probe's source port only when that
 * locator is known to reach the peer (the current pair's, or one a probe report proved), else to
 * the context's port: a peer lists any address it likes under its CGA signature (RFC 5533 §16
 * wants a destination proven by a probe exchange), so a forged source must not aim the answers
 * at a port of its choosing. Only the peer's report of an answer moves ctx.port.
 */
export function onProbe(core: Core, ctx: Context, now: Millis, rx: Datagram, msg: ProbeMessage): DatagramResult {
  const { src, dst } = rx;
  let ev: ReapEvent = msg.state === 'Exploring' ? 'probe-exploring' : msg.state === 'InboundOk' ? 'probe-inboundok' : 'probe-operational';
  const proof = ev === 'probe-exploring' ? [] : proven(core, ctx, msg.received);
  if (ev !== 'probe-exploring' && ctx.reapState !== Reap.Operational && msg.received.length > 0 && !proof.some((s) => s.usable)) ev = 'probe-exploring';
  let answers = REAP_TABLE[ev][ctx.reapState as ReapStateNum].actions.includes('SEND_PROBE');
  if (answers && !core.mayAnswerProbe(now, ctx)) {
    core.guard.probeReplies.limited++;
    answers = false;
  }
  const log = reapLog(ctx);
  const first = msg.sent[0];
  if (first !== undefined) {
    log.recv.push({ source: src, destination: dst, nonce: first.nonce, data: first.data });
    if (log.recv.length > LOG) log.recv.shift();
  }
  if (proof.length > 0) choosePair(core, ctx, now, proof);
  let port = peerPortOf(rx, ctx);
  if (answers && port !== ctx.port && src !== ctx.lpPeer && ctx.peerLocator(src)?.probed !== true) {
    core.guard.probeReplies.portPinned++;
    port = ctx.port;
  }
  reapEvent(core, ctx, now, ev, { local: dst, peer: src, port, maxBytes: 2 * rx.bytes.length }, !answers);
  if (answers) core.guard.probeReplies.sent++;
  return { kind: 'consumed' };
}

/** One of our probes a peer reported, and whether its pair is one we may still use. */
interface Proof {
  probe: SentProbe;
  usable: boolean;
}

/**
 * The probes of the current exploration (sent since `ReapLog.since`, see `newExploration`) that the peer's
 * received-probe reports name (nonce, source and destination), oldest first. A report of an older
 * probe proves nothing now: in the lab, B's InboundOk answer over Q still listed two probes A had
 * sent on P seconds before P failed, and A went back to Operational on the dead P. Each is marked
 * unusable when its pair stopped being usable since (our locator gone or BROKEN, the peer's
 * withdrawn or flagged BROKEN): it proves a path we must not use.
 */
function proven(core: Core, ctx: Context, reports: readonly ProbeReport[]): Proof[] {
  const log = ctx.reap;
  if (log === undefined || reports.length === 0) return [];
  const locals = core.local.usable();
  const out: Proof[] = [];
  for (const s of log.sent) {
    if (s.at < log.since) continue;
    if (!reports.some((r) => r.nonce === s.nonce && r.source === s.source && r.destination === s.destination)) continue;
    out.push({ probe: s, usable: locals.includes(s.source) && ctx.isPeerDestination(s.destination) });
  }
  return out;
}

/**
 * RFC 5534 §6.8: the peer's received-probe reports name our probes that got
 * through (`proven`: this exploration's only). Keep the current pair if it is among them, else
 * switch to the most recent one. The peer locator is then "probed": a legitimate destination.
 * The same reports are the proof for the peer's UDP port (a NAT that rebound):
 * keep ctx.port if a probe sent there got through, else take the port of the
 * most recent one that did — a packet that merely carries the tag from another
 * port never moves it.
 */
function choosePair(core: Core, ctx: Context, at: Millis, proof: readonly Proof[]): void {
  let chosen: SentProbe | undefined;
  let keepPair = false;
  let portHolds = false;
  let latest: SentProbe | undefined;
  for (const { probe: s, usable } of proof) {
    latest = s;
    if (s.port === ctx.port) portHolds = true;
    // A probe sent before its pair stopped being usable neither keeps nor moves the pair.
    if (!usable) continue;
    if (s.source === ctx.lpLocal && s.destination === ctx.lpPeer) keepPair = true;
    else chosen = s;
  }
  if (latest === undefined) return;
  if (!portHolds) ctx.port = latest.port;
  if (keepPair || chosen === undefined) return;
  const pl = ctx.peerLocator(chosen.destination);
  if (pl === undefined || !pl.verified) return;
  pl.probed = true;
  const old = { local: ctx.lpLocal, peer: ctx.lpPeer };
  ctx.lpLocal = chosen.source;
  ctx.lpPeer = chosen.destination;
  // The proof is of this exploration's probes (`proven`): its cause, also once REAP went Operational.
  const cause = ctx.exploreCause ?? ctx.reap?.cause ?? 'peer-exploring';
  const now = { local: ctx.lpLocal, peer: ctx.lpPeer };
  ctx.rehomings++;
  ctx.lastRehome = { at, cause, old, new: now };
  core.rehomings[cause] = (core.rehomings[cause] ?? 0) + 1;
  core.emit({ kind: 'locator-pair-changed', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, old, new: now, cause });
}

/**
 * Context establishment (RFC 5533 §7.3–§7.16): I1 → R1 → I2 → R2, crossing I1s
 * (answered with R2 only where the context's packets already go:
 * `answersI1There`), I2 retries falling back to I1, back-off randomised into
 * [0.5, 1.5] × nominal, E-FAILED / NO-SUPPORT hold-downs, and the host-based
 * independent capability probe (I1 → R1 and stop;
 * docs/engine.md "Capability detection"). The stateless R1 itself is in
 * responder.ts; R1bis/I2bis in recovery.ts.
 */
import { MAX_ECHOED_VALIDATOR } from './local.ts';
import type { Millis } from '../time.ts';
import { prefix64Key, type Ipv6 } from '../wire/ipv6.ts';
import { findOption, type I1Message, type I2Message, type R1Message, type R2Message, type Shim6Message, type Shim6Option } from '../wire/index.ts';
import { asIdle, State, transition } from './states.ts';
import { Context, type ContextMode, type UlidProof } from './context.ts';
import { TimerKind, backoff } from './timers.ts';
import type { Core } from './core.ts';
import type { DatagramResult } from './events.ts';
import { boundPort, learnPort, peerPortOf, replyPort, type Datagram } from './rx.ts';
import type { PrimeLocator } from './capability.ts';
import { checkR1Validator, encodeR1, R1_LENGTH } from './responder.ts';
import { applyHandshakeLocators, checkLocators, peerKeepalive, retagUpdate, sendUpdate, type CheckedLocator } from './update.ts';
import { checkConfusion } from './confusion.ts';
import { startReap } from './reap.ts';
import { rankedPairs, tryOrder, type LocatorPair } from './pairs.ts';
import { LocatorFlag, VerificationMethod } from '../constants.ts';
import { keepCapable, unpin } from './lasting.ts';

const CONSUMED: DatagramResult = { kind: 'consumed' };
const drop = (reason: string): DatagramResult => ({ kind: 'drop', reason });

/** ULID pair and FII of an I1/I2/I2bis (RFC 5533 §7.9): ULID option, else the addresses. */
export function ulidsOf(msg: Shim6Message, src: Ipv6, dst: Ipv6): { peer: Ipv6; local: Ipv6; fii: number } {
  const u = findOption(msg, 'UlidPair');
  const f = findOption(msg, 'ForkedInstanceIdentifier');
  return { peer: u?.senderUlid ?? src, local: u?.receiverUlid ?? dst, fii: f?.forkedInstanceId ?? 0 };
}

/** ULID / FII options a context's I1, I2 and I2bis must carry, sent on `local` → `peer` (its current pair unless told). */
export function identityOptions(ctx: Context, local: Ipv6 = ctx.lpLocal, peer: Ipv6 = ctx.lpPeer): Shim6Option[] {
  const out: Shim6Option[] = [];
  if (local !== ctx.localUlid || peer !== ctx.peerUlid) out.push({ type: 'UlidPair', critical: false, senderUlid: ctx.localUlid, receiverUlid: ctx.peerUlid });
  if (ctx.fii !== 0) out.push({ type: 'ForkedInstanceIdentifier', critical: false, forkedInstanceId: ctx.fii });
  return out;
}

/**
 * Locators DNS or configuration gave for the peer: unverified hints that I1
 * retransmissions rotate through, never destinations of payload.
 * Also used when priming lands while an I1 is already pending.
 */
export function addHints(ctx: Context, hints: readonly PrimeLocator[]): void {
  for (const h of [...hints].sort((a, b) => a.priority - b.priority || b.weight - a.weight)) {
    if (ctx.peerLocator(h.address) === undefined) ctx.peer.push({ address: h.address, method: 0, listed: false, verified: false, probed: false, flags: h.flags, priority: h.priority, weight: h.weight });
  }
}

/**
 * Start an exchange with `peerUlid` (Appendix B "heuristic"): context in I1-SENT, I1 sent. A
 * pinned peer (a resumable close: the driver kept its route for the next packet, lasting.ts) gets
 * the full exchange whatever `mode` asks: an independent probe would unpin it and end without a
 * context, leaving that route with nothing to carry its packets (a DNS prime of a peer configured
 * `independent`). The callers read the mode from the context.
 */
export function initiate(core: Core, now: Millis, localUlid: Ipv6, peerUlid: Ipv6, hints: readonly PrimeLocator[], mode: ContextMode, primedByDns: boolean, port: number | undefined): Context {
  if (core.resumable.has(peerUlid)) mode = 'integrated';
  const ctx = new Context(localUlid, peerUlid, 0, core.newTag(), mode, 'initiated', now);
  ctx.primedByDns = primedByDns;
  ctx.port = port;
  addHints(ctx, hints);
  unpin(core, peerUlid);
  core.table.add(ctx);
  core.step(ctx, 'heuristic');
  core.table.setNonce(ctx, core.newNonce());
  sendI1(core, ctx, now);
  return ctx;
}

/**
 * Send (or resend) the I1. Retransmissions walk the locator pairs of our usable
 * locators × the peer's hinted ones (failure during startup), disjoint pairs
 * first after each failure (pairs.ts): with the peer's first locator dead, the
 * first retry already uses other locators at both ends, so the R1 can come back
 * on a working path too.
 */
export function sendI1(core: Core, ctx: Context, now: Millis): void {
  const pair = i1Pair(core, ctx, ctx.retries);
  ctx.lpPeer = pair.peer;
  ctx.lpLocal = pair.local;
  transmitI1(core, ctx);
  core.arm(ctx, TimerKind.Retransmit, now + core.random.jitter(backoff(core.timers.i1Timeout, ctx.retries)));
}

/** The context's I1 (CT(local), its current nonce), on its current locator pair. */
function transmitI1(core: Core, ctx: Context): void {
  const msg: I1Message = { type: 'I1', contextTag: ctx.ctLocal, initiatorNonce: ctx.initNonce, options: identityOptions(ctx) };
  core.send(ctx.lpLocal, ctx.lpPeer, msg, ctx.port);
  ctx.r2Checks = 1;
}

/** The locator pair of the `n`th I1 (0: the first): our ULID to the peer's preferred locator, then tryOrder. */
export function i1Pair(core: Core, ctx: Context, n: number): LocatorPair {
  const peers = ctx.peer.filter((l) => (l.flags & LocatorFlag.BROKEN) === 0);
  const locals = core.local.usable();
  const ranked = rankedPairs(locals.length > 0 ? locals : [ctx.localUlid], peers.length > 0 ? peers : ctx.peer);
  const firstPeer = [...(peers.length > 0 ? peers : ctx.peer)].sort((a, b) => a.priority - b.priority || b.weight - a.weight)[0]?.address ?? ctx.peerUlid;
  const first = { local: locals.includes(ctx.localUlid) || locals.length === 0 ? ctx.localUlid : locals[0]!, peer: firstPeer };
  const order = tryOrder(first, ranked);
  return order[n % order.length]!;
}

/**
 * In I2-SENT, once per I2 cycle, after our R2 answered the peer's crossing I1 (§7.4), so the peer
 * has our tag: an I1 with the I2's Initiator Nonce, on the I2's locator pair. A peer that
 * restarted since its R1 (both daemons restarted in turn) cannot verify the validator our I2
 * carries, its previous instance's, so it never answers that I2; but it answers an I1 with the tag
 * it has from us with its R2 (§7.9), and that R2 echoes the nonce our I2 is waiting for (§7.16):
 * we are established one round trip after the peer, not at the cycle's next timeout after its
 * packets nudged us (dispatch.ts nudgePending; that fallback to I1, §7.12, stays for an I1 that is
 * lost). Nothing of the context changes: the state, the nonce and the I2 cycle stay as they are.
 * Not RFC 5533's table, which only sends R2 there.
 */
function sendI1InI2Cycle(core: Core, ctx: Context): void {
  if (ctx.state !== State.I2_SENT || ctx.i2CycleI1) return;
  ctx.i2CycleI1 = true;
  transmitI1(core, ctx); // in I2-SENT: the I2's nonce and pair
}

/**
 * Send (or resend) the I2 with the R1's validator on the I1's locator pair. `arm`: (re)start the
 * Retransmit timer; a nudge (dispatch.ts nudgePending) leaves it running, or a peer that sends
 * anything more often than the timer's period would keep the I2 cycle from ever running out.
 */
export function sendI2(core: Core, ctx: Context, now: Millis, arm = true): void {
  ctx.announcedGeneration = core.local.generation;
  const options: Shim6Option[] = [{ type: 'ResponderValidator', critical: false, validator: ctx.validator! }, ...identityOptions(ctx), ...core.local.options(ctx.localUlid)];
  const msg: I2Message = { type: 'I2', contextTag: ctx.ctLocal, initiatorNonce: ctx.initNonce, responderNonce: ctx.respNonce, options };
  core.send(ctx.lpLocal, ctx.lpPeer, msg, ctx.port);
  ctx.r2Checks = 1;
  if (arm) core.arm(ctx, TimerKind.Retransmit, now + core.random.jitter(backoff(core.timers.i2Timeout, ctx.retries)));
}

/**
 * R2 for `ctx` answering the I1/I2/I2bis `rx`, back where it came from (§7.14; never retransmitted).
 * No check of its own: it carries CT(local), so callers send it only where the context's packets
 * already go — after an I2/I2bis's validator proved the source (acceptInitiator), or through
 * `answerI1` for an I1, which proves nothing.
 */
export function sendR2(core: Core, ctx: Context, rx: Datagram, initiatorNonce: number): void {
  ctx.announcedGeneration = core.local.generation;
  const msg: R2Message = { type: 'R2', contextTag: ctx.ctLocal, initiatorNonce, options: [...core.local.options(ctx.localUlid)] };
  core.send(rx.dst, rx.src, msg, replyPort(rx, ctx));
}

/**
 * The stateless R1 (§7.10): computed from the I1, its source port and the
 * current secret only, within the reply limits (core.mayReply) — checked
 * before any hashing, so a flood costs a table lookup per I1. `ctx`: the
 * context of the I1's ULID pair, if any (a source among its verified locators
 * is a known peer's, core.knownPeer).
 */
function sendR1(core: Core, now: Millis, rx: Datagram, msg: I1Message, peer: Ipv6, local: Ipv6, fii: number, ctx: Context | undefined): void {
  const { src, dst } = rx;
  if (!core.mayReply(now, 'R1', src, R1_LENGTH, rx.bytes.length, 0, ctx)) return;
  const nonce = core.secrets.nonce(now);
  const secret = core.secrets.current;
  core.sendBytes(dst, src, encodeR1(secret, nonce, msg.initiatorNonce, { initiatorTag: msg.contextTag, peerUlid: peer, localUlid: local, peerLocator: src, localLocator: dst, fii, port: boundPort(rx) }), replyPort(rx));
}

const failed = (ctx: Context | undefined): boolean => ctx === undefined || asIdle(ctx.state);

/**
 * May an R2 answering an I1 — it carries CT(local) — go to the I1's source?
 * RFC 5533 §16 protects a context from off-path attackers by its tag alone:
 * whoever learns CT(local) can forge Close, Update Request or payload from a
 * peer locator. §7.9 answers a crossing I1 (I1-SENT, I2-SENT, I2BIS-SENT) with
 * an R2 and no locator check, and one in ESTABLISHED when its source is "in
 * Ls(peer)" — so any I1 naming (peer, us) from anywhere drew our tag during our
 * own handshakes, and a locator the peer merely listed (a CGA signature proves
 * who lists a locator, not that it receives there) drew full R2s. We read
 * "the peer's locator" as "an address this context's packets already go to":
 *
 * - a locator whose return routability the handshake or a REAP probe showed
 *   (`verified` and `probed`: the bar RFC 5533 §16 and RFC 5534 §8 set for a
 *   packet destination);
 * - for a context this host initiated, the peer ULID and the locators DNS,
 *   configuration or prime() gave (not from the peer's list): our own I1s go
 *   there, carrying CT(local) already;
 *
 * never a locator flagged BROKEN, and only at the UDP port the context uses
 * (an I1 proves no port: `learnPort`). Anything else is answered as in IDLE,
 * with a stateless R1, which tells nothing about the context.
 */
export function answersI1There(ctx: Context, rx: Datagram): boolean {
  const l = ctx.peerLocator(rx.src);
  if (l === undefined || (l.flags & LocatorFlag.BROKEN) !== 0) return false;
  if (peerPortOf(rx, ctx) !== ctx.port) return false;
  if (l.verified && l.probed) return true;
  return ctx.ulidProof === 'initiated' && !l.listed;
}

/**
 * The least time between two R2s one context sends in answer to I1s: half an
 * I1 timeout, the shortest gap between a peer's I1 retransmissions under our
 * own timers (§7.8 randomises them into [0.5, 1.5] × I1_TIMEOUT). A legitimate
 * peer sends one crossing I1, or retransmits one after a lost R2; an I1 within
 * the gap is answered as in IDLE (R1 → I2 → R2 still sets the context up).
 */
export const i1ReplyGap = (core: Core): number => core.timers.i1Timeout / 2;

/**
 * Send the R2 an I1 draws (§7.9) once `answersI1There` and the gap allowed it,
 * within the reply limits (core.mayAnswerI1): so a flood of I1s naming a
 * context draws at most one R2 per context per gap, and no more replies per
 * /64 and overall than the stateless ones may.
 */
function answerI1(core: Core, now: Millis, ctx: Context, rx: Datagram, initiatorNonce: number): boolean {
  if (!core.mayAnswerI1(now, rx.src)) return false;
  ctx.i1AnsweredAt = now;
  sendR2(core, ctx, rx, initiatorNonce);
  return true;
}

/**
 * RFC 5533 §7.9, read with §16 (`answersI1There`). Each branch decides before
 * it steps the state table, and no branch changes the context beyond the
 * time of its last R2 to an I1 (and in I2-SENT that the cycle's own I1 went,
 * `sendI1InI2Cycle`): an I1 proves nothing.
 */
export function onI1(core: Core, now: Millis, rx: Datagram, msg: I1Message): DatagramResult {
  const { src, dst } = rx;
  const { peer, local, fii } = ulidsOf(msg, src, dst);
  if (!core.isLocal(local) && local !== core.config.localUlid) return drop('not-our-ulid');
  const ctx = core.table.byUlidPair(local, peer, fii);
  if (failed(ctx)) {
    if (ctx !== undefined) core.step(ctx, 'recv-I1');
    sendR1(core, now, rx, msg, peer, local, fii, ctx);
    return CONSUMED;
  }
  const c = ctx!;
  const established = c.state === State.ESTABLISHED;
  // ESTABLISHED, CT(peer) differs: the peer lost the context and starts anew (§7.9): R1.
  if (established && msg.contextTag !== c.ctPeer) {
    core.step(c, 'recv-I1');
    sendR1(core, now, rx, msg, peer, local, fii, c);
    return CONSUMED;
  }
  // From an address the context's packets do not go to, or too soon after the last R2: as in IDLE.
  const there = answersI1There(c, rx);
  if (!there || now < c.i1AnsweredAt + i1ReplyGap(core)) {
    if (core.step(c, 'recv-I1-stateless') === undefined) return drop('state');
    if (there) core.guard.replies.R2.limited++; // the gap refused it
    sendR1(core, now, rx, msg, peer, local, fii, c);
    return CONSUMED;
  }
  // ESTABLISHED: a retransmitted I1, our R2 was lost. Otherwise crossing I1s (§7.4): CT(peer) stays.
  if (core.step(c, established ? 'recv-I1-ct-match' : 'recv-I1') === undefined) return drop('state');
  // In I2-SENT the peer now has our tag: our I1 with the I2's nonce draws its R2 (sendI1InI2Cycle).
  if (answerI1(core, now, c, rx, msg.initiatorNonce)) sendI1InI2Cycle(core, c);
  return CONSUMED;
}

/** RFC 5533 §7.11. */
export function onR1(core: Core, now: Millis, rx: Datagram, msg: R1Message): DatagramResult {
  const { src, dst } = rx;
  const ctx = core.table.byNonce.get(msg.initiatorNonce);
  if (ctx === undefined) return drop('no-context');
  if (!core.isLocal(dst) || ctx.peerLocator(src) === undefined) return drop('locator-mismatch');
  if (ctx.state !== State.I1_SENT) {
    core.step(ctx, 'recv-R1');
    return drop('state');
  }
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (v.validator.length > MAX_ECHOED_VALIDATOR) return drop('validator-too-long'); // our I2/I2bis echoes it beside our list
  if (ctx.mode === 'independent') {
    core.step(ctx, 'recv-R1-probe');
    core.removeContext(ctx);
    confirmCapable(core, ctx, now, 'probe');
    core.emit({ kind: 'peer-supported', peerUlid: ctx.peerUlid, address: src });
    return CONSUMED;
  }
  learnPort(ctx, rx); // it echoes our Initiator Nonce
  ctx.respNonce = msg.responderNonce;
  ctx.validator = v.validator;
  ctx.lpPeer = src;
  ctx.lpLocal = dst;
  ctx.retries = 0;
  ctx.i2Nudged = false; // an I2 cycle begins
  ctx.i2CycleI1 = false;
  core.step(ctx, 'recv-R1');
  sendI2(core, ctx, now);
  if (ctx.mode === 'integrated') core.emit({ kind: 'context-answered', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid });
  return CONSUMED;
}

/** RFC 5533 §7.13. Nothing is allocated before the validator has been checked. */
export function onI2(core: Core, now: Millis, rx: Datagram, msg: I2Message): DatagramResult {
  const { src, dst } = rx;
  const { peer, local, fii } = ulidsOf(msg, src, dst);
  if (!core.isLocal(local) && local !== core.config.localUlid) return drop('not-our-ulid');
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (!checkR1Validator(core.secrets, now, msg.responderNonce, v.validator, { initiatorTag: msg.contextTag, peerUlid: peer, localUlid: local, peerLocator: src, localLocator: dst, fii, port: boundPort(rx) })) {
    return drop('bad-validator');
  }
  return acceptInitiator(core, now, rx, msg, peer, local, fii, 'recv-I2');
}

/**
 * RFC 5533 §7.13 read with §16: may the sender of an I2/I2bis from `src`
 * speak for `peer`? Yes when the ULID is `src` itself (no ULID Pair option, or
 * one naming the source), or when the message's PDS — already checked to
 * prove `peer` (ownsUlid) — proves `src` too: a member of the same HBA set, or
 * a locator the same key signed (`checked`). The validator only shows that
 * `src` is return-routable; without this, anyone could claim a third party's
 * address as its ULID and have it routed to itself.
 */
function proveUlid(peer: Ipv6, src: Ipv6, pds: Uint8Array | undefined, checked: readonly CheckedLocator[]): UlidProof | undefined {
  if (peer === src) return 'locator';
  if (pds === undefined) return undefined;
  const entry = checked.find((c) => c.address === src);
  if (entry === undefined || !entry.ok) return undefined;
  return entry.method === VerificationMethod.CGA ? 'cga' : 'hba';
}

/** Peers already hold as many contexts with us as allowed, overall or from `peer`'s /64 (memory bound). */
function atContextLimit(core: Core, peer: Ipv6): boolean {
  const t = core.table;
  return t.answeredTotal >= core.config.maxContexts || (t.answered.get(prefix64Key(peer)) ?? 0) >= core.config.maxContextsPerPrefix;
}

/** An I2/I2bis whose peer ULID is not proven: counted, told once to the driver, dropped (no context, no R2). */
function refuseUlid(core: Core, peer: Ipv6, src: Ipv6, reason: 'ulid-unproven' | 'ulid-is-local'): DatagramResult {
  if (reason === 'ulid-unproven') core.guard.ulidUnproven++;
  else core.guard.ulidIsLocal++;
  core.emit({ kind: 'ulid-refused', claimedUlid: peer, source: src, reason });
  return drop(reason);
}

/**
 * The part of I2 and I2bis processing after the validator (§7.13, §7.20):
 * prove the peer ULID, create or update the context, verify locators, detect
 * confusion, send R2. Nothing changes before every check has passed.
 */
export function acceptInitiator(core: Core, now: Millis, rx: Datagram, msg: Shim6Message & { contextTag: number; initiatorNonce: number }, peer: Ipv6, local: Ipv6, fii: number, trigger: 'recv-I2' | 'recv-I2bis'): DatagramResult {
  const { src, dst } = rx;
  if (core.isLocal(peer) || peer === core.config.localUlid) return refuseUlid(core, peer, src, 'ulid-is-local');
  const pds = findOption(msg, 'CgaParameterDataStructure')?.pds;
  // A PDS that does not own the claimed ULID (someone else's set, or the sender's own) proves nothing for it.
  if (pds !== undefined && !core.verifier.ownsUlid(peer, pds)) return refuseUlid(core, peer, src, 'ulid-unproven');
  const found = core.table.byUlidPair(local, peer, fii);
  const fresh = found === undefined || failed(found);
  const gate = core.verifyGate(now, src, found);
  const checked = checkLocators(core, peer, msg, fresh ? undefined : found.peerPds, gate);
  // Over the sender's verification budget (docs/security.md "CGA verification cost"): dropped unverified, nothing changes.
  if (gate.limited) return drop('cga-limited');
  // §7.2, §10.3: a CGA Signature that does not prove the list's CGA-method locators voids the message.
  if (badCgaSignature(checked)) return drop('locator-unverified');
  let ctx: Context;
  if (fresh) {
    const proof = proveUlid(peer, src, pds, checked);
    if (proof === undefined) return refuseUlid(core, peer, src, 'ulid-unproven');
    if (found === undefined && atContextLimit(core, peer)) {
      core.guard.contextLimit++;
      return drop('context-limit');
    }
    if (found !== undefined) core.removeContext(found);
    ctx = new Context(local, peer, fii, core.newTag(), 'integrated', proof, now);
    unpin(core, peer);
    core.table.add(ctx);
    applyHandshakeLocators(ctx, msg, checked);
    ctx.lpLocal = dst;
    ctx.lpPeer = src;
    keepHandshakeLocator(ctx, src);
  } else {
    ctx = found;
    if (!ctx.hasVerifiedPeer(src) && !checked.some((c) => c.ok && c.address === src)) return refuseUlid(core, peer, src, 'ulid-unproven');
    if (transition(ctx.state, trigger) === undefined) return drop('state');
    applyHandshakeLocators(ctx, msg, checked);
  }
  const step = core.step(ctx, trigger);
  if (step === undefined) return drop('state');
  const anew = step.from === State.ESTABLISHED && ctx.state === State.ESTABLISHED && ctx.ctPeer !== msg.contextTag;
  const oldTag = ctx.ctPeer;
  newPeerInstance(ctx, msg.contextTag);
  core.table.setPeerTag(ctx, msg.contextTag);
  learnPort(ctx, rx); // the validator binds the port our R1/R1bis went to
  peerKeepalive(ctx, msg);
  if (step.from !== State.ESTABLISHED && ctx.state === State.ESTABLISHED) {
    ctx.lpLocal = dst;
    ctx.lpPeer = src;
    establish(core, ctx, now, trigger === 'recv-I2bis');
  } else if (anew) {
    // The peer lost the context and set it up anew (§7.9: its I1, then this I2, with a new tag; its
    // daemon restarted): ours stays as it was, but the driver must learn the peer's new tag (its
    // kernel entries) and that what was sent meanwhile was lost (the TCP prompt).
    emitEstablished(core, ctx, true);
  }
  checkConfusion(core, ctx);
  sendR2(core, ctx, rx, msg.initiatorNonce);
  retagUpdate(core, ctx, now, oldTag);
  return CONSUMED;
}

/**
 * The I2 came from `src` carrying the validator our R1 sent there (or the R2
 * from `src` echoed our nonce), so `src` is return-routable for this peer, as
 * a probe would show — the same rule replacePeerSet (update.ts) applies to the
 * handshake pair. Without it, a peer that sends no Locator List (no PDS) and
 * talks from a locator other than its ULID (ULID option, or a DNS hint we sent
 * the I1 to) would be unusable: every later packet from there draws an R1bis.
 * An entry of the peer's own list that failed HBA/CGA stays unverified.
 */
function keepHandshakeLocator(ctx: Context, src: Ipv6): void {
  const l = ctx.peerLocator(src);
  if (l === undefined) ctx.peer.push({ address: src, method: 0, listed: false, verified: true, probed: true, flags: 0, priority: 0, weight: 0 });
  else if (!l.listed) { l.verified = true; l.probed = true; }
}

/** A CGA-method locator the message's CGA Signature does not prove (RFC 5533 §7.2). */
function badCgaSignature(checked: readonly CheckedLocator[]): boolean {
  return checked.some((c) => c.method === VerificationMethod.CGA && !c.ok);
}

/** RFC 5533 §7.16. */
export function onR2(core: Core, now: Millis, rx: Datagram, msg: R2Message): DatagramResult {
  const { src, dst } = rx;
  const ctx = core.table.byNonce.get(msg.initiatorNonce);
  if (ctx === undefined) return drop('no-context');
  if (!core.isLocal(dst) || ctx.peerLocator(src) === undefined) return drop('locator-mismatch');
  // ESTABLISHED: only the R2 to the I2bis of a recovery off the current pair (recovery.ts), which
  // left the context's state alone until now: its echo of our nonce is the proof.
  const side = ctx.state === State.ESTABLISHED && ctx.sideRecovery !== undefined;
  if ((ctx.state === State.ESTABLISHED && !side) || ctx.mode === 'independent') return drop('state');
  const pds = findOption(msg, 'CgaParameterDataStructure')?.pds;
  if (pds !== undefined && !core.verifier.ownsUlid(ctx.peerUlid, pds)) return drop('pds-mismatch');
  const gate = core.r2Gate(ctx);
  const checked = checkLocators(core, ctx.peerUlid, msg, ctx.peerPds, gate);
  // This message of ours already paid for a verification (a failed one): dropped unverified, nothing changes.
  if (gate.limited) return drop('cga-limited');
  if (badCgaSignature(checked)) return drop('locator-unverified');
  let recovered = side;
  if (!side) {
    const step = core.step(ctx, 'recv-R2');
    if (step === undefined) return drop('state');
    recovered = step.from === State.I2BIS_SENT;
  }
  applyHandshakeLocators(ctx, msg, checked);
  const oldTag = ctx.ctPeer;
  newPeerInstance(ctx, msg.contextTag);
  core.table.setPeerTag(ctx, msg.contextTag);
  learnPort(ctx, rx); // it echoes our Initiator Nonce
  peerKeepalive(ctx, msg);
  ctx.lpLocal = dst;
  ctx.lpPeer = src;
  keepHandshakeLocator(ctx, src);
  establish(core, ctx, now, recovered);
  checkConfusion(core, ctx);
  // Our locators changed after the I2/I2bis left (§10.1): the peer has an old list.
  if (ctx.announcedGeneration !== core.local.generation && core.local.pds !== undefined) sendUpdate(core, ctx, now);
  else retagUpdate(core, ctx, now, oldTag);
  return CONSUMED;
}

/**
 * The peer answered an independent probe, so it runs shim6: refresh the positive cache for
 * positiveTtl (docs/engine.md "Capability detection"; a context's handshake goes through
 * lasting.ts, which keeps the entry while the context lives), keeping
 * what DNS or configuration said about its locators and port — they prime the
 * next context.
 */
function confirmCapable(core: Core, ctx: Context, now: Millis, source: 'probe'): void {
  const known = core.cache.getPositive(now, ctx.peerUlid);
  const expires = Math.max(known?.expires ?? 0, now + core.config.positiveTtl) as Millis;
  core.cache.setPositive(now, known !== undefined ? { ...known, expires } : { ulid: ctx.peerUlid, source, locators: [], expires });
}

/** Entering ESTABLISHED: stop retransmission, start REAP and idle GC, tell the driver. */
export function establish(core: Core, ctx: Context, now: Millis, recovered: boolean): void {
  core.closed.delete(ctx.peerUlid);
  core.table.clearNonce(ctx);
  core.stop(ctx, TimerKind.Retransmit);
  ctx.retries = 0;
  ctx.i2Cycles = 0; // I2_CYCLES_MAX bounds one establishment: a later recovery's fall backs count anew
  ctx.validator = undefined;
  ctx.sideRecovery = undefined;
  const lp = ctx.peerLocator(ctx.lpPeer);
  if (lp !== undefined) lp.probed = true; // return routability: the peer answered there with our nonce
  core.touch(ctx, now);
  core.arm(ctx, TimerKind.Idle, now + core.timers.idleTimeout);
  startReap(ctx);
  // The handshake proved the peer: its entry lasts while the context does (lasting.ts).
  ctx.provenAt = now;
  ctx.goneSince = undefined; // heard from: a count of Port Unreachables (icmp.ts) starts anew
  keepCapable(core, ctx, now, (now + core.config.positiveTtl) as Millis);
  emitEstablished(core, ctx, recovered);
}

/** `context-established` for `ctx` as it is now (its tags and pair; `recovered`: up again). */
function emitEstablished(core: Core, ctx: Context, recovered: boolean): void {
  core.emit({ kind: 'context-established', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, ulidProof: ctx.ulidProof, contextTag: ctx.ctLocal, peerContextTag: ctx.ctPeer, pair: { local: ctx.lpLocal, peer: ctx.lpPeer }, recovered });
}

/**
 * E-FAILED (no R1: `no-answer`) or NO-SUPPORT (ICMP: `refused`): negative
 * cache, events, hold-down. When DNS claimed the peer, the entry is keyed by
 * address + ULID: that claim is refused until it expires.
 */
export function failEstablishment(core: Core, ctx: Context, now: Millis, reason: 'no-answer' | 'refused'): void {
  core.table.clearNonce(ctx);
  core.stop(ctx, TimerKind.Retransmit);
  const hold = reason === 'refused' ? core.timers.icmpHolddownTime : core.timers.noR1HolddownTime;
  core.cache.setNegative(now, ctx.primedByDns
    ? { address: ctx.lpPeer, ulid: ctx.peerUlid, reason, expires: (now + hold) as Millis }
    : { address: ctx.peerUlid, reason, expires: (now + hold) as Millis });
  core.arm(ctx, TimerKind.Holddown, now + hold);
  core.emit({ kind: 'context-failed', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, reason });
  core.emit({ kind: 'peer-unsupported', peerUlid: ctx.peerUlid, address: ctx.lpPeer, reason });
}

/**
 * CT(peer) is about to become `tag`: when it changes, the peer set the context up anew (its
 * restart: R2 to our I2bis, its I2 with a new tag), and what its previous instance advertised
 * (its Keepalive Timeout, RFC 5534 §5.3) holds no longer: this message's options say it again.
 */
function newPeerInstance(ctx: Context, tag: number): void {
  if (ctx.ctPeer !== tag) ctx.peerKeepaliveTimeout = undefined;
}

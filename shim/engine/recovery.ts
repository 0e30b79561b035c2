/**
 * Context recovery (RFC 5533 §7.5, §7.17–§7.20): the stateless R1bis for
 * packets that name a context we do not have, the I2bis it leads to, and R2
 * back to ESTABLISHED (handshake.ts acceptInitiator).
 */
import { MAX_ECHOED_VALIDATOR } from './local.ts';
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { encodeMessage, findOption, type I2bisMessage, type R1bisMessage, type Shim6Option } from '../wire/index.ts';
import { State } from './states.ts';
import type { Context } from './context.ts';
import { TimerKind, backoff } from './timers.ts';
import type { Core } from './core.ts';
import type { DatagramResult } from './events.ts';
import { boundPort, replyPort, type Datagram } from './rx.ts';
import { checkR1bisValidator, r1bisValidator, VALIDATOR_LENGTH } from './responder.ts';
import { acceptInitiator, identityOptions, ulidsOf } from './handshake.ts';

const CONSUMED: DatagramResult = { kind: 'consumed' };
const drop = (reason: string): DatagramResult => ({ kind: 'drop', reason });

/** Octets of every R1bis we send (fixed part + a Responder Validator option). */
const R1BIS_LENGTH = encodeMessage({ type: 'R1bis', packetContextTag: 0, responderNonce: 0, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(VALIDATOR_LENGTH) }] }).length;

/**
 * Stateless R1bis (§7.17) for the packet `rx` naming tag `packetTag`: within
 * the reply limits, never more than twice the packet (a bare payload header
 * draws nothing), bound to the packet's source port like the R1.
 */
export function sendR1bis(core: Core, now: Millis, rx: Datagram, packetTag: number): void {
  const { src: peer, dst: local } = rx;
  if (!core.mayReply(now, 'R1bis', peer, R1BIS_LENGTH, rx.bytes.length)) return;
  const nonce = core.secrets.nonce(now);
  const secret = core.secrets.secretFor(now, nonce)!;
  const validator = r1bisValidator(secret, nonce, { packetTag, peerLocator: peer, localLocator: local, port: boundPort(rx) });
  const msg: R1bisMessage = { type: 'R1bis', packetContextTag: packetTag, responderNonce: nonce, options: [{ type: 'ResponderValidator', critical: false, validator }] };
  core.send(local, peer, msg, replyPort(rx));
}

/**
 * §7.18: ESTABLISHED + R1bis for our CT(peer) on our current pair → I2bis, I2BIS-SENT.
 *
 * Deviation from §7.17/§12.4's lookup (locator pair + Packet Context Tag, the pair being the
 * context's current one): an R1bis may also answer a packet we sent with CT(peer) on another
 * pair — a REAP probe while the context explores (RFC 5534 probes every pair). A peer that lost
 * the context (its daemon restarted) answers each of our probes where it arrived, and on a busy
 * host or a failed current pair the only answers came off the current pair: dropped as
 * `no-context`, the context never came back (e2e restart). Such an R1bis is taken only when
 * our probe log shows a probe we sent from its destination to its source, and within §7.17's
 * security intent — an R1bis proves nothing until the I2bis/R2 exchange does: the context is
 * left as it is (ESTABLISHED, its pair, CT(peer), REAP all unchanged) and only an I2bis goes out,
 * on the R1bis's pair (the validator binds those locators). The R2, which echoes our fresh
 * Initiator Nonce, is what recovers the context (handshake.ts onR2); unanswered, the I2bis is
 * given up after I2BIS_RETRIES_MAX with nothing torn down or redirected (`onSideRetransmit`).
 */
export function onR1bis(core: Core, now: Millis, rx: Datagram, msg: R1bisMessage): DatagramResult {
  const { src, dst } = rx;
  const list = core.table.byPeerTag.get(msg.packetContextTag);
  const ctx = list?.find((c) => c.lpPeer === src && c.lpLocal === dst);
  if (ctx === undefined) return offPairR1bis(core, now, rx, msg, list);
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (v.validator.length > MAX_ECHOED_VALIDATOR) return drop('validator-too-long'); // our I2/I2bis echoes it beside our list
  if (ctx.state !== State.ESTABLISHED || core.step(ctx, 'recv-R1bis') === undefined) return drop('state');
  ctx.sideRecovery = undefined;
  ctx.respNonce = msg.responderNonce;
  ctx.validator = v.validator;
  ctx.r1bisTag = msg.packetContextTag;
  ctx.retries = 0;
  core.table.setNonce(ctx, core.newNonce());
  resendI2bis(core, ctx, now);
  return CONSUMED;
}

/** Whether `ctx` sent a probe (still in its log) from `local` to `peer`, a pair it may still use. */
function probedOn(core: Core, ctx: Context, local: Ipv6, peer: Ipv6): boolean {
  return ctx.reap !== undefined && ctx.reap.sent.some((p) => p.source === local && p.destination === peer)
    && core.local.usable().includes(local) && ctx.isPeerDestination(peer);
}

/** An R1bis off the current pair (onR1bis): an I2bis on its pair if it answers one of our probes, nothing else. */
function offPairR1bis(core: Core, now: Millis, rx: Datagram, msg: R1bisMessage, list: readonly Context[] | undefined): DatagramResult {
  const { src, dst } = rx;
  const ctx = list?.find((c) => probedOn(core, c, dst, src));
  if (ctx === undefined) return drop('no-context');
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (v.validator.length > MAX_ECHOED_VALIDATOR) return drop('validator-too-long'); // our I2/I2bis echoes it beside our list
  if (ctx.state !== State.ESTABLISHED) return drop('state');
  // Another probe's answer replaces the one in flight (the peer's newest validator), but not within
  // an I2bis timeout of it: each R1bis draws a larger I2bis, and one in flight is being answered.
  if (ctx.sideRecovery !== undefined && now < ctx.sideRecovery.at + core.timers.i2bisTimeout) return drop('pending');
  ctx.sideRecovery = { local: dst, peer: src, port: replyPort(rx, ctx), validator: v.validator, responderNonce: msg.responderNonce, r1bisTag: msg.packetContextTag, retries: 0, at: now };
  core.table.setNonce(ctx, core.newNonce());
  sendSideI2bis(core, ctx, now);
  return CONSUMED;
}

/** Send (or resend) the I2bis of a recovery off the current pair, on the R1bis's pair. */
function sendSideI2bis(core: Core, ctx: Context, now: Millis): void {
  const r = ctx.sideRecovery!;
  sendI2bis(core, ctx, now, r, r.validator, r.responderNonce, r.r1bisTag, r.retries);
}

/**
 * The Retransmit timer of an ESTABLISHED context: the I2bis of a recovery off the current pair
 * again, up to I2BIS_RETRIES_MAX; then it is given up (the nonce forgotten) and the context goes
 * on as it was — the R1bis was never proven, so it neither tears the context down nor falls back
 * to I1 (§7.19's fallback is for I2BIS-SENT, which this never entered).
 */
export function onSideRetransmit(core: Core, ctx: Context, now: Millis): void {
  const r = ctx.sideRecovery;
  if (r === undefined) return;
  if (++r.retries > core.timers.i2bisRetriesMax) {
    ctx.sideRecovery = undefined;
    core.table.clearNonce(ctx);
    return;
  }
  sendSideI2bis(core, ctx, now);
}

/** Send (or resend) the I2bis on the R1bis's locator pair (§7.18, §7.19). */
export function resendI2bis(core: Core, ctx: Context, now: Millis, arm = true): void {
  sendI2bis(core, ctx, now, { local: ctx.lpLocal, peer: ctx.lpPeer, port: ctx.port }, ctx.validator!, ctx.respNonce, ctx.r1bisTag, ctx.retries, arm);
}

/** An I2bis on `on`, echoing an R1bis's validator, nonce and tag, and (`arm`, as sendI2's) its Retransmit timer after `retries`. */
function sendI2bis(core: Core, ctx: Context, now: Millis, on: { local: Ipv6; peer: Ipv6; port: number | undefined }, validator: Uint8Array,
  responderNonce: number, r1bisTag: number, retries: number, arm = true): void {
  ctx.announcedGeneration = core.local.generation;
  const options: Shim6Option[] = [{ type: 'ResponderValidator', critical: false, validator }, ...identityOptions(ctx, on.local, on.peer), ...core.local.options(ctx.localUlid)];
  const msg: I2bisMessage = { type: 'I2bis', contextTag: ctx.ctLocal, initiatorNonce: ctx.initNonce, responderNonce, packetContextTag: r1bisTag, options };
  core.send(on.local, on.peer, msg, on.port);
  ctx.r2Checks = 1;
  if (arm) core.arm(ctx, TimerKind.Retransmit, now + core.random.jitter(backoff(core.timers.i2bisTimeout, retries)));
}

/** §7.20: the validator must be the one our R1bis carried; then as for I2. */
export function onI2bis(core: Core, now: Millis, rx: Datagram, msg: I2bisMessage): DatagramResult {
  const { src, dst } = rx;
  const { peer, local, fii } = ulidsOf(msg, src, dst);
  if (!core.isLocal(local) && local !== core.config.localUlid) return drop('not-our-ulid');
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (!checkR1bisValidator(core.secrets, now, msg.responderNonce, v.validator, { packetTag: msg.packetContextTag, peerLocator: src, localLocator: dst, port: boundPort(rx) })) {
    return drop('bad-validator');
  }
  return acceptInitiator(core, now, rx, msg, peer, local, fii, 'recv-I2bis');
}

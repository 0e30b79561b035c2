/**
 * Context recovery (RFC 5533 §7.5, §7.17–§7.20): the stateless R1bis for
 * packets that name a context we do not have, the I2bis it leads to, and R2
 * back to ESTABLISHED (handshake.ts acceptInitiator).
 */
import type { Millis } from '../time.ts';
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

/** §7.18: ESTABLISHED + R1bis for our CT(peer) on our current pair → I2bis, I2BIS-SENT. */
export function onR1bis(core: Core, now: Millis, rx: Datagram, msg: R1bisMessage): DatagramResult {
  const { src, dst } = rx;
  const list = core.table.byPeerTag.get(msg.packetContextTag);
  const ctx = list?.find((c) => c.lpPeer === src && c.lpLocal === dst);
  if (ctx === undefined) return drop('no-context');
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (ctx.state !== State.ESTABLISHED || core.step(ctx, 'recv-R1bis') === undefined) return drop('state');
  ctx.respNonce = msg.responderNonce;
  ctx.validator = v.validator;
  ctx.r1bisTag = msg.packetContextTag;
  ctx.retries = 0;
  core.table.setNonce(ctx, core.newNonce());
  resendI2bis(core, ctx, now);
  return CONSUMED;
}

/** Send (or resend) the I2bis on the R1bis's locator pair (§7.18, §7.19). */
export function resendI2bis(core: Core, ctx: Context, now: Millis): void {
  ctx.announcedGeneration = core.local.generation;
  const options: Shim6Option[] = [{ type: 'ResponderValidator', critical: false, validator: ctx.validator! }, ...identityOptions(ctx), ...core.local.options()];
  const msg: I2bisMessage = { type: 'I2bis', contextTag: ctx.ctLocal, initiatorNonce: ctx.initNonce, responderNonce: ctx.respNonce, packetContextTag: ctx.r1bisTag, options };
  core.send(ctx.lpLocal, ctx.lpPeer, msg, ctx.port);
  core.arm(ctx, TimerKind.Retransmit, now + core.random.jitter(backoff(core.timers.i2bisTimeout, ctx.retries)));
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

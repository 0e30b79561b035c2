/**
 * Context recovery and confusion (RFC 5533 §7.5, §7.6, §7.15, §7.17–§7.20):
 * the stateless R1bis for packets that name a context we do not have, the
 * I2bis it leads to, R2 back to ESTABLISHED, and removal of a stale context
 * whose CT(peer) the peer has reused for another ULID pair or FII.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { encodeMessage, findOption, type I2bisMessage, type R1bisMessage, type Shim6Option } from '../wire/index.ts';
import { State } from './states.ts';
import type { Context } from './context.ts';
import { TimerKind, backoff } from './timers.ts';
import type { Core } from './core.ts';
import type { DatagramResult } from './events.ts';
import { checkR1bisValidator, r1bisValidator, VALIDATOR_LENGTH } from './responder.ts';
import { acceptInitiator, identityOptions, ulidsOf } from './handshake.ts';

const CONSUMED: DatagramResult = { kind: 'consumed' };
const drop = (reason: string): DatagramResult => ({ kind: 'drop', reason });

/** Octets of every R1bis we send (fixed part + a Responder Validator option). */
const R1BIS_LENGTH = encodeMessage({ type: 'R1bis', packetContextTag: 0, responderNonce: 0, options: [{ type: 'ResponderValidator', critical: false, validator: new Uint8Array(VALIDATOR_LENGTH) }] }).length;

/**
 * Stateless R1bis (§7.17) for a packet with tag `packetTag` from `peer` to
 * `local`, `causeLength` octets long: within the reply limits, never more
 * than twice the packet (a bare payload header draws nothing), bound to the
 * packet's source port like the R1.
 */
export function sendR1bis(core: Core, now: Millis, peer: Ipv6, local: Ipv6, packetTag: number, causeLength: number): void {
  if (!core.mayReply(now, 'R1bis', peer, R1BIS_LENGTH, causeLength)) return;
  const nonce = core.secrets.nonce(now);
  const secret = core.secrets.secretFor(now, nonce)!;
  const validator = r1bisValidator(secret, nonce, { packetTag, peerLocator: peer, localLocator: local, port: core.rxPortOrDefault() });
  const msg: R1bisMessage = { type: 'R1bis', packetContextTag: packetTag, responderNonce: nonce, options: [{ type: 'ResponderValidator', critical: false, validator }] };
  core.send(local, peer, msg, core.rxPort);
}

/** §7.18: ESTABLISHED + R1bis for our CT(peer) on our current pair → I2bis, I2BIS-SENT. */
export function onR1bis(core: Core, now: Millis, src: Ipv6, dst: Ipv6, msg: R1bisMessage): DatagramResult {
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
export function onI2bis(core: Core, now: Millis, src: Ipv6, dst: Ipv6, msg: I2bisMessage): DatagramResult {
  const { peer, local, fii } = ulidsOf(msg, src, dst);
  if (!core.isLocal(local) && local !== core.config.localUlid) return drop('not-our-ulid');
  const v = findOption(msg, 'ResponderValidator');
  if (v === undefined) return drop('no-validator');
  if (!checkR1bisValidator(core.secrets, now, msg.responderNonce, v.validator, { packetTag: msg.packetContextTag, peerLocator: src, localLocator: dst, port: core.rxPortOrDefault() })) {
    return drop('bad-validator');
  }
  return acceptInitiator(core, now, src, dst, msg, peer, local, fii, 'recv-I2bis');
}

/**
 * §7.15: after CT(peer) of `ctx` was set, any other ESTABLISHED / I2BIS-SENT
 * context with the same CT(peer), an overlapping Ls(peer) and another ULID
 * pair or FII is stale — the peer lost it and reused the tag. Remove it.
 */
export function checkConfusion(core: Core, ctx: Context): void {
  const same = core.table.byPeerTag.get(ctx.ctPeer);
  if (same === undefined || same.length < 2) return;
  for (const other of [...same]) {
    if (other === ctx || (other.state !== State.ESTABLISHED && other.state !== State.I2BIS_SENT)) continue;
    if (!other.peer.some((l) => ctx.peerLocator(l.address) !== undefined)) continue;
    if (other.localUlid === ctx.localUlid && other.peerUlid === ctx.peerUlid && other.fii === ctx.fii) continue;
    core.removeContext(other);
    core.emit({ kind: 'context-closed', localUlid: other.localUlid, peerUlid: other.peerUlid, contextTag: other.ctLocal, reason: 'confusion' });
  }
}

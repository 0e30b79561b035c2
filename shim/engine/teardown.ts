/**
 * Removing contexts: idle garbage collection (RFC 5533 §9), a peer whose daemon is gone
 * (`peerGone`), hold-down expiry of
 * E-FAILED / NO-SUPPORT, and our coordinated Close / Close Ack (experimental
 * types 60/61, docs/wire.md "Close and CloseAck"), bound to the receiver's
 * context tag and a nonce so that only the peer of the context can close it.
 */
import type { Millis } from '../time.ts';
import type { CloseAckMessage, CloseMessage } from '../wire/index.ts';
import { State } from './states.ts';
import type { Context } from './context.ts';
import { TimerKind, backoff } from './timers.ts';
import type { Core } from './core.ts';
import type { Datagram } from './rx.ts';
import type { CloseReason, DatagramResult } from './events.ts';
import { keepAtIdleClose, keepCapable, knownPositive } from './lasting.ts';

const CONSUMED: DatagramResult = { kind: 'consumed' };
const drop = (reason: string): DatagramResult => ({ kind: 'drop', reason });

/** Forget a context and tell the driver; after an idle cleanup, whether the next packet should bring it back. */
export function discard(core: Core, ctx: Context, reason: CloseReason, now?: Millis): void {
  // What the peer proved lasts positiveTtl after its last proof (lasting.ts): a daemon stopping closes its contexts before it saves.
  if (now !== undefined && ctx.provenAt !== -Infinity) keepCapable(core, ctx, now, (ctx.provenAt + core.config.positiveTtl) as Millis);
  core.removeContext(ctx);
  const resumable = reason === 'idle' && now !== undefined && knownCapable(core, now, ctx.peerUlid);
  core.emit({ kind: 'context-closed', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, contextTag: ctx.ctLocal, reason, resumable });
}

/** The peer is known to run shim6 and may be contacted: a live positive entry, or configured (mode not off). */
export function knownCapable(core: Core, now: Millis, peer: string): boolean {
  const mode = core.config.peers.get(peer)?.mode;
  if (mode === 'off') return false;
  return mode !== undefined || knownPositive(core, now, peer) !== undefined;
}

/** Idle timer: quiescent for idleTimeout → IDLE (§9); otherwise re-arm from the last activity. */
export function onIdleTimer(core: Core, ctx: Context, now: Millis): void {
  const due = ctx.lastActivity + core.timers.idleTimeout;
  if (due > now) return core.arm(ctx, TimerKind.Idle, due);
  if (core.step(ctx, 'idle-gc') === undefined) return;
  // An established context: what its handshake proved outlasts it while the cleanup is resumable (lasting.ts).
  if (core.config.peers.get(ctx.peerUlid)?.mode !== 'off') keepAtIdleClose(core, ctx, now);
  discard(core, ctx, 'idle', now);
}

/**
 * The peer's shim6 is gone (icmp.ts: proven Port Unreachables about our datagrams for
 * `peerGoneTimeout`, nothing heard from it meanwhile): the context goes (`context-closed`
 * `peer-gone`, not resumable, so the driver takes the peer's route back and its packets go plain
 * on the ULIDs), and the peer ULID into the negative cache for `icmpHolddownTime`, keyed by
 * itself: new flows, a DNS prime and `protect` start no exchange with the gone daemon meanwhile.
 * A handshake with the peer (its daemon back, setting the context up) lifts the entry. What the
 * peer proved is not refreshed (`discard` without `now`): it proved wrong.
 */
export function peerGone(core: Core, ctx: Context, now: Millis): void {
  if (core.step(ctx, 'peer-gone') === undefined) return;
  discard(core, ctx, 'peer-gone');
  core.cache.setNegative(now, { address: ctx.peerUlid, ulid: ctx.peerUlid, reason: 'peer-gone', expires: (now + core.timers.icmpHolddownTime) as Millis });
  core.emit({ kind: 'peer-unsupported', peerUlid: ctx.peerUlid, address: ctx.peerUlid, reason: 'peer-gone' });
}

/** Hold-down over: E-FAILED / NO-SUPPORT → IDLE (the context object goes away). */
export function onHolddown(core: Core, ctx: Context): void {
  if (core.step(ctx, 'holddown-expired') === undefined) return;
  core.removeContext(ctx);
}

/**
 * Packets still on their way into the shim for the peer of a context closed by a Close start
 * no exchange (Core.closed): neither the peer's stragglers nor a stopping daemon's own, still
 * read from the TUN after its Close (a context it would leave behind at the peer).
 */
function noteClosed(core: Core, ctx: Context): void {
  if (core.closed.size >= 4096) core.closed.clear();
  core.closed.add(ctx.peerUlid);
}

/** close(): coordinated removal when established, plain removal while establishing. */
export function closeContext(core: Core, ctx: Context, now: Millis): void {
  const step = core.step(ctx, 'close');
  if (step === undefined) return;
  noteClosed(core, ctx);
  if (ctx.state === State.IDLE) return discard(core, ctx, 'local-close', now);
  ctx.closeNonce = core.random.u32();
  ctx.retries = 0;
  ctx.update = undefined;
  core.stop(ctx, TimerKind.Update);
  for (const k of [TimerKind.Send, TimerKind.Keepalive, TimerKind.KeepaliveInterval, TimerKind.Probe]) core.stop(ctx, k);
  sendClose(core, ctx, now);
}

function sendClose(core: Core, ctx: Context, now: Millis): void {
  const msg: CloseMessage = { type: 'Close', contextTag: ctx.ctPeer, nonce: ctx.closeNonce, options: [] };
  core.send(ctx.lpLocal, ctx.lpPeer, msg, ctx.port);
  core.arm(ctx, TimerKind.Retransmit, now + core.random.jitter(backoff(core.timers.closeTimeout, ctx.retries)));
}

/** CLOSING retransmission: resend Close, or give up and remove unilaterally. */
export function onCloseRetransmit(core: Core, ctx: Context, now: Millis): void {
  ctx.retries++;
  const over = ctx.retries > core.timers.closeRetriesMax;
  if (core.step(ctx, over ? 'timeout-max' : 'timeout') === undefined) return;
  if (over) return discard(core, ctx, 'close-timeout', now);
  sendClose(core, ctx, now);
}

/** A Close for one of our contexts (dispatch checked tag and locators): ack and remove. */
export function onClose(core: Core, ctx: Context, rx: Datagram, msg: CloseMessage, now?: Millis): DatagramResult {
  const { src, dst } = rx;
  if (core.step(ctx, 'recv-Close') === undefined) return drop('state');
  const ack: CloseAckMessage = { type: 'CloseAck', contextTag: ctx.ctPeer, nonce: msg.nonce, options: [] };
  core.send(dst, src, ack, ctx.port);
  discard(core, ctx, 'peer-close', now);
  noteClosed(core, ctx);
  return CONSUMED;
}

/** The peer acknowledged our Close (nonce must match). */
export function onCloseAck(core: Core, ctx: Context, msg: CloseAckMessage, now?: Millis): DatagramResult {
  if (ctx.state !== State.CLOSING || msg.nonce !== ctx.closeNonce) return drop('stale-ack');
  core.step(ctx, 'recv-CloseAck');
  discard(core, ctx, 'local-close', now);
  return CONSUMED;
}

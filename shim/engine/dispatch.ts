/**
 * Dispatch by table (aioquic / h11 style): message type → handler, how the
 * context is found (RFC 5533 §12.4), and the states in which it is processed.
 * Messages naming a context by CT(local) are checked here once: unknown tag or
 * locators outside Ls(peer)/Ls(local) → R1bis for types 64–127 (§7.17), drop otherwise.
 */
import type { Millis } from '../time.ts';
import { tryDecodeMessage, type Shim6Message, type Shim6MessageName } from '../wire/index.ts';
import { hasPeerTag, State } from './states.ts';
import type { Context } from './context.ts';
import type { Core } from './core.ts';
import type { DatagramResult } from './events.ts';
import type { Datagram } from './rx.ts';
import { onI1, onI2, onR1, onR2, sendI2 } from './handshake.ts';
import { onI2bis, onR1bis, resendI2bis, sendR1bis } from './recovery.ts';
import { onUpdateAck, onUpdateError, onUpdateRequest } from './update.ts';
import { onKeepalive, onProbe, reapEvent } from './reap.ts';
import { discard, onClose, onCloseAck } from './teardown.ts';
import { offendingShim } from './errors.ts';
import { provenAlive } from './lasting.ts';

const CONSUMED: DatagramResult = { kind: 'consumed' };
const drop = (reason: string): DatagramResult => ({ kind: 'drop', reason });

type Msg<K extends Shim6MessageName> = Extract<Shim6Message, { type: K }>;

/** Handler of a message that does not name a context by CT(local). */
type Free<K extends Shim6MessageName> = (core: Core, now: Millis, rx: Datagram, msg: Msg<K>) => DatagramResult;
/** Handler of a message delivered by CT(local) after the checks. */
type Bound<K extends Shim6MessageName> = (core: Core, now: Millis, ctx: Context, rx: Datagram, msg: Msg<K>) => DatagramResult;

type Entry<K extends Shim6MessageName> =
  | { by: 'free'; handle: Free<K> }
  | { by: 'tag'; states: readonly State[]; r1bis: boolean; handle: Bound<K> };

const EST_OR_PENDING: readonly State[] = [State.ESTABLISHED, State.I2_SENT, State.I2BIS_SENT];

/**
 * "If I2-SENT, send I2 …; if I2BIS-SENT, send I2bis and proceed" (§10.4, §12.2). The Retransmit
 * timer runs on: re-armed by every nudge, a peer that talks more often than its period (payload
 * every second, Probes, Update Requests) held the exchange pending for good. That peer may be a
 * restarted one, established by our R2 to its I1 (§7.4) while the I2 we keep sending carries its
 * previous instance's validator, which it cannot verify: only the fallback to I1 (§7.12) ends it,
 * and a nudged I2 cycle falls back at its next timeout (retransmit.ts). A nudge sends at most one
 * I2 (I2bis) per half of its timeout (`ctx.nudgedAt`).
 */
export function nudgePending(core: Core, ctx: Context, now: Millis): void {
  const row = core.step(ctx, 'recv-payload');
  if (row?.send !== 'I2' && row?.send !== 'I2bis') return;
  if (row.send === 'I2') ctx.i2Nudged = true;
  // At most one per half of the message's own timeout (as i1ReplyGap for R2s): a stream from the
  // peer would otherwise draw one I2 (or I2bis), far larger than its packets, per packet.
  if (now < ctx.nudgedAt + (row.send === 'I2' ? core.timers.i2Timeout : core.timers.i2bisTimeout) / 2) return;
  ctx.nudgedAt = now;
  if (row.send === 'I2') sendI2(core, ctx, now, false);
  else resendI2bis(core, ctx, now, false);
}

/**
 * After a message for `ctx` passed its handler's checks: nudge a pending
 * exchange (§10.4), and count it as payload for REAP (RFC 5534 §6.1) — not as
 * activity for the idle cleanup (RFC 5533 §9 wants the upper layers' traffic
 * quiescent; our Keepalives and Probes do not count either): a host whose
 * locators change more often than the idle timeout (a roaming laptop) sends
 * every peer an Update at each change, and no context without traffic ever
 * went.
 */
function afterValid(core: Core, now: Millis, ctx: Context, r: DatagramResult): DatagramResult {
  if (r.kind !== 'consumed') return r;
  nudgePending(core, ctx, now);
  if (ctx.state === State.ESTABLISHED) reapEvent(core, ctx, now, 'payload-in');
  return r;
}

export const DISPATCH: { readonly [K in Shim6MessageName]: Entry<K> } = {
  I1: { by: 'free', handle: onI1 },
  R1: { by: 'free', handle: onR1 },
  I2: { by: 'free', handle: onI2 },
  R2: { by: 'free', handle: onR2 },
  R1bis: { by: 'free', handle: onR1bis },
  I2bis: { by: 'free', handle: onI2bis },
  // Validated first, then the side effects (I2 resend, REAP): a request that fails its
  // checks, or an ack with a stale nonce, changes nothing.
  // In I2-SENT the peer's tag comes only with its R2: a request then can be neither acknowledged
  // (the Ack would name CT(peer), which the context does not have yet) nor taken. The I2 goes again
  // (§10.4), and the peer, unacknowledged, sends the request again once we are established.
  UpdateRequest: {
    by: 'tag', states: EST_OR_PENDING, r1bis: true,
    handle: (c, n, ctx, rx, m) => hasPeerTag(ctx.state) ? afterValid(c, n, ctx, onUpdateRequest(c, n, ctx, rx, m)) : (nudgePending(c, ctx, n), drop('peer-tag-unknown')),
  },
  UpdateAck: {
    by: 'tag', states: EST_OR_PENDING, r1bis: true,
    handle: (c, n, ctx, rx, m) => afterValid(c, n, ctx, onUpdateAck(c, ctx, rx, m)),
  },
  Keepalive: { by: 'tag', states: [State.ESTABLISHED], r1bis: true, handle: (c, n, ctx) => (onKeepalive(c, ctx, n), CONSUMED) },
  Probe: { by: 'tag', states: [State.ESTABLISHED], r1bis: true, handle: (c, n, ctx, rx, m) => onProbe(c, ctx, n, rx, m) },
  Close: { by: 'tag', states: [State.ESTABLISHED, State.CLOSING], r1bis: false, handle: (c, n, ctx, rx, m) => onClose(c, ctx, rx, m, n) },
  CloseAck: { by: 'tag', states: [State.CLOSING], r1bis: false, handle: (c, n, ctx, _rx, m) => onCloseAck(c, ctx, m, n) },
  Error: { by: 'free', handle: onError },
};

/** Decode and dispatch one control message. */
export function dispatchControl(core: Core, now: Millis, rx: Datagram, msg: Shim6Message): DatagramResult {
  const entry = DISPATCH[msg.type] as Entry<Shim6MessageName>;
  if (entry.by === 'free') return entry.handle(core, now, rx, msg as never);
  const { src, dst } = rx;
  const tag = (msg as { contextTag: number }).contextTag;
  const ctx = core.table.live(tag);
  if (ctx === undefined || !ctx.hasVerifiedPeer(src) || !core.isLocal(dst)) {
    if (entry.r1bis) sendR1bis(core, now, rx, tag);
    return drop(ctx === undefined ? 'no-context' : 'locator-mismatch');
  }
  if (!entry.states.includes(ctx.state)) return drop('state');
  // No learnPort here: the tag alone proves nothing (an on-path observer knows it). Only
  // messages that echo what we sent to a port move ctx.port (Update Ack, probe reports).
  const r = entry.handle(core, now, ctx, rx, msg as never);
  if (r.kind === 'consumed') {
    ctx.lastReceived = now;
    provenAlive(core, ctx, now); // its handler checked it: the peer is alive there (lasting.ts)
  }
  return r;
}

/**
 * RFC 5533 §12.4: an Error is delivered by the packet in error — the context
 * whose CT(peer) it names. Codes 2–4 are about our Update Requests; code 0
 * about our Close means the peer lacks the extension: remove unilaterally.
 */
function onError(core: Core, now: Millis, rx: Datagram, msg: Msg<'Error'>): DatagramResult {
  const { src, dst } = rx;
  const r = tryDecodeMessage(offendingShim(msg.offendingPacket));
  if (!r.ok || !('contextTag' in r.message)) return drop('error-unmatched');
  const tag = r.message.contextTag;
  const ctx = core.table.byPeerTag.get(tag)?.find((c) => c.lpPeer === src && c.lpLocal === dst);
  if (ctx === undefined) return drop('error-unmatched');
  if (r.message.type === 'UpdateRequest') return onUpdateError(core, now, ctx, msg, r.message.requestNonce);
  if (r.message.type === 'Close' && msg.errorCode === 0 && ctx.state === State.CLOSING) {
    discard(core, ctx, 'local-close', now);
    return CONSUMED;
  }
  return drop('error-ignored');
}

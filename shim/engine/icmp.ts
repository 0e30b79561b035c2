/**
 * ICMPv6 errors about datagrams this host sent (RFC 5533 §7.8, §8), as the
 * driver reads them from its UDP socket's error queue: the error's type, code
 * and MTU/pointer, and the invoking datagram — its locators, UDP port and
 * quoted UDP payload (a Shim6 control message, or a payload header + ULP).
 *
 * Nothing changes before the quoted datagram is shown to be ours: an I1 must
 * carry the nonce and context tag of an I1 still waiting, sent between our
 * locator and one of the peer's; a payload must carry a context's CT(peer)
 * between our locator and a locator of that peer. Anyone can send ICMP, and
 * an off-path sender knows neither the 32-bit nonce nor the 47-bit tag.
 *
 * What is done (RFC 5533 §8's table, read for UDP encapsulation):
 *  - I1, Port Unreachable from the host we sent it to (no daemon there) or
 *    Parameter Problem "unrecognized next header" (native Shim6): NO-SUPPORT,
 *    the negative cache at once (`refused`, ICMP_HOLDDOWN_TIME) — not after
 *    the I1 retries; from a locator other than the peer ULID (a DNS locator
 *    that went stale) only when the peer has no other locator to try.
 *  - I1, any other Destination Unreachable (no route, prohibited, address
 *    unreachable, …) when the peer has no other locator to try: E-FAILED, the
 *    negative cache (`no-answer`, NO_R1_HOLDDOWN_TIME: the host may come back).
 *  - Payload, Packet Too Big: the context's path MTU for its current locator
 *    pair drops (never below 1280), and the error goes to the application with
 *    the MTU it may use (the path's minus what encapsulation adds).
 *  - Payload, a Parameter Problem pointing into the application's packet: to
 *    the application, translated (§8 Figure 9).
 *  - Payload, or a message naming the context by CT(peer) (Keepalive, Probe,
 *    Update Request/Ack), Port Unreachable from the peer locator it went to:
 *    about our UDP port 5533 at the peer, not the application's port (the
 *    peer's kernel answers that one inside the tunnel): the peer's daemon is
 *    not running. Shim6's business (as a Parameter Problem about the Shim6
 *    header would be, §8), not the application's: counted per context
 *    (`peerSilentPort`). A daemon restarting resumes within seconds (R1bis /
 *    I2bis, or its I1): any packet from the peer ends the count. One gone for
 *    good never answers: once the errors have gone on for `peerGoneTimeout`
 *    with nothing heard, the context ends (teardown.ts `peerGone`).
 *  - Payload, other Destination Unreachable or Time Exceeded on the current
 *    pair: REAP explores when there is another pair (Shim6 acts, the
 *    application hears nothing unless `icmpDeliverAll`); with no other pair,
 *    to the application.
 *
 * "Translated" = the quoted packet as the application sent it: the ULIDs in
 * place of the locators, the fixed header's Next Header from the payload
 * header, the outer UDP and payload headers gone. The driver writes it into
 * the TUN as an ICMPv6 error. This module sends nothing and keeps no buffers.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { decodePayloadHeader, isPayloadHeader, tryDecodeMessage, WireError } from '../wire/index.ts';
import { IPV6_HEADER_LENGTH, LocatorFlag, MIN_IPV6_MTU, PAYLOAD_HEADER_LENGTH, UDP_HEADER_LENGTH } from '../constants.ts';
import type { Core } from './core.ts';
import type { Context } from './context.ts';
import { State, hasPeerTag } from './states.ts';
import { failEstablishment } from './handshake.ts';
import { startExploring } from './reap.ts';
import { peerGone } from './teardown.ts';

/** RFC 4443 §2.1 error types. */
export const IcmpType = { DestinationUnreachable: 1, PacketTooBig: 2, TimeExceeded: 3, ParameterProblem: 4 } as const;
/** RFC 4443 §3.1 Destination Unreachable: Port Unreachable. */
export const ICMP_PORT_UNREACHABLE = 4;
/** RFC 4443 §3.4 Parameter Problem: unrecognized Next Header type. */
export const ICMP_UNRECOGNIZED_NEXT_HEADER = 1;

/**
 * What encapsulation adds to an application packet: the UDP header and the
 * payload header. The outer IPv6 header replaces the application's (docs/wire.md "Transports").
 */
export const ENCAPSULATION_GROWTH = UDP_HEADER_LENGTH + PAYLOAD_HEADER_LENGTH;
/** How long a learnt path MTU holds before larger packets are tried again (as Linux's net.ipv6.route.mtu_expires). */
export const PMTU_EXPIRES_MS = 600_000;

/** An ICMPv6 error about a datagram we sent (the driver fills it from the socket's error queue). */
export interface IcmpInput {
  /** RFC 4443 type and code. */
  type: number;
  code: number;
  /** Packet Too Big: the MTU; Parameter Problem: the pointer (into the invoking packet); otherwise 0. */
  info: number;
  /** Who sent the error (a router, or the host the datagram went to), when known. */
  offender?: Ipv6;
  /** The invoking datagram: our locator it left from, the locator it went to, its UDP destination port. */
  src: Ipv6;
  dst: Ipv6;
  port?: number;
  /** Its UDP payload as quoted (possibly truncated): a Shim6 control message, or payload header + ULP. */
  invoking: Uint8Array;
}

/** Outcome of `handleIcmp`. */
export type IcmpResult =
  /** Shim6 acted on it (an I1 refused, REAP exploring): the application hears nothing. */
  | { kind: 'consumed' }
  /**
   * For the application (RFC 5533 §8): an ICMPv6 error of `type`/`code` with
   * `info` (the MTU it may use, or the pointer into its packet) about its
   * packet from `srcUlid` to `dstUlid` with `nextHeader` and `payload` (the
   * quoted ULP, a view into the input).
   */
  | { kind: 'deliver'; type: number; code: number; info: number; srcUlid: Ipv6; dstUlid: Ipv6; nextHeader: number; payload: Uint8Array }
  | { kind: 'drop'; reason: string };

/** A path MTU learnt from a Packet Too Big, for one locator pair. */
export interface PathMtu {
  local: Ipv6;
  peer: Ipv6;
  /** The largest application packet that fits (the path MTU minus ENCAPSULATION_GROWTH, at least 1280). */
  limit: number;
  expires: Millis;
}

const drop = (reason: string): IcmpResult => ({ kind: 'drop', reason });

/** The largest application packet a path MTU carries: at least the IPv6 minimum (RFC 8200 §5; the UDP datagram is then fragmented). */
export function applicationMtu(pathMtu: number): number {
  return Math.max(MIN_IPV6_MTU, pathMtu - ENCAPSULATION_GROWTH);
}

export function handleIcmp(core: Core, now: Millis, e: IcmpInput): IcmpResult {
  if (e.invoking.length < PAYLOAD_HEADER_LENGTH) return drop('TRUNCATED');
  if (!core.isLocal(e.src)) return drop('not-local');
  return isPayloadHeader(e.invoking) ? aboutPayload(core, now, e) : aboutControl(core, now, e);
}

/** An error about a control message: only an I1 still waiting is acted on (§7.8). */
function aboutControl(core: Core, now: Millis, e: IcmpInput): IcmpResult {
  const r = tryDecodeMessage(e.invoking);
  if (!r.ok) return drop('icmp-unmatched');
  const m = r.message;
  // Messages that name the context by CT(peer), as a payload header does (§12.4).
  if (m.type === 'Keepalive' || m.type === 'Probe' || m.type === 'UpdateRequest' || m.type === 'UpdateAck') {
    const ctx = findContext(core, m.contextTag, e);
    if (ctx === undefined || !isPortUnreachable(e)) return drop('icmp-unmatched');
    return peerSilentPort(core, ctx, now, e);
  }
  if (r.message.type !== 'I1') return drop('icmp-unmatched');
  const ctx = core.table.byNonce.get(r.message.initiatorNonce);
  if (ctx === undefined || ctx.state !== State.I1_SENT || ctx.ctLocal !== r.message.contextTag || ctx.peerLocator(e.dst) === undefined) return drop('icmp-unmatched');
  if (ctx.port !== undefined && e.port !== undefined && e.port !== ctx.port) return drop('icmp-unmatched');
  const refused = (e.type === IcmpType.DestinationUnreachable && e.code === ICMP_PORT_UNREACHABLE && (e.offender === undefined || e.offender === e.dst))
    || (e.type === IcmpType.ParameterProblem && e.code === ICMP_UNRECOGNIZED_NEXT_HEADER);
  // The peer's other locators the retries may still try (a dead or refusing one proves nothing about them).
  const others = ctx.peer.some((l) => l.address !== e.dst && (l.flags & LocatorFlag.BROKEN) === 0);
  // Refused at an address DNS or configuration gave besides the ULID (stale, another host's now): as unreachable.
  if (refused && e.dst !== ctx.peerUlid && others) return drop('icmp-other-locators');
  if (refused) {
    if (core.step(ctx, 'icmp-no-support') === undefined) return drop('state');
    failEstablishment(core, ctx, now, 'refused');
    return { kind: 'consumed' };
  }
  if (e.type !== IcmpType.DestinationUnreachable || e.code === ICMP_PORT_UNREACHABLE) return drop('icmp-unmatched');
  // Unreachable: the retries try the peer's other locators, if it has any.
  if (others) return drop('icmp-other-locators');
  if (core.step(ctx, 'icmp-unreachable') === undefined) return drop('state');
  failEstablishment(core, ctx, now, 'no-answer');
  return { kind: 'consumed' };
}

/** An error about an application packet sent through a context (§8). */
function aboutPayload(core: Core, now: Millis, e: IcmpInput): IcmpResult {
  let h: ReturnType<typeof decodePayloadHeader>;
  try {
    h = decodePayloadHeader(e.invoking);
  } catch (err) {
    if (err instanceof WireError) return drop(err.code);
    throw err;
  }
  const ctx = findContext(core, h.contextTag, e);
  if (ctx === undefined) return drop('icmp-unmatched');
  const current = ctx.lpLocal === e.src && ctx.lpPeer === e.dst;
  const payload = e.invoking.subarray(h.headerLength);
  const deliver = (info: number): IcmpResult => ({ kind: 'deliver', type: e.type, code: e.code, info, srcUlid: ctx.localUlid, dstUlid: ctx.peerUlid, nextHeader: h.nextHeader, payload });
  switch (e.type) {
    case IcmpType.PacketTooBig: {
      if (!current) return drop('icmp-stale-pair'); // about a path we no longer use
      const limit = lowerPathMtu(ctx, now, e.info);
      return deliver(limit);
    }
    case IcmpType.DestinationUnreachable:
    case IcmpType.TimeExceeded: {
      if (isPortUnreachable(e)) return peerSilentPort(core, ctx, now, e);
      if (!current) return drop('icmp-stale-pair');
      if (ctx.state === State.ESTABLISHED && otherPairs(core, ctx)) {
        startExploring(core, ctx, now, 'icmp-unreachable');
        return core.config.icmpDeliverAll ? deliver(0) : { kind: 'consumed' };
      }
      return deliver(0);
    }
    case IcmpType.ParameterProblem: {
      // The pointer counts from the outer IPv6 header: below the application's ULP it names our headers.
      const grown = IPV6_HEADER_LENGTH + ENCAPSULATION_GROWTH;
      if (e.info < grown) return drop('icmp-shim-parameter');
      return deliver(e.info - ENCAPSULATION_GROWTH);
    }
    default:
      return drop('icmp-type');
  }
}

function isPortUnreachable(e: IcmpInput): boolean {
  return e.type === IcmpType.DestinationUnreachable && e.code === ICMP_PORT_UNREACHABLE;
}

/**
 * A proven Port Unreachable about `ctx`'s datagram (its CT(peer), to a verified locator of the
 * peer): the peer's shim6 daemon is not running there. Only from that locator itself (a router has
 * no business saying a port is closed), and only for an established context (an I2bis pending
 * means the peer's daemon just answered). Counted from the first since the peer was last heard
 * (a payload, a message its handler took, the kernel path's counters, the handshake); once they
 * have gone on for `peerGoneTimeout` the context ends (`peerGone`).
 */
function peerSilentPort(core: Core, ctx: Context, now: Millis, e: IcmpInput): IcmpResult {
  if (e.offender !== undefined && e.offender !== e.dst) return drop('icmp-not-from-peer');
  if (ctx.state !== State.ESTABLISHED) return drop('icmp-peer-no-daemon');
  if (ctx.goneSince === undefined || heardAt(ctx) >= ctx.goneSince) {
    ctx.goneSince = now;
    ctx.goneErrors = 0;
  }
  ctx.goneErrors++;
  if (now - ctx.goneSince >= core.timers.peerGoneTimeout) peerGone(core, ctx, now);
  return { kind: 'consumed' };
}

/** When the peer was last heard on `ctx`: a packet from it, or the handshake (-Infinity: never). */
function heardAt(ctx: Context): number {
  return Math.max(ctx.lastReceived ?? -Infinity, ctx.provenAt);
}

/**
 * Proven Port Unreachables counted on `ctx` while the peer stays silent (`shim6 status`): how many,
 * and for how long (ms, given `now`); undefined when none since the peer was last heard.
 */
export function peerGoneCount(ctx: Context, now: Millis | undefined): { errors: number; forMs?: number } | undefined {
  const since = ctx.goneSince;
  if (since === undefined || heardAt(ctx) >= since) return undefined;
  return now === undefined ? { errors: ctx.goneErrors } : { errors: ctx.goneErrors, forMs: Math.max(0, now - since) };
}

/** The context that sent a payload with this CT(peer) between these locators (§8: the triple is unique). */
function findContext(core: Core, peerTag: number, e: IcmpInput): Context | undefined {
  const list = core.table.byPeerTag.get(peerTag);
  if (list === undefined) return undefined;
  for (const ctx of list) {
    if (!hasPeerTag(ctx.state) || ctx.state === State.CLOSING) continue;
    if (!ctx.hasVerifiedPeer(e.dst)) continue;
    if (ctx.port !== undefined && e.port !== undefined && e.port !== ctx.port) continue;
    return ctx;
  }
  return undefined;
}

/** Whether REAP has another locator pair to explore. */
function otherPairs(core: Core, ctx: Context): boolean {
  const peers = ctx.peer.filter((l) => l.verified && (l.flags & LocatorFlag.BROKEN) === 0).length;
  return core.local.usable().length * peers > 1;
}

/** Record a Packet Too Big's MTU for the context's current pair; returns the application's limit now. */
function lowerPathMtu(ctx: Context, now: Millis, reported: number): number {
  const limit = applicationMtu(reported);
  const old = ctx.pathMtu;
  const live = old !== undefined && old.local === ctx.lpLocal && old.peer === ctx.lpPeer && now < old.expires;
  if (live && old.limit <= limit) return old.limit; // only ever lower (RFC 8201 §4); an increase waits for the expiry
  ctx.pathMtu = { local: ctx.lpLocal, peer: ctx.lpPeer, limit, expires: (now + PMTU_EXPIRES_MS) as Millis };
  return limit;
}

/**
 * The application packet limit of the context's current pair, if a Packet Too
 * Big taught one that still holds (encapsulate checks it per packet).
 */
export function pathMtuLimit(ctx: Context, now: Millis): number | undefined {
  const m = ctx.pathMtu;
  if (m === undefined) return undefined;
  if (now >= m.expires || m.local !== ctx.lpLocal || m.peer !== ctx.lpPeer) {
    ctx.pathMtu = undefined;
    return undefined;
  }
  return m.limit;
}

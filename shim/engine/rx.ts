/**
 * The received datagram as every handler sees it — an argument, never stored
 * (the engine keeps no "current datagram" between calls) — and what its UDP
 * source port means: where stateless replies go, what a validator binds, and
 * what a context may adopt once the datagram proved its sender.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import { SHIM6_UDP_PORT } from '../constants.ts';
import type { Context } from './context.ts';

/** A received datagram between locators. */
export interface Datagram {
  src: Ipv6;
  dst: Ipv6;
  bytes: Uint8Array;
  /**
   * UDP source port the datagram came from, when the transport knows it: the
   * engine answers there, and a context adopts it once the datagram proved its
   * sender (a peer on a non-default port, or a NAT rebinding).
   */
  port?: number | undefined;
}

/** The port a validator binds: the source port, 5533 when the transport did not say. */
export function boundPort(rx: Datagram): number {
  return rx.port ?? SHIM6_UDP_PORT;
}

/** The source port in `ctx.port`'s terms (undefined: 5533; the context's own when the transport did not say). */
export function peerPortOf(rx: Datagram, ctx: Context): number | undefined {
  if (rx.port === undefined) return ctx.port;
  return rx.port === SHIM6_UDP_PORT ? undefined : rx.port;
}

/** Where a reply to `rx` goes: its source port, else the context's. */
export function replyPort(rx: Datagram, ctx?: Context): number | undefined {
  return rx.port ?? ctx?.port;
}

/**
 * `rx` proved its sender for `ctx` (it echoed a nonce or validator we sent to
 * this port, RFC 5533 §7.13/§7.16/§10.5, RFC 5534 probe reports): the peer's
 * shim is at its source port. Only proving handlers call this — a packet that
 * merely carries the context tag never re-points the context.
 */
export function learnPort(ctx: Context, rx: Datagram): void {
  ctx.port = peerPortOf(rx, ctx);
}

/**
 * What the simulator drives on each host: the Engine API of docs/contracts.md,
 * reduced to the calls the network and the app make. The real `Engine`
 * satisfies it structurally; `EchoEndpoint` (echo.ts) is a trivial stand-in
 * used to test the simulator itself. Types here mirror the contract so the
 * simulator does not depend on engine internals.
 */
import type { Millis } from '../../shim/time.ts';

export type Ipv6 = string;

/** A datagram between two locators (UDP-encapsulated Shim6 bytes). */
export interface Datagram {
  readonly src: Ipv6;
  readonly dst: Ipv6;
  readonly bytes: Uint8Array;
}

export type HandleResult =
  | { readonly kind: 'payload'; readonly srcUlid: Ipv6; readonly dstUlid: Ipv6; readonly nextHeader: number; readonly payload: Uint8Array }
  | { readonly kind: 'consumed' }
  | { readonly kind: 'drop'; readonly reason: string };

export type EncapsulateResult =
  | { readonly kind: 'send'; readonly src: Ipv6; readonly dst: Ipv6; readonly header: Uint8Array }
  | { readonly kind: 'no-context' };

export interface AppPacket {
  readonly srcUlid: Ipv6;
  readonly dstUlid: Ipv6;
  readonly nextHeader: number;
  readonly payload: Uint8Array;
}

/** An event as the engine reports it (tagged on `kind`); the simulator only records them. */
export interface EndpointEvent {
  readonly kind: string;
  readonly [k: string]: unknown;
}

/** The sans-I/O surface the simulator drives. */
export interface SimEndpoint {
  handleDatagram(now: Millis, d: Datagram): HandleResult;
  encapsulate(now: Millis, p: AppPacket): EncapsulateResult;
  handleTimeout(now: Millis): void;
  pollTransmit(): Datagram | undefined;
  pollTimeout(): Millis | undefined;
  pollEvent(): EndpointEvent | undefined;
}

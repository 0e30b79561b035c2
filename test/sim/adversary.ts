/**
 * The adversary: it sees every packet hosts put on the wire (a tap, with the
 * time it was sent) and can put packets of its own on the wire — forged from
 * scratch, captured ones replayed as they were, or replayed with other
 * addresses or altered bytes. Injected packets reach the host that owns their
 * destination after `delay`, bypassing links (an off-path attacker that can
 * spoof sources). Must not know about protocol semantics; tests build the bytes.
 */
import { ms, type Millis } from '../../shim/time.ts';
import type { Datagram, Ipv6 } from './endpoint.ts';
import type { Network, WirePacket } from './network.ts';

export interface Captured {
  readonly at: Millis;
  readonly from: string;
  readonly packet: WirePacket;
}

export class Adversary {
  readonly captured: Captured[] = [];
  /** Packets injected so far. */
  injected = 0;

  constructor(private readonly net: Network, private readonly clock: () => Millis) {}

  /** Called by the simulator for every packet a host sends. */
  tap(from: string, packet: WirePacket): void {
    this.captured.push({ at: this.clock(), from, packet });
  }

  /** Captured packets matching `pred`. */
  find(pred: (c: Captured) => boolean): Captured[] {
    return this.captured.filter(pred);
  }

  /** Deliver a packet of the adversary's own making. */
  inject(d: Datagram, delay: Millis = ms(0)): void {
    this.injected++;
    this.net.enqueue(ms(this.clock() + delay), { src: d.src, dst: d.dst, bytes: d.bytes.slice(), forged: true });
  }

  /** Replay a captured packet, optionally re-addressed or with its bytes changed. */
  replay(c: Captured, opts: { src?: Ipv6; dst?: Ipv6; mutate?: (b: Uint8Array) => Uint8Array; delay?: Millis } = {}): void {
    const bytes = opts.mutate ? opts.mutate(c.packet.bytes.slice()) : c.packet.bytes;
    this.inject({ src: opts.src ?? c.packet.src, dst: opts.dst ?? c.packet.dst, bytes }, opts.delay ?? ms(0));
  }
}

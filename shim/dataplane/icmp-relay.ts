/**
 * ICMPv6 errors between the network, the engine and the application
 * (RFC 5533 §8, docs/dataplane.md "ICMP"): an error about one of our
 * datagrams goes to the engine, which acts on it (an I1 refused, REAP
 * exploring) or translates it back to the application's own packet; that one
 * goes into the TUN as an ICMPv6 error from the error's sender (the peer's
 * ULID when the kernel did not say). An application packet too big for its
 * context's path is answered with a Packet Too Big, as a router would.
 *
 * Owns: the rate limit of its log lines. Must not know: sockets, the TUN
 * (the driver hands it `toApplication`).
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import type { Logger } from '../log.ts';
import type { Engine } from '../engine/index.ts';
import type { IcmpError } from './udp.ts';
import { buildIcmpError, type SplitPacket } from './ip6-packet.ts';

export interface IcmpRelayOptions {
  /** The engine's ICMP input; absent: errors are ignored. */
  handleIcmp?: Engine['handleIcmp'];
  clock: () => Millis;
  logger?: Logger;
  /** Put a packet the daemon made for the application into the TUN (with this turn's batch). */
  toApplication: (packet: Uint8Array) => void;
  /** Count by what happened: `in` (heard), `acted` (the engine acted), `tooBig` (answered), or a drop reason. */
  count: (what: 'in' | 'acted' | 'tooBig') => void;
  drop: (reason: string) => void;
}

/** At most one log line per peer and ICMP type this often (ms). */
const ICMP_LOG_MS = 10_000;
/** Peers and types remembered for that limit (the map is emptied when full). */
const LOGGED_MAX = 4096;
/** RFC 4443 §3.2: Packet Too Big. */
const ICMP_PACKET_TOO_BIG = 2;

export class IcmpRelay {
  /** When an error for the application was last logged, per peer and ICMP type. */
  private readonly logged = new Map<string, number>();

  constructor(private readonly opts: IcmpRelayOptions) {}

  /** Whether the engine takes ICMP errors at all. */
  get enabled(): boolean {
    return this.opts.handleIcmp !== undefined;
  }

  /** An ICMPv6 error about one of our datagrams, from the transport. */
  fromNetwork(e: IcmpError): void {
    const handle = this.opts.handleIcmp;
    if (handle === undefined) return;
    this.opts.count('in');
    const r = handle(this.opts.clock(), { type: e.type, code: e.code, info: e.info, src: e.src, dst: e.dst, port: e.dstPort, invoking: e.quoted, ...(e.offender !== undefined ? { offender: e.offender } : {}) });
    if (r.kind === 'consumed') this.opts.count('acted');
    else if (r.kind === 'drop') this.opts.drop(`icmp-${r.reason}`.replace(/^icmp-icmp-/, 'icmp-'));
    else {
      this.opts.toApplication(buildIcmpError(e.offender ?? r.dstUlid, r.srcUlid, r.type, r.code, r.info,
        { srcUlid: r.srcUlid, dstUlid: r.dstUlid, nextHeader: r.nextHeader, payloadLength: r.payload.length, payload: r.payload }));
      this.log(r.dstUlid, r.type, { type: r.type, code: r.code, info: r.info, peer: r.dstUlid, from: e.offender, pair: { local: e.src, peer: e.dst } });
    }
  }

  /**
   * The application's packet is larger than its context's path carries: it is
   * dropped, and the application hears the MTU it may use (from the peer's ULID,
   * about the packet as sent).
   */
  tooBig(s: SplitPacket, mtu: number): void {
    this.opts.count('tooBig');
    this.opts.toApplication(buildIcmpError(s.dstUlid, s.srcUlid, ICMP_PACKET_TOO_BIG, 0, mtu,
      { srcUlid: s.srcUlid, dstUlid: s.dstUlid, nextHeader: s.nextHeader, payloadLength: s.payload.length, payload: s.payload }));
  }

  /** Log an error handed to the application: the first per peer and type, then at most one per ICMP_LOG_MS (stats count them all). */
  private log(peer: Ipv6, type: number, fields: Record<string, unknown>): void {
    const key = `${peer} ${type}`;
    const now = this.opts.clock();
    const last = this.logged.get(key);
    if (last !== undefined && now - last < ICMP_LOG_MS) return;
    if (this.logged.size >= LOGGED_MAX) this.logged.clear();
    this.logged.set(key, now);
    this.opts.logger?.info('icmp error to the application', fields);
  }
}

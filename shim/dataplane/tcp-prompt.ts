/**
 * The TCP prompt after re-homing. When a context moves to a new locator pair,
 * TCP on both hosts is usually sitting in exponential RTO back-off (measured:
 * a failure repaired after 3.5 s still stalled TCP for 6.8 s). We prompt it
 * at once instead of letting it wait for its next backed-off retransmission:
 *
 *  1. Re-send, on the new pair, the last segment with data that the local
 *     application sent to the peer. During the outage that segment is TCP's
 *     own RTO retransmission of the first unacknowledged octet, so the peer
 *     gets exactly the hole it is missing and answers with an ACK that moves
 *     snd_una; the local sender then leaves RTO recovery and sends the rest.
 *     If the segment had arrived after all, the peer just sends a duplicate
 *     ACK (RFC 9293 §3.10.7.4), which is harmless.
 *  2. Re-send the last pure ACK the local application sent to the peer,
 *     three times: duplicate ACKs tell a peer that is sending to us where we
 *     are, and trigger its fast retransmit (RFC 5681 §3.2) when it has
 *     segments outstanding.
 *
 * The peer's daemon does the same for its side when it re-homes, so both
 * directions are prompted. Owns: a bounded table of the last outgoing
 * segments per TCP flow. `observe` only notes a view; `commit` (the driver
 * calls it at the end of each TUN batch, while the views are still valid)
 * copies the last one per flow into its buffer, so a 64 KB TSO burst costs
 * one copy, not 45. Must not know: sockets, the engine.
 */
import { IPV6_HEADER_LENGTH, IPPROTO_TCP } from './ip6-packet.ts';

/** How many duplicate ACKs to send (RFC 5681 §3.2: three trigger fast retransmit). */
export const PROMPT_DUP_ACKS = 3;
/** Flows remembered; the oldest is forgotten first. */
export const PROMPT_MAX_FLOWS = 4096;

const FIN = 0x01, SYN = 0x02, RST = 0x04;

interface Flow {
  peer: string;
  lastData: Uint8Array | undefined;
  lastDataLen: number;
  lastAck: Uint8Array | undefined;
  lastAckLen: number;
  /** Views seen in the current batch, copied at commit. */
  pendingData: Uint8Array | undefined;
  pendingAck: Uint8Array | undefined;
}

/** A flow's last segments' sequence and acknowledgment numbers (see TcpPrompter.marks). */
function mark(flow: Flow): string {
  const t = IPV6_HEADER_LENGTH;
  const d = flow.lastData, a = flow.lastAck;
  const word = (b: Uint8Array, o: number) => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
  return `${d ? `${word(d, t + 4)}:${word(d, t + 8)}` : '-'} ${a ? word(a, t + 8) : '-'}`;
}

/** Remembers the last outgoing segments per TCP flow and says what to replay. */
export class TcpPrompter {
  private readonly flows = new Map<string, Flow>();
  private readonly dirty: Flow[] = [];
  // The last flow looked at: consecutive packets are nearly always the same flow.
  private lastSrc = ''; private lastDst = ''; private lastPorts = -1; private lastKey = '';
  /** Replays produced so far (for status and tests). */
  replayed = 0;

  /**
   * Look at one packet the local stack sends to `dstUlid` (a full IPv6 packet
   * from the TUN; only TCP directly after the fixed header is considered).
   */
  observe(packet: Uint8Array, srcUlid: string, dstUlid: string): void {
    if (packet[6] !== IPPROTO_TCP || packet.length < IPV6_HEADER_LENGTH + 20) return;
    const t = IPV6_HEADER_LENGTH;
    const sport = (packet[t]! << 8) | packet[t + 1]!;
    const dport = (packet[t + 2]! << 8) | packet[t + 3]!;
    const flags = packet[t + 13]!;
    const ports = sport * 65536 + dport;
    let key = this.lastKey;
    if (ports !== this.lastPorts || srcUlid !== this.lastSrc || dstUlid !== this.lastDst) {
      key = `${srcUlid}|${sport}|${dstUlid}|${dport}`;
      this.lastKey = key; this.lastPorts = ports; this.lastSrc = srcUlid; this.lastDst = dstUlid;
    }
    let flow = this.flows.get(key);
    if (flags & (RST | FIN)) {
      this.flows.delete(key);
      return;
    }
    if (flags & SYN) return;
    if (!flow) {
      flow = { peer: dstUlid, lastData: undefined, lastDataLen: 0, lastAck: undefined, lastAckLen: 0, pendingData: undefined, pendingAck: undefined };
      if (this.flows.size >= PROMPT_MAX_FLOWS) this.flows.delete(this.flows.keys().next().value!);
      this.flows.set(key, flow);
    }
    const dataOffset = (packet[t + 12]! >> 4) * 4;
    const hasData = packet.length > t + dataOffset;
    if (!flow.pendingData && !flow.pendingAck) this.dirty.push(flow);
    if (hasData) flow.pendingData = packet;
    else flow.pendingAck = packet;
  }

  /** Copy the segments noted since the last commit (call while their views are valid). */
  commit(): void {
    for (const flow of this.dirty) {
      const d = flow.pendingData, a = flow.pendingAck;
      if (d) {
        if (!flow.lastData || flow.lastData.length < d.length) flow.lastData = new Uint8Array(Math.max(d.length, 1500));
        flow.lastData.set(d);
        flow.lastDataLen = d.length;
      }
      if (a) {
        if (!flow.lastAck || flow.lastAck.length < a.length) flow.lastAck = new Uint8Array(Math.max(a.length, 128));
        flow.lastAck.set(a);
        flow.lastAckLen = a.length;
      }
      flow.pendingData = flow.pendingAck = undefined;
    }
    this.dirty.length = 0;
  }

  /**
   * Where each flow with `peerUlid` stands, by its key: the sequence and
   * acknowledgment numbers of its last data segment and of its last pure ACK.
   * The same later means TCP sent nothing new on it since (a replay is the same
   * segment again): no new data, nothing more acknowledged.
   */
  marks(peerUlid: string): Map<string, string> {
    this.commit();
    const out = new Map<string, string>();
    for (const [key, flow] of this.flows) if (flow.peer === peerUlid) out.set(key, mark(flow));
    return out;
  }

  /**
   * The packets to send again, through the engine, now that the context with
   * `peerUlid` moved to a new pair: per flow the last data segment, then the
   * last pure ACK three times. Copies, so the caller may keep them. `only`:
   * just the flows of these `marks` that still stand where they stood.
   */
  prompt(peerUlid: string, only?: ReadonlyMap<string, string>): Uint8Array[] {
    this.commit();
    const out: Uint8Array[] = [];
    for (const [key, flow] of this.flows) {
      if (flow.peer !== peerUlid) continue;
      if (only !== undefined && only.get(key) !== mark(flow)) continue;
      if (flow.lastData) out.push(flow.lastData.slice(0, flow.lastDataLen));
      if (flow.lastAck) for (let i = 0; i < PROMPT_DUP_ACKS; i++) out.push(flow.lastAck.slice(0, flow.lastAckLen));
    }
    this.replayed += out.length;
    return out;
  }

  /** Forget every flow with `peerUlid` (context closed). */
  forget(peerUlid: string): void {
    for (const [k, f] of this.flows) if (f.peer === peerUlid) this.flows.delete(k);
  }

  get size(): number {
    return this.flows.size;
  }
}

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
 *
 * Our own stack, when we have nothing to replay: a daemon that restarted has
 * an empty table, and its TCP, backed off while no daemon carried the
 * connection, sends nothing until its next RTO. The peer's daemon prompts its
 * side when the context comes up (its last ACK, three times); those ACKs tell
 * us where our stack stands, since the peer's rcv_nxt lies between our
 * snd_una and snd_nxt. `arm` (a context came up) and `selfPrompt` (a segment
 * from the peer) find the second identical pure ACK on a flow of ours that sent
 * nothing since: the driver then hands our stack a Packet Too Big quoting it,
 * and TCP retransmits what is in flight at once.
 *
 * After a restart the peer may have nothing to prompt with (our stop's Close
 * ended its context). So our stack is asked where it stands: the daemon found
 * the open flows with octets in flight in the socket table (`afterRestart`);
 * when a flow's context comes up (`challenge`), the driver hands our stack a
 * SYN from the peer, which an established socket answers with a challenge ACK
 * whatever its sequence number (RFC 5961 §4.2) and changes nothing else. That
 * ACK's sequence number is our snd_nxt (`challengeAnswer`), which TCP's window
 * check accepts in the Packet Too Big.
 *
 * A flow in TCP's persist timer has nothing in flight (the timer is armed only
 * then), so a Packet Too Big has nothing to make it retransmit: its own host
 * refused its sends while no daemon carried them, or its peer's window was
 * zero. Its challenge ACK's sequence number is snd_nxt, which then equals
 * snd_una. The driver hands our stack an ACK from the peer one octet below
 * that (`kickAck`): older than snd_una, it acknowledges nothing and changes no
 * window (RFC 5961 §5.2 accepts it), and TCP, having processed it, sends what
 * its peer's window allows at once instead of at its next backed-off probe.
 */
import { IPV6_HEADER_LENGTH, IPPROTO_TCP } from './ip6-packet.ts';

/** How many duplicate ACKs to send (RFC 5681 §3.2: three trigger fast retransmit). */
export const PROMPT_DUP_ACKS = 3;
/** Flows remembered; the oldest is forgotten first. */
export const PROMPT_MAX_FLOWS = 4096;

/** How long after a context comes up the peer's repeated ACK may prompt our own stack (ms). */
export const SELF_PROMPT_MS = 3000;
/** How long the open flows a restart found wait for their context (ms). */
export const RESTART_PROMPT_MS = 60_000;
/** How long after its challenge our stack's ACK on a flow may prompt it (ms). */
export const CHALLENGE_MS = 3000;
/** Flows per armed peer whose last ACK is remembered; peers armed at once. */
const SELF_PROMPT_FLOWS = 256;
const SELF_PROMPT_PEERS = 256;

const FIN = 0x01, SYN = 0x02, RST = 0x04, ACK = 0x10;

/** A peer whose context is being set up or came up: its flows' marks then, the last ACK seen per flow, the flows prompted. */
interface Armed { until: number; marks: Map<string, string>; acks: Map<string, number>; done: Set<string> }

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

/** An open TCP flow of ours: our ULID and port, the peer's ULID and port. */
export interface TcpFlow { local: string; localPort: number; peer: string; peerPort: number }

/**
 * A flow a restart found: `persist` when its TCP sat in the persist timer (nothing in flight),
 * to be kicked (kickAck) rather than prompted with a Packet Too Big.
 */
export interface RestartFlow extends TcpFlow { persist: boolean }

/** What our stack's challenge ACK on a flow says: its snd_nxt (`seq`) and rcv_nxt (`ack`). */
export interface ChallengeAnswer { flow: RestartFlow; seq: number; ack: number }

/** The key of a flow in the prompter's tables (and the daemon's reading of the socket table). */
export const flowKey = (local: string, localPort: number, peer: string, peerPort: number): string => `${local}|${localPort}|${peer}|${peerPort}`;

/** The SYN from the peer that asks our stack where it stands on flow `f` (its checksum left 0: the caller's to set). */
export function challengeSyn(f: TcpFlow): Uint8Array {
  const syn = new Uint8Array(20);
  syn[0] = f.peerPort >> 8; syn[1] = f.peerPort & 0xff;
  syn[2] = f.localPort >> 8; syn[3] = f.localPort & 0xff;
  syn[12] = 5 << 4;
  syn[13] = SYN;
  return syn;
}

/** The 32-bit word at `o` (network order). */
const word = (b: Uint8Array, o: number): number => ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;

/**
 * The ACK from the peer that makes our stack send on a flow in its persist timer, from its
 * challenge ACK `a`: at the peer's place in our stream (our rcv_nxt), acknowledging one octet
 * less than our snd_una (= snd_nxt then). Its checksum left 0: the caller's to set.
 */
export function kickAck(a: ChallengeAnswer): Uint8Array {
  const f = a.flow;
  const tcp = new Uint8Array(20);
  const v = new DataView(tcp.buffer);
  v.setUint16(0, f.peerPort);
  v.setUint16(2, f.localPort);
  v.setUint32(4, a.ack);
  v.setUint32(8, (a.seq - 1) >>> 0);
  tcp[12] = 5 << 4;
  tcp[13] = ACK;
  v.setUint16(14, 0xffff); // not read: an ACK older than snd_una updates no window
  return tcp;
}

/** A flow's last segments' sequence and acknowledgment numbers (see TcpPrompter.marks). */
function mark(flow: Flow): string {
  const t = IPV6_HEADER_LENGTH;
  const d = flow.lastData, a = flow.lastAck;
  return `${d ? `${word(d, t + 4)}:${word(d, t + 8)}` : '-'} ${a ? word(a, t + 8) : '-'}`;
}

/** Remembers the last outgoing segments per TCP flow and says what to replay. */
export class TcpPrompter {
  private readonly flows = new Map<string, Flow>();
  private readonly dirty: Flow[] = [];
  // The last flow looked at: consecutive packets are nearly always the same flow.
  private lastSrc = ''; private lastDst = ''; private lastPorts = -1; private lastKey = '';
  private readonly armed = new Map<string, Armed>();
  /** Flows a restart found open with octets in flight, by ULID pair (`local|peer`), until their context comes up. */
  private readonly waiting = new Map<string, { until: number; flows: RestartFlow[] }>();
  private waitingFlows = 0;
  /** Flows whose stack was challenged, by flow key; all of them until `challengedUntil`. */
  private readonly challenged = new Map<string, RestartFlow>();
  private challengedUntil = 0;
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
      key = flowKey(srcUlid, sport, dstUlid, dport);
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
    this.armed.delete(peerUlid);
  }

  /**
   * A context with `peerUlid` is being set up or came up at `now`: for SELF_PROMPT_MS its
   * segments go through selfPrompt. Armed already (set up, now up), the time is extended and
   * what it saw is kept.
   */
  arm(peerUlid: string, now: number): void {
    const was = this.armed.get(peerUlid);
    if (was !== undefined && now <= was.until) {
      was.until = now + SELF_PROMPT_MS;
      return;
    }
    this.armed.delete(peerUlid);
    for (const [p, a] of this.armed) if (now > a.until) this.armed.delete(p); // peers that sent no TCP meanwhile
    if (this.armed.size >= SELF_PROMPT_PEERS) this.armed.delete(this.armed.keys().next().value!);
    this.armed.set(peerUlid, { until: now + SELF_PROMPT_MS, marks: this.marks(peerUlid), acks: new Map(), done: new Set() });
  }

  /** Some peer is armed (one test per delivered packet otherwise). */
  get anyArmed(): boolean {
    return this.armed.size > 0;
  }

  /**
   * A TCP segment (`tcp`: header and payload) from an armed peer to our stack. Returns the
   * acknowledgment number to quote in a Packet Too Big to our own stack when it is the second
   * time in a row the peer sends this pure ACK on a flow of ours that sent nothing since the
   * context came up (the peer's prompt); once per flow per arming. Else undefined.
   */
  selfPrompt(tcp: Uint8Array, peerUlid: string, localUlid: string, now: number): number | undefined {
    const a = this.armed.get(peerUlid);
    if (a === undefined || tcp.length < 20) return undefined;
    if (now > a.until) {
      this.armed.delete(peerUlid);
      return undefined;
    }
    const flags = tcp[13]!;
    if (!(flags & ACK) || (flags & (SYN | FIN | RST)) || tcp.length > (tcp[12]! >> 4) * 4) return undefined;
    const sport = (tcp[0]! << 8) | tcp[1]!;
    const dport = (tcp[2]! << 8) | tcp[3]!;
    const ack = word(tcp, 8);
    const key = flowKey(localUlid, dport, peerUlid, sport);
    if (a.done.has(key)) return undefined;
    if (a.acks.get(key) !== ack) {
      if (a.acks.has(key) || a.acks.size < SELF_PROMPT_FLOWS) a.acks.set(key, ack);
      return undefined;
    }
    this.commit();
    const flow = this.flows.get(key);
    if ((flow === undefined ? undefined : mark(flow)) !== a.marks.get(key)) return undefined; // our side sent since: not stalled
    a.done.add(key);
    return ack;
  }

  /**
   * A restart found these flows open with octets their peers have not acknowledged: each waits
   * RESTART_PROMPT_MS for its context to come up (challenge). At most PROMPT_MAX_FLOWS.
   */
  afterRestart(flows: readonly RestartFlow[], now: number): void {
    for (const [k, w] of this.waiting) if (now > w.until) { this.waiting.delete(k); this.waitingFlows -= w.flows.length; }
    for (const f of flows) {
      if (this.waitingFlows >= PROMPT_MAX_FLOWS) return;
      const pair = `${f.local}|${f.peer}`;
      let w = this.waiting.get(pair);
      if (w === undefined) this.waiting.set(pair, w = { until: now + RESTART_PROMPT_MS, flows: [] });
      w.flows.push({ local: f.local, localPort: f.localPort, peer: f.peer, peerPort: f.peerPort, persist: f.persist });
      this.waitingFlows++;
    }
  }

  /**
   * The context `localUlid` ↔ `peerUlid` came up at `now`: its flows from before a restart, which
   * the driver now challenges (a SYN to our stack each); our stack's ACK on one of them answers
   * for CHALLENGE_MS (challengeAnswer). Each flow once.
   */
  challenge(localUlid: string, peerUlid: string, now: number): RestartFlow[] {
    const pair = `${localUlid}|${peerUlid}`;
    const w = this.waiting.get(pair);
    if (w === undefined) return [];
    this.waiting.delete(pair);
    this.waitingFlows -= w.flows.length;
    if (now > w.until) return [];
    if (now > this.challengedUntil) this.challenged.clear();
    const out: RestartFlow[] = [];
    for (const f of w.flows) {
      if (this.challenged.size >= PROMPT_MAX_FLOWS) break;
      this.challenged.set(flowKey(f.local, f.localPort, f.peer, f.peerPort), f);
      out.push(f);
    }
    if (out.length > 0) this.challengedUntil = now + CHALLENGE_MS;
    return out;
  }

  /** Some flow's challenge may still be answered (one test per TCP segment from our stack otherwise). */
  get anyChallenged(): boolean {
    return this.challenged.size > 0;
  }

  /**
   * A TCP segment our stack sent (`tcp`: header and payload) from `localUlid` to `peerUlid`.
   * When it is a pure ACK on a challenged flow, the flow and what the ACK says: its sequence
   * number (our snd_nxt, to quote in a Packet Too Big to our own stack) and its acknowledgment
   * number (our rcv_nxt); once per flow. Else undefined.
   */
  challengeAnswer(tcp: Uint8Array, localUlid: string, peerUlid: string, now: number): ChallengeAnswer | undefined {
    if (now > this.challengedUntil) {
      this.challenged.clear();
      return undefined;
    }
    if (tcp.length < 20) return undefined;
    const flags = tcp[13]!;
    if (!(flags & ACK) || (flags & (SYN | FIN | RST)) || tcp.length > (tcp[12]! >> 4) * 4) return undefined;
    const key = flowKey(localUlid, (tcp[0]! << 8) | tcp[1]!, peerUlid, (tcp[2]! << 8) | tcp[3]!);
    const flow = this.challenged.get(key);
    if (flow === undefined) return undefined;
    this.challenged.delete(key);
    return { flow, seq: word(tcp, 4), ack: word(tcp, 8) };
  }

  get size(): number {
    return this.flows.size;
  }
}

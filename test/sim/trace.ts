/**
 * Reading what crossed the simulated wire: the adversary's capture decoded
 * with shim/wire, so scenarios can assert on the message sequence (I1 → R1 →
 * I2 → R2, Probes with their REAP state, Keepalives) rather than on engine
 * internals. Undecodable bytes show as `?`.
 */
import { isPayloadHeader, tryDecodeMessage, type Shim6Message } from '../../shim/wire/index.ts';
import type { Millis } from '../../shim/time.ts';
import type { Sim } from './sim.ts';

export interface TraceLine {
  readonly at: Millis;
  readonly from: string;
  readonly src: string;
  readonly dst: string;
  /** Message type, `payload`, `plain` (native IPv6) or `?`. */
  readonly type: string;
  readonly message?: Shim6Message;
  readonly forged: boolean;
  /** The datagram as it was sent (to replay it, or quote it in an ICMP error). */
  readonly bytes: Uint8Array;
}

/** Everything sent since `since` (default: the whole run), decoded. */
export function trace(sim: Sim, since: Millis = 0 as Millis): TraceLine[] {
  return decode(sim.adversary.captured.filter((c) => c.at >= since));
}

/** How much has been sent so far: a mark for `traceAfter`. */
export function mark(sim: Sim): number {
  return sim.adversary.captured.length;
}

/** Everything sent after `mark(sim)` was taken, decoded. */
export function traceAfter(sim: Sim, from: number): TraceLine[] {
  return decode(sim.adversary.captured.slice(from));
}

/** Shim6 datagrams (control messages and payload, not native IPv6) sent by host `from` (default: every host). */
export function sent(sim: Sim, from?: string): TraceLine[] {
  return trace(sim).filter((l) => l.type !== 'plain' && (from === undefined || l.from === from));
}

/** The types of `sent(sim, from)`, in order: message type names and `payload`. */
export function sentTypes(sim: Sim, from?: string): string[] {
  return sent(sim, from).map((l) => l.type);
}

function decode(captured: Sim['adversary']['captured']): TraceLine[] {
  const out: TraceLine[] = [];
  for (const c of captured) {
    const p = c.packet;
    const base = { at: c.at, from: c.from, src: p.src, dst: p.dst, forged: p.forged === true, bytes: p.bytes };
    if (p.plain) out.push({ ...base, type: 'plain' });
    else if (p.bytes.length >= 8 && isPayloadHeader(p.bytes)) out.push({ ...base, type: 'payload' });
    else {
      const r = tryDecodeMessage(p.bytes);
      out.push(r.ok ? { ...base, type: r.message.type, message: r.message } : { ...base, type: '?' });
    }
  }
  return out;
}

/** Control message types in order (payload and plain packets left out). */
export function controlTypes(sim: Sim, since?: Millis): string[] {
  return trace(sim, since).filter((l) => l.type !== 'payload' && l.type !== 'plain').map((l) => `${l.from}:${l.type}`);
}

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
}

/** Everything sent since `since` (default: the whole run), decoded. */
export function trace(sim: Sim, since: Millis = 0 as Millis): TraceLine[] {
  const out: TraceLine[] = [];
  for (const c of sim.adversary.captured) {
    if (c.at < since) continue;
    const p = c.packet;
    const base = { at: c.at, from: c.from, src: p.src, dst: p.dst, forged: p.forged === true };
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

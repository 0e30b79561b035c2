/**
 * The simulated application on each host: it sends numbered payload packets to
 * a peer ULID through the endpoint's `encapsulate` (or as plain IPv6 when there
 * is no context), and records every payload that `handleDatagram`
 * (or the plain path) delivered, so tests can check each payload arrived once,
 * at the right host, for the right ULID pair. Must not know about protocol bytes.
 */
import type { Millis } from '../../shim/time.ts';
import type { Ipv6 } from './endpoint.ts';

/** UDP, as the app's Next Header. */
export const APP_NEXT_HEADER = 17;

/** One payload as sent. */
export interface SentPayload {
  readonly id: string;
  readonly at: Millis;
  readonly from: string;
  readonly srcUlid: Ipv6;
  readonly dstUlid: Ipv6;
  /** How it left: through a context (`shim`) or as native IPv6 (`plain`). */
  readonly path: 'shim' | 'plain';
  readonly via?: { src: Ipv6; dst: Ipv6 };
}

/** One payload as received. */
export interface Delivery {
  readonly id: string | undefined;
  readonly at: Millis;
  readonly host: string;
  /** The ULID pair the receiving endpoint said the payload belongs to. */
  readonly srcUlid: Ipv6;
  readonly dstUlid: Ipv6;
  readonly via: { src: Ipv6; dst: Ipv6 };
  readonly path: 'shim' | 'plain';
  /** The packet was the adversary's (forged, replayed or altered), not the sender's. */
  readonly forged: boolean;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Payload bytes that name the sender's intended ULID pair, so a receiver can tell a misdelivery. */
export function makePayload(id: string, srcUlid: Ipv6, dstUlid: Ipv6): Uint8Array {
  return enc.encode(`simapp|${id}|${srcUlid}|${dstUlid}`);
}

export function parsePayload(bytes: Uint8Array): { id: string; srcUlid: Ipv6; dstUlid: Ipv6 } | undefined {
  const parts = dec.decode(bytes).split('|');
  if (parts.length !== 4 || parts[0] !== 'simapp') return undefined;
  return { id: parts[1]!, srcUlid: parts[2]!, dstUlid: parts[3]! };
}

/** What went wrong with the payloads of a run. */
export interface DeliveryReport {
  /** Sent, never delivered. */
  readonly lost: string[];
  /** Delivered more than once. */
  readonly duplicated: string[];
  /** Delivered with another ULID pair than it was sent with, at a host that does not own its destination ULID, or unparseable. */
  readonly misdelivered: Delivery[];
}

/** Ledger of every payload sent and delivered in one simulation. */
export class PayloadLedger {
  readonly sent = new Map<string, SentPayload>();
  readonly deliveries: Delivery[] = [];
  /**
   * Deliveries of packets the adversary put on the wire. Shim6 does not protect
   * payload integrity or replay (that is the upper layer's job), so these are kept
   * apart: they never count as arrivals, duplicates or misdeliveries.
   */
  readonly forgedDeliveries: Delivery[] = [];
  readonly #byId = new Map<string, Delivery[]>();
  readonly #bad: Delivery[] = [];
  #seq = 0;

  nextId(from: string): string {
    return `${from}#${++this.#seq}`;
  }

  recordSent(p: SentPayload): void {
    this.sent.set(p.id, p);
  }

  /** Record a delivery; `owned` are the addresses the receiving host owns. */
  recordDelivery(d: Omit<Delivery, 'id'>, payload: Uint8Array, owned: readonly Ipv6[]): Delivery {
    const parsed = parsePayload(payload);
    const full: Delivery = { ...d, id: parsed?.id };
    if (d.forged) {
      this.forgedDeliveries.push(full);
      return full;
    }
    this.deliveries.push(full);
    if (parsed) {
      const list = this.#byId.get(parsed.id) ?? [];
      list.push(full);
      this.#byId.set(parsed.id, list);
    }
    const ok = parsed !== undefined && parsed.srcUlid === d.srcUlid && parsed.dstUlid === d.dstUlid && owned.includes(d.dstUlid);
    if (!ok) this.#bad.push(full);
    return full;
  }

  /** Deliveries of one payload. */
  of(id: string): readonly Delivery[] {
    return this.#byId.get(id) ?? [];
  }

  report(): DeliveryReport {
    const lost: string[] = [], duplicated: string[] = [];
    for (const id of this.sent.keys()) {
      const n = this.of(id).length;
      if (n === 0) lost.push(id);
      if (n > 1) duplicated.push(id);
    }
    return { lost, duplicated, misdelivered: [...this.#bad] };
  }
}

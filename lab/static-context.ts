/**
 * A fixed, already established context: the data path of RFC 5533 (payload
 * extension header, §5.2) without any control plane. For measuring and
 * testing the data plane's lower layer (TUN ↔ driver ↔ UDP) on its own, and
 * for diagnosing a lab when the protocol engine is suspected: both hosts are
 * given the same tags and locators by hand.
 *
 * It implements the driver's EngineLike, so the driver cannot tell it from
 * the engine; `rehome()` moves it to another locator pair and emits the same
 * `locator-pair-changed` event the engine emits. Sans-I/O like the engine.
 */
import type { Millis } from '../shim/time.ts';
import type { Ipv6 } from '../shim/wire/ipv6.ts';
import { decodePayloadHeader, encodePayloadHeader, isPayloadHeader } from '../shim/wire/header.ts';
import type { EngineLike } from '../shim/dataplane/engine-driver.ts';
import type { DatagramResult, EncapsulateResult, EngineEvent, Transmit } from '../shim/engine/index.ts';

export interface StaticContextConfig {
  localUlid: Ipv6;
  peerUlid: Ipv6;
  /** Context tag the peer puts in payload headers to us (ours). */
  localTag: number;
  /** Context tag we put in payload headers to the peer (the peer's). */
  peerTag: number;
  /** Current locator pair. */
  local: Ipv6;
  peer: Ipv6;
  /** Peer locators we accept payload from (default: just `peer`). */
  peerLocators?: Ipv6[];
}

/** The one event a static context emits (the engine's own type). */
export type StaticEvent = Extract<EngineEvent, { kind: 'locator-pair-changed' }>;

/** One static context. */
export class StaticContextEngine implements EngineLike {
  private readonly headers = new Map<number, Uint8Array>();
  private readonly events: StaticEvent[] = [];
  private readonly accepted: Set<Ipv6>;
  private pair: { local: Ipv6; peer: Ipv6 };

  constructor(private readonly cfg: StaticContextConfig) {
    this.pair = { local: cfg.local, peer: cfg.peer };
    this.accepted = new Set(cfg.peerLocators ?? [cfg.peer]);
  }

  handleDatagram(_now: Millis, d: { src: Ipv6; dst: Ipv6; bytes: Uint8Array }): DatagramResult {
    if (!isPayloadHeader(d.bytes) || d.bytes.length < 8) return { kind: 'drop', reason: 'not-payload' };
    const h = decodePayloadHeader(d.bytes);
    if (h.contextTag !== this.cfg.localTag) return { kind: 'drop', reason: 'unknown-context' };
    if (!this.accepted.has(d.src)) return { kind: 'drop', reason: 'locator-not-in-set' };
    return { kind: 'payload', srcUlid: this.cfg.peerUlid, dstUlid: this.cfg.localUlid, nextHeader: h.nextHeader, payload: d.bytes.subarray(8) };
  }

  encapsulate(_now: Millis, p: { srcUlid: Ipv6; dstUlid: Ipv6; nextHeader: number; payload: Uint8Array }): EncapsulateResult {
    if (p.dstUlid !== this.cfg.peerUlid || p.srcUlid !== this.cfg.localUlid) return { kind: 'no-context' };
    let header = this.headers.get(p.nextHeader);
    if (!header) {
      header = encodePayloadHeader(p.nextHeader, this.cfg.peerTag);
      this.headers.set(p.nextHeader, header);
    }
    return { kind: 'send', src: this.pair.local, dst: this.pair.peer, header };
  }

  /** Move to another locator pair (what REAP does after a failure, RFC 5534 §4.3). */
  rehome(local: Ipv6, peer: Ipv6, cause: StaticEvent['cause'] = 'local-locator-down'): void {
    const old = this.pair;
    this.pair = { local, peer };
    this.accepted.add(peer);
    this.events.push({ kind: 'locator-pair-changed', localUlid: this.cfg.localUlid, peerUlid: this.cfg.peerUlid, old, new: this.pair, cause });
  }

  handleTimeout(_now: Millis): void {}
  pollTransmit(): Transmit | undefined { return undefined; }
  pollTimeout(): Millis | undefined { return undefined; }
  pollEvent(): StaticEvent | undefined { return this.events.shift(); }
}

/**
 * What the engine hands to the driver, as values (boringtun `TunnResult`,
 * aioquic events): datagrams to send, results of `handleDatagram` /
 * `encapsulate`, and events for the daemon and `shim6 status`. Never callbacks.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import type { RehomeCause, UlidProof } from './context.ts';

/** A Shim6 datagram to send from locator `src` to locator `dst` (UDP port `port` when not 5533). */
export interface Transmit {
  src: Ipv6;
  dst: Ipv6;
  bytes: Uint8Array;
  port?: number;
}

/** A locator pair (local → peer). */
export interface LocatorPair {
  local: Ipv6;
  peer: Ipv6;
}

/** Outcome of `handleDatagram`. Dropping is a value, never an exception. */
export type DatagramResult =
  | { kind: 'payload'; srcUlid: Ipv6; dstUlid: Ipv6; nextHeader: number; payload: Uint8Array }
  | { kind: 'consumed' }
  | { kind: 'drop'; reason: string };

/** Outcome of `encapsulate`. */
export type EncapsulateResult =
  | { kind: 'send'; src: Ipv6; dst: Ipv6; header: Uint8Array; port?: number }
  | { kind: 'no-context' }
  /**
   * The packet is larger than the context's path carries (a Packet Too Big
   * taught it, icmp.ts): not sent; the driver answers the application with a
   * Packet Too Big of `mtu`, the largest packet it may send (RFC 5533 §8).
   */
  | { kind: 'too-big'; mtu: number };

/** Why a context ended. */
export type CloseReason = 'idle' | 'local-close' | 'peer-close' | 'close-timeout' | 'confusion' | 'replaced' | 'peer-gone';

/** Events for the driver (`pollEvent`). */
export type EngineEvent =
  /** prime() started an exchange with a peer DNS or configuration says runs shim6: route its ULID into the shim now (the handshake hold). */
  | { kind: 'context-initiated'; localUlid: Ipv6; peerUlid: Ipv6 }
  /**
   * The peer answered the I1 of a context prime() started (an R1 for its nonce, from a locator
   * of the record): it runs shim6, so the context is on its way (I2 → R2). The driver then
   * holds the first packets longer: the record is not stale, and plain IPv6 may be dead.
   */
  | { kind: 'context-answered'; localUlid: Ipv6; peerUlid: Ipv6 }
  /**
   * The context is up; `ulidProof` says why `peerUlid` is the peer's — the driver routes it only then.
   * `recovered`: up again — a recovery (R1bis/I2bis, RFC 5533 §7.17–7.20), or an established context
   * the peer set up anew (it lost it: an I2 with a new tag, §7.9), whose `peerContextTag` is the new one.
   */
  | { kind: 'context-established'; localUlid: Ipv6; peerUlid: Ipv6; ulidProof: UlidProof; contextTag: number; peerContextTag: number; pair: LocatorPair; recovered: boolean }
  /** An I2/I2bis from `source` claimed `claimedUlid` without proof (or one of our own addresses): no context. */
  | { kind: 'ulid-refused'; claimedUlid: Ipv6; source: Ipv6; reason: 'ulid-unproven' | 'ulid-is-local' }
  | { kind: 'context-failed'; localUlid: Ipv6; peerUlid: Ipv6; reason: 'no-answer' | 'refused' }
  /**
   * The context is gone. `resumable`: the peer is known to run shim6 (positive
   * cache or configuration), so the next packet to it starts a new context —
   * the driver keeps its ULID routed into the shim instead of falling back to
   * plain IPv6 (an idle cleanup must not unprotect a long-lived connection).
   */
  | { kind: 'context-closed'; localUlid: Ipv6; peerUlid: Ipv6; contextTag: number; reason: CloseReason; resumable: boolean }
  /**
   * A `resumable` close is no longer resumable, though no new context with the peer started: its
   * pin was dropped (more than `cacheMax` of them, the oldest first; lasting.ts). The driver takes
   * the ULID route it kept back (the peer gets plain IPv6 again), so the routes a long-running
   * host keeps are bounded as the pins are.
   */
  | { kind: 'resumable-dropped'; peerUlid: Ipv6 }
  /** The peer is held down in the negative cache (`peer-gone`: its established context ended so, teardown.ts `peerGone`). */
  | { kind: 'peer-unsupported'; peerUlid: Ipv6; address: Ipv6; reason: 'no-answer' | 'refused' | 'negative-cache' | 'peer-gone' }
  | { kind: 'peer-supported'; peerUlid: Ipv6; address: Ipv6 }
  | { kind: 'locator-pair-changed'; localUlid: Ipv6; peerUlid: Ipv6; old: LocatorPair; new: LocatorPair; cause: RehomeCause }
  /**
   * REAP (RFC 5534) left Operational (`exploring`: the current pair is suspect) or came back to it
   * (`operational`, whether or not the pair changed): the driver's kernel path routes the context
   * through the shim while it explores, so the TCP prompt sees the segments to replay.
   */
  | { kind: 'reap-state'; localUlid: Ipv6; peerUlid: Ipv6; state: 'exploring' | 'operational'; pair: LocatorPair }
  | { kind: 'locator-set-updated'; localUlid: Ipv6; peerUlid: Ipv6; generation: number; locators: Ipv6[] }
  /**
   * A host-wide bucket (`replyLimit`/`verifyLimit`/`probeReplyLimit` global, and the known peers'
   * reserve when the sender was a known peer) refused: a flood from many /64s or many contexts, or
   * more unproven traffic than the host answers. The driver answers with `setKnownPeers` (the
   * host's open connections), so the peers it talks to are answered from the reserve. At most one
   * per KNOWN_PEERS_INTERVAL_MS (core.ts) while refusals go on, none otherwise; `replies`,
   * `verifications` and `probeReplies` (answers to Probes) count the host-wide refusals since the
   * previous one (this one's included), `knownPeers` the set's size.
   */
  | { kind: 'limit-pressure'; replies: number; verifications: number; probeReplies: number; knownPeers: number };

/** A FIFO without `shift()` cost: the engine's transmit and event queues. */
export class Queue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  push(x: T): void {
    this.items.push(x);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return x;
  }

  get length(): number {
    return this.items.length - this.head;
  }
}

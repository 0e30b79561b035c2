/**
 * The Engine: every Shim6 context of one host, sans-I/O (quinn-proto's model).
 *
 * Call order (docs/engine.md): the driver feeds inputs — `handleDatagram`,
 * `encapsulate`, `prime`, `handleTimeout`, `handleIcmp`, `setLocalLocators`,
 * `localLocatorDown`, `close` — each with `now` from its own clock; then drains
 * `pollTransmit()` until undefined, `pollEvent()` until undefined, and arms one
 * timer at `pollTimeout()`. Inputs never throw for anything a peer can send:
 * a dropped packet is `{ kind: 'drop', reason }`.
 *
 * This class owns the public API and timer dispatch only; each sub-protocol
 * lives in its own module (handshake, responder, recovery, update, reap, teardown).
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { decodePayloadHeader, encodePayloadHeader, isPayloadHeader, tryDecodeMessage, WireError } from '../wire/index.ts';
import { ErrorCode, IPV6_HEADER_LENGTH, MessageType } from '../constants.ts';

import { Core, type GuardCounters } from './core.ts';
import { resolveConfig, type EngineConfig, type LocalLocator, type CapabilityMode, type PeerConfig } from './config.ts';
import type { Rng } from './random.ts';
import { capabilityStatus, type CacheSnapshot, type CapabilityCache, type CapabilityStatus, type PrimeLocator } from './capability.ts';
import { LruCapabilityCache } from '../cache/engine-cache.ts';
import { hbaVerifier } from './verify.ts';
import { checkLocatorParams } from './cga.ts';
import type { Context, RehomeCause, UlidProof } from './context.ts';
import { State, asIdle, hasPeerTag } from './states.ts';
import { TimerKind, TIMER_KINDS, TIMER_NAMES } from './timers.ts';
import type { DatagramResult, EncapsulateResult, EngineEvent, Transmit } from './events.ts';
import type { Datagram } from './rx.ts';
import { addHints, initiate } from './handshake.ts';
import { onRetransmit } from './retransmit.ts';
import { sendR1bis } from './recovery.ts';
import { announceLocators, onUpdateTimer } from './update.ts';
import { bothWays, onKeepaliveInterval, reapEvent, sendKeepalive, startExploring } from './reap.ts';
import { closeContext, knownCapable, onCloseRetransmit, onHolddown, onIdleTimer } from './teardown.ts';
import { dispatchControl, nudgePending } from './dispatch.ts';
import { dropPin, knownPositive, provenAlive, syncLasting } from './lasting.ts';
import { sendError } from './errors.ts';
import { handleIcmp, pathMtuLimit, peerGoneCount, type IcmpInput, type IcmpResult } from './icmp.ts';

export type { Datagram } from './rx.ts';
export type { IcmpInput, IcmpResult } from './icmp.ts';

/** ICMPv6 (next header 58) with a type below 128: an error message (RFC 4443 §2.1). */
function isIcmpv6Error(p: OutboundPacket): boolean {
  return p.nextHeader === 58 && p.payload.length > 0 && p.payload[0]! < 128;
}

/** An application packet leaving through the shim. */
export interface OutboundPacket {
  srcUlid: Ipv6;
  dstUlid: Ipv6;
  nextHeader: number;
  payload: Uint8Array;
  /**
   * The kernel's counters have already counted this packet for the context's traffic (the
   * driver sums them for status: a segment the kernel encapsulation handed over to be cut,
   * docs/dataplane.md "Kernel encapsulation"): REAP sees it, the traffic figures do not again.
   */
  counted?: boolean;
}

/** What DNS or configuration says about a peer (the resolver's entry point). */
export interface PrimeRequest {
  ulid: Ipv6;
  locators: PrimeLocator[];
  /** Seconds the knowledge may be used to prime new contexts. */
  ttl: number;
  source: 'dns' | 'configured';
  port?: number;
}

/** Optional collaborators (default: shim/cache's LRU caches bounded by `cacheMax`, the one the daemon ships). */
export interface EngineDeps {
  cache?: CapabilityCache;
}

const DROP_SHORT: DatagramResult = { kind: 'drop', reason: 'ETRUNCATED' };

export class Engine {
  private readonly core: Core;

  constructor(config: EngineConfig, rng: Rng, deps: EngineDeps = {}) {
    const resolved = resolveConfig(config);
    this.core = new Core(resolved, rng, deps.cache ?? new LruCapabilityCache({ positive: { maxEntries: resolved.cacheMax }, negative: { maxEntries: resolved.cacheMax } }), config.verifier ?? hbaVerifier());
  }

  /** A received Shim6 datagram (control message, or payload header + ULP bytes). */
  handleDatagram(now: Millis, d: Datagram): DatagramResult {
    const core = this.core;
    if (d.bytes.length < 8) return DROP_SHORT;
    if (!core.isLocal(d.dst)) return { kind: 'drop', reason: 'not-local' };
    if (isPayloadHeader(d.bytes)) return this.payload(now, d);
    const r = tryDecodeMessage(d.bytes);
    if (!r.ok) return this.malformed(now, d, r.error);
    core.messagesReceived[d.bytes[2]! & 0x7f]! += 1;
    return dispatchControl(core, now, d, r.message);
  }

  private payload(now: Millis, d: Datagram): DatagramResult {
    const core = this.core;
    let h: ReturnType<typeof decodePayloadHeader>;
    try {
      h = decodePayloadHeader(d.bytes);
    } catch (e) {
      if (e instanceof WireError) return { kind: 'drop', reason: e.code };
      throw e;
    }
    const ctx = core.table.live(h.contextTag);
    if (ctx === undefined || !ctx.hasVerifiedPeer(d.src)) {
      sendR1bis(core, now, d, h.contextTag); // §7.17 / §12.4
      return { kind: 'drop', reason: ctx === undefined ? 'no-context' : 'locator-mismatch' };
    }
    if (ctx.state === State.I1_SENT || ctx.state === State.CLOSING) return { kind: 'drop', reason: 'state' };
    // The tag proves nothing about the source port: a payload from another port does not re-point the context (reap.ts does, on proof).
    if (ctx.state !== State.ESTABLISHED) nudgePending(core, ctx, now);
    core.touch(ctx, now);
    ctx.lastReceived = now;
    provenAlive(core, ctx, now);
    ctx.rxPackets++;
    ctx.rxBytes += d.bytes.length - h.headerLength;
    if (ctx.state === State.ESTABLISHED) reapEvent(core, ctx, now, 'payload-in');
    return { kind: 'payload', srcUlid: ctx.peerUlid, dstUlid: ctx.localUlid, nextHeader: h.nextHeader, payload: d.bytes.subarray(h.headerLength) };
  }

  /** WireError → drop; unknown type or unknown critical option also gets an Error back (§12.3). */
  private malformed(now: Millis, d: Datagram, e: WireError): DatagramResult {
    if (e.code === 'ECRITICAL_OPTION' && e.offset !== undefined) {
      sendError(this.core, now, d, ErrorCode.CriticalOptionNotRecognized, e.offset);
    } else if (e.code === 'ETYPE' && e.offset === 2) {
      sendError(this.core, now, d, ErrorCode.UnknownMessageType, 2);
    }
    return { kind: 'drop', reason: e.code };
  }

  /** An application packet for `dstUlid`: the payload header and locators, or no context (send natively). */
  encapsulate(now: Millis, p: OutboundPacket): EncapsulateResult {
    const core = this.core;
    const ctx = core.table.byUlidPair(p.srcUlid, p.dstUlid, 0);
    if (ctx === undefined || !hasPeerTag(ctx.state) || ctx.state === State.CLOSING) {
      // An ICMPv6 error (RFC 4443 §2.1: types 0–127) answers a packet, it starts no communication: no context for it
      // (the host's own "no route" about a Shim6 message to an address it just lost must not open a second context).
      if (ctx === undefined && !isIcmpv6Error(p)) this.heuristic(now, p.srcUlid, p.dstUlid);
      return { kind: 'no-context' };
    }
    if (ctx.pathMtu !== undefined && IPV6_HEADER_LENGTH + p.payload.length > ctx.pathMtu.limit) {
      const limit = pathMtuLimit(ctx, now);
      if (limit !== undefined) return { kind: 'too-big', mtu: limit };
    }
    core.touch(ctx, now);
    if (p.counted !== true) {
      ctx.txPackets++;
      ctx.txBytes += p.payload.length;
    }
    if (ctx.state === State.ESTABLISHED) reapEvent(core, ctx, now, 'payload-out');
    const header = encodePayloadHeader(p.nextHeader, ctx.ctPeer);
    return ctx.port === undefined ? { kind: 'send', src: ctx.lpLocal, dst: ctx.lpPeer, header } : { kind: 'send', src: ctx.lpLocal, dst: ctx.lpPeer, header, port: ctx.port };
  }

  /**
   * The kernel carried application packets of the context (`localUlid`, `peerUlid`) on
   * its own path (its locator pair is its ULID pair; docs/dataplane.md "Kernel path"):
   * the driver read the kernel's counters and saw packets `sent` and/or `received` since
   * its last reading. The same REAP inputs as `encapsulate` and a received payload; both in
   * one reading, whose order is unknown, leave REAP ready for either (reap.ts `bothWays`: the
   * Send Timer and the Keepalive timer run until a later reading or message settles it).
   * `received`: the peer's packets came since the last reading, so `lastReceived` is this
   * reading's time `now` (the kernel tells no finer time; whenever the readings come, the status's
   * "last received" is at most one reading behind). False: no established context for the pair
   * (nothing changed).
   */
  kernelTraffic(now: Millis, localUlid: Ipv6, peerUlid: Ipv6, seen: { sent: boolean; received: boolean }): boolean {
    const core = this.core;
    const ctx = core.table.byUlidPair(localUlid, peerUlid, 0);
    if (ctx === undefined || ctx.state !== State.ESTABLISHED) return false;
    if (!seen.sent && !seen.received) return true;
    core.touch(ctx, now);
    if (seen.received) ctx.lastReceived = now;
    if (seen.sent && seen.received) bothWays(core, ctx, now);
    else reapEvent(core, ctx, now, seen.sent ? 'payload-out' : 'payload-in');
    return true;
  }

  /**
   * Send the peer a Keepalive on the context's current pair now (REAP's own message, RFC 5534
   * §5.1): on the kernel path none of our packets carries the peer's context tag, so a peer whose
   * daemon lost the context would never answer R1bis; this one draws it. False: no established
   * context for the pair (nothing sent).
   */
  liveness(localUlid: Ipv6, peerUlid: Ipv6): boolean {
    const ctx = this.core.table.byUlidPair(localUlid, peerUlid, 0);
    if (ctx === undefined || ctx.state !== State.ESTABLISHED) return false;
    sendKeepalive(this.core, ctx);
    return true;
  }

  /** Capability mode for a peer: configuration, else positive cache, else the default. */
  private modeFor(now: Millis, peer: Ipv6): CapabilityMode {
    const cfg = this.core.config.peers.get(peer)?.mode;
    if (cfg !== undefined) return cfg;
    if (this.core.cache.getPositive(now, peer) !== undefined) return 'integrated';
    return this.core.config.defaultMode;
  }

  /**
   * Traffic to a peer with no context: start one if capability detection
   * allows. A peer known to run shim6 gets `context-initiated`, so the driver
   * holds its packets while the context comes back (after an idle cleanup);
   * discovery of an unknown peer never holds the application's packets.
   */
  private heuristic(now: Millis, localUlid: Ipv6, peer: Ipv6): void {
    const core = this.core;
    if (!core.isLocal(localUlid) || core.closed.has(peer)) return;
    // A resumable close (an idle cleanup of a known peer, lasting.ts): the driver kept the peer's
    // route for this packet to bring the context back, so the exchange starts whatever the mode
    // would do with traffic (independent: nothing once the probe is answered; a default `off` once
    // the entry left the cache) — else every packet into that route is lost.
    const resuming = core.resumable.has(peer) && core.config.peers.get(peer)?.mode !== 'off';
    const mode = resuming ? 'integrated' : this.modeFor(now, peer);
    if (mode === 'off' || core.cache.getNegative(now, peer, peer) !== undefined) return;
    const known = knownPositive(core, now, peer);
    if (mode === 'independent' && known !== undefined) return; // the probe's answer is cached: nothing to learn
    const cfg = core.config.peers.get(peer);
    const hints = known?.locators ?? (cfg?.locators ?? []).map((address) => ({ address, flags: 0, priority: 0, weight: 0 }));
    const ctx = initiate(core, now, localUlid, peer, hints, mode === 'independent' ? 'independent' : 'integrated', known?.source === 'dns', known?.port ?? cfg?.port);
    if (ctx.mode === 'integrated' && knownCapable(core, now, peer)) core.emit({ kind: 'context-initiated', localUlid, peerUlid: peer });
  }

  /**
   * Host-based discovery (docs/engine.md "Capability detection") of a flow the
   * daemon saw leave outside the shim, from our locator `localUlid` to `peer`
   * (ULID = locator): the application's packets are not held. By `peers[].mode`,
   * else `defaultMode`: `integrated` sends I1 for the full exchange (the exchange
   * is the probe), `independent` sends the probe pair (I1 → R1, `peer-supported`;
   * the daemon then calls `protect`). A peer known to run shim6 gets the exchange
   * at once (as `protect`; neither holds the flow). Returns what was done; only
   * `started`/`probing` sent an I1.
   */
  discover(now: Millis, localUlid: Ipv6, peer: Ipv6): 'started' | 'probing' | 'context' | 'negative' | 'off' | 'not-local' {
    const core = this.core;
    if (!core.isLocal(localUlid) || core.isLocal(peer)) return 'not-local';
    if (core.table.byUlidPair(localUlid, peer, 0) !== undefined) return 'context';
    const mode = this.modeFor(now, peer);
    if (mode === 'off') return 'off';
    if (core.cache.getNegative(now, peer, peer) !== undefined) return 'negative';
    const known = knownPositive(core, now, peer);
    const cfg = core.config.peers.get(peer);
    const hints = known?.locators ?? (cfg?.locators ?? []).map((address) => ({ address, flags: 0, priority: 0, weight: 0 }));
    if (mode === 'independent' && known === undefined) {
      initiate(core, now, localUlid, peer, hints, 'independent', false, cfg?.port);
      return 'probing';
    }
    // No `context-initiated`: the flow goes on as plain IPv6 until the context is up (nothing held).
    initiate(core, now, localUlid, peer, hints, 'integrated', known?.source === 'dns', known?.port ?? cfg?.port);
    return 'started';
  }

  /**
   * A connection to `peer` exists (the daemon found it in the kernel's socket
   * table after a restart): if the peer is known to run shim6, start a context
   * now, so the connection is protected before it needs to be. Unlike a prime
   * there is no `context-initiated`: the running connection keeps going as
   * plain IPv6 until the context is up (holding it would drop its segments).
   * The context is between `localUlid` — the connection's own local address:
   * one of our locators, or a ULID of ours whose address is gone (the daemon
   * keeps it among our locators, BROKEN) — and `peer`; by default our ULID.
   * An address that is not ours starts nothing.
   * Returns whether an exchange was started.
   */
  protect(now: Millis, peer: Ipv6, localUlid: Ipv6 = this.core.config.localUlid): boolean {
    const core = this.core;
    if ((localUlid !== core.config.localUlid && !core.isLocal(localUlid)) || core.isLocal(peer)) return false;
    if (core.table.byUlidPair(localUlid, peer, 0) !== undefined || !knownCapable(core, now, peer)) return false;
    if (core.cache.getNegative(now, peer, peer)?.ulid !== undefined) return false;
    const known = core.cache.getPositive(now, peer);
    const cfg = core.config.peers.get(peer);
    const hints = known?.locators ?? (cfg?.locators ?? []).map((address) => ({ address, flags: 0, priority: 0, weight: 0 }));
    initiate(core, now, localUlid, peer, hints, 'integrated', known?.source === 'dns', known?.port ?? cfg?.port);
    return true;
  }

  /**
   * DNS (or configuration) says `ulid` runs shim6 with these locators: record it
   * and start the exchange now. Refused while the same claim failed before (a
   * negative entry keyed by this ULID at the ULID or one of the locators,
   * docs/engine.md "Capability detection"); an address-wide entry (no record, or
   * host-based discovery found nothing) does not refuse it — the record is newer
   * knowledge, and recording it lifts such entries.
   */
  /**
   * A peer taken out of the node's configuration (a reload): its positive entry goes when the
   * configuration is what put it there (`source: configured`); knowledge from DNS or a
   * handshake stays. An established context is not touched. Whether an entry went.
   */
  unconfigure(now: Millis, ulid: Ipv6): boolean {
    const cache = this.core.cache;
    const entry = cache.getPositive(now, ulid);
    if (entry?.source !== 'configured') return false;
    cache.deletePositive(ulid);
    // No longer a primed peer either (docs/security.md "Known peers").
    this.core.notePrimed(now, [ulid, ...entry.locators.map((l) => l.address)], now);
    return true;
  }

  /**
   * The node's configured peers after a reload (`peers:`), in place of those the engine was
   * built with: a peer added is known by its mode from now on (`off`: no context, no
   * discovery), and a peer taken out is no longer configured (`unconfigure`: its configured
   * entry goes; discovery and DNS treat it as any other peer). Contexts already there are
   * not touched; a resumable close of a peer now `off` is no longer resumable (its pin goes,
   * `resumable-dropped`: the driver takes back the route whose packets nothing would carry).
   * The ULIDs taken out whose configured entry went.
   */
  setPeers(now: Millis, peers: readonly PeerConfig[]): Ipv6[] {
    const map = this.core.config.peers;
    const next = new Map(peers.map((p) => [p.ulid, p]));
    const gone = [...map.keys()].filter((u) => !next.has(u));
    map.clear();
    for (const [u, p] of next) map.set(u, p);
    // A resumable close of a peer now `off` will not be resumed: the route the driver kept for it goes.
    for (const [u, p] of next) if (p.mode === 'off') dropPin(this.core, u);
    return gone.filter((u) => this.unconfigure(now, u));
  }

  prime(now: Millis, r: PrimeRequest): void {
    const core = this.core;
    const expires = (now + r.ttl * 1000) as Millis;
    if ([r.ulid, ...r.locators.map((l) => l.address)].some((a) => core.cache.getNegative(now, a, r.ulid)?.ulid === r.ulid)) {
      core.emit({ kind: 'peer-unsupported', peerUlid: r.ulid, address: r.ulid, reason: 'negative-cache' });
      return;
    }
    core.cache.setPositive(now, r.port === undefined ? { ulid: r.ulid, source: r.source, locators: r.locators, expires } : { ulid: r.ulid, source: r.source, locators: r.locators, port: r.port, expires });
    const mode = core.config.peers.get(r.ulid)?.mode;
    if (mode === 'off') return;
    // A known peer until the record's lifetime ends (docs/security.md "Known peers"): its handshake
    // right after the prime comes before any connection with it does.
    core.notePrimed(now, [r.ulid, ...r.locators.map((l) => l.address)], expires);
    let ctx = core.table.byUlidPair(core.config.localUlid, r.ulid, 0);
    // The hold-down of an exchange that failed without this claim (host-based discovery, a
    // configured peer): the record lifted its negative entry above, so it ends too.
    if (ctx !== undefined && asIdle(ctx.state)) {
      core.removeContext(ctx);
      ctx = undefined;
    }
    if (ctx !== undefined) {
      // An I1 is already pending (traffic started it towards the ULID only): the
      // next retransmissions also try the primed locators.
      if (ctx.state === State.I1_SENT) {
        addHints(ctx, r.locators);
        if (r.source === 'dns') ctx.primedByDns = true;
        if (r.port !== undefined && ctx.port === undefined) ctx.port = r.port;
        if (ctx.mode === 'integrated') core.emit({ kind: 'context-initiated', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid });
      }
      return;
    }
    const ctx2 = initiate(core, now, core.config.localUlid, r.ulid, r.locators, mode === 'independent' ? 'independent' : 'integrated', r.source === 'dns', r.port);
    if (ctx2.mode === 'integrated') core.emit({ kind: 'context-initiated', localUlid: ctx2.localUlid, peerUlid: ctx2.peerUlid });
  }

  /**
   * DNS says these addresses' name has no capability record (NODATA /
   * NXDOMAIN, RFC 2308): hold them down as `no-record` for `ttl` seconds, so
   * traffic to them starts no discovery. An address already known to run
   * shim6 (a handshake or probe answered) keeps that knowledge.
   */
  absent(now: Millis, r: { addresses: readonly Ipv6[]; ttl: number }): void {
    for (const address of r.addresses) {
      if (knownPositive(this.core, now, address) !== undefined) continue;
      this.core.cache.setNegative(now, { address, reason: 'no-record', expires: (now + r.ttl * 1000) as Millis });
    }
  }

  /**
   * An ICMPv6 error about a datagram we sent (RFC 5533 §7.8, §8; icmp.ts): an
   * I1 refused goes to the negative cache at once; an error about an
   * application packet comes back translated to its ULIDs (`deliver`) for the
   * driver to hand to the application, after lowering the context's path MTU
   * for a Packet Too Big. Nothing changes unless the quoted datagram is ours.
   */
  handleIcmp(now: Millis, e: IcmpInput): IcmpResult {
    return handleIcmp(this.core, now, e);
  }

  /** Run every timer due at `now`. */
  handleTimeout(now: Millis): void {
    const core = this.core;
    for (const ctx of core.heap.due(now)) {
      for (let k = 0; k < TIMER_KINDS && ctx.alive; k++) {
        if (ctx.timers[k]! > now) continue;
        ctx.timers[k] = Infinity;
        this.fire(ctx, k as TimerKind, now);
      }
      if (ctx.alive) core.heap.touch(ctx);
    }
  }

  private fire(ctx: Context, kind: TimerKind, now: Millis): void {
    const core = this.core;
    const est = ctx.state === State.ESTABLISHED;
    switch (kind) {
      case TimerKind.Retransmit: return ctx.state === State.CLOSING ? onCloseRetransmit(core, ctx, now) : onRetransmit(core, ctx, now);
      case TimerKind.Holddown: return onHolddown(core, ctx);
      case TimerKind.Update: return onUpdateTimer(core, ctx, now);
      case TimerKind.Send: if (est) reapEvent(core, ctx, now, 'send-timeout'); return;
      case TimerKind.Keepalive: if (est) reapEvent(core, ctx, now, 'keepalive-timeout'); return;
      case TimerKind.KeepaliveInterval: if (est) onKeepaliveInterval(core, ctx, now); return;
      case TimerKind.Probe: if (est) reapEvent(core, ctx, now, 'retransmit'); return;
      case TimerKind.Idle: return onIdleTimer(core, ctx, now);
    }
  }

  /**
   * The peers this host talks to: the addresses of the peers of its open connections (the daemon
   * reads them from the kernel's socket tables: established TCP, connected UDP), given when the
   * engine asks for them (event `limit-pressure`). While a flood from many /64s keeps the global
   * reply or verification bucket empty, a reply to one of them (R1, R1bis, Error), or the
   * verification of an unproven message from one of them, may take a token of the known peers'
   * reserve (`replyLimit.knownPeers`, `verifyLimit.knownPeers`) — never more than its own /64's
   * bucket allows; so may an answer to a probe in a context whose peer ULID is one of them
   * (`probeReplyLimit.knownPeers`, after the context's own bucket). A source among the verified locators of the context a message names counts as
   * known too, and so does an address of a peer primed while its record is valid (`prime`). Replaces the previous set; keeps the first MAX_KNOWN_PEERS addresses (core.ts),
   * skipping what is not an IPv6 address. Returns how many it kept. `now` for the call order's
   * sake (every input takes one): the set does not age; the next call replaces it.
   */
  setKnownPeers(_now: Millis, addresses: Iterable<string>): number {
    return this.core.setKnownPeers(addresses);
  }

  /**
   * The host's locators changed: new generation, Update Requests to every peer (§10.1); the
   * contexts on a locator no longer usable explore at once (`wentDown`: those whose link went
   * down, flagged BROKEN in `locators`, cause `local-locator-down`; others `local-locator-gone`).
   * A locator's own PDS is checked as at construction (UsageError; nothing changes).
   */
  setLocalLocators(now: Millis, locators: LocalLocator[], wentDown: readonly Ipv6[] = []): void {
    const core = this.core;
    checkLocatorParams(locators, core.config.cgaKey);
    if (!core.local.replace(locators)) return;
    announceLocators(core, now);
    const usable = core.local.usable();
    for (const ctx of core.table.byTag.values()) {
      if (ctx.state !== State.ESTABLISHED || usable.includes(ctx.lpLocal)) continue;
      startExploring(core, ctx, now, wentDown.includes(ctx.lpLocal) ? 'local-locator-down' : 'local-locator-gone');
    }
  }

  /** One of our locators stopped working: mark it BROKEN, tell peers, re-home contexts using it. */
  localLocatorDown(now: Millis, address: Ipv6): void {
    const core = this.core;
    if (!core.local.markBroken(address)) return;
    announceLocators(core, now);
    for (const ctx of core.table.byTag.values()) if (ctx.state === State.ESTABLISHED && ctx.lpLocal === address) startExploring(core, ctx, now, 'local-locator-down');
  }

  /** Coordinated removal (Close / CloseAck, docs/wire.md) of the contexts with `peerUlid`, or of all. */
  close(now: Millis, peerUlid?: Ipv6): void {
    for (const ctx of [...this.core.table.byTag.values()]) if (peerUlid === undefined || ctx.peerUlid === peerUlid) closeContext(this.core, ctx, now);
  }

  pollTransmit(): Transmit | undefined {
    return this.core.tx.shift();
  }

  pollEvent(): EngineEvent | undefined {
    return this.core.events.shift();
  }

  /** The earliest deadline of any context (possibly early: a spurious wake-up is harmless). */
  pollTimeout(): Millis | undefined {
    return this.core.heap.next();
  }

  /**
   * Plain JSON for `shim6 status`: contexts, cache sizes, and what was refused or
   * rate-limited (`guard`); given `now`, also the capability caches entry by
   * entry (`capability`: positive by ULID, negative by peer address, with
   * remaining lifetimes).
   */
  status(now?: Millis): EngineStatus {
    const core = this.core;
    let capability: CapabilityStatus | undefined;
    if (now !== undefined) {
      core.dropExpiredPrimed(now);
      syncLasting(core, now);
      // Before the sizes: listing the live entries drops the expired ones, which the sizes would count.
      capability = capabilityStatus(core.cache, now);
    }
    const contexts = [...core.table.byTag.values()].map((ctx) => describe(ctx, now));
    const messages: EngineStatus['messages'] = { sent: {}, received: {} };
    for (const [name, code] of Object.entries(MessageType) as Array<[keyof typeof MessageType, number]>) {
      messages.sent[name] = core.messagesSent[code]!;
      messages.received[name] = core.messagesReceived[code]!;
    }
    const out: EngineStatus = { contexts, caches: core.cache.size(), localGeneration: core.local.generation, guard: structuredClone(core.guard), messages, rehomings: { ...core.rehomings } };
    return capability === undefined ? out : { ...out, capability };
  }

  /**
   * The established context of this ULID pair as `status()` describes it, or undefined: one
   * context described, not all of them (the driver asks for each context that goes on a kernel path).
   */
  describeEstablished(localUlid: Ipv6, peerUlid: Ipv6, now?: Millis): ContextStatus | undefined {
    const ctx = this.core.table.byUlidPair(localUlid, peerUlid, 0);
    return ctx === undefined || ctx.state !== State.ESTABLISHED ? undefined : describe(ctx, now);
  }

  /** Each context's payload octets so far (no descriptions built): the status page samples these. */
  traffic(): Array<{ localUlid: Ipv6; peerUlid: Ipv6; contextTag: number; bytesIn: number; bytesOut: number }> {
    const out: Array<{ localUlid: Ipv6; peerUlid: Ipv6; contextTag: number; bytesIn: number; bytesOut: number }> = [];
    for (const ctx of this.core.table.byTag.values()) out.push({ localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, contextTag: ctx.ctLocal, bytesIn: ctx.rxBytes, bytesOut: ctx.txBytes });
    return out;
  }

  /**
   * Our locators' addresses (Ls(local)): what `handleDatagram` takes a payload to (else not-local);
   * the kernel decapsulation takes exactly these (bpf-encap.ts `setLocals`).
   */
  localAddresses(): Ipv6[] {
    return this.core.local.locators.map((l) => l.address);
  }

  /** Number of contexts held (any state). */
  get contextCount(): number {
    return this.core.table.size;
  }

  /** The caches as the cache file keeps them; entries of live and resumable contexts' peers first made to last (lasting.ts). */
  exportCaches(now: Millis): CacheSnapshot {
    syncLasting(this.core, now);
    return this.core.cache.export(now);
  }

  /**
   * Load the cache file's entries. What only the configuration said (source `configured`) is kept
   * only for the peers it still configures: a peer taken out while the daemon was stopped does not
   * come back from the file for a day, as a reload drops it (`unconfigure`).
   */
  importCaches(now: Millis, data: CacheSnapshot): void {
    const cache = this.core.cache;
    cache.import(now, data);
    for (const e of cache.export(now).positive) {
      if (e.source === 'configured' && this.core.config.peers.get(e.ulid)?.mode !== 'configured') cache.deletePositive(e.ulid);
    }
  }
}

/** What `status()` returns. */
export interface EngineStatus {
  contexts: ContextStatus[];
  caches: { positive: number; negative: number };
  localGeneration: number;
  guard: GuardCounters;
  /** Control messages sent and received (decoded) since start, by message type. */
  messages: { sent: Partial<Record<keyof typeof MessageType, number>>; received: Partial<Record<keyof typeof MessageType, number>> };
  /** Re-homings since start, by cause. */
  rehomings: Partial<Record<RehomeCause, number>>;
  capability?: CapabilityStatus;
}

/** One context as `status()` shows it. */
export interface ContextStatus {
  state: State;
  localUlid: Ipv6;
  peerUlid: Ipv6;
  /** Why the peer ULID is the peer's (context.ts UlidProof). */
  ulidProof: UlidProof;
  contextTag: number;
  peerContextTag: number;
  pair: { local: Ipv6; peer: Ipv6 };
  /** The peer's UDP port when not 5533. */
  port?: number;
  /** The largest application packet the current pair carries, when a Packet Too Big taught it (icmp.ts). */
  pathMtu?: number;
  reap: 'Operational' | 'Exploring' | 'InboundOk';
  peerLocators: { address: Ipv6; verified: boolean; probed: boolean; flags: number }[];
  timers: Record<string, number>;
  /** Payload carried: packets and ULP octets, each way. */
  traffic: { packetsIn: number; bytesIn: number; packetsOut: number; bytesOut: number };
  /** Milliseconds since a valid packet came from the peer (given `now`; absent: none yet). */
  lastReceivedAgoMs?: number;
  rehomings: number;
  /** The last re-homing: how long ago (given `now`), why, from which pair to which. */
  lastRehome?: { agoMs?: number; cause: RehomeCause; old: { local: Ipv6; peer: Ipv6 }; new: { local: Ipv6; peer: Ipv6 } };
  /**
   * The peer's UDP port answers our datagrams with Port Unreachable (its daemon is not running),
   * nothing heard from it since the first: how many, for how long (given `now`). At
   * `timers.peerGoneTimeout` the context ends (`peer-gone`, icmp.ts).
   */
  peerGone?: { errors: number; forMs?: number };
}

function describe(ctx: Context, now: Millis | undefined): ContextStatus {
  const timers: Record<string, number> = {};
  const gone = peerGoneCount(ctx, now);
  ctx.timers.forEach((t, i) => { if (t !== Infinity) timers[TIMER_NAMES[i]!] = t; });
  return {
    state: ctx.state, localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, ulidProof: ctx.ulidProof, contextTag: ctx.ctLocal, peerContextTag: ctx.ctPeer,
    pair: { local: ctx.lpLocal, peer: ctx.lpPeer }, ...(ctx.port !== undefined ? { port: ctx.port } : {}),
    ...(ctx.pathMtu !== undefined && ctx.pathMtu.local === ctx.lpLocal && ctx.pathMtu.peer === ctx.lpPeer ? { pathMtu: ctx.pathMtu.limit } : {}),
    reap: (['Operational', 'Exploring', 'InboundOk'] as const)[ctx.reapState]!,
    peerLocators: ctx.peer.map((l) => ({ address: l.address, verified: l.verified, probed: l.probed, flags: l.flags })),
    timers,
    traffic: { packetsIn: ctx.rxPackets, bytesIn: ctx.rxBytes, packetsOut: ctx.txPackets, bytesOut: ctx.txBytes },
    ...(ctx.lastReceived !== undefined && now !== undefined ? { lastReceivedAgoMs: Math.max(0, now - ctx.lastReceived) } : {}),
    rehomings: ctx.rehomings,
    ...(gone !== undefined ? { peerGone: gone } : {}),
    ...(ctx.lastRehome !== undefined ? {
      lastRehome: { ...(now !== undefined ? { agoMs: Math.max(0, now - ctx.lastRehome.at) } : {}), cause: ctx.lastRehome.cause, old: ctx.lastRehome.old, new: ctx.lastRehome.new },
    } : {}),
  };
}

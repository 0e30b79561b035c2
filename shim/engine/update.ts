/**
 * Locator set management (RFC 5533 §10): Ls(peer) from Locator List +
 * Preferences in I2/I2bis/R2 and Update Requests; our own Update Requests with
 * the full list and preferences, one outstanding at a time, retransmitted with
 * back-off capped at MAX_UPDATE_TIMEOUT; generations (send +1, accept any
 * but the current one and the few before it: acceptedGeneration); Error codes 2–4. A peer locator enters Ls(peer) only when HBA/CGA
 * proves it (verify.ts: HBA set membership or the CGA Signature over the
 * list), and becomes a destination only after a probe (reap.ts).
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { seconds } from '../time.ts';
import { findOption, type ErrorMessage, type Shim6Message, type UpdateAckMessage, type UpdateRequestMessage } from '../wire/index.ts';
import { ErrorCode, LocatorFlag, OptionType } from '../constants.ts';
import { State } from './states.ts';
import { MAX_PEER_LOCATORS, type Context, type PeerLocator } from './context.ts';
import { TimerKind, backoff } from './timers.ts';
import type { Core } from './core.ts';
import type { DatagramResult } from './events.ts';
import { learnPort, type Datagram } from './rx.ts';
import { sendError } from './errors.ts';
import { startExploring } from './reap.ts';
import type { VerifyGate } from './verify.ts';

const CONSUMED: DatagramResult = { kind: 'consumed' };
const drop = (reason: string): DatagramResult => ({ kind: 'drop', reason });

/** RFC 5534 §5.3: the peer's Keepalive Timeout option, if any. */
export function peerKeepalive(ctx: Context, msg: Shim6Message): void {
  const k = findOption(msg, 'KeepaliveTimeout');
  if (k !== undefined && k.timeoutSeconds > 0) ctx.peerKeepaliveTimeout = seconds(k.timeoutSeconds);
}

/**
 * Generations of a +1 sender (ours, and the notes' advice) that a late copy of an abandoned
 * Update Request can carry: the current one's few predecessors.
 */
export const STALE_GENERATIONS = 255;

/**
 * May a received Locator List of generation `a` replace Ls(peer) of generation `current`?
 * RFC 5533 §10.4 takes any ("the peer generation number in the context is updated to be the one
 * in the Locator List option"), and §10.1 has a sender pick a random one per new list; §5.15.2 has
 * it add one. So: any but the current one (a retransmission, or a replay) and the STALE_GENERATIONS
 * before it (u32, wrapping), where a late copy of a +1 sender's abandoned request lands; a random
 * new generation falls there once in 2^24.
 */
export function acceptedGeneration(a: number, current: number): boolean {
  const behind = (current - a) >>> 0;
  return behind > STALE_GENERATIONS;
}

/** One Locator List entry and whether HBA/CGA proved it. */
export interface CheckedLocator {
  address: Ipv6;
  method: number;
  ok: boolean;
}

/**
 * Verify a message's Locator List for `peerUlid` against the message's PDS,
 * else `knownPds` (the one the peer sent before): one flag per entry. With
 * `gate` (core.verifyGate), a CGA Signature costs a token of the sender's
 * verification budget, and `gate.limited` says the list went unverified for
 * want of one.
 */
export function checkLocators(core: Core, peerUlid: Ipv6, msg: Shim6Message, knownPds: Uint8Array | undefined, gate?: VerifyGate): CheckedLocator[] {
  const list = findOption(msg, 'LocatorList');
  if (list === undefined) return [];
  const pds = findOption(msg, 'CgaParameterDataStructure')?.pds ?? knownPds;
  const claims = list.locators.map((l) => ({ address: l.address, method: l.verificationMethod }));
  const ok = core.verifier.verify(peerUlid, claims, pds, { generation: list.generation, signature: findOption(msg, 'CgaSignature')?.signature }, gate);
  return claims.map((c, i) => ({ ...c, ok: ok[i] === true }));
}

/**
 * Ls(peer) from an I2/I2bis/R2 whose list `checked` verified: the ULID plus
 * every locator HBA/CGA proves; unproven entries are kept but never
 * destinations; at most the list's first MAX_PEER_LOCATORS entries.
 */
export function applyHandshakeLocators(ctx: Context, msg: Shim6Message, checked: readonly CheckedLocator[]): void {
  const list = findOption(msg, 'LocatorList');
  if (list === undefined) return;
  const pds = findOption(msg, 'CgaParameterDataStructure')?.pds;
  if (pds !== undefined) ctx.peerPds = pds;
  const prefs = findOption(msg, 'LocatorPreferences');
  const usePrefs = prefs !== undefined && prefs.generation === list.generation && prefs.elements.length === list.locators.length;
  replacePeerSet(ctx, checked, usePrefs ? prefs.elements : undefined);
  ctx.peerGeneration = list.generation;
}

/**
 * Ls(peer) := the list's first MAX_PEER_LOCATORS entries (preference `i` is entry `i`'s, so the
 * first ones line up as they are), the ULID and the handshake pair's locator.
 */
function replacePeerSet(ctx: Context, all: readonly CheckedLocator[], prefs: { flags: number; priority?: number; weight?: number }[] | undefined): void {
  const checked = all.slice(0, MAX_PEER_LOCATORS);
  ctx.peerListLength = all.length;
  const next: PeerLocator[] = [];
  const ulid = ctx.peerLocator(ctx.peerUlid);
  if (!checked.some((c) => c.address === ctx.peerUlid)) next.push(ulid === undefined ? { address: ctx.peerUlid, method: 0, listed: false, verified: true, probed: false, flags: 0, priority: 0, weight: 0 } : { ...ulid, listed: false });
  checked.forEach((c, i) => {
    const old = ctx.peerLocator(c.address);
    const p = prefs?.[i];
    // Unproven entries stay (so preference indices line up) but are never destinations.
    next.push({ address: c.address, method: c.method, listed: true, verified: c.ok, probed: c.ok && (old?.probed ?? false), flags: p?.flags ?? 0, priority: p?.priority ?? 0, weight: p?.weight ?? 0 });
  });
  // The pair the handshake ran on stays usable: the peer answered there with our nonce (§7.9 ULID option case).
  if (!next.some((l) => l.address === ctx.lpPeer)) {
    const cur = ctx.peerLocator(ctx.lpPeer);
    if (cur !== undefined) next.push({ ...cur, listed: false, verified: true });
  }
  ctx.peer = next;
}

/** Send our current list to every established context (local locator change, §10.1). */
export function announceLocators(core: Core, now: Millis): void {
  for (const ctx of core.table.byTag.values()) if (ctx.state === State.ESTABLISHED) sendUpdate(core, ctx, now);
}

/**
 * Where an Update Request (and each retransmission) goes: the current pair, while its local
 * locator is usable. Once it is not (the address gone, deprecated, its link down), the request
 * cannot go from there, and the current pair is what exploration is about to replace: it goes
 * from a usable locator (the ULID if it is one) to each verified locator of the peer, those the
 * peer flagged BROKEN too. When both ends renumber at once, the peer's own Update (say, that its
 * deprecated address is all it has left, usable again) is stuck on the same dead pair, so its
 * flags are what it can no longer correct, and REAP probes no BROKEN locator: only such a copy
 * gets through. At most MAX_PEER_LOCATORS copies, each answered by at most one Update Ack.
 */
function updatePairs(core: Core, ctx: Context): { local: Ipv6; peer: Ipv6 }[] {
  const locals = core.local.usable();
  if (locals.includes(ctx.lpLocal) || locals.length === 0) return [{ local: ctx.lpLocal, peer: ctx.lpPeer }];
  const local = locals.includes(ctx.localUlid) ? ctx.localUlid : locals[0]!;
  const peers = ctx.peer.filter((l) => l.verified).map((l) => l.address);
  return (peers.length > 0 ? peers : [ctx.lpPeer]).map((peer) => ({ local, peer }));
}

/** (Re)start the one outstanding Update Request, abandoning an older one (§10.3). */
export function sendUpdate(core: Core, ctx: Context, now: Millis): void {
  ctx.announcedGeneration = core.local.generation;
  const nonce = core.random.u32();
  const msg: UpdateRequestMessage = { type: 'UpdateRequest', contextTag: ctx.ctPeer, requestNonce: nonce, options: [...core.local.options(ctx.localUlid)] };
  const [first, ...more] = updatePairs(core, ctx);
  const bytes = core.send(first!.local, first!.peer, msg, ctx.port);
  for (const p of more) core.sendBytes(p.local, p.peer, bytes, ctx.port);
  ctx.update = { nonce, attempt: 0, bytes };
  core.arm(ctx, TimerKind.Update, now + core.random.jitter(core.timers.updateTimeout));
}

/**
 * CT(peer) changed from `oldTag` (the peer lost the context and set it up anew: the R2 to our
 * I2bis, or its I2 with a new tag, §7.9): an Update Request still pending names the old tag, which
 * the peer no longer has, so each retransmission drew an R1bis and no ack, for the context's life.
 * It goes again now, under the new tag (a fresh nonce, §10.3).
 */
export function retagUpdate(core: Core, ctx: Context, now: Millis, oldTag: number): void {
  if (ctx.update !== undefined && ctx.ctPeer !== oldTag) sendUpdate(core, ctx, now);
}

/**
 * Update retransmission: forever, back-off capped at MAX_UPDATE_TIMEOUT (§10.2).
 * The cap holds after randomisation too: no gap ever exceeds it.
 */
export function onUpdateTimer(core: Core, ctx: Context, now: Millis): void {
  const u = ctx.update;
  if (u === undefined || ctx.state === State.CLOSING) return;
  u.attempt++;
  for (const p of updatePairs(core, ctx)) core.sendBytes(p.local, p.peer, u.bytes, ctx.port);
  const cap = core.timers.maxUpdateTimeout;
  core.arm(ctx, TimerKind.Update, now + Math.min(cap, core.random.jitter(backoff(core.timers.updateTimeout, u.attempt, cap))));
}

/** Offset of the first option of `type` in an encoded message whose options start at `from`. */
function optionOffset(bytes: Uint8Array, from: number, type: number): number {
  const end = (bytes[1]! + 1) * 8;
  let o = from;
  while (o + 4 <= end) {
    const t = ((bytes[o]! << 8) | bytes[o + 1]!) >>> 1;
    const len = (bytes[o + 2]! << 8) | bytes[o + 3]!;
    if (t === type) return o;
    o += 4 + len + (7 - ((len + 3) % 8));
  }
  return from;
}

/** RFC 5533 §10.4 (after dispatch found the context and checked locators and state). */
export function onUpdateRequest(core: Core, now: Millis, ctx: Context, rx: Datagram, msg: UpdateRequestMessage): DatagramResult {
  const { src, dst, bytes } = rx;
  const pds = findOption(msg, 'CgaParameterDataStructure')?.pds;
  if (pds !== undefined && !core.verifier.ownsUlid(ctx.peerUlid, pds)) return drop('pds-mismatch');
  const list = findOption(msg, 'LocatorList');
  let changed = false;
  if (list !== undefined && (ctx.peerGeneration < 0 || acceptedGeneration(list.generation, ctx.peerGeneration))) {
    const gate = core.verifyGate(now, src, ctx);
    const checked = checkLocators(core, ctx.peerUlid, msg, ctx.peerPds, gate);
    // Over the sender's verification budget: not verified, so neither accepted nor refused (no Error); it retransmits.
    if (gate.limited) return drop('cga-limited');
    const bad = checked.findIndex((c) => !c.ok);
    if (bad >= 0) {
      // §7.2: the Pointer names the verification method octet found inconsistent (after generation u32 and N u8).
      sendError(core, now, rx, ErrorCode.LocatorVerificationFailed, optionOffset(bytes, 16, OptionType.LocatorList) + 4 + 5 + bad);
      return drop('locator-unverified');
    }
    if (pds !== undefined) ctx.peerPds = pds;
    replacePeerSet(ctx, checked, undefined);
    // The list is the peer's whole set now: a locator it no longer lists (its ULID's address gone or
    // deprecated, the pair in use) is withdrawn — still accepted as a source, never again a destination.
    for (const l of ctx.peer) if (!l.listed) l.flags |= LocatorFlag.BROKEN;
    ctx.peerGeneration = list.generation;
    changed = true;
  }
  const prefs = findOption(msg, 'LocatorPreferences');
  if (prefs !== undefined) {
    const at = optionOffset(bytes, 16, OptionType.LocatorPreferences);
    if (prefs.generation !== ctx.peerGeneration) {
      sendError(core, now, rx, ErrorCode.LocatorListGenerationOutOfSync, at + 4);
      return drop('generation-out-of-sync');
    }
    if (prefs.elements.length !== ctx.peerListLength) {
      sendError(core, now, rx, ErrorCode.WrongNumberOfPreferenceElements, at + 8);
      return drop('preference-count');
    }
    const before = prefsKey(ctx);
    applyPrefs(ctx, prefs.elements);
    changed ||= prefsKey(ctx) !== before; // a replayed request changes nothing

  }
  peerKeepalive(ctx, msg);
  const ack: UpdateAckMessage = { type: 'UpdateAck', contextTag: ctx.ctPeer, requestNonce: msg.requestNonce, options: [] };
  core.send(dst, src, ack, ctx.port);
  if (changed) {
    core.emit({ kind: 'locator-set-updated', localUlid: ctx.localUlid, peerUlid: ctx.peerUlid, generation: ctx.peerGeneration, locators: ctx.peer.map((l) => l.address) });
    const cur = ctx.peerLocator(ctx.lpPeer);
    if (cur === undefined || (cur.flags & LocatorFlag.BROKEN) !== 0) startExploring(core, ctx, now, 'peer-locator-broken'); // §10.4: probe before changing Lp(peer)
  }
  return CONSUMED;
}

const prefsKey = (ctx: Context): string => ctx.peer.map((l) => `${l.flags}/${l.priority}/${l.weight}`).join(',');

function applyPrefs(ctx: Context, elements: { flags: number; priority?: number; weight?: number }[]): void {
  let i = 0;
  for (const l of ctx.peer) {
    if (!l.listed) continue;
    const e = elements[i++]!;
    l.flags = e.flags;
    l.priority = e.priority ?? l.priority;
    l.weight = e.weight ?? l.weight;
  }
}

/** RFC 5533 §10.5. */
export function onUpdateAck(core: Core, ctx: Context, rx: Datagram, msg: UpdateAckMessage): DatagramResult {
  if (ctx.update === undefined || ctx.update.nonce !== msg.requestNonce) return drop('stale-ack');
  learnPort(ctx, rx); // it echoes the nonce we sent: its sender is the peer, at this port
  ctx.update = undefined;
  core.stop(ctx, TimerKind.Update);
  return CONSUMED;
}

/**
 * An Error about one of our Update Requests (codes 2–4): 3 and 4 mean the peer
 * has a different idea of our list — resend the full list and preferences at
 * once; 2 means it could not verify our locators — stop retransmitting. Only
 * about the outstanding request (`requestNonce`, the one the Error quotes): an
 * Error about a request we abandoned for a newer one (§10.3) says nothing about
 * the newer list, as its stale Update Ack would not.
 */
export function onUpdateError(core: Core, now: Millis, ctx: Context, msg: ErrorMessage, requestNonce: number): DatagramResult {
  if (ctx.update === undefined) return drop('no-update');
  if (ctx.update.nonce !== requestNonce) return drop('stale-error');
  if (msg.errorCode === ErrorCode.LocatorVerificationFailed) {
    ctx.update = undefined;
    core.stop(ctx, TimerKind.Update);
    return CONSUMED;
  }
  if (msg.errorCode === ErrorCode.LocatorListGenerationOutOfSync || msg.errorCode === ErrorCode.WrongNumberOfPreferenceElements) {
    sendUpdate(core, ctx, now);
    return CONSUMED;
  }
  return drop('error-code');
}

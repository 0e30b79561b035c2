/**
 * What a handshake proved lasts as long as the context (docs/engine.md "Capability
 * detection", "Knowledge that lasts"): the peer's positive entry — "it runs shim6", with the
 * locators and port it is reached at — is kept for as long as a context with the peer is alive
 * or resumable, plus `positiveTtl` after, instead of `positiveTtl` after the handshake only.
 *
 * - Alive: each time the peer proves itself on an established context (a payload or a
 *   message naming the context's tag from a verified locator that passed its handler, or the
 *   handshake itself: `provenAlive`), the entry is made to last `positiveTtl` from then — at
 *   most once per quarter of the entry's remaining life, so a busy context costs a comparison per
 *   packet. Exports (the cache file, `status`) first bring every entry up to its context's
 *   last proof + `positiveTtl` (`syncLasting`).
 * - Resumable: an idle cleanup (RFC 5533 §9) of an established context keeps the peer known
 *   (the driver keeps its route: the next packet brings the context back), so the entry is
 *   written to last `positiveTtl` from the cleanup and pinned (`core.resumable`): while pinned,
 *   an entry that expired or was evicted comes back on the next lookup (`knownPositive`), and
 *   each export writes it to last `positiveTtl` from then. The pin goes when the next context
 *   with the peer starts (that context's own life then decides) — the driver's route follows the
 *   same rule. Pins are bounded by `cacheMax` (the oldest goes first, announced as
 *   `resumable-dropped`: the driver takes its route back) and live in memory only:
 *   after a restart the file's entries last `positiveTtl` from the last save.
 *
 * When the entry has no locators (a handshake or discovery taught it), the context's verified
 * locators (not BROKEN, at most CAPABILITY_MAX_LOCATORS) fill it, so the next context's I1s
 * walk them (a dead first locator is survived); locators DNS or configuration gave are kept.
 * No message that proves nothing (an I1, an R1bis, an unchecked payload) changes any of this.
 */
import type { Millis } from '../time.ts';
import type { Ipv6 } from '../wire/ipv6.ts';
import { CAPABILITY_MAX_LOCATORS, LocatorFlag } from '../constants.ts';
import type { Core } from './core.ts';
import type { Context } from './context.ts';
import type { PositiveEntry, PrimeLocator } from './capability.ts';
import { State } from './states.ts';

/** The least time between two refreshes of one context's entry (ms). */
const MIN_CHECK_MS = 1000;

/** A positive entry without its lifetime: what a pin keeps. */
export type PinnedEntry = Omit<PositiveEntry, 'expires'>;

/** The peer proved itself alive on `ctx` at `now`: remember when, and keep its entry (rate-limited). */
export function provenAlive(core: Core, ctx: Context, now: Millis): void {
  ctx.provenAt = now;
  if (ctx.state === State.ESTABLISHED && now >= ctx.capableCheckAt) keepCapable(core, ctx, now, (now + core.config.positiveTtl) as Millis);
}

/**
 * Make `ctx`'s peer entry last until at least `until` (the cache may cut it to its longest
 * TTL), keeping what DNS or configuration said (source, locators, port); filled with the
 * context's verified locators when it has none. The next rate-limited refresh is due after a
 * quarter of the entry's remaining life.
 */
export function keepCapable(core: Core, ctx: Context, now: Millis, until: Millis): PositiveEntry | undefined {
  let entry = core.cache.getPositive(now, ctx.peerUlid);
  if (entry === undefined || entry.expires < until || entry.locators.length === 0) {
    core.cache.setPositive(now, lastingEntry(ctx, entry, Math.max(entry?.expires ?? 0, until) as Millis));
    entry = core.cache.getPositive(now, ctx.peerUlid);
  }
  ctx.capableCheckAt = (now + Math.max(MIN_CHECK_MS, ((entry?.expires ?? now) - now) / 4)) as Millis;
  return entry;
}

function lastingEntry(ctx: Context, known: PositiveEntry | undefined, expires: Millis): PositiveEntry {
  const locators = known !== undefined && known.locators.length > 0 ? known.locators : provenLocators(ctx);
  const port = known?.port ?? ctx.port;
  const base: PositiveEntry = { ulid: ctx.peerUlid, source: known?.source ?? 'handshake', locators, expires };
  return port === undefined ? base : { ...base, port };
}

/** The context's verified peer locators that are not BROKEN, as priming hints. */
function provenLocators(ctx: Context): PrimeLocator[] {
  const out: PrimeLocator[] = [];
  for (const l of ctx.peer) {
    if (!l.verified || (l.flags & LocatorFlag.BROKEN) !== 0) continue;
    out.push({ address: l.address, flags: l.flags, priority: l.priority, weight: l.weight });
    if (out.length >= CAPABILITY_MAX_LOCATORS) break;
  }
  return out;
}

/**
 * An established context is cleaned up for idleness: its peer stays known for `positiveTtl`
 * from now, and while the cleanup is resumable (pinned) after that too.
 */
export function keepAtIdleClose(core: Core, ctx: Context, now: Millis): void {
  const entry = keepCapable(core, ctx, now, (now + core.config.positiveTtl) as Millis);
  if (entry === undefined) return;
  const { expires: _expires, ...pin } = entry;
  const pins = core.resumable;
  pins.delete(ctx.peerUlid);
  pins.set(ctx.peerUlid, pin);
  while (pins.size > core.config.cacheMax) dropPin(core, pins.keys().next().value!);
}

/** The pin of `peer` goes, announced (`resumable-dropped`: the driver takes back the route it kept); false when it had none. */
export function dropPin(core: Core, peer: Ipv6): boolean {
  if (!core.resumable.delete(peer)) return false;
  core.emit({ kind: 'resumable-dropped', peerUlid: peer });
  return true;
}

/** A new context with `peer` starts: its own life decides from now on (the driver's route follows it too). */
export function unpin(core: Core, peer: Ipv6): void {
  core.resumable.delete(peer);
}

/** The peer's positive entry; a pinned peer whose entry expired or was evicted gets it back for `positiveTtl`. */
export function knownPositive(core: Core, now: Millis, peer: Ipv6): PositiveEntry | undefined {
  const entry = core.cache.getPositive(now, peer);
  if (entry !== undefined) return entry;
  const pin = core.resumable.get(peer);
  if (pin === undefined) return undefined;
  core.cache.setPositive(now, { ...pin, expires: (now + core.config.positiveTtl) as Millis });
  return core.cache.getPositive(now, peer);
}

/**
 * Before the caches are exported (the cache file, `status`): every established context's peer
 * entry lasts until its last proof + `positiveTtl`, every pinned peer's until now + `positiveTtl`.
 */
export function syncLasting(core: Core, now: Millis): void {
  const ttl = core.config.positiveTtl;
  for (const ctx of core.table.byTag.values()) {
    if (ctx.state !== State.ESTABLISHED || ctx.provenAt === -Infinity) continue;
    const until = (ctx.provenAt + ttl) as Millis;
    const entry = core.cache.getPositive(now, ctx.peerUlid);
    if (entry === undefined || entry.expires < until) keepCapable(core, ctx, now, until);
  }
  for (const [peer, pin] of core.resumable) {
    const entry = core.cache.getPositive(now, peer);
    if (entry === undefined || entry.expires < now + ttl) core.cache.setPositive(now, { ...(entry ?? pin), expires: (now + ttl) as Millis });
  }
}

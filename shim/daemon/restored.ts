/**
 * ULIDs kept from before a restart (docs/operations.md "Protection that lasts"): a local address
 * of an open connection that is no address of the host any more but was the local ULID of a
 * context the previous daemon saved. Each is kept with the CGA Parameter Data Structure that
 * proves it (its own: an HBA member's, or the CGA our key makes on its prefix), at most
 * MAX_RESTORED_ULIDS of them, and released once no open connection and no context uses it —
 * checked every `restoredCheckMs` — so a host that renumbers often does not pile them up. The
 * running daemon keeps the same way (daemon.ts keepUlidsInUse) an address removed from the host
 * while it is the local ULID of a live context, with the proof it had; that one is not bounded here
 * (each was a locator of ours, and goes with its last context and connection).
 * Pure: the daemon reads the socket tables and the engine, and applies what this decides.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import type { OpenConnection } from './open-connections.ts';

/** At most this many ULIDs kept from before a restart (each is a BROKEN entry of every Locator List we send). */
export const MAX_RESTORED_ULIDS = 16;
/** The longest time between two checks whether a kept ULID is still used (each reads /proc/net/{tcp6,udp6} once). */
export const RESTORED_CHECK_MS = 60_000;

/**
 * How often the daemon checks: every minute, or every idle timeout when that is shorter (a context
 * of a closed connection ends by the idle timer, RFC 5533 §9; checking more often finds nothing
 * new), never more often than once a second.
 */
export function restoredCheckMs(idleTimeoutMs: number): number {
  return Math.min(RESTORED_CHECK_MS, Math.max(1000, idleTimeoutMs));
}

/** What the restart keeps, and what it could not. */
export interface RestoredChoice {
  /** ULID → the PDS that proves it, most open connections first, at most MAX_RESTORED_ULIDS. */
  kept: Map<Ipv6, Uint8Array>;
  /** Candidates with no proof of ours (not in the HBA set, not a CGA of our key): left alone. */
  unproven: Ipv6[];
  /** Provable candidates beyond the bound (fewest open connections): left alone. */
  over: Ipv6[];
}

/**
 * Of the candidate ULIDs (daemon.ts `restoredUlids`), those `proofOf` proves, the ones with the
 * most open connections first (ties: in the order given), at most `max`. A ULID without a proof
 * cannot carry a context: its peer refuses a ULID the PDS does not prove (RFC 5533 §7.13).
 */
export function chooseRestored(candidates: readonly Ipv6[], open: readonly OpenConnection[], proofOf: (ulid: Ipv6) => Uint8Array | undefined, max = MAX_RESTORED_ULIDS): RestoredChoice {
  const uses = new Map<Ipv6, number>();
  for (const c of open) uses.set(c.local, (uses.get(c.local) ?? 0) + 1);
  const unproven: Ipv6[] = [];
  const proven: Array<{ ulid: Ipv6; params: Uint8Array; i: number }> = [];
  candidates.forEach((ulid, i) => {
    const params = proofOf(ulid);
    if (params === undefined) unproven.push(ulid);
    else proven.push({ ulid, params, i });
  });
  proven.sort((a, b) => (uses.get(b.ulid) ?? 0) - (uses.get(a.ulid) ?? 0) || a.i - b.i);
  return {
    kept: new Map(proven.slice(0, max).map((p) => [p.ulid, p.params])),
    unproven,
    over: proven.slice(max).map((p) => p.ulid),
  };
}

/**
 * The kept ULIDs nobody needs any more: no open connection has one as its local address and no
 * context (in any state) has one as its local ULID.
 */
export function unusedRestored(kept: Iterable<Ipv6>, open: readonly OpenConnection[], contexts: Iterable<{ localUlid: Ipv6 }>): Ipv6[] {
  const used = new Set<Ipv6>(open.map((c) => c.local));
  for (const c of contexts) used.add(c.localUlid);
  return [...kept].filter((u) => !used.has(u));
}

/**
 * One peer of an open connection per kept ULID: what the cache file records for a kept ULID no
 * live context has (an idle connection whose context the idle timer removed), so a further
 * restart keeps it too while the connection is open.
 */
export function peersOfRestored(kept: Iterable<Ipv6>, open: readonly OpenConnection[]): Map<Ipv6, Ipv6> {
  const want = new Set(kept);
  const out = new Map<Ipv6, Ipv6>();
  for (const c of open) if (want.has(c.local) && !out.has(c.local)) out.set(c.local, c.peer);
  return out;
}

/** Why a ULID is kept among our locators though it is no address of the host (`daemon.keptUlids[].why`). */
export type KeptWhy = 'restart' | 'context' | 'ulid';

/**
 * A kept ULID as `shim6 status` shows it (docs/status.md `daemon.keptUlids[]`): `restart` — the
 * local address of open connections, gone from the host, that was a local ULID of the previous
 * daemon's contexts (restored.ts), released at the first check (`releaseCheckInMs` from now) that
 * finds no open connection and no context using it; `context` — an address removed from the host
 * while this daemon ran that was the local ULID of a live context, kept and released the same way;
 * `ulid` — this daemon's own ULID, its address
 * gone (docs/operations.md "Renumbering"), kept for the daemon's life (`releaseCheckInMs` null).
 */
export interface KeptUlidView {
  address: Ipv6;
  why: KeptWhy;
  /** Flagged BROKEN in the Locator Lists we send (peers send to it no more): the host lacks the address, or has it down. */
  broken: boolean;
  /** Open connections whose local address it is, as the last reading of the socket tables found (null: not read for it). */
  connections: number | null;
  /** Contexts, in any state, whose local ULID it is. */
  contexts: number;
  /** When the next check may release it, from now (ms); null when no check releases it. */
  releaseCheckInMs: number | null;
}

/**
 * The kept ULIDs, for the status: the restored ones (`restored`, in the order kept; those in `live`
 * kept by this daemon for its contexts, the others from before the restart) and our own
 * ULID when it is no address of the host (`present` says which are), each with its flag in the
 * Locator List we send (`locals`, daemon.ts orderLocators), the open connections the last check
 * counted (`connections`), the contexts that use it, and when the next check comes (`nextCheckAt`,
 * on the same clock as `now`; undefined: none scheduled).
 */
export function keptUlidsView(o: {
  restored: Iterable<Ipv6>; live?: ReadonlySet<Ipv6>; ulid: Ipv6; present: (a: Ipv6) => boolean;
  locals: ReadonlyArray<{ address: Ipv6; flags?: number }>; connections: ReadonlyMap<Ipv6, number>;
  contexts: Iterable<{ localUlid: Ipv6 }>; now: number; nextCheckAt: number | undefined;
}): KeptUlidView[] {
  const uses = new Map<Ipv6, number>();
  for (const c of o.contexts) uses.set(c.localUlid, (uses.get(c.localUlid) ?? 0) + 1);
  const broken = (a: Ipv6): boolean => ((o.locals.find((l) => l.address === a)?.flags ?? 0x01) & 0x01) !== 0;
  const out: KeptUlidView[] = [];
  if (o.ulid !== '' && !o.present(o.ulid)) {
    out.push({ address: o.ulid, why: 'ulid', broken: broken(o.ulid), connections: o.connections.get(o.ulid) ?? null, contexts: uses.get(o.ulid) ?? 0, releaseCheckInMs: null });
  }
  for (const u of o.restored) {
    if (u === o.ulid) continue;
    out.push({
      address: u, why: o.live?.has(u) === true ? 'context' : 'restart', broken: broken(u), connections: o.connections.get(u) ?? 0, contexts: uses.get(u) ?? 0,
      releaseCheckInMs: o.nextCheckAt === undefined ? null : Math.max(0, o.nextCheckAt - o.now),
    });
  }
  return out;
}

/** Open connections per local address (for the kept ULIDs' `connections`). */
export function connectionsByLocal(open: readonly OpenConnection[], of: Iterable<Ipv6>): Map<Ipv6, number> {
  const want = new Set(of);
  const out = new Map<Ipv6, number>();
  for (const c of open) if (want.has(c.local)) out.set(c.local, (out.get(c.local) ?? 0) + 1);
  return out;
}

/**
 * ULIDs kept from before a restart (docs/operations.md "Protection that lasts"): a local address
 * of an open connection that is no address of the host any more but was the local ULID of a
 * context the previous daemon saved. Each is kept with the CGA Parameter Data Structure that
 * proves it (its own: an HBA member's, or the CGA our key makes on its prefix), at most
 * MAX_RESTORED_ULIDS of them, and released once no open connection and no context uses it —
 * checked every `restoredCheckMs` — so a host that renumbers often does not pile them up.
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

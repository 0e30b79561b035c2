/**
 * Contexts set up again after a restart from the ULID pairs the cache file saved
 * (docs/operations.md "Protection that lasts"). A clean stop (SIGTERM) closes every
 * context with its peer (Close / Close Ack), so the peer removes its route and sends
 * plain IPv6 again; an open connection the next daemon finds in the kernel's socket
 * tables (TCP, connected UDP) is protected again from there, but a socket with no
 * peer in the tables — a UDP server answering with sendto (DNS, QUIC, SIP) — is
 * invisible, and its peer, whose connected socket still sends, had nobody to bring
 * its context back. So each saved pair that is still worth it gets a context again:
 * its local ULID is ours now, no open connection or context covers it, and the file
 * is recent enough that the context could still have been live (its pairs known live
 * no longer than the idle timeout + SAVED_FRESH_MARGIN_MS ago: a context idles out
 * after the idle timeout without traffic, RFC 5533 §9, so older pairs would be gone
 * anyway). Known live when: the file's `savedAt` (its last write), or its modification
 * time when later — the running daemon skips a write that changes nothing but moves
 * the file's time (sink.ts CacheFileWriter), so after SIGKILL a file whose contexts
 * were stable for long is still as recent as the daemon's last check of them.
 * A pair set up again that nobody uses idles out by the idle timer as any other.
 * Pure: the daemon reads the file and the engine, and applies what this decides.
 */
import type { Ipv6 } from '../wire/ipv6.ts';
import { SAVED_CONTEXTS_MAX, type SavedContext } from './sink.ts';

/** Beyond the idle timeout, how much older the cache file may be (a slow restart, the save's own lag, a small clock step). */
export const SAVED_FRESH_MARGIN_MS = 60_000;

/** The longest a cache file's pairs stay worth setting up again: the idle timeout + SAVED_FRESH_MARGIN_MS. */
export function savedFreshForMs(idleTimeoutMs: number): number {
  return idleTimeoutMs + SAVED_FRESH_MARGIN_MS;
}

/** A ULID pair's key (local, then peer), for sets of pairs. */
export const pairKey = (local: Ipv6, peer: Ipv6): string => `${local} ${peer}`;

/**
 * When the saved pairs were last known live (wall-clock ms): the file's `savedAt`, or its
 * modification time `touchedAt` when later (a skipped write's touch). Undefined without a
 * `savedAt` (an older daemon's file: its time says nothing of its contexts).
 */
export function liveAtOf(savedAt: number | undefined, touchedAt: number | undefined): number | undefined {
  if (savedAt === undefined || !Number.isFinite(savedAt)) return undefined;
  return touchedAt !== undefined && Number.isFinite(touchedAt) && touchedAt > savedAt ? touchedAt : savedAt;
}

/** What a start sets up again, and what it leaves. */
export interface ResumeChoice {
  /** The pairs to set up again, each once, in the file's order, at most `max`. */
  pairs: SavedContext[];
  /** Why none were taken when the file's pairs were all refused at once: no write time, written too long ago, or in the future. */
  stale?: 'no-time' | 'old' | 'future';
  /** How long ago the file's pairs were known live (ms; `liveAtOf`), when it says. */
  ageMs?: number;
  /** Pairs left: their local ULID is not ours now. */
  notOurs: number;
  /** Pairs left: an open connection or a live context covers them already. */
  covered: number;
  /** Pairs left over the bound. */
  over: number;
}

/**
 * Of the saved pairs (`saved`, the file written at `savedAt` and last modified at `touchedAt`,
 * wall-clock ms), those to set up again at `now`: none when the file is stale (no `savedAt`, known
 * live — `liveAtOf` — longer ago than `savedFreshForMs(idleTimeoutMs)`, or more than the margin in
 * the future: a clock stepped back); else each pair once whose local ULID `isOurs` and that
 * `covered` does not hold, at most `max`.
 */
export function contextsToSetUpAgain(
  saved: readonly SavedContext[],
  opts: { savedAt: number | undefined; touchedAt?: number | undefined; now: number; idleTimeoutMs: number; isOurs: (ulid: Ipv6) => boolean; covered: (local: Ipv6, peer: Ipv6) => boolean; max?: number },
): ResumeChoice {
  const { savedAt, touchedAt, now, idleTimeoutMs, isOurs, covered, max = SAVED_CONTEXTS_MAX } = opts;
  const none: ResumeChoice = { pairs: [], notOurs: 0, covered: 0, over: 0 };
  if (saved.length === 0) return none;
  const liveAt = liveAtOf(savedAt, touchedAt);
  if (liveAt === undefined) return { ...none, stale: 'no-time' };
  const ageMs = now - liveAt;
  if (ageMs > savedFreshForMs(idleTimeoutMs)) return { ...none, stale: 'old', ageMs };
  if (ageMs < -SAVED_FRESH_MARGIN_MS) return { ...none, stale: 'future', ageMs };
  const out: SavedContext[] = [];
  const seen = new Set<string>();
  let notOurs = 0;
  let already = 0;
  let over = 0;
  for (const c of saved) {
    const key = pairKey(c.localUlid, c.peerUlid);
    if (seen.has(key)) continue;
    seen.add(key);
    if (!isOurs(c.localUlid)) notOurs++;
    else if (covered(c.localUlid, c.peerUlid)) already++;
    else if (out.length >= max) over++;
    else out.push({ localUlid: c.localUlid, peerUlid: c.peerUlid });
  }
  return { pairs: out, ageMs, notOurs, covered: already, over };
}

/** A cache file's write time (`savedAt`, wall-clock ms), when it has a usable one. */
export function savedAtOf(data: unknown): number | undefined {
  const t = (data as { savedAt?: unknown } | undefined)?.savedAt;
  return typeof t === 'number' && Number.isFinite(t) && t > 0 ? t : undefined;
}

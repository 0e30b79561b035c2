/**
 * All timers of a context in one table indexed by kind (quinn `timer.rs`), and
 * one engine-wide heap so `next()` is the earliest deadline of all contexts.
 * Timers are lazy: stopping one just clears its slot; the heap may hold an
 * earlier, stale entry for a context, which fires early, finds nothing due and
 * re-arms. That keeps the heap at about one entry per context even when the
 * Send and Keepalive timers start and stop on every packet; the entries of removed
 * contexts, and those a live context left behind, go when they surface, or all at once
 * when they could outnumber the live ones (`compactFor`).
 * This module knows deadlines only, never what a timer means.
 */
import type { Millis } from '../time.ts';

/** Timer kinds; each context has one slot per kind. */
export const TimerKind = {
  /** I1 / I2 / I2bis / Close retransmission (RFC 5533 §7.8, §7.12, §7.19). */
  Retransmit: 0,
  /** E-FAILED / NO-SUPPORT hold-down (NO_R1_HOLDDOWN_TIME, ICMP_HOLDDOWN_TIME). */
  Holddown: 1,
  /** Update Request retransmission (RFC 5533 §10.2). */
  Update: 2,
  /** REAP Send timer (RFC 5534 §6). */
  Send: 3,
  /** REAP Keepalive timer: the overall Keepalive Timeout. */
  Keepalive: 4,
  /** Next Keepalive message within the Keepalive Timeout (Keepalive Interval). */
  KeepaliveInterval: 5,
  /** REAP Probe retransmission (RFC 5534 §6.5). */
  Probe: 6,
  /** Idle garbage collection (RFC 5533 §9). */
  Idle: 7,
} as const;
export type TimerKind = (typeof TimerKind)[keyof typeof TimerKind];
export const TIMER_KINDS = 8;
export const TIMER_NAMES = ['retransmit', 'holddown', 'update', 'send', 'keepalive', 'keepalive-interval', 'probe', 'idle'] as const;

/** Deadline slots; `Infinity` = not running. A plain array keeps a context lean. */
export type TimerTable = number[];

export function newTimerTable(): TimerTable {
  return [Infinity, Infinity, Infinity, Infinity, Infinity, Infinity, Infinity, Infinity];
}

/** The earliest running deadline of a table (Infinity when none runs). */
export function earliest(t: TimerTable): number {
  let m = Infinity;
  for (let i = 0; i < TIMER_KINDS; i++) if (t[i]! < m) m = t[i]!;
  return m;
}

/** Something that owns a timer table and can sit in the heap. */
export interface Timed {
  timers: TimerTable;
  /** Deadline of this owner's earliest live heap entry (Infinity: none). */
  heapAt: number;
  /** False once removed: its heap entries are discarded when they surface. */
  alive: boolean;
}

/** A binary min-heap of (deadline, owner) with lazy deletion. */
export class TimerHeap<T extends Timed> {
  private at: number[] = [];
  private who: T[] = [];

  /**
   * `live`: how many owners are alive now (the engine's contexts); given, every push checks the
   * heap against it (`compactFor`), else only the caller's `compactFor` does.
   */
  constructor(private readonly live?: () => number) {}

  get size(): number {
    return this.at.length;
  }

  /** Call after changing `owner.timers`: pushes an entry if the owner now needs an earlier wake-up. */
  touch(owner: T): void {
    const m = earliest(owner.timers);
    if (m < owner.heapAt) {
      owner.heapAt = m;
      this.push(m, owner);
    }
  }

  /** Earliest deadline in the heap, skipping entries of removed owners. */
  next(): Millis | undefined {
    while (this.at.length > 0 && !this.who[0]!.alive) this.pop();
    return this.at.length > 0 ? (this.at[0] as Millis) : undefined;
  }

  /** Pop every owner with an entry due at or before `now` (each once; their heapAt is reset). */
  due(now: Millis): T[] {
    const out: T[] = [];
    while (this.at.length > 0 && this.at[0]! <= now) {
      const at = this.at[0]!;
      const w = this.who[0]!;
      this.pop();
      if (!w.alive || at !== w.heapAt) continue; // stale duplicate
      w.heapAt = Infinity;
      out.push(w);
    }
    return out;
  }

  /**
   * Drop every entry that can no longer fire (a removed owner's, an owner's stale one, or a second
   * one for the same deadline) when such entries could outnumber the live ones: `live` owners hold
   * at most one entry each that counts. A context set up and removed again and again would
   * otherwise keep each removed one in memory until its last deadline (the idle timer: minutes);
   * so would a live context each of whose short timers, once run, pushed its idle deadline again
   * (40 entries per context over 10 min of one-way traffic under `rfc`). Linear, and run at most
   * once per `live` + 64 removals or pushes, so O(1) per removal and O(log n) per push.
   */
  compactFor(live: number): void {
    if (this.at.length <= 2 * live + 64) return;
    const at: number[] = [], who: T[] = [];
    const kept = new Set<T>();
    for (let i = 0; i < this.at.length; i++) {
      const w = this.who[i]!;
      if (w.alive && this.at[i] === w.heapAt && !kept.has(w)) { kept.add(w); at.push(this.at[i]!); who.push(w); }
    }
    this.at = [];
    this.who = [];
    for (let i = 0; i < at.length; i++) this.insert(at[i]!, who[i]!);
  }

  private push(at: number, w: T): void {
    this.insert(at, w);
    if (this.live !== undefined) this.compactFor(this.live());
  }

  private insert(at: number, w: T): void {
    const a = this.at, h = this.who;
    let i = a.length;
    a.push(at); h.push(w);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]! <= at) break;
      a[i] = a[p]!; h[i] = h[p]!;
      i = p;
    }
    a[i] = at; h[i] = w;
  }

  private pop(): void {
    const a = this.at, h = this.who;
    const lastAt = a.pop()!, lastW = h.pop()!;
    const n = a.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && a[r]! < a[l]! ? r : l;
      if (a[c]! >= lastAt) break;
      a[i] = a[c]!; h[i] = h[c]!;
      i = c;
    }
    a[i] = lastAt; h[i] = lastW;
  }
}

/** Binary exponential back-off: nominal × 2^attempt, capped (RFC 5533 §7.8, §10.2). */
export function backoff(nominal: number, attempt: number, cap = Infinity): number {
  return Math.min(cap, nominal * 2 ** Math.min(attempt, 30));
}
